"""How sure a model is: prediction intervals for a new user's ratings, and their coverage.

Two sources, chosen by what a method declares (`Capabilities.distribution`), never by its name:

- ``"distribution"``: the method's predictive distribution over the scale's levels (the
  learners' ordinal output, `Recommender.predictive_many`). The central c-interval is
  [the (1 - c)/2 quantile, the (1 + c)/2 quantile] of that distribution; on a discrete scale it
  holds at least c of the model's own probability, often more.
- ``"conformal"``: split-conformal intervals for every other rating predictor: the displayed
  rating ± the ⌈(n + 1)c⌉-th smallest of n absolute residuals on the model's validation users,
  measured at the same support size k (the nearest one calibrated), since the error shrinks
  as a user rates more. Under exchangeability of validation and new users they cover at least
  c of new users' ratings.

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
from metarec_core.methods.base import Recommender
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


def conformal_quantile(residuals: np.ndarray, coverage: float) -> float:
    """The split-conformal radius: the ⌈(n + 1)c⌉-th smallest of the n absolute residuals
    (infinite when n is too small for that coverage)."""
    _check_coverage(coverage)
    r = np.sort(np.abs(np.asarray(residuals, dtype=np.float64).ravel()))
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


@dataclass(frozen=True, eq=False)
class Residuals:
    """Absolute residuals of a model's displayed ratings on its validation users' held-out
    ratings, per support size k (the calibration set of the conformal intervals)."""

    ks: tuple[int, ...]
    values: tuple[np.ndarray, ...]  # per k: (n,) absolute residuals

    def radius(self, k: int, coverage: float) -> float:
        """The conformal radius at support size k (the nearest calibrated size; ties: the
        smaller k, whose residuals are larger)."""
        j = min(range(len(self.ks)), key=lambda i: (abs(self.ks[i] - k), self.ks[i]))
        return conformal_quantile(self.values[j], coverage)


def calibrate(
    model: Recommender,
    data: RatingsDataset,
    val_users: np.ndarray,
    *,
    ks: Sequence[int] = CALIBRATION_KS,
    query: int = CALIBRATION_QUERY,
    seed: int = 0,
) -> Residuals | None:
    """Residuals of `model` on `val_users` (never test users): each validation user's last
    `query` ratings (the k-shot protocol's seeded order) predicted from their first k, for
    each k. None for a ranking-only method or when no validation user has enough ratings."""
    if not model.capabilities.predicts_ratings or len(val_users) == 0:
        return None
    tasks, _ = make_tasks(data, np.asarray(val_users), query=query, seed=seed)
    got_ks, values = [], []
    for k in ks:
        use = [t for t in tasks if t.n_available >= k]
        if not use:
            continue
        shown = model.display_many([t.support(k) for t in use])
        qi = np.stack([t.query[0] for t in use]).astype(np.int64)
        qr = np.stack([t.query[1] for t in use]).astype(np.float64)
        got_ks.append(int(k))
        values.append(np.abs(np.take_along_axis(shown, qi, 1) - qr).ravel())
    return Residuals(tuple(got_ks), tuple(values)) if got_ks else None


@dataclass(frozen=True, eq=False)
class Intervals:
    """Prediction intervals of every item for each support set: `low`, `high` (B, n_items),
    on the rating scale; `source` says where they come from (see the module doc)."""

    low: np.ndarray
    high: np.ndarray
    coverage: float
    source: Literal["distribution", "conformal"]


def intervals_many(
    model: Recommender,
    supports: Sequence[Support],
    coverage: float = DEFAULT_COVERAGE,
    residuals: Residuals | None = None,
    *,
    scale: RatingScale | None = None,
    use_distribution: bool = True,
) -> Intervals | None:
    """The `coverage` intervals of `model` for each support set: from its predictive
    distribution when it declares and has one (and `use_distribution`), else conformal from
    `residuals` (`calibrate`), cut to `scale` when given; None for a ranking-only method or
    without residuals."""
    out = intervals_at(
        model, supports, (coverage,), residuals, scale=scale, use_distribution=use_distribution
    )
    return None if out is None else out[coverage]


def intervals_at(
    model: Recommender,
    supports: Sequence[Support],
    coverages: Sequence[float] = COVERAGES,
    residuals: Residuals | None = None,
    *,
    scale: RatingScale | None = None,
    use_distribution: bool = True,
) -> dict[float, Intervals] | None:
    """`intervals_many` at several coverages from one adaptation per support set."""
    for c in coverages:
        _check_coverage(c)
    if not model.capabilities.predicts_ratings:
        return None
    if use_distribution and model.capabilities.distribution:
        dist = model.predictive_many(supports)
        if dist is not None:
            return {
                c: Intervals(*level_interval(dist.probs, dist.levels, c), c, "distribution")
                for c in coverages
            }
    if residuals is None:
        return None
    center = model.display_many(supports)
    out = {}
    for c in coverages:
        radius = np.array([residuals.radius(len(items), c) for items, _ in supports])
        lo, hi = center - radius[:, None], center + radius[:, None]
        if scale is not None:  # a rating outside the scale is impossible: the band stops there
            lo, hi = np.clip(lo, scale.low, scale.high), np.clip(hi, scale.low, scale.high)
        out[c] = Intervals(lo, hi, c, "conformal")
    return out
