"""Tuned non-meta baselines for new (cold-start) items, all behind the `ItemRecommender` interface.

Every baseline is fitted on the ratings of the training items only (users are all known: a
user's bias and taste vector come from their ratings of training items). Regularisation is tuned
on the validation items' own support/query split (`make_item_tasks` on ``val_items``, support
sizes ``TUNE_ITEM_SUPPORT``, query ``TUNE_QUERY``), never on test items: the candidate minimising
the mean absolute error over all (validation item, support size) pairs wins. Predictions are
clipped to the dataset's scale. Item metadata x_i (`ItemFeatures`): genres, title words (in at
least 3 training items), the title's year (centred, /10, its square, a flag when absent).

Models (mu = mean training rating; b_u = user biases of mu + b_u + b_i fitted by alternating
ridge on the training items, λ_u tuned, λ_i = 5; k the new item's support ratings):
- ``global_mean``: r̂ = mu.
- ``content``: r̂_ui = mu + b_u + c_i, c_i = w·x_i + w_0, a ridge regression (penalty α tuned)
  of each training item's mean residual mean(r − mu − b_u), weighted n_i / (n_i + 10). The
  k = 0 baseline: it ignores the support.
- ``item_bias``: r̂_ui = mu + b_u + b_i, b_i = (Σ_support (r − mu − b_u) + γ·c_i) / (k + γ): the
  damped mean of the raters' residuals, shrunk towards `content`'s c_i; γ tuned.
- ``mf_foldin``: ALS of mu + b_u + b_i + p_u·q_i on the training items (penalty λ tuned, as
  `MFFoldIn`); a prior (q⁰_i, b⁰_i) = ridge regression of the trained (q_i, b_i) on x_i
  (penalty α tuned); a new item's (q_i, b_i) minimises Σ_support (r − mu − b_u − b_i −
  p_u·q_i)² + λ_q‖q_i − q⁰_i‖² + λ_b (b_i − b⁰_i)² (closed form); (λ_q, λ_b) tuned.
- ``item_bias_levels``, ``mf_foldin_levels``: the same with the level decision of
  `baselines.levels` (thresholds tuned for MAE on the validation items).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.methods.base import (
    Capabilities,
    ItemRecommender,
    NewItem,
)
from metarec_core.methods.baselines.common import _FitStopped
from metarec_core.methods.baselines.levels import LevelSnapping, level_grid, with_thresholds
from metarec_core.methods.baselines.mf import MFFoldIn
from metarec_core.methods.baselines.state import (
    check_header,
    check_seed,
    check_values_and_arrays,
    need,
    plain,
    real,
    restore,
    state_arrays,
)
from metarec_core.methods.item_features import (
    ItemFeatures,
    check_features_state,
    ridge,
    ridge_predict,
)
from metarec_core.protocol.item_splits import make_item_tasks

TUNE_ITEM_SUPPORT = (0, 1, 3, 5, 10, 20)
TUNE_QUERY = 10
ITEM_REG = 5.0  # λ_i of the bias model (the item biases are refitted from metadata anyway)


def _pad_users(new_items: Sequence[NewItem], n_users: int) -> tuple[np.ndarray, ...]:
    """Padded (users, ratings, mask) (B, K) of the new items' supports; K >= 1."""
    B = len(new_items)
    K = max([1, *(len(n.users) for n in new_items)])
    users = np.zeros((B, K), dtype=np.int64)
    ratings = np.zeros((B, K))
    mask = np.zeros((B, K), dtype=bool)
    for b, n in enumerate(new_items):
        u = np.asarray(n.users, dtype=np.int64).ravel()
        r = np.asarray(n.ratings, dtype=np.float64).ravel()
        if len(u) != len(r):
            raise ValueError(f"new item {b}: {len(u)} users but {len(r)} ratings")
        if len(u) and (u.min() < 0 or u.max() >= n_users):
            raise ValueError(f"new item {b}: user index out of range [0, {n_users})")
        if not np.isfinite(r).all():
            raise ValueError(f"new item {b}: ratings must be finite numbers")
        users[b, : len(u)], ratings[b, : len(u)], mask[b, : len(u)] = u, r, True
    return users, ratings, mask


