"""Tuned non-meta baselines for new (cold-start) users, all behind the `Recommender` interface.

Every baseline is fitted on the ratings of the training users only. Regularisation is tuned on
the validation users' own support/query split (`make_tasks` on ``val_users``, support sizes
``TUNE_SUPPORT``, query ``TUNE_QUERY``), never on test users: the candidate minimising the mean
absolute error over all (validation user, support size) pairs wins. Rating predictions are
clipped to the dataset's scale.

Models (mu = global mean of the training ratings):
- ``global_mean``: r̂ = mu.
- ``item_mean``: r̂_i = (Σ_u r_ui + β·mu) / (n_i + β), β tuned.
- ``user_bias``: r̂_ui = mu + b_u + b_i. b_i, b_u of training users by alternating ridge
  (b_i = Σ(r − mu − b_u) / (n_i + λ_i), b_u = Σ(r − mu − b_i) / (n_u + λ_u)); a new user's
  b_u = Σ_support (r − mu − b_i) / (k + γ). λ_i, λ_u, γ tuned.
- ``mf_foldin``: r̂_ui = mu + b_u + b_i + p_u·q_i, trained by alternating least squares with
  ridge penalty λ on factors and biases; a new user's (p_u, b_u) is the closed-form ridge solution
  on the support ratings with penalties (λ_p, λ_b). λ (training) and (λ_p, λ_b) tuned.
- ``popularity``: ranking only; score_i = number of training ratings of item i.
- ``user_bias_levels``, ``mf_foldin_levels``: the same models with the learners' kind of
  decision on a discrete scale (≤ 21 levels): each prediction is cut into a level at thresholds
  tuned for MAE on the validation users' support/query split, + 1e-3 × (prediction − level) so
  that rankings keep their order. The meta-learners predict the median of an ordinal
  distribution, the optimal point under absolute error; these rows give the baselines an
  equivalent decision, so a comparison of MAE is about the models, not the decision rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.methods.base import (
    LEVEL_TIE_BREAK,
    AdaptationTrace,
    AdaptedUser,
    FitProgress,
    NotFittedError,
    Recommender,
    StopFlag,
)
from metarec_core.protocol.tasks import make_tasks

__all__ = [
    "BASELINE_CLASSES",
    "GlobalMean",
    "ItemMean",
    "MFFoldIn",
    "MFFoldInLevels",
    "NotFittedError",
    "Popularity",
    "TUNE_QUERY",
    "TUNE_SUPPORT",
    "UserBias",
    "UserBiasLevels",
    "level_grid",
    "snap_to_levels",
    "tune_level_thresholds",
]

TUNE_SUPPORT = (1, 3, 5, 10, 20)
TUNE_QUERY = 10

Support = tuple[np.ndarray, np.ndarray]
# fit hooks of the slow (ALS) baselines: a stop flag, polled between blocks of work, and the
# fraction of the fit done with a short message


class _FitStopped(Exception):
    """`should_stop()` said so inside a fit; the fit returns unfitted."""


# ---------------------------------------------------------------------------------------------
# helpers


def _train_ratings(
    data: RatingsDataset, train_users: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, item, rating) of the training users' ratings; users renumbered 0..n_train-1."""
    train_users = np.unique(np.asarray(train_users, dtype=np.int64))
    if len(train_users) == 0:
        raise ValueError("fit() needs at least one training user")
    if train_users[0] < 0 or train_users[-1] >= data.n_users:
        raise ValueError(f"train_users must be inner user indices in [0, {data.n_users})")
    local = np.full(data.n_users, -1, dtype=np.int64)
    local[train_users] = np.arange(len(train_users))
    keep = local[data.user] >= 0
    if not keep.any():
        raise ValueError("the training users have no ratings")
    return local[data.user[keep]], data.item[keep], data.rating[keep].astype(np.float64)


