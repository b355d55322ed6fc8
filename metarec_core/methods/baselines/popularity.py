"""Popularity: a ranking by the training users' rating counts."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from metarec_core.methods.base import Capabilities
from metarec_core.methods.baselines.common import _Baseline


class Popularity(_Baseline):
    """Ranking only: every user gets the number of training ratings of each item as its score."""

    name: ClassVar[str] = "popularity"
    capabilities: ClassVar[Capabilities] = Capabilities(predicts_ratings=False)
    STATE_ARRAYS: ClassVar[dict[str, tuple[str, ...]]] = {"counts_": ("items",)}

    def _fit(self, data, ratings, val_users, should_stop, progress) -> bool:
        self.counts_ = np.bincount(ratings[1], minlength=data.n_items).astype(np.float64)
        return True

    def _predict(self, state: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.counts_[items]