def _biases(
    u: np.ndarray, i: np.ndarray, r: np.ndarray, mu: float, n_users: int, n_items: int, lu: float
) -> tuple[np.ndarray, np.ndarray]:
    """(b_u, b_i) of mu + b_u + b_i by alternating ridge (λ_i = ITEM_REG, λ_u = lu)."""
    n_u = np.bincount(u, minlength=n_users).astype(np.float64)
    n_i = np.bincount(i, minlength=n_items).astype(np.float64)
    b_u, b_i = np.zeros(n_users), np.zeros(n_items)
    for _ in range(10):
        b_i = np.bincount(i, weights=r - mu - b_u[u], minlength=n_items) / (n_i + ITEM_REG)
        b_u = np.bincount(u, weights=r - mu - b_i[i], minlength=n_users) / (n_u + lu)
    return b_u, b_i


class _Batch:
    """Validation rows, one per (item, k): features, padded supports, queries."""

    def __init__(self, X, su, sr, sm, qu, qr) -> None:
        self.X, self.su, self.sr, self.sm, self.qu, self.qr = X, su, sr, sm, qu, qr


ITEM_STATE_FORMAT = "metarec-item-baseline"
ITEM_STATE_VERSION = 1


class _ItemBaseline(ItemRecommender):
    """Shared plumbing: training ratings of the training items, features, validation rows,
    clipping, persistence. Subclasses implement `_fit` and `_raw`."""

    capabilities: ClassVar[Capabilities] = Capabilities(cold="items")
    # What `to_state` saves (as `baselines.common._Baseline` declares it for users): fitted
    # arrays by attribute -> the size of each axis ("users": the users fitted on; "features":
    # the featuriser's width + 1; "width": up to a bound; "factors+1": the params' factors + 1;
    # "levels": the scale's levels - 1), fitted numbers, constructor settings besides the seed.
    STATE_ARRAYS: ClassVar[dict[str, tuple[str, ...]]] = {}
    STATE_VALUES: ClassVar[tuple[str, ...]] = ("global_mean_",)
    PARAMS: ClassVar[tuple[str, ...]] = ()
    OPTIONAL_ARRAYS: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _fit_items(self, data, train_items, val_items, should_stop, progress) -> bool:
        """Fit on the ratings of `train_items`, tuning on `val_items` (the module doc says how).
        False: stopped by `should_stop()`."""
        in_train = np.zeros(data.n_items, dtype=bool)
        in_train[train_items] = True
        keep = in_train[data.item]
        if not keep.any():
            raise ValueError("the training items have no ratings")
        u, i = data.user[keep], data.item[keep]
        r = data.rating[keep].astype(np.float64)
        self.n_users_, self.n_items_, self.scale_ = data.n_users, data.n_items, data.scale
        self.global_mean_ = float(r.mean())
        self.features_ = ItemFeatures.fit(data, train_items)
        val = self._val(data, val_items)
        try:
            self._fit(data, (u, i, r), train_items, val, should_stop)
        except _FitStopped:
            return False
        return True

    def _fit(self, data, ratings, train_items, val: _Batch | None, should_stop) -> None:
        """The family's own fit (default: nothing more than the global mean)."""

    def _raw(self, X, su, sr, sm, qu) -> np.ndarray:
        """Raw (unclipped) predictions (B, Q) for query users `qu` of items with features `X`
        and padded supports (users `su`, ratings `sr`, mask `sm`)."""
        return np.full(qu.shape, self.global_mean_)

    def _finish(self, raw: np.ndarray) -> np.ndarray:
        return np.clip(raw, self.scale_.low, self.scale_.high)

    def _features(self, new_items: Sequence[NewItem]) -> np.ndarray:
        return self.features_.transform([n.title for n in new_items], [n.genres for n in new_items])

    def predict(self, new_items: Sequence[NewItem], users: np.ndarray) -> np.ndarray:
        """Predicted ratings (B, Q) of `users` (B, Q) for each new item."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        if users.shape[:1] != (len(new_items),) or users.ndim != 2:
            raise ValueError(f"users must be (B={len(new_items)}, Q), got shape {users.shape}")
        if users.size and (users.min() < 0 or users.max() >= self.n_users_):
            raise ValueError(f"user index out of range [0, {self.n_users_})")
        if len(new_items) == 0:
            return np.zeros(users.shape)
        su, sr, sm = _pad_users(new_items, self.n_users_)
        return self._finish(self._raw(self._features(new_items), su, sr, sm, users))

    def _val(self, data: RatingsDataset, val_items: np.ndarray | None) -> _Batch | None:
        """One row per (validation item, k in TUNE_ITEM_SUPPORT); None when no validation item
        has TUNE_QUERY ratings."""
        if val_items is None or len(val_items) == 0:
            return None
        tasks, _ = make_item_tasks(data, np.asarray(val_items), query=TUNE_QUERY, seed=self.seed)
        rows = [t.new_item(k) for t in tasks for k in TUNE_ITEM_SUPPORT if k <= t.n_available]
        if not rows:
            return None
        qs = [t.query for t in tasks for k in TUNE_ITEM_SUPPORT if k <= t.n_available]
        su, sr, sm = _pad_users(rows, data.n_users)
        qu = np.stack([q[0] for q in qs]).astype(np.int64)
        qr = np.stack([q[1] for q in qs]).astype(np.float64)
        return _Batch(self._features(rows), su, sr, sm, qu, qr)

    def _val_pred(self, val: _Batch) -> np.ndarray:
        return self._finish(self._raw(val.X, val.su, val.sr, val.sm, val.qu))

    def _val_mae(self, val: _Batch) -> float:
        return float(np.mean(np.abs(self._val_pred(val) - val.qr)))

    # -- persistence -----------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """The declared fitted attributes as float64 tensors, plain numbers and the
        featuriser's vocabulary (`torch.load(weights_only=True)` reads it back)."""
        self._check_fitted()
        arrays = state_arrays((key, getattr(self, key, None)) for key in self.STATE_ARRAYS)
        return {
            "format": ITEM_STATE_FORMAT,
            "version": ITEM_STATE_VERSION,
            "name": self.name,
            "seed": int(self.seed),
            "params": {k: plain(getattr(self, k)) for k in self.PARAMS},
            "n_users": int(self.n_users_),
            "n_items": int(self.n_items_),
            "scale": [float(self.scale_.low), float(self.scale_.high), float(self.scale_.step)],
            "features": self.features_.to_state(),
            "arrays": arrays,
            "values": {k: plain(getattr(self, k)) for k in self.STATE_VALUES},
        }

    @classmethod
    def check_state(cls, state: dict[str, Any], *, max_width: int = 2**31) -> None:
        """Raise ValueError naming the first entry of `state` that is not what this class
        declares (format, sizes, array shapes, finite numbers); builds nothing."""
        fmt, version = ITEM_STATE_FORMAT, ITEM_STATE_VERSION
        check_header(state, cls.name, fmt, version, "not an item baseline state")
        n_users, n_items, seed = state.get("n_users"), state.get("n_items"), state.get("seed")
        for what, v in (("n_users", n_users), ("n_items", n_items)):
            need(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                f"{what} is not a positive integer",
            )
        check_seed(seed)
        sc = state.get("scale")
        need(
            isinstance(sc, list)
            and len(sc) == 3
            and all(map(real, sc))
            and sc[0] < sc[1]
            and sc[2] > 0,
            "scale is not [low, high, step]",
        )
        grid = level_grid(RatingScale(*map(float, sc)))
        width = check_features_state(state.get("features")) + 1
        params, values, arrays = (state.get(k) for k in ("params", "values", "arrays"))
        need(isinstance(params, dict) and set(params) <= set(cls.PARAMS), "params are unknown")
        for k, v in params.items():
            ok = isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= max_width
            need(ok, f"params.{k} is not an integer from 1 to {max_width:,}")
        factors = params.get("factors")
        want = {
            "users": n_users,
            "features": width,
            "factors+1": None if factors is None else int(factors) + 1,
            "levels": None if grid is None else grid[2] - 1,
        }
        check_values_and_arrays(cls, values, arrays, want, max_width)

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str = "cpu") -> _ItemBaseline:
        """Rebuild the fitted baseline from `to_state()` (checked first); `device` is unused."""
        cls.check_state(state)
        params = {k: v for k, v in state["params"].items()}
        obj = cls(seed=state["seed"], **params)
        obj.n_users_, obj.n_items_ = state["n_users"], state["n_items"]
        obj.scale_ = RatingScale(*map(float, state["scale"]))
        obj.features_ = ItemFeatures.from_state(state["features"])
        return restore(obj, state)

    def _loaded(self) -> None:
        """Derive what `to_state` leaves out (nothing, unless a family says otherwise)."""


