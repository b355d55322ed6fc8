"""Per-user accuracy and ranking metrics, and bootstrap confidence intervals (pure numpy).

Every metric is computed per user; the evaluation then averages over users. Arrays of shape
(Q,) describe one user, (B, Q) describe B users (one value per row is returned).

- MAE  = (1/Q) Σ_j |r̂_j − r_j|            over the user's Q query items.
- RMSE = sqrt((1/Q) Σ_j (r̂_j − r_j)²)     per user (then averaged over users, not pooled).
- nDCG@k: rank the query items by prediction, highest first; ties in predictions are broken by
  position in the query (the query order is a seeded random permutation, so this neither peeks
  at the true ratings nor favours any item). DCG@k = Σ_{rank=1..k} (2^{r} − 1) / log2(1 + rank);
  nDCG@k = DCG@k / IDCG@k, IDCG@k being the DCG@k of the same items sorted by true rating.
  On a scale reaching below 0, r is the rating minus the scale's lowest value (gains >= 0).
  k is capped at Q. A user whose IDCG@k is 0 (every gain 0) gets NaN (undefined, not a score).
- recall@k over the whole catalogue: candidates are all items not in the support set, ranked by
  score (ties: lower item index first); relevant = the user's query items with rating ≥ the
  scale's relevant threshold (top 20% of the scale). recall@k = |top-k ∩ relevant| / |relevant|.
  A user without any relevant query item gets NaN: excluded from the average, and counted.
- Bootstrap: percentile 95% interval of the mean over users, from ``n_boot`` resamples of users
  with replacement drawn by a seeded generator; paired: the same on per-user differences a − b.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "bootstrap_ci",
    "mae",
    "ndcg_at_k",
    "paired_bootstrap_ci",
    "recall_at_k",
    "rmse",
]


def _pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"predictions {pred.shape} and ratings {true.shape} differ in shape")
    if pred.ndim not in (1, 2) or pred.shape[-1] == 0:
        raise ValueError(f"expected (Q,) or (B, Q) arrays with Q >= 1, got shape {pred.shape}")
    return pred, true


def mae(pred: np.ndarray, true: np.ndarray) -> np.ndarray | float:
    """Mean absolute error over the last axis: a float for (Q,), an array (B,) for (B, Q)."""
    pred, true = _pair(pred, true)
    out = np.mean(np.abs(pred - true), axis=-1)
    return float(out) if out.ndim == 0 else out


def rmse(pred: np.ndarray, true: np.ndarray) -> np.ndarray | float:
    """Root mean squared error over the last axis (per user)."""
    pred, true = _pair(pred, true)
    out = np.sqrt(np.mean((pred - true) ** 2, axis=-1))
    return float(out) if out.ndim == 0 else out


def _dcg(gains_in_rank_order: np.ndarray, k: int) -> np.ndarray:
    discount = 1.0 / np.log2(np.arange(2, k + 2))  # rank 1..k -> log2(1 + rank)
    return gains_in_rank_order[..., :k] @ discount


def ndcg_at_k(
    pred: np.ndarray, true: np.ndarray, k: int, *, low: float = 0.0
) -> np.ndarray | float:
    """nDCG@k of the query items ranked by `pred` (gain 2^r − 1, discount log2(1 + rank)).

    Ties in `pred` keep query order (stable sort); IDCG uses the same items in true order.
    `low` is the scale's lowest rating: on a scale reaching below 0 the ratings are shifted
    by −low so that no gain is negative (scales with low >= 0 are unchanged).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    pred, true = _pair(pred, true)
    single = pred.ndim == 1
    pred, true = np.atleast_2d(pred), np.atleast_2d(true)
    k = min(k, pred.shape[1])
    shift = min(float(low), 0.0)
    if (true < shift).any():
        # a negative gain makes DCG/IDCG meaningless (below 0 or above 1, or 0/0)
        raise ValueError(
            f"ratings go down to {float(true.min())} but the scale's low is {low}: "
            "pass the scale's lowest rating as low"
        )
    gains = np.exp2(true - shift) - 1.0
    order = np.argsort(-pred, axis=1, kind="stable")
    dcg = _dcg(np.take_along_axis(gains, order, axis=1), k)
    idcg = _dcg(-np.sort(-gains, axis=1), k)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), np.nan)
    return float(out[0]) if single else out


def _as_mask(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A boolean mask of `shape` from a mask or (for one user) an array of item indices."""
    x = np.asarray(x)
    if x.dtype == bool:
        if x.shape != shape:
            raise ValueError(f"mask shape {x.shape} does not match scores {shape}")
        return x
    if len(shape) != 1:
        raise ValueError("for several users pass boolean masks (B, n_items), not item lists")
    mask = np.zeros(shape, dtype=bool)
    mask[np.asarray(x, dtype=np.int64)] = True
    return mask


def recall_at_k(
    scores: np.ndarray, exclude: np.ndarray, relevant: np.ndarray, k: int = 10
) -> np.ndarray | float:
    """recall@k over the catalogue: |top-k of non-excluded items ∩ relevant| / |relevant|.

    `scores`: (n_items,) or (B, n_items), higher is better. `exclude` (the support items) and
    `relevant` (query items rated >= the relevant threshold) are boolean masks of the same shape,
    or, for one user, arrays of item indices. Ties: lower item index first. NaN when a user has
    no relevant item. Relevant items that are also excluded cannot be hit but still count.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scores = np.asarray(scores, dtype=np.float64)
    single = scores.ndim == 1
    ex = _as_mask(exclude, scores.shape)
    rel = _as_mask(relevant, scores.shape)
    scores, ex, rel = np.atleast_2d(scores), np.atleast_2d(ex), np.atleast_2d(rel)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    s = np.where(ex, -np.inf, scores)
    k_eff = min(k, s.shape[1])
    # stable sort of -s: equal scores keep item-index order, excluded items (+inf) go last
    top = np.argsort(-s, axis=1, kind="stable")[:, :k_eff]
    candidates = np.take_along_axis(~ex, top, axis=1)  # fewer than k candidates: no padding hits
    hits = (np.take_along_axis(rel, top, axis=1) & candidates).sum(1)
    n_rel = rel.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(n_rel > 0, hits / np.maximum(n_rel, 1), np.nan)
    return float(out[0]) if single else out


def bootstrap_ci(
    values: np.ndarray, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (NaNs dropped first).

    Deterministic for a given seed; (nan, nan) for an empty input.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng([seed, 7919])
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // len(v))  # bound memory of the (chunk, n) index matrix
    for s in range(0, n_boot, chunk):
        e = min(n_boot, s + chunk)
        means[s:e] = v[rng.integers(0, len(v), size=(e - s, len(v)))].mean(1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def paired_bootstrap_ci(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean of a − b, lower, upper): paired per-user differences, bootstrap over users.

    `a` and `b` are per-user values of two methods on the same users and queries, aligned.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values must align: {a.shape} vs {b.shape}")
    d = a - b
    d = d[~np.isnan(d)]
    if len(d) == 0:
        return float("nan"), float("nan"), float("nan")
    lo, hi = bootstrap_ci(d, n_boot=n_boot, seed=seed, level=level)
    return float(d.mean()), lo, hi
