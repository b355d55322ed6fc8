"""Item and user biases: mu + b_u + b_i, a new user's bias folded in from their support."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from metarec_core.methods.baselines.common import _Baseline


class UserBias(_Baseline):
    """mu + b_u + b_i with ridge-regularised biases; a new user's bias is folded in from support.

    Training (alternating, ``iters`` rounds): b_i = Σ(r − mu − b_u)/(n_i + λ_i),
    b_u = Σ(r − mu − b_i)/(n_u + λ_u). Fold-in: b_u = Σ_support (r − mu − b_i)/(k + γ).
    """

    name: ClassVar[str] = "user_bias"
    STATE_ARRAYS: ClassVar[dict[str, tuple[str, ...]]] = {"item_bias_": ("items",)}
    STATE_VALUES: ClassVar[tuple[str, ...]] = (
        "global_mean_",
        "item_reg_",
        "user_reg_",
        "fold_damping_",
    )
    PARAMS: ClassVar[tuple[str, ...]] = ("item_reg", "user_reg", "fold_damping", "iters")
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

    def _fit(self, data, ratings, val_users, should_stop, progress) -> bool:
        u, i, r = ratings
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
        return True

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
