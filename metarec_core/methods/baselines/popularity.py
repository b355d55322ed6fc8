"""Popularity: a ranking by the training users' rating counts."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from metarec_core.data.dataset import RatingsDataset
from metarec_core.methods.base import Capabilities, FitProgress, StopFlag
from metarec_core.methods.baselines.common import _Baseline, _train_ratings


class Popularity(_Baseline):
    """Ranking only: every user gets the number of training ratings of each item as its score."""

    name: ClassVar[str] = "popularity"
    capabilities: ClassVar[Capabilities] = Capabilities(predicts_ratings=False)
    STATE_ARRAYS: ClassVar[dict[str, tuple[str, ...]]] = {"counts_": ("items",)}

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