def _pad(supports: Sequence[Support], n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded (items, ratings, mask) arrays (B, K) of support sets; K >= 1, padding masked out."""
    B = len(supports)
    K = max([1, *(len(i) for i, _ in supports)])
    items = np.zeros((B, K), dtype=np.int64)
    ratings = np.zeros((B, K), dtype=np.float64)
    mask = np.zeros((B, K), dtype=bool)
    for b, (i, r) in enumerate(supports):
        i = np.asarray(i, dtype=np.int64).ravel()
        r = np.asarray(r, dtype=np.float64).ravel()
        if len(i) != len(r):
            raise ValueError(f"support {b}: {len(i)} items but {len(r)} ratings")
        if len(i) and (i.min() < 0 or i.max() >= n_items):
            raise ValueError(f"support {b}: item index out of range [0, {n_items})")
        if not np.isfinite(r).all():
            raise ValueError(f"support {b}: ratings must be finite numbers")
        n = len(i)
        items[b, :n], ratings[b, :n], mask[b, :n] = i, r, True
    return items, ratings, mask


class _GroupRidge:
    """Per-group ridge regressions sharing one grouping of rows (users or items in ALS).

    ``solve`` returns, for every group g, argmin_w Σ_{n in g} (target_n − feats_n·w)² + Σ reg·w².
    Groups are padded in blocks of similar size (sorted by row count) so the batched solve
    wastes little memory; the block layout is computed once and reused every ALS round.
    Groups without rows get w = 0.
    """

    def __init__(self, group: np.ndarray, n_groups: int, block_elems: int = 1 << 17) -> None:
        self.n_groups = n_groups
        order = np.argsort(group, kind="stable")
        counts = np.bincount(group, minlength=n_groups)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        by_size = np.argsort(counts, kind="stable")
        self.blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        pos = 0
        while pos < n_groups:
            # sizes only increase along by_size, so the last group sets the padded length
            end = pos + 1
            while end < n_groups and (end - pos + 1) * max(1, counts[by_size[end]]) <= block_elems:
                end += 1
            gs = by_size[pos:end]
            L = max(1, int(counts[gs].max()))
            ar = np.arange(L)
            mask = ar[None, :] < counts[gs][:, None]
            idx = order[np.where(mask, starts[gs][:, None] + ar[None, :], 0)]
            self.blocks.append((gs, idx, mask))
            pos = end

    def solve(
        self,
        feats: np.ndarray,
        target: np.ndarray,
        reg: np.ndarray,
        should_stop: StopFlag | None = None,
    ) -> np.ndarray:
        """The ridge solutions; raises `_FitStopped` between blocks once `should_stop()`."""
        out = np.zeros((self.n_groups, feats.shape[1]))
        reg_m = np.diag(reg)
        for gs, idx, mask in self.blocks:
            # a solve takes seconds on a million ratings: a cancel must not wait for all blocks
            if should_stop is not None and should_stop():
                raise _FitStopped
            X = feats[idx] * mask[..., None]
            Xt = X.transpose(0, 2, 1)
            A = Xt @ X + reg_m
            rhs = Xt @ (target[idx] * mask)[..., None]
            out[gs] = np.linalg.solve(A, rhs)[..., 0]
        return out


class _Baseline(Recommender):
    """Shared plumbing: fitted-state checks, validation tasks, adapt via score_many."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    # -- to implement ------------------------------------------------------------------------
    def _user_state(self, items: np.ndarray, ratings: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(B, d) adapted user states from padded supports (d may be 0)."""
        return np.zeros((len(items), 0))

    def _predict(self, state: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Raw (unclipped) scores of `items` (B, Q) for users with `state` (B, d)."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------
    def _start_fit(self, data: RatingsDataset) -> None:
        self.fitted_ = False
        self.n_items_ = data.n_items
        self.scale_: RatingScale = data.scale

    def _finish(self, raw: np.ndarray) -> np.ndarray:
        return np.clip(raw, self.scale_.low, self.scale_.high) if self.predicts_ratings else raw

    def _expected(self, raw: np.ndarray) -> np.ndarray | None:
        """The ratings to show a person when they differ from the scores (None: the scores)."""
        return None

    def score_many(self, supports: Sequence[Support]) -> np.ndarray:
        """Scores over the whole catalogue for each support set: (B, n_items)."""
        self._check_fitted()
        if len(supports) == 0:
            return np.zeros((0, self.n_items_))
        items, ratings, mask = _pad(supports, self.n_items_)
        return self._finish(self._predict_all(self._user_state(items, ratings, mask)))

    def _predict_all(self, state: np.ndarray) -> np.ndarray:
        """Raw scores of the whole catalogue (B, n_items)."""
        return self._predict(
            state, np.broadcast_to(np.arange(self.n_items_), (len(state), self.n_items_))
        )

    def adapt(
        self,
        items: np.ndarray,
        ratings: np.ndarray,
        *,
        query_items: np.ndarray | None = None,
        query_ratings: np.ndarray | None = None,
    ) -> AdaptedUser:
        """Closed-form adaptation: the trace has the loss before (prior) and after fold-in."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64).ravel()
        ratings = np.asarray(ratings, dtype=np.float64).ravel()
        pi, pr, pm = _pad([(items, ratings)], self.n_items_)
        state = self._user_state(pi, pr, pm)
        prior = self._user_state(pi[:, :0], pr[:, :0], pm[:, :0])
        raw = self._predict_all(state)
        scores = self._finish(raw)[0]
        trace = None
        if self.predicts_ratings:
            before = self._finish(self._predict_all(prior))[0]

            def mse(s: np.ndarray, i: np.ndarray, r: np.ndarray) -> float:
                return float(np.mean((s[i] - r) ** 2)) if len(i) else float("nan")

            sup = (mse(before, items, ratings), mse(scores, items, ratings))
            qry = None
            if query_items is not None and query_ratings is not None:
                qi = np.asarray(query_items, dtype=np.int64).ravel()
                qr = np.asarray(query_ratings, dtype=np.float64).ravel()
                qry = (mse(before, qi, qr), mse(scores, qi, qr))
            trace = AdaptationTrace(support_loss=sup, query_loss=qry)
        expected = self._expected(raw)
        return AdaptedUser(
            scores=scores,
            expected=None if expected is None else expected[0],
            support_items=items,
            support_ratings=ratings,
            trace=trace,
            state=state[0] if state.shape[1] else None,
        )

    def _val_tasks(
        self, data: RatingsDataset, val_users: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Padded supports and queries of the validation users, one row per (user, k).

        Returns (items, ratings, mask, query_items, query_ratings) or None when there is nothing
        to tune on (no validation user with more than TUNE_QUERY ratings).
        """
        if val_users is None or len(val_users) == 0:
            return None
        tasks, _ = make_tasks(data, np.asarray(val_users), query=TUNE_QUERY, seed=self.seed)
        sups, qi, qr = [], [], []
        for t in tasks:
            q_items, q_ratings = t.query
            for k in TUNE_SUPPORT:
                if k <= t.n_available:
                    sups.append(t.support(k))
                    qi.append(q_items)
                    qr.append(q_ratings)
        if not sups:
            return None
        items, ratings, mask = _pad(sups, data.n_items)
        return items, ratings, mask, np.stack(qi), np.stack(qr).astype(np.float64)

    def _val_mae(self, val: tuple, state: np.ndarray | None = None) -> float:
        items, ratings, mask, qi, qr = val
        if state is None:
            state = self._user_state(items, ratings, mask)
        return float(np.mean(np.abs(self._finish(self._predict(state, qi)) - qr)))


# ---------------------------------------------------------------------------------------------
# baselines


class GlobalMean(_Baseline):
    """Predicts the global mean rating of the training users for every item."""

    name: ClassVar[str] = "global_mean"

    def fit(
        self,
        data: RatingsDataset,
        train_users: np.ndarray,
        val_users: np.ndarray | None = None,
        *,
        should_stop: StopFlag | None = None,  # a fit of a few passes: no hooks needed
        progress: FitProgress | None = None,
    ) -> GlobalMean:
        self._start_fit(data)
        _, _, r = _train_ratings(data, train_users)
        self.global_mean_ = float(r.mean())
        self.fitted_ = True
        return self

    def _predict(self, state: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.full(items.shape, self.global_mean_)


class ItemMean(_Baseline):
    """Damped item mean: (Σ r_ui + β·mu) / (n_i + β); β tuned on validation users."""

    name: ClassVar[str] = "item_mean"
    DAMPING_GRID: ClassVar[tuple[float, ...]] = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 35.0)

    def __init__(self, seed: int = 0, damping: float | None = None) -> None:
        super().__init__(seed)
        self.damping = damping  # None: tune on validation users

    def fit(
        self,
        data: RatingsDataset,
        train_users: np.ndarray,
        val_users: np.ndarray | None = None,
        *,
        should_stop: StopFlag | None = None,  # a fit of a few passes: no hooks needed
        progress: FitProgress | None = None,
    ) -> ItemMean:
        self._start_fit(data)
        _, i, r = _train_ratings(data, train_users)
        self.global_mean_ = float(r.mean())
        sums = np.bincount(i, weights=r, minlength=data.n_items)
        counts = np.bincount(i, minlength=data.n_items).astype(np.float64)
        val = self._val_tasks(data, val_users) if self.damping is None else None
        grid = (self.damping,) if self.damping is not None else self.DAMPING_GRID if val else (5.0,)
        best = (np.inf, grid[0])
        for beta in grid:
            self._set(sums, counts, beta)
            if val is not None:
                best = min(best, (self._val_mae(val), beta))
        self.damping_ = float(best[1])
        self._set(sums, counts, self.damping_)
        self.fitted_ = True
        return self

    def _set(self, sums: np.ndarray, counts: np.ndarray, beta: float) -> None:
        mu = self.global_mean_
        denom = counts + beta
        self.item_means_ = np.where(denom > 0, (sums + beta * mu) / np.maximum(denom, 1e-12), mu)

    def _predict(self, state: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.item_means_[items]


class UserBias(_Baseline):
    """mu + b_u + b_i with ridge-regularised biases; a new user's bias is folded in from support.

    Training (alternating, ``iters`` rounds): b_i = Σ(r − mu − b_u)/(n_i + λ_i),
    b_u = Σ(r − mu − b_i)/(n_u + λ_u). Fold-in: b_u = Σ_support (r − mu − b_i)/(k + γ).
    """

    name: ClassVar[str] = "user_bias"
    ITEM_REG_GRID: ClassVar[tuple[float, ...]] = (2.0, 5.0, 10.0, 25.0)
    USER_REG_GRID: ClassVar[tuple[float, ...]] = (2.0, 5.0, 10.0)
    FOLD_GRID: ClassVar[tuple[float, ...]] = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 35.0)

    def __init__(
        self,
        seed: int = 0,
        item_reg: float | None = None,
        user_reg: float | None = None,
        fold_damping: float | None = None,
        iters: int = 10,
    ) -> None:
        super().__init__(seed)
        self.item_reg = item_reg
        self.user_reg = user_reg
        self.fold_damping = fold_damping
        self.iters = iters

    def fit(
        self,
        data: RatingsDataset,
        train_users: np.ndarray,
        val_users: np.ndarray | None = None,
        *,
        should_stop: StopFlag | None = None,  # a fit of a few passes: no hooks needed
        progress: FitProgress | None = None,
    ) -> UserBias:
        self._start_fit(data)
        u, i, r = _train_ratings(data, train_users)
        self.global_mean_ = float(r.mean())
        n_u = np.bincount(u).astype(np.float64)
        n_i = np.bincount(i, minlength=data.n_items).astype(np.float64)
        val = self._val_tasks(data, val_users)

        def grid(fixed: float | None, default: tuple[float, ...], fallback: float) -> tuple:
            if fixed is not None:
                return (fixed,)
            return default if val is not None else (fallback,)

        item_grid = grid(self.item_reg, self.ITEM_REG_GRID, 10.0)
        user_grid = grid(self.user_reg, self.USER_REG_GRID, 5.0)
        fold_grid = grid(self.fold_damping, self.FOLD_GRID, 5.0)
        best = (np.inf, 0.0, 0.0, 0.0)
        best_bias = None
        for li in item_grid:
            for lu in user_grid:
                b_i = self._train(u, i, r, n_u, n_i, li, lu)
                self.item_bias_ = b_i
                for g in fold_grid:
                    self.fold_damping_ = g
                    score = self._val_mae(val) if val is not None else 0.0
                    if score < best[0]:
                        best, best_bias = (score, li, lu, g), b_i
        _, self.item_reg_, self.user_reg_, self.fold_damping_ = (float(x) for x in best)
        self.item_bias_ = best_bias
        self.fitted_ = True
        return self

    def _train(self, u, i, r, n_u, n_i, li: float, lu: float) -> np.ndarray:
        mu = self.global_mean_
        b_u = np.zeros(len(n_u))
        b_i = np.zeros(len(n_i))
        for _ in range(self.iters):
            b_i = np.bincount(i, weights=r - mu - b_u[u], minlength=len(n_i)) / (n_i + li)
            b_u = np.bincount(u, weights=r - mu - b_i[i], minlength=len(n_u)) / (n_u + lu)
        return b_i

    def _user_state(self, items: np.ndarray, ratings: np.ndarray, mask: np.ndarray) -> np.ndarray:
        resid = (ratings - self.global_mean_ - self.item_bias_[items]) * mask
        return (resid.sum(1) / (mask.sum(1) + self.fold_damping_))[:, None]

    def _predict(self, state: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.global_mean_ + self.item_bias_[items] + state[:, :1]


class MFFoldIn(_Baseline):
    """Biased matrix factorisation by ALS on training users, ridge fold-in for a new user.

    r̂_ui = mu + b_u + b_i + p_u·q_i. ALS alternates exact ridge solves for (p_u, b_u) of every
    training user and (q_i, b_i) of every item, penalty λ on all of them, ``iters`` rounds from a
    seeded N(0, 0.1²) start. A new user's (p_u, b_u) minimises
    Σ_support (r − mu − b_i − b_u − p_u·q_i)² + λ_p‖p_u‖² + λ_b b_u² (batched closed form).
    λ from ``REG_GRID`` and (λ_p, λ_b) are tuned on validation users.

    Fitted attributes for warm starts: ``item_factors_`` (n_items, factors), ``item_bias_``
    (n_items,), ``global_mean_``; also ``user_factors_``/``user_bias_`` of training users.
    """

    name: ClassVar[str] = "mf_foldin"
    REG_GRID: ClassVar[tuple[float, ...]] = (4.0, 8.0, 16.0)
    FOLD_FACTOR_GRID: ClassVar[tuple[float, ...]] = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
    FOLD_BIAS_GRID: ClassVar[tuple[float, ...]] = (1.0, 2.0, 4.0, 8.0, 16.0)

    def __init__(
        self,
        seed: int = 0,
        factors: int = 20,
        reg: float | None = None,
        fold_reg: tuple[float, float] | None = None,
        iters: int = 12,
    ) -> None:
        super().__init__(seed)
        self.factors = factors
        self.reg = reg
        self.fold_reg = fold_reg
        self.iters = iters

    def fit(
        self,
        data: RatingsDataset,
        train_users: np.ndarray,
        val_users: np.ndarray | None = None,
        *,
        should_stop: StopFlag | None = None,
        progress: FitProgress | None = None,
    ) -> MFFoldIn:
        """ALS for each λ candidate, then the fold-in penalties tuned on `val_users`.

        `should_stop()` is polled between the blocks of every ALS solve and between tuning
        candidates: once it says so the fit returns at once, unfitted. `progress(fraction,
        message)` is told after every half-round of ALS and every λ's tuning.
        """
        self._start_fit(data)
        u, i, r = _train_ratings(data, train_users)
        self.global_mean_ = float(r.mean())
        val = self._val_tasks(data, val_users)
        reg_grid = (self.reg,) if self.reg is not None else self.REG_GRID if val else (8.0,)
        if self.fold_reg is not None:
            fold_grid = [tuple(self.fold_reg)]
        elif val is not None:
            fold_grid = [(a, b) for a in self.FOLD_FACTOR_GRID for b in self.FOLD_BIAS_GRID]
        else:
            fold_grid = [(reg_grid[0], reg_grid[0])]
        best: tuple = (np.inf,)
        units = len(reg_grid) * (2 * self.iters + 1)  # ALS half-rounds + one tuning pass per λ
        done = 0

        def tick(message: str) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done / units, message)

        try:
            for n, lam in enumerate(reg_grid, 1):
                where = f"λ {n}/{len(reg_grid)}, " if len(reg_grid) > 1 else ""
                P, bu, Q, bi = self._als(u, i, r, data.n_items, lam, should_stop, tick, where)
                self.item_factors_, self.item_bias_ = Q, bi
                for fr in fold_grid:
                    if should_stop is not None and should_stop():
                        raise _FitStopped
                    self.fold_reg_ = fr
                    score = self._val_mae(val) if val is not None else 0.0
                    if score < best[0]:
                        best = (score, lam, fr, P, bu, Q, bi)
                tick(f"{where}fold-in penalties tuned")
        except _FitStopped:
            return self  # unfitted: fitted_ stays False
        _, self.reg_, self.fold_reg_, P, bu, Q, bi = best
        self.reg_ = float(self.reg_)
        self.user_factors_, self.user_bias_ = P, bu
        self.item_factors_, self.item_bias_ = Q, bi
        self.fitted_ = True
        return self

    def _als(
        self,
        u,
        i,
        r,
        n_items: int,
        lam: float,
        should_stop: StopFlag | None = None,
        tick: Callable[[str], None] | None = None,
        where: str = "",
    ):
        rng = np.random.default_rng([self.seed, 11])
        f = self.factors
        n_users = int(u.max()) + 1
        Q = rng.normal(0.0, 0.1, size=(n_items, f))
        bi = np.zeros(n_items)
        bu = np.zeros(n_users)
        P = np.zeros((n_users, f))
        y = r - self.global_mean_
        reg = np.full(f + 1, lam)
        ones = np.ones((len(r), 1))
        by_user, by_item = _GroupRidge(u, n_users), _GroupRidge(i, n_items)
        for it in range(1, self.iters + 1):
            w = by_user.solve(np.hstack([Q[i], ones]), y - bi[i], reg, should_stop)
            P, bu = w[:, :f], w[:, f]
            if tick is not None:
                tick(f"{where}ALS round {it}/{self.iters}: users")
            w = by_item.solve(np.hstack([P[u], ones]), y - bu[u], reg, should_stop)
            Q, bi = w[:, :f], w[:, f]
            if tick is not None:
                tick(f"{where}ALS round {it}/{self.iters}: items")
        return P, bu, Q, bi

    def _user_state(self, items: np.ndarray, ratings: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(B, factors + 1): the ridge fold-in [p_u, b_u] of each padded support set."""
        f = self.item_factors_.shape[1]
        X = np.concatenate([self.item_factors_[items], np.ones(items.shape + (1,))], axis=2)
        X = X * mask[..., None]
        y = (ratings - self.global_mean_ - self.item_bias_[items]) * mask
        lp, lb = self.fold_reg_
        A = np.einsum("bkf,bkg->bfg", X, X) + np.diag(np.r_[np.full(f, lp), lb])
        rhs = np.einsum("bkf,bk->bf", X, y)
        return np.linalg.solve(A, rhs[..., None])[..., 0]

    def _predict(self, state: np.ndarray, items: np.ndarray) -> np.ndarray:
        f = self.item_factors_.shape[1]
        p, b = state[:, :f], state[:, f:]
        dot = np.einsum("bf,bqf->bq", p, self.item_factors_[items])
        return self.global_mean_ + self.item_bias_[items] + b + dot

    def _predict_all(self, state: np.ndarray) -> np.ndarray:
        # a matrix product instead of gathering a (B, n_items, factors) array
        f = self.item_factors_.shape[1]
        p, b = state[:, :f], state[:, f:]
        return self.global_mean_ + self.item_bias_[None, :] + b + p @ self.item_factors_.T


class Popularity(_Baseline):
    """Ranking only: every user gets the number of training ratings of each item as its score."""

    name: ClassVar[str] = "popularity"
    predicts_ratings: ClassVar[bool] = False

    def fit(
        self,
        data: RatingsDataset,
        train_users: np.ndarray,
        val_users: np.ndarray | None = None,
        *,
        should_stop: StopFlag | None = None,  # a fit of a few passes: no hooks needed
        progress: FitProgress | None = None,
    ) -> Popularity:
        self._start_fit(data)
        _, i, _ = _train_ratings(data, train_users)
        self.counts_ = np.bincount(i, minlength=data.n_items).astype(np.float64)
        self.fitted_ = True
        return self

    def _predict(self, state: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.counts_[items]


# ---------------------------------------------------------------------------------------------
# level decision (a median-like point prediction on a discrete scale)

MAX_LEVELS = 21


def level_grid(scale: RatingScale) -> tuple[float, float, int] | None:
    """(low, step, levels) of a discrete scale with 2..MAX_LEVELS levels, else None."""
    if not scale.step > 0:
        return None
    levels = round((scale.high - scale.low) / scale.step) + 1
    return (scale.low, scale.step, levels) if 2 <= levels <= MAX_LEVELS else None


def snap_to_levels(x: np.ndarray, thresholds: np.ndarray, low: float, step: float) -> np.ndarray:
    """The level of each value: low + step × (number of thresholds below it)."""
    return low + step * (x[..., None] > thresholds).sum(-1)


def tune_level_thresholds(
    pred: np.ndarray, true: np.ndarray, low: float, step: float, levels: int, rounds: int = 3
) -> np.ndarray:
    """Increasing thresholds minimising the MAE of `snap_to_levels(pred)` against `true`.

    Coordinate search from plain rounding (the midpoints between levels), each threshold moved
    within ±0.6 step of its midpoint on a grid of 49 positions, `rounds` passes.
    """
    pred, true = np.asarray(pred, np.float64).ravel(), np.asarray(true, np.float64).ravel()
    mid = low + step * (np.arange(levels - 1) + 0.5)
    th = mid.copy()
    for _ in range(rounds):
        for c in range(levels - 1):
            best = (np.abs(snap_to_levels(pred, th, low, step) - true).mean(), th[c])
            for d in np.linspace(-0.6, 0.6, 49) * step:
                t2 = th.copy()
                t2[c] = mid[c] + d
                if np.any(np.diff(t2) <= 0):
                    continue
                err = np.abs(snap_to_levels(pred, t2, low, step) - true).mean()
                if err < best[0] - 1e-12:
                    best = (err, t2[c])
            th[c] = best[1]
    return th


class _LevelDecision:
    """Mixin: the base model's predictions cut into the scale's levels (see the module doc).

    Fitted attributes: ``thresholds_`` (levels − 1 increasing cut points; None on a scale
    without a few discrete levels, where predictions are the base model's).
    """

    def fit(
        self,
        data: RatingsDataset,
        train_users: np.ndarray,
        val_users=None,
        *,
        should_stop: StopFlag | None = None,
        progress: FitProgress | None = None,
    ):
        self.thresholds_ = None  # the base fit tunes its own grid on plain predictions
        super().fit(data, train_users, val_users, should_stop=should_stop, progress=progress)
        if not self.fitted_:  # stopped
            return self
        grid = level_grid(data.scale)
        if grid is None:
            return self
        low, step, levels = grid
        val = self._val_tasks(data, val_users)
        if val is None:
            self.thresholds_ = low + step * (np.arange(levels - 1) + 0.5)
        else:
            items, ratings, mask, qi, qr = val
            pred = super()._finish(self._predict(self._user_state(items, ratings, mask), qi))
            self.thresholds_ = tune_level_thresholds(pred, qr, low, step, levels)
        self.level_grid_ = grid
        return self

    def _finish(self, raw: np.ndarray) -> np.ndarray:
        x = super()._finish(raw)
        if getattr(self, "thresholds_", None) is None:
            return x
        low, step, _ = self.level_grid_
        level = snap_to_levels(x, self.thresholds_, low, step)
        return level + LEVEL_TIE_BREAK * (x - level)

    def _expected(self, raw: np.ndarray) -> np.ndarray | None:
        """The (clipped) mean prediction: the scores are levels (the MAE-optimal point, like a
        learner's median), a person is shown the expected rating (like a learner's mean)."""
        return None if getattr(self, "thresholds_", None) is None else super()._finish(raw)


class UserBiasLevels(_LevelDecision, UserBias):
    """`UserBias` with predictions cut into the scale's levels (thresholds tuned for MAE)."""

    name: ClassVar[str] = "user_bias_levels"


class MFFoldInLevels(_LevelDecision, MFFoldIn):
    """`MFFoldIn` with predictions cut into the scale's levels (thresholds tuned for MAE)."""

    name: ClassVar[str] = "mf_foldin_levels"


BASELINE_CLASSES: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (
        GlobalMean,
        ItemMean,
        UserBias,
        MFFoldIn,
        UserBiasLevels,
        MFFoldInLevels,
        Popularity,
    )
}
