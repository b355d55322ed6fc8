"""How sure a model is: prediction intervals for a new user's ratings, and their coverage.

Chosen by what a method declares (`Capabilities.distribution`), never by its name:

- ``"distribution"``: the method's predictive distribution over the scale's levels (the
  learners' ordinal output, `Recommender.predictive_many`). The central c-interval is
  [the (1 - c)/2 quantile, the (1 + c)/2 quantile] of that distribution; on a discrete scale it
  holds at least c of the model's own probability, often much more (whole levels).
- ``"calibrated distribution"``: the same central intervals at the nominal coverage c' that
  held c of the validation users' ratings (split conformal over the nested intervals, with
  the score `set_scores`), at the same support size k (the nearest one calibrated).
- ``"conformal"``: for a rating predictor without a distribution: the displayed rating ± the
  ⌈(n + 1)c⌉-th smallest of n absolute residuals on the model's validation users at the same
  support size k, since the error shrinks as a user rates more.

Both calibrated kinds cover at least c of new users' ratings when validation and new users are
exchangeable (split conformal prediction).
A ranking-only method (popularity) gets no interval. `coverage` is the share of hidden ratings
inside their interval (the bench: bench/coverage.py).

>>> import numpy as np
>>> p = np.array([[[0.1, 0.2, 0.4, 0.2, 0.1]]])
>>> level_interval(p, np.arange(1.0, 6.0), 0.8)
(array([[1.]]), array([[4.]]))
>>> level_interval(p, np.arange(1.0, 6.0), 0.5)
(array([[2.]]), array([[4.]]))
>>> coverage(np.array([1.0, 2.0]), np.array([3.0, 2.0]), np.array([3.0, 4.0]))
0.5
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.methods.base import LevelDistribution, Recommender
from metarec_core.protocol.tasks import make_tasks

COVERAGES = (0.5, 0.8, 0.9)
DEFAULT_COVERAGE = 0.8
# Support sizes the residuals are measured at (0: the prior, as the playground starts).
CALIBRATION_KS = (0, 1, 3, 5, 10, 20)
CALIBRATION_QUERY = 10

Support = tuple[np.ndarray, np.ndarray]


def level_interval(
    probs: np.ndarray, levels: np.ndarray, coverage: float
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) levels of the central `coverage` interval of distributions `probs` (..., L)
    over `levels` (L,): the first level whose cumulative probability reaches (1 - c)/2, and the
    first that reaches (1 + c)/2."""
    _check_coverage(coverage)
    cdf = np.cumsum(np.asarray(probs, dtype=np.float64), -1)
    cdf /= cdf[..., -1:]  # rows of float32 sums may end at 0.9999999
    tail = (1.0 - coverage) / 2
    lo = (cdf < tail - 1e-12).sum(-1)
    hi = (cdf < 1.0 - tail - 1e-12).sum(-1)
    levels = np.asarray(levels, dtype=np.float64)
    return levels[np.minimum(lo, len(levels) - 1)], levels[np.minimum(hi, len(levels) - 1)]


def conformal_quantile(scores: np.ndarray, coverage: float) -> float:
    """The split-conformal threshold: the ⌈(n + 1)c⌉-th smallest of n calibration scores
    (absolute residuals, `set_scores`); infinite when n is too small for that coverage."""
    _check_coverage(coverage)
    r = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    rank = math.ceil((len(r) + 1) * coverage)
    return float(r[rank - 1]) if rank <= len(r) else math.inf


def coverage(low: np.ndarray, high: np.ndarray, true: np.ndarray) -> float:
    """Share of `true` values with low <= true <= high (NaN for none)."""
    t = np.asarray(true, dtype=np.float64)
    if t.size == 0:
        return math.nan
    return float(np.mean((np.asarray(low) <= t) & (t <= np.asarray(high))))


def _check_coverage(c: float) -> None:
    if not 0.0 < c < 1.0:
        raise ValueError(f"an interval's coverage is a share between 0 and 1, got {c}")


def set_scores(probs: np.ndarray, levels: np.ndarray, true: np.ndarray) -> np.ndarray:
    """The smallest nominal coverage c' whose central interval (`level_interval`) holds each
    true rating (snapped to the nearest level): max(1 - 2 F(r), 2 F(r - 1) - 1), F the
    distribution's CDF; the rating is inside for every c' above it (the nested sets' score of
    conformal prediction)."""
    levels = np.asarray(levels, dtype=np.float64)
    cdf = np.cumsum(np.asarray(probs, dtype=np.float64), -1)
    cdf /= cdf[..., -1:]
    j = np.abs(np.asarray(true, dtype=np.float64)[..., None] - levels).argmin(-1)
    at = np.take_along_axis(cdf, j[..., None], -1)[..., 0]
    below = np.where(
        j > 0, np.take_along_axis(cdf, np.maximum(j - 1, 0)[..., None], -1)[..., 0], 0.0
    )
    return np.maximum(1.0 - 2.0 * at, 2.0 * below - 1.0)


