"""Prediction intervals and their coverage (metarec_core.evaluation.intervals), on synthetic
cases whose answer is known, and on the learners' ordinal output."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pytest
from helpers import TINY_LEARNER, tiny_dataset, tiny_split

from metarec_core.evaluation import intervals as iv
from metarec_core.methods.base import (
    AdaptedUser,
    Capabilities,
    LevelDistribution,
    Recommender,
)
from metarec_core.methods.registry import make_method

LEVELS = np.arange(1.0, 6.0)
P = np.array([0.1, 0.2, 0.4, 0.2, 0.1])


class _Known(Recommender):
    """A test double: every item's rating has the known distribution P (or no distribution:
    the displayed rating is P's mean, 3)."""

    name: ClassVar[str] = "known"

    def __init__(self, distribution: bool) -> None:
        self.capabilities = Capabilities(distribution=distribution)
        self.fitted_, self.n_items_ = True, 4

    def fit(self, data, train_users, val_users=None, **hooks):
        return self

    def adapt(self, items, ratings, **query) -> AdaptedUser:
        return AdaptedUser(np.full(self.n_items_, 3.0), np.asarray(items), np.asarray(ratings))

    def predictive_many(self, supports):
        return LevelDistribution(LEVELS, np.broadcast_to(P, (len(supports), self.n_items_, 5)))


def test_coverage_counts_the_share_inside_with_closed_ends():
    lo, hi = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 4.0, 5.0])
    assert iv.coverage(lo, hi, np.array([2.0, 2.0, 5.0, 1.0])) == 0.5
    assert math.isnan(iv.coverage(lo[:0], hi[:0], np.zeros(0)))


@pytest.mark.parametrize(("c", "want", "mass"), [(0.5, (2, 4), 0.8), (0.8, (1, 4), 0.9)])
def test_a_true_distribution_covers_what_its_interval_holds(c, want, mass):
    """Ratings drawn from the model's own distribution: coverage = the interval's mass."""
    out = iv.intervals_many(_Known(True), [(np.zeros(0, int), np.zeros(0))], c)
    assert out is not None and out.source == "distribution"
    assert (out.low == want[0]).all() and (out.high == want[1]).all()
    draws = np.random.default_rng(0).choice(LEVELS, size=20_000, p=P)
    got = iv.coverage(np.full(len(draws), want[0]), np.full(len(draws), want[1]), draws)
    assert got == pytest.approx(mass, abs=0.01)  # 20,000 draws: sd 0.003
    assert got >= c  # a discrete scale's central interval holds at least c


def test_conformal_intervals_cover_their_share_of_new_residuals():
    """Gaussian errors: the radius from 2,000 calibration residuals covers ≈ c of new ones."""
    rng = np.random.default_rng(1)
    calib, new = np.abs(rng.normal(size=2000)), rng.normal(size=50_000)
    for c, z in [(0.5, 0.6745), (0.8, 1.2816), (0.9, 1.6449)]:
        r = iv.conformal_quantile(calib, c)
        assert r == pytest.approx(z, rel=0.08)  # the normal's two-sided quantile
        assert iv.coverage(-r, r, new) == pytest.approx(c, abs=0.02)


def test_calibrated_distribution_intervals_cover_their_share():
    """The model's distribution P is too wide for ratings drawn from Q: its raw 70% interval
    (2-4) holds every rating; calibrated on 2,000 draws it shrinks to the median level, which
    holds Q's 80% (the least whole-level interval holding at least 70%)."""
    q = np.array([0.0, 0.1, 0.8, 0.1, 0.0])
    rng = np.random.default_rng(2)
    calib, new = rng.choice(LEVELS, size=2000, p=q), rng.choice(LEVELS, size=20_000, p=q)
    scores = iv.set_scores(np.broadcast_to(P, (len(calib), 5)), LEVELS, calib)
    # the rating is inside the nominal-c' interval exactly when c' > its score
    for c in (0.2, 0.5, 0.79, 0.81, 0.95):
        lo, hi = iv.level_interval(np.broadcast_to(P, (len(calib), 5)), LEVELS, c)
        np.testing.assert_array_equal((lo <= calib) & (calib <= hi), scores < c)
    cal = iv.Calibration((0,), (np.zeros(1),), (scores,))
    none = [(np.zeros(0, int), np.zeros(0))]
    raw = iv.intervals_many(_Known(True), none, 0.7)
    assert (raw.low == 2).all() and (raw.high == 4).all() and raw.source == "distribution"
    fit = iv.intervals_many(_Known(True), none, 0.7, cal)
    assert fit.source == "calibrated distribution"
    assert (fit.low == 3).all() and (fit.high == 3).all()
    assert iv.coverage(np.full(len(new), 3.0), np.full(len(new), 3.0), new) == pytest.approx(
        0.8, abs=0.01
    )


