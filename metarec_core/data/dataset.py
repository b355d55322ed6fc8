"""The dataset types: a validated ratings table with dense inner ids, item metadata, the scale.

Reading files into these types is `metarec_core.data.io`; the summary is `data.summary`.

CONTRACT (shared by every module; do not change field names or meanings):
- Users and items get dense inner indices 0..n-1; raw ids are kept as strings.
- `RatingsDataset` arrays are aligned, one entry per (user, item) rating, duplicates removed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


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
        """A stable hash of the ratings and ids (to match checkpoints to data).

        Computed once per dataset object (a few ms on 100k ratings, but the app's pages ask on
        every poll of a job): the arrays are never changed in place; `dataclasses.replace`
        makes a new object with its own hash."""
        cached = self.__dict__.get("_fingerprint")
        if cached is not None:
            return cached
        h = hashlib.sha256()
        for a in (self.user, self.item, self.rating):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update("\x1f".join(map(str, self.user_ids)).encode())
        h.update("\x1e".join(map(str, self.item_ids)).encode())
        fp = h.hexdigest()[:16]
        object.__setattr__(self, "_fingerprint", fp)  # frozen dataclass: a cache, not a field
        return fp

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


def _fmt(v: float) -> str:
    """A rating value as messages and summaries show it (4, 3.5, 0.25)."""
    return f"{v:g}"
