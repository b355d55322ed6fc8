"""The mean baselines: the global mean and the damped item mean."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from metarec_core.methods.baselines.common import _Baseline


class GlobalMean(_Baseline):
    """Predicts the global mean rating of the training users for every item."""

    name: ClassVar[str] = "global_mean"
    STATE_VALUES: ClassVar[tuple[str, ...]] = ("global_mean_",)

    def _predict(self, state: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.full(items.shape, self.global_mean_)


class ItemMean(_Baseline):
    """Damped item mean: (Σ r_ui + β·mu) / (n_i + β); β tuned on validation users."""

    name: ClassVar[str] = "item_mean"
    STATE_ARRAYS: ClassVar[dict[str, tuple[str, ...]]] = {"item_means_": ("items",)}
    STATE_VALUES: ClassVar[tuple[str, ...]] = ("global_mean_", "damping_")
    PARAMS: ClassVar[tuple[str, ...]] = ("damping",)
    DAMPING_GRID: ClassVar[tuple[float, ...]] = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 35.0)

    def __init__(self, seed: int = 0, damping: float | None = None) -> None:
        super().__init__(seed)
        self.damping = damping  # None: tune on validation users

    def _fit(self, data, ratings, val_users, should_stop, progress) -> bool:
        _, i, r = ratings
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
        return True

    def _set(self, sums: np.ndarray, counts: np.ndarray, beta: float) -> None:
        mu = self.global_mean_
        denom = counts + beta
        self.item_means_ = np.where(denom > 0, (sums + beta * mu) / np.maximum(denom, 1e-12), mu)

    def _predict(self, state: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.item_means_[items]
