"""The level decision: a base model's predictions cut into the scale's star levels."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.methods.base import LEVEL_TIE_BREAK, FitProgress, StopFlag
from metarec_core.methods.baselines.bias import UserBias
from metarec_core.methods.baselines.mf import MFFoldIn

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


def with_thresholds(arrays: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """A base model's declared `STATE_ARRAYS` plus the level thresholds."""
    return {**arrays, "thresholds_": ("levels",)}


class LevelSnapping:
    """Mixin shared by the users' and the items' level decisions: thresholds from validation
    predictions, predictions snapped to levels, and what a loaded model derives."""

    # None on a scale without a few discrete levels
    OPTIONAL_ARRAYS: ClassVar[frozenset[str]] = frozenset({"thresholds_"})

    def _set_thresholds(
        self, grid: tuple[float, float, int], val: tuple[np.ndarray, np.ndarray] | None
    ) -> None:
        """Thresholds tuned on (validation predictions, their true ratings), or the midpoints
        between levels without validation."""
        low, step, levels = grid
        if val is None:
            self.thresholds_ = low + step * (np.arange(levels - 1) + 0.5)
        else:
            self.thresholds_ = tune_level_thresholds(val[0], val[1], low, step, levels)
        self.level_grid_ = grid

    def _loaded(self) -> None:
        if self.thresholds_ is not None:
            self.level_grid_ = level_grid(self.scale_)

    def _plain_finish(self, raw: np.ndarray) -> np.ndarray:
        """The base model's (clipped) predictions, not snapped."""
        return super()._finish(raw)

    def _finish(self, raw: np.ndarray) -> np.ndarray:
        x = self._plain_finish(raw)
        if getattr(self, "thresholds_", None) is None:
            return x
        low, step, _ = self.level_grid_
        level = snap_to_levels(x, self.thresholds_, low, step)
        return level + LEVEL_TIE_BREAK * (x - level)


class _LevelDecision(LevelSnapping):
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
        val = self._val_tasks(data, val_users)
        if val is not None:
            items, ratings, mask, qi, qr = val
            val = self._plain_finish(self._predict(self._user_state(items, ratings, mask), qi)), qr
        self._set_thresholds(grid, val)
        return self

    def _expected(self, raw: np.ndarray) -> np.ndarray | None:
        """The (clipped) mean prediction: the scores are levels (the MAE-optimal point, like a
        learner's median), a person is shown the expected rating (like a learner's mean)."""
        return None if getattr(self, "thresholds_", None) is None else self._plain_finish(raw)


class UserBiasLevels(_LevelDecision, UserBias):
    """`UserBias` with predictions cut into the scale's levels (thresholds tuned for MAE)."""

    name: ClassVar[str] = "user_bias_levels"
    STATE_ARRAYS: ClassVar[dict[str, tuple[str, ...]]] = with_thresholds(UserBias.STATE_ARRAYS)


class MFFoldInLevels(_LevelDecision, MFFoldIn):
    """`MFFoldIn` with predictions cut into the scale's levels (thresholds tuned for MAE)."""

    name: ClassVar[str] = "mf_foldin_levels"
    STATE_ARRAYS: ClassVar[dict[str, tuple[str, ...]]] = with_thresholds(MFFoldIn.STATE_ARRAYS)