class ItemGlobalMean(_ItemBaseline):
    """Predicts the mean training rating for every (user, new item)."""

    name: ClassVar[str] = "global_mean"


class ItemContent(_ItemBaseline):
    """mu + b_u + c_i, c_i a ridge regression on the item's metadata (the module doc)."""

    name: ClassVar[str] = "content"
    STATE_ARRAYS: ClassVar[dict[str, tuple[str, ...]]] = {
        "user_bias_": ("users",),
        "coef_": ("features",),
    }
    STATE_VALUES: ClassVar[tuple[str, ...]] = ("global_mean_", "user_reg_", "ridge_")
    USER_REG_GRID: ClassVar[tuple[float, ...]] = (2.0, 5.0, 10.0)
    RIDGE_GRID: ClassVar[tuple[float, ...]] = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)

    def _fit(self, data, ratings, train_items, val, should_stop) -> None:
        self._fit_content(data, ratings, train_items, val)

    def _fit_content(self, data, ratings, train_items, val) -> None:
        """b_u and the metadata regression, (λ_u, α) tuned on `val` with the content model."""
        u, i, r = ratings
        mu = self.global_mean_
        n_i = np.bincount(i, minlength=data.n_items)[train_items].astype(np.float64)
        X = self.features_.transform(*self._meta(data, train_items))
        w = n_i / (n_i + 10.0)
        user_grid = self.USER_REG_GRID if val is not None else (5.0,)
        ridge_grid = self.RIDGE_GRID if val is not None else (10.0,)
        best = (np.inf,)
        for lu in user_grid:
            b_u, _ = _biases(u, i, r, mu, data.n_users, data.n_items, lu)
            resid = np.bincount(i, weights=r - mu - b_u[u], minlength=data.n_items)
            target = resid[train_items] / np.maximum(n_i, 1.0)
            for alpha in ridge_grid:
                self.user_bias_, self.coef_ = b_u, ridge(X, target, w, alpha)
                score = self._val_mae_with(val, ItemContent._raw) if val is not None else 0.0
                if score < best[0]:
                    best = (score, lu, alpha, b_u, self.coef_)
        _, self.user_reg_, self.ridge_, self.user_bias_, self.coef_ = best

    @staticmethod
    def _meta(data: RatingsDataset, items: np.ndarray) -> tuple[list[str], list[tuple[str, ...]]]:
        if data.items is None:
            return [""] * len(items), [()] * len(items)
        return [str(data.items.titles[j]) for j in items], [
            tuple(data.items.genre_list(int(j))) for j in items
        ]

    def _val_mae_with(self, val: _Batch, raw) -> float:
        pred = _ItemBaseline._finish(self, raw(self, val.X, val.su, val.sr, val.sm, val.qu))
        return float(np.mean(np.abs(pred - val.qr)))

    def _content(self, X: np.ndarray) -> np.ndarray:
        return ridge_predict(X, self.coef_)

    def _raw(self, X, su, sr, sm, qu) -> np.ndarray:
        return self.global_mean_ + self.user_bias_[qu] + self._content(X)[:, None]


