"""The per-dataset search of a learner's settings (methods/tuning.py, issue 14): it scores on
validation users only, keeps to its budget, picks the lowest validation MAE, stops on request,
is deterministic for a seed, and is reachable as ``metasgd_tuned`` and ``train --search N``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers import TINY_LEARNER, ratings_csv, tiny_frames

from metarec_core.checkpoint import load_checkpoint, to_bytes
from metarec_core.cli import main
from metarec_core.data.io import from_arrays
from metarec_core.methods import registry
from metarec_core.methods.meta import make_learner, preset
from metarec_core.methods.tuning import (
    SearchConfig,
    TunedMetaSGD,
    candidates,
    plan,
    search,
    tuned_learner,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE = dataclasses.replace(preset("metasgd"), device="cpu")


class FakeLearner:
    """Records what each trial was fitted on; its validation MAE comes from `score(config)`."""

    def __init__(self, config, score, fits):
        self.config, self.score, self.fits = config, score, fits

    def fit(self, data, train_users, val_users=None, *, should_stop=None, progress=None):
        self.fits.append((self.config, np.asarray(train_users), np.asarray(val_users)))
        if progress is not None:
            progress(1.0, "done")
        self.best_val_mae_ = self.score(self.config)
        if self.best_val_mae_ is None:
            raise FloatingPointError("diverged")
        self.history_ = [None] * self.config.steps
        return self


def fake(score):
    fits: list = []
    return (lambda cfg: FakeLearner(cfg, score, fits)), fits


USERS = np.arange(100)
TRAIN, VAL, TEST = USERS[:70], USERS[70:85], USERS[85:]


def test_the_plan_keeps_to_the_budget_and_halves_each_round():
    n = len(candidates(BASE))
    for trials in range(1, 20):
        sizes = plan(n, trials)
        assert sum(sizes) <= trials and sizes[0] <= n
        assert all(b == a // 2 for a, b in zip(sizes, sizes[1:], strict=False))
    assert plan(n, 6) == [4, 2] and plan(n, 2) == [2] and plan(n, 1) == [1]


def test_the_candidates_start_from_the_preset_and_change_data_dependent_settings():
    cands = candidates(BASE)
    assert cands[0] == {} and len(cands) == len({tuple(sorted(c.items())) for c in cands})
    assert {k for c in cands for k in c} <= {
        "mf_reg", "factors", "outer_lr", "inner_steps", "weight_decay"
    }  # fmt: skip
    assert {"factors": BASE.factors // 2} in cands and {"mf_reg": None} in cands


def test_the_search_keeps_to_its_budget_and_picks_the_lowest_validation_mae():
    make, fits = fake(lambda c: 0.60 if c.factors == BASE.factors // 2 else 0.70)
    result = search(BASE, None, TRAIN, VAL, SearchConfig(trials=6, trial_steps=50), make=make)
    assert len(fits) == len(result.trials) == 6
    assert result.chosen == {"factors": BASE.factors // 2}
    assert result.config(BASE).factors == BASE.factors // 2
    assert [t.steps for t in result.trials] == [50] * 4 + [100] * 2  # the second round: twice
    assert any(t.round == 2 and t.val_mae == 0.60 for t in result.trials)
    [row] = [r for r in result.rows() if r["chosen"]]
    assert row["setting"] == f"factors {BASE.factors // 2}" and row["round"] == 2
    assert "<- chosen" in result.to_text()


def test_a_trial_gets_at_most_a_quarter_of_the_learners_steps():
    make, _ = fake(lambda c: 0.7)
    short = dataclasses.replace(BASE, steps=80)
    result = search(short, None, TRAIN, VAL, SearchConfig(trials=6), make=make)
    assert [t.steps for t in result.trials] == [20] * 4 + [40] * 2


def test_the_preset_wins_ties_and_a_diverged_setting_loses():
    make, _ = fake(lambda c: None if c.mf_reg is None else 0.70 - (c.factors == 10) * 0.0005)
    result = search(BASE, None, TRAIN, VAL, SearchConfig(trials=6, trial_steps=5), make=make)
    assert result.chosen == {}  # factors 10 is better by less than min_gain; mf_reg None diverged
    assert [t.val_mae for t in result.trials if t.changes == {"mf_reg": None}] == [None]


def test_trials_are_fitted_on_the_training_users_and_scored_on_the_validation_users_only():
    make, fits = fake(lambda c: 0.7)
    search(BASE, None, TRAIN, VAL, SearchConfig(trials=6, trial_steps=5), make=make)
    for _, train, val in fits:
        np.testing.assert_array_equal(train, TRAIN)
        np.testing.assert_array_equal(val, VAL)
        assert not set(TEST) & (set(train) | set(val))


def test_the_time_cap_ends_the_search_after_the_running_trial():
    make, fits = fake(lambda c: 0.7)
    result = search(BASE, None, TRAIN, VAL, SearchConfig(trials=6, time_cap_s=0.0), make=make)
    assert len(fits) == 1 and result.chosen == {} and not result.stopped


def test_should_stop_ends_the_search_and_nothing_is_chosen():
    make, fits = fake(lambda c: 0.60 if c.mf_reg is None else 0.7)
    seen: list[float] = []
    result = search(
        BASE, None, TRAIN, VAL, SearchConfig(trials=6), should_stop=lambda: len(fits) >= 2,
        progress=lambda f, m: seen.append(f), make=make,
    )  # fmt: skip
    assert len(fits) == 2 and result.stopped and result.chosen == {}
    assert seen and all(0 <= f <= 1 for f in seen)


def test_without_validation_users_the_search_refuses():
    with pytest.raises(ValueError, match="validation users"):
        search(BASE, None, TRAIN, np.array([], dtype=np.int64), make=fake(lambda c: 0.7)[0])


# ------------------------------------------------------------------ the real learner
# no warm start, no pre-training: the search's plumbing, not accuracy
TINY = {**TINY_LEARNER, "pretrain": False, "warm_start": False, "device": "cpu"}
TEST_USERS = 20


def _data(flip_test_users: bool = False):
    """The tiny dataset; `flip_test_users`: the last users' ratings mirrored (6 - r)."""
    rows, items = tiny_frames()
    n_users = len({u for u, _, _ in rows})
    test = {f"u{u}" for u in range(n_users - TEST_USERS, n_users)}
    ratings = [6 - r if flip_test_users and u in test else r for u, _, r in rows]
    return from_arrays(
        [u for u, _, _ in rows],
        [i for _, i, _ in rows],
        ratings,
        item_titles={i: t for i, t, _ in items},
        genres={i: [g] for i, _, g in items},
        source="tiny",
    )