def test_conformal_quantile_is_the_finite_sample_rank():
    r = np.arange(1.0, 10.0)  # 9 residuals: rank ⌈10 c⌉
    assert iv.conformal_quantile(r, 0.8) == 8.0
    assert iv.conformal_quantile(r, 0.5) == 5.0
    assert iv.conformal_quantile(r[:3], 0.9) == math.inf  # too few for 90%


def test_level_interval_rejects_a_coverage_outside_0_1():
    with pytest.raises(ValueError, match="between 0 and 1"):
        iv.level_interval(P, LEVELS, 1.0)


@pytest.fixture(scope="module")
def tiny():
    """The tiny dataset and its app split (train, validation users)."""
    data = tiny_dataset()
    return data, tiny_split(data)


def test_conformal_fallback_uses_the_validation_residuals_at_k(tiny):
    data, split = tiny
    model = _Known(False)
    model.n_items_ = data.n_items
    res = iv.calibrate(model, data, split.val_users, ks=(0, 3))
    assert res is not None and res.ks == (0, 3)
    # the displayed rating is 3 everywhere: the residuals are |r - 3| of the query ratings
    from metarec_core.protocol.tasks import make_tasks

    tasks, _ = make_tasks(data, split.val_users, query=10, seed=0)
    want = np.abs(np.concatenate([t.query[1] for t in tasks]) - 3.0)
    np.testing.assert_allclose(np.sort(res.residuals[0]), np.sort(want))
    assert res.set_scores is None  # no distribution
    out = iv.intervals_many(model, [(np.array([1]), np.array([4.0]))], 0.8, res, scale=data.scale)
    assert out is not None and out.source == "conformal"
    r = iv.conformal_quantile(want, 0.8)
    np.testing.assert_allclose(out.high, np.minimum(3.0 + r, data.scale.high))
    np.testing.assert_allclose(out.low, np.maximum(3.0 - r, data.scale.low))
    # a model with neither a distribution nor a calibration has no interval
    assert iv.intervals_many(model, [(np.zeros(0, int), np.zeros(0))]) is None


def test_ranking_only_methods_get_no_interval(tiny):
    data, split = tiny
    pop = make_method("popularity", seed=0).fit(data, split.train_users)
    assert iv.calibrate(pop, data, split.val_users) is None
    assert iv.intervals_many(pop, [(np.zeros(0, int), np.zeros(0))]) is None


def test_the_learners_ordinal_output_gives_a_distribution(tiny):
    data, split = tiny
    from metarec_core.methods.meta import make_learner

    learner = make_learner("metasgd", seed=0, device="cpu", **TINY_LEARNER).fit(
        data, split.train_users, split.val_users
    )
    assert learner.capabilities.distribution
    items, ratings = np.array([0, 1, 2]), np.array([5.0, 1.0, 4.0])
    dist = learner.predictive_many([(items, ratings), (items[:1], ratings[:1])])
    assert dist is not None and dist.probs.shape == (2, data.n_items, len(dist.levels))
    np.testing.assert_allclose(dist.probs.sum(-1), 1.0, atol=1e-6)
    # its mean is the displayed (expected) rating, its median the score
    mean = (dist.probs * dist.levels).sum(-1)
    np.testing.assert_allclose(
        mean, learner.display_many([(items, ratings), (items[:1], ratings[:1])]), atol=1e-5
    )
    half = iv.intervals_many(learner, [(items, ratings)], 0.5)
    assert half is not None and half.source == "distribution"
    score = learner.adapt(items, ratings).scores
    assert ((half.low[0] <= score + 0.01) & (score - 0.01 <= half.high[0])).all()
    wide = iv.intervals_many(learner, [(items, ratings)], 0.9)
    assert (wide.low <= half.low).all() and (wide.high >= half.high).all()
    conf = iv.calibrate(learner, data, split.val_users)
    assert conf is not None and conf.set_scores is not None
    assert [len(x) for x in conf.set_scores] == [len(x) for x in conf.residuals]
    fit = iv.intervals_many(learner, [(items, ratings)], 0.8, conf)
    assert fit is not None and fit.source == "calibrated distribution"
    forced = iv.intervals_many(learner, [(items, ratings)], 0.8, conf, use_distribution=False)
    assert forced is not None and forced.source == "conformal"