class ItemBias(ItemContent):
    """mu + b_u + b_i, b_i the raters' damped mean residual shrunk towards `content`."""

    name: ClassVar[str] = "item_bias"
    STATE_VALUES: ClassVar[tuple[str, ...]] = (*ItemContent.STATE_VALUES, "fold_damping_")
    FOLD_GRID: ClassVar[tuple[float, ...]] = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 35.0)

    def _fit(self, data, ratings, train_items, val, should_stop) -> None:
        self._fit_content(data, ratings, train_items, val)
        best = (np.inf, 5.0)
        for g in self.FOLD_GRID if val is not None else (5.0,):
            self.fold_damping_ = g
            best = min(best, (self._val_mae(val) if val is not None else 0.0, g))
        self.fold_damping_ = float(best[1])

    def _item_bias(self, X, su, sr, sm) -> np.ndarray:
        resid = (sr - self.global_mean_ - self.user_bias_[su]) * sm
        g = self.fold_damping_
        return (resid.sum(1) + g * self._content(X)) / (sm.sum(1) + g)

    def _raw(self, X, su, sr, sm, qu) -> np.ndarray:
        return self.global_mean_ + self.user_bias_[qu] + self._item_bias(X, su, sr, sm)[:, None]


class ItemMFFoldIn(_ItemBaseline):
    """ALS on the training items; a new item's (q_i, b_i) folded in from its raters' factors
    around a metadata prior (the module doc)."""

    name: ClassVar[str] = "mf_foldin"
    capabilities: ClassVar[Capabilities] = Capabilities(item_state=True, cold="items")
    STATE_ARRAYS: ClassVar[dict[str, tuple[str, ...]]] = {
        "user_factors_": ("users", "width"),
        "user_bias_": ("users",),
        "prior_coef_": ("features", "factors+1"),
    }
    STATE_VALUES: ClassVar[tuple[str, ...]] = ("global_mean_", "reg_", "prior_reg_", "fold_reg_")
    PARAMS: ClassVar[tuple[str, ...]] = ("factors", "iters")
    REG_GRID: ClassVar[tuple[float, ...]] = MFFoldIn.REG_GRID
    PRIOR_GRID: ClassVar[tuple[float, ...]] = (3.0, 30.0, 300.0)
    FOLD_FACTOR_GRID: ClassVar[tuple[float, ...]] = MFFoldIn.FOLD_FACTOR_GRID
    FOLD_BIAS_GRID: ClassVar[tuple[float, ...]] = MFFoldIn.FOLD_BIAS_GRID

    def __init__(self, seed: int = 0, factors: int = 20, iters: int = 12) -> None:
        super().__init__(seed)
        self.factors = factors
        self.iters = iters

    def _fit(self, data, ratings, train_items, val, should_stop) -> None:
        u, i, r = ratings
        als = MFFoldIn(seed=self.seed, factors=self.factors, iters=self.iters)
        als.global_mean_ = self.global_mean_
        X = self.features_.transform(*ItemContent._meta(data, train_items))
        n_i = np.bincount(i, minlength=data.n_items)[train_items].astype(np.float64)
        w = n_i / (n_i + 5.0)
        tuned = val is not None
        folds = [
            (a, b)
            for a in (self.FOLD_FACTOR_GRID if tuned else (8.0,))
            for b in (self.FOLD_BIAS_GRID if tuned else (4.0,))
        ]
        best: tuple = (np.inf,)
        for lam in self.REG_GRID if tuned else (8.0,):
            P, bu, Q, bi = als._als(u, i, r, data.n_items, lam, should_stop)
            self.user_factors_ = np.zeros((data.n_users, self.factors))
            self.user_bias_ = np.zeros(data.n_users)
            self.user_factors_[: len(P)], self.user_bias_[: len(bu)] = P, bu
            target = np.hstack([Q[train_items], bi[train_items, None]])
            for alpha in self.PRIOR_GRID if tuned else (30.0,):
                self.prior_coef_ = ridge(X, target, w, alpha)
                for fr in folds:
                    if should_stop is not None and should_stop():
                        raise _FitStopped
                    self.fold_reg_ = fr
                    score = self._val_mae(val) if tuned else 0.0
                    if score < best[0]:
                        best = (score, lam, alpha, fr, self.user_factors_, self.user_bias_)
                        best += (self.prior_coef_,)
        _, self.reg_, self.prior_reg_, self.fold_reg_, P, bu, coef = best
        self.user_factors_, self.user_bias_, self.prior_coef_ = P, bu, coef

    def _item_state(self, X, su, sr, sm) -> np.ndarray:
        """(B, factors + 1): [q_i, b_i] of each new item (ridge around its metadata prior)."""
        f = self.factors
        prior = ridge_predict(X, self.prior_coef_)  # (B, f + 1)
        Z = np.concatenate([self.user_factors_[su], np.ones(su.shape + (1,))], axis=2)
        Z = Z * sm[..., None]
        y = (sr - self.global_mean_ - self.user_bias_[su]) * sm
        pen = np.r_[np.full(f, self.fold_reg_[0]), self.fold_reg_[1]]
        A = np.einsum("bkf,bkg->bfg", Z, Z) + np.diag(pen)
        rhs = np.einsum("bkf,bk->bf", Z, y) + prior * pen
        return np.linalg.solve(A, rhs[..., None])[..., 0]

    def item_states(self, new_items: Sequence[NewItem]) -> np.ndarray:
        """(B, factors + 1): each new item's folded-in [q_i, b_i]."""
        self._check_fitted()
        if len(new_items) == 0:
            return np.zeros((0, self.factors + 1))
        su, sr, sm = _pad_users(new_items, self.n_users_)
        return self._item_state(self._features(new_items), su, sr, sm)

    def _raw(self, X, su, sr, sm, qu) -> np.ndarray:
        s = self._item_state(X, su, sr, sm)
        f = self.factors
        dot = np.einsum("bqf,bf->bq", self.user_factors_[qu], s[:, :f])
        return self.global_mean_ + self.user_bias_[qu] + s[:, f:] + dot


