"""MetaRec core: cold-start recommendation with meta-learning (no UI code here)."""

from metarec_core.data.dataset import (
    DataError,
    DatasetSummary,
    ItemInfo,
    RatingScale,
    RatingsDataset,
)

__all__ = ["DataError", "DatasetSummary", "ItemInfo", "RatingScale", "RatingsDataset"]
__version__ = "0.1.0"
