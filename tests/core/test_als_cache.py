"""The ALS cache: one solve shared by the fits that ask for the same one, never a stale one."""

from __future__ import annotations

import numpy as np
import pytest

from metarec_core.methods.baselines import BASELINE_CLASSES
from metarec_core.methods.baselines import mf as mf_module
from metarec_core.methods.baselines.mf import ALS_CACHE, MFFoldIn
from metarec_core.protocol.splits import user_folds
from tests.core.test_baselines import planted


@pytest.fixture()
def solves(monkeypatch):
    """Counts the ALS solves actually run; starts from an empty cache."""
    ALS_CACHE.clear()
    count = []
    real = MFFoldIn._solve_als

    def counted(self, *args):
        count.append(self.seed)
        return real(self, *args)

    monkeypatch.setattr(MFFoldIn, "_solve_als", counted)
    yield count
    ALS_CACHE.clear()


@pytest.fixture(scope="module")
def lowrank():
    data, _ = planted(n_users=200, n_items=80, per_user=40, rank=3, noise=0.1, seed=3)
    return data, user_folds(data, 5, seed=0)[0]


def test_levels_reuse_the_plain_fits_als_and_give_the_same_weights(lowrank, solves):
    data, fold = lowrank
    plain = BASELINE_CLASSES["mf_foldin"](seed=0, iters=3).fit(
        data, fold.train_users, fold.val_users
    )
    n = len(solves)
    assert n == len(MFFoldIn.REG_GRID)
    levels = BASELINE_CLASSES["mf_foldin_levels"](seed=0, iters=3).fit(
        data, fold.train_users, fold.val_users
    )
    assert len(solves) == n  # every λ's ALS came from the cache
    ALS_CACHE.clear()
    fresh = BASELINE_CLASSES["mf_foldin_levels"](seed=0, iters=3).fit(
        data, fold.train_users, fold.val_users
    )
    assert len(solves) == 2 * n
    for a in ("item_factors_", "item_bias_", "user_factors_", "user_bias_"):
        np.testing.assert_array_equal(getattr(levels, a), getattr(fresh, a))
        np.testing.assert_array_equal(getattr(levels, a), getattr(plain, a))
    assert levels.fold_reg_ == fresh.fold_reg_


def test_other_inputs_miss_and_copies_are_returned(lowrank, solves):
    data, fold = lowrank
    a = MFFoldIn(seed=0, factors=4, reg=2.0, iters=2).fit(data, fold.train_users)
    a.item_factors_[:] = 0.0  # a caller scribbling on its weights does not reach the cache
    b = MFFoldIn(seed=0, factors=4, reg=2.0, iters=2).fit(data, fold.train_users)
    assert len(solves) == 1 and np.abs(b.item_factors_).sum() > 0
    MFFoldIn(seed=1, factors=4, reg=2.0, iters=2).fit(data, fold.train_users)
    MFFoldIn(seed=0, factors=5, reg=2.0, iters=2).fit(data, fold.train_users)
    MFFoldIn(seed=0, factors=4, reg=3.0, iters=2).fit(data, fold.train_users)
    MFFoldIn(seed=0, factors=4, reg=2.0, iters=3).fit(data, fold.train_users)
    MFFoldIn(seed=0, factors=4, reg=2.0, iters=2).fit(data, fold.val_users)  # other ratings
    assert len(solves) == 6


def test_a_stopped_solve_is_not_stored(lowrank, solves):
    data, fold = lowrank
    stopped = MFFoldIn(seed=0, factors=4, reg=2.0, iters=2)
    stopped.fit(data, fold.train_users, should_stop=lambda: True)
    assert not stopped.fitted_
    done = MFFoldIn(seed=0, factors=4, reg=2.0, iters=2).fit(data, fold.train_users)
    assert done.fitted_ and len(solves) == 2


def test_a_hit_still_reports_every_half_round(lowrank, solves):
    data, fold = lowrank
    seen: list[list[float]] = [[], []]
    for run in seen:
        MFFoldIn(seed=0, factors=4, reg=2.0, iters=2).fit(
            data, fold.train_users, progress=lambda f, m, run=run: run.append(f)
        )
    assert len(solves) == 1
    assert seen[0] == seen[1] and seen[1][-1] == pytest.approx(1.0)


def test_the_cache_is_bounded():
    cache = mf_module._ALSCache(size=2)
    for n in range(4):
        cache.put(("k", n), (np.full(3, n),))
    assert cache.get(("k", 0)) is None and cache.get(("k", 1)) is None
    np.testing.assert_array_equal(cache.get(("k", 3))[0], np.full(3, 3))
