"""Ratings and item metadata: loading, validation, inner ids, summary.

CONTRACT (shared by every module; do not change field names or meanings):
- Users and items get dense inner indices 0..n-1; raw ids are kept as strings.
- `RatingsDataset` arrays are aligned, one entry per (user, item) rating, duplicates removed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_MAX_BYTES = 200 * 1024 * 1024


class DataError(ValueError):
    """Bad input: the message names the file, the rows/columns and what was expected."""


@dataclass(frozen=True)
class RatingScale:
    """The rating scale of a dataset: lowest and highest value and the step between values."""

    low: float
    high: float
    step: float

    @property
    def relevant_threshold(self) -> float:
        """Ratings >= this are in the top 20% of the scale (used by recall@10)."""
        return self.high - 0.2 * (self.high - self.low)

    def clip(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, self.low, self.high)


@dataclass(frozen=True, eq=False)
class ItemInfo:
    """Display metadata aligned with the dataset's inner item indices."""

    titles: np.ndarray  # (n_items,) str; the raw id when an item has no metadata
    genre_names: tuple[str, ...]  # column names of `genres`
    genres: np.ndarray  # (n_items, n_genres) bool
    missing: int = 0  # rated items with no metadata row

    def genre_list(self, item: int) -> list[str]:
        return [g for g, flag in zip(self.genre_names, self.genres[item], strict=True) if flag]


@dataclass(frozen=True, eq=False)
class RatingsDataset:
    """A validated ratings table with dense inner ids."""

    user: np.ndarray  # (n,) int64 inner user index
    item: np.ndarray  # (n,) int64 inner item index
    rating: np.ndarray  # (n,) float32
    timestamp: np.ndarray | None  # (n,) int64 or None
    user_ids: np.ndarray  # (n_users,) str raw id of each inner user
    item_ids: np.ndarray  # (n_items,) str raw id of each inner item
    scale: RatingScale
    items: ItemInfo | None = None
    source: str = ""
    # Human-readable notes about what loading changed, each with a count
    # (e.g. "dropped 12 duplicate (user, item) pairs, keeping the last").
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_ratings(self) -> int:
        return len(self.rating)

    def fingerprint(self) -> str:
        """A stable hash of the ratings and ids (to match checkpoints to data)."""
        h = hashlib.sha256()
        for a in (self.user, self.item, self.rating):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update("\x1f".join(map(str, self.user_ids)).encode())
        h.update("\x1e".join(map(str, self.item_ids)).encode())
        return h.hexdigest()[:16]

    def user_index(self) -> tuple[np.ndarray, np.ndarray]:
        """(order, indptr): ratings of user u are `order[indptr[u]:indptr[u+1]]`, stable order."""
        order = np.argsort(self.user, kind="stable")
        counts = np.bincount(self.user, minlength=self.n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return order, indptr

    def counts_per_user(self) -> np.ndarray:
        return np.bincount(self.user, minlength=self.n_users)

    def counts_per_item(self) -> np.ndarray:
        return np.bincount(self.item, minlength=self.n_items)


@dataclass(frozen=True)
class DatasetSummary:
    """What the Data page and `validate` show."""

    source: str
    n_users: int
    n_items: int
    n_ratings: int
    scale: RatingScale
    density: float
    ratings_per_user: dict[str, float]  # min, p25, median, p75, max, mean
    ratings_per_item: dict[str, float]
    rating_counts: dict[str, int]  # rating value (as str) -> count
    notes: tuple[str, ...]
    has_items: bool

    def to_dict(self) -> dict:
        """JSON-ready dict (the `dataset` block of evaluation reports)."""
        raise NotImplementedError  # implemented in the data task

    def to_text(self) -> str:
        """A few human-readable lines (what `validate` prints)."""
        raise NotImplementedError  # implemented in the data task


Source = str | Path | bytes


def load_ratings(
    source: Source,
    *,
    name: str | None = None,
    items: Source | None = None,
    items_name: str | None = None,
    scale: RatingScale | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> RatingsDataset:
    """Load ratings and optional item metadata from paths or raw bytes (uploads).

    `name`/`items_name` label bytes sources in error messages (default: the path's name).
    `scale`, when given, is the declared scale: ratings outside it are a DataError.
    """
    raise NotImplementedError


def summarize(data: RatingsDataset) -> DatasetSummary:
    raise NotImplementedError
