"""MetaRec core: cold-start recommendation with meta-learning (no UI code here)."""

from metarec_core.data.dataset import DataError, ItemInfo, RatingScale, RatingsDataset
from metarec_core.data.summary import DatasetSummary

__all__ = ["DataError", "DatasetSummary", "ItemInfo", "RatingScale", "RatingsDataset"]
__version__ = "0.1.0"