@dataclass(frozen=True, eq=False)
class Calibration:
    """A model's errors on its validation users' held-out ratings, per support size k: the
    absolute residuals of its displayed ratings (conformal intervals around them) and, for a
    model with a predictive distribution, the `set_scores` (its calibrated central intervals)."""

    ks: tuple[int, ...]
    residuals: tuple[np.ndarray, ...]  # per k: (n,) absolute residuals
    set_scores: tuple[np.ndarray, ...] | None = None  # per k: (n,); None without a distribution

    def _at(self, k: int) -> int:
        """The nearest calibrated size to k (ties: the smaller, whose errors are larger)."""
        return min(range(len(self.ks)), key=lambda i: (abs(self.ks[i] - k), self.ks[i]))

    def radius(self, k: int, coverage: float) -> float:
        """The conformal radius around the displayed rating at support size k."""
        return conformal_quantile(self.residuals[self._at(k)], coverage)

    def nominal(self, k: int, coverage: float) -> float | None:
        """The nominal coverage of the distribution's central interval that holds `coverage`
        of the validation ratings at support size k (None without a distribution)."""
        if self.set_scores is None:
            return None
        q = conformal_quantile(self.set_scores[self._at(k)], coverage)
        # strictly above the score (the rating is inside for every c' above it), inside (0, 1)
        return float(min(max(q + 1e-9, 1e-9), 1.0 - 1e-9))


def calibrate(
    model: Recommender,
    data: RatingsDataset,
    val_users: np.ndarray,
    *,
    ks: Sequence[int] = CALIBRATION_KS,
    query: int = CALIBRATION_QUERY,
    seed: int = 0,
) -> Calibration | None:
    """`model`'s errors on `val_users` (never test users): each validation user's last `query`
    ratings (the k-shot protocol's seeded order) predicted from their first k, for each k.
    None for a ranking-only method or when no validation user has enough ratings."""
    if not model.capabilities.predicts_ratings or len(val_users) == 0:
        return None
    tasks, _ = make_tasks(data, np.asarray(val_users), query=query, seed=seed)
    got_ks, residuals, scores = [], [], []
    for k in ks:
        use = [t for t in tasks if t.n_available >= k]
        if not use:
            continue
        supports = [t.support(k) for t in use]
        qi = np.stack([t.query[0] for t in use]).astype(np.int64)
        qr = np.stack([t.query[1] for t in use]).astype(np.float64)
        got_ks.append(int(k))
        residuals.append(np.abs(model.display_many(supports, qi) - qr).ravel())
        dist = model.predictive_many(supports, qi) if model.capabilities.distribution else None
        if dist is not None:
            scores.append(set_scores(dist.probs, dist.levels, qr).ravel())
    if not got_ks:
        return None
    return Calibration(tuple(got_ks), tuple(residuals), tuple(scores) if scores else None)


@dataclass(frozen=True, eq=False)
class Intervals:
    """Prediction intervals of every item for each support set: `low`, `high` (B, n_items),
    on the rating scale; `source` says where they come from (see the module doc)."""

    low: np.ndarray
    high: np.ndarray
    coverage: float
    source: Literal["distribution", "calibrated distribution", "conformal"]


def intervals_many(
    model: Recommender,
    supports: Sequence[Support],
    coverage: float = DEFAULT_COVERAGE,
    calibration: Calibration | None = None,
    *,
    scale: RatingScale | None = None,
    use_distribution: bool = True,
) -> Intervals | None:
    """The `coverage` intervals of `model` for each support set (see `intervals_at`)."""
    out = intervals_at(
        model, supports, (coverage,), calibration, scale=scale, use_distribution=use_distribution
    )
    return None if out is None else out[coverage]


def intervals_at(
    model: Recommender,
    supports: Sequence[Support],
    coverages: Sequence[float] = COVERAGES,
    calibration: Calibration | None = None,
    *,
    scale: RatingScale | None = None,
    use_distribution: bool = True,
) -> dict[float, Intervals] | None:
    """Intervals at several `coverages` from one adaptation per support set: the central
    intervals of the model's predictive distribution when it declares and has one (and
    `use_distribution`), their nominal coverage calibrated on `calibration` when given; else
    the displayed rating ± the conformal radius of `calibration`, cut to `scale` when given.
    None for a ranking-only method, or without a distribution and without a calibration."""
    for c in coverages:
        _check_coverage(c)
    if not model.capabilities.predicts_ratings:
        return None
    if use_distribution and model.capabilities.distribution:
        dist = model.predictive_many(supports)
        if dist is not None:
            return {c: _from_distribution(dist, supports, c, calibration) for c in coverages}
    if calibration is None:
        return None
    center = model.display_many(supports)
    out = {}
    for c in coverages:
        radius = np.array([calibration.radius(len(items), c) for items, _ in supports])
        lo, hi = center - radius[:, None], center + radius[:, None]
        if scale is not None:  # a rating outside the scale is impossible: the band stops there
            lo, hi = np.clip(lo, scale.low, scale.high), np.clip(hi, scale.low, scale.high)
        out[c] = Intervals(lo, hi, c, "conformal")
    return out


def _from_distribution(
    dist: LevelDistribution, supports: Sequence[Support], c: float, calibration: Calibration | None
) -> Intervals:
    """Central intervals of `dist`, each support's at its calibrated nominal coverage when the
    calibration has one."""
    nominal = [None if calibration is None else calibration.nominal(len(i), c) for i, _ in supports]
    if any(n is None for n in nominal):
        return Intervals(*level_interval(dist.probs, dist.levels, c), c, "distribution")
    lo, hi = np.empty(dist.probs.shape[:2]), np.empty(dist.probs.shape[:2])
    for b, n in enumerate(nominal):
        lo[b], hi[b] = level_interval(dist.probs[b], dist.levels, n)
    return Intervals(lo, hi, c, "calibrated distribution")