class _ItemLevels(LevelSnapping):
    """Mixin: the base model's predictions cut into the scale's levels, thresholds tuned for
    MAE on the validation items (as `baselines.levels` does for users)."""

    def fit(self, data, train_items, val_items=None, *, should_stop=None, progress=None):
        self.thresholds_ = None  # the base fit tunes its own grid on plain predictions
        super().fit(data, train_items, val_items, should_stop=should_stop, progress=progress)
        grid = level_grid(data.scale)
        if not self.fitted_ or grid is None:
            return self
        val = self._val(data, val_items)
        self._set_thresholds(grid, None if val is None else (self._val_pred(val), val.qr))
        return self


class ItemBiasLevels(_ItemLevels, ItemBias):
    """`ItemBias` with predictions cut into the scale's levels."""

    name: ClassVar[str] = "item_bias_levels"
    STATE_ARRAYS: ClassVar[dict[str, tuple[str, ...]]] = with_thresholds(ItemBias.STATE_ARRAYS)


class ItemMFFoldInLevels(_ItemLevels, ItemMFFoldIn):
    """`ItemMFFoldIn` with predictions cut into the scale's levels."""

    name: ClassVar[str] = "mf_foldin_levels"
    STATE_ARRAYS: ClassVar[dict[str, tuple[str, ...]]] = with_thresholds(ItemMFFoldIn.STATE_ARRAYS)


ITEM_BASELINE_CLASSES: dict[str, type[ItemRecommender]] = {
    c.name: c
    for c in (
        ItemGlobalMean,
        ItemContent,
        ItemBias,
        ItemMFFoldIn,
        ItemBiasLevels,
        ItemMFFoldInLevels,
    )
}