def _tuned(data) -> TunedMetaSGD:
    learner = make_learner("metasgd_tuned", seed=0, **TINY)
    learner.search_config = SearchConfig(trials=2, trial_steps=2)
    test = [u for u in range(data.n_users) if data.user_ids[u] in _test_ids(data)]
    train = np.setdiff1d(np.arange(data.n_users), test)
    return learner.fit(data, train)  # its validation users: carved from train, as fit does


def _test_ids(data) -> set[str]:
    ids = sorted(data.user_ids, key=lambda s: int(s[1:]))
    return set(ids[-TEST_USERS:])


def test_metasgd_tuned_is_deterministic_and_test_users_ratings_never_reach_it():
    a, b = _data(), _data(flip_test_users=True)
    assert list(a.user_ids) == list(b.user_ids)
    ta, tb = _tuned(a), _tuned(b)
    assert ta.fitted_ and type(ta) is TunedMetaSGD
    assert len(ta.search_.trials) == 2
    def trials(learner):
        return [(t.changes, t.steps_run, t.val_mae) for t in learner.search_.trials]

    assert trials(ta) == trials(tb) and all(t[2] is not None for t in trials(ta))
    assert ta.search_.chosen == tb.search_.chosen
    assert ta.best_val_mae_ == tb.best_val_mae_
    support = (np.array([0, 1, 2]), np.array([5.0, 1.0, 4.0]))
    np.testing.assert_array_equal(ta.score_many([support]), tb.score_many([support]))
    # its state keeps the search (a job's worker sends it so); a checkpoint loads as itself
    assert TunedMetaSGD.from_state(ta.to_state()).search_ == ta.search_
    assert type(load_checkpoint(to_bytes(ta, a), a).learner) is TunedMetaSGD


def test_a_stopped_search_leaves_the_learner_unfitted():
    learner = tuned_learner(make_learner("metasgd", seed=0, **TINY).config, trials=2)
    learner.fit(_data(), np.arange(60), should_stop=lambda: True)
    assert not learner.fitted_ and learner.search_.stopped


def test_metasgd_tuned_is_one_registered_meta_learner():
    assert "metasgd_tuned" in registry.available_methods(registry.META_LEARNER)
    assert "metasgd_tuned" not in registry.META_LEARNERS  # not one of the built-in presets
    assert type(registry.make_method("metasgd_tuned", device="cpu")) is TunedMetaSGD
    assert preset("metasgd_tuned").algorithm == "metasgd_tuned"


def test_cli_train_with_search_prints_the_trials_and_the_choice(tmp_path, capsys):
    path = tmp_path / "r.csv"
    path.write_bytes(ratings_csv())
    out = tmp_path / "m.pt"
    rc = main(
        ["train", str(path), "--out", str(out), "--steps", "4", "--seed", "0"]
        + ["--device", "cpu", "--algo", "fomaml", "--search", "2", "--no-check"]
    )
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "search: 2 trial training(s) of 2 setting(s) on 8 validation users" in cap.out
    assert "preset" in cap.out and "chosen: " in cap.out and out.exists()


def test_cli_search_must_not_be_negative(tmp_path, capsys):
    path = tmp_path / "r.csv"
    path.write_bytes(ratings_csv())
    rc = main(["train", str(path), "--out", str(tmp_path / "m.pt"), "--search", "-1"])
    assert rc == 2 and "--search" in capsys.readouterr().err
