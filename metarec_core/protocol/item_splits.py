"""The new-item (item cold-start) protocol: folds over items, per-item support/query tasks.

``--cold items``: items are split into K folds (seeded). A test fold's items are removed from
training entirely: methods are fitted on `without_items(data, test_items)`, so none of their
ratings is seen in fit, tuning or early stopping; validation items are carved from the training
items. Each test item's ratings are permuted once (seeded per item); the last ``query`` ratings
are the query (those users' ratings are predicted) and the support for size k is the first k
(nested: the same items and queries at every k). k = 0 is the item's metadata alone. An item
with fewer than ``max(k) + query`` ratings is left out and counted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from metarec_core.data.dataset import RatingsDataset
from metarec_core.methods.base import NewItem
from metarec_core.protocol.splits import holdout, kfold_parts, seeded_rng
from metarec_core.protocol.tasks import OrderedTask, seeded_rows

# salts of the item protocol (protocol/splits.py and tasks.py hold the users' 1-17)
SALT_ITEM_FOLDS, SALT_ITEM_FOLD_VAL, SALT_ITEM_ORDER, SALT_ITEM_FIT_VAL = 21, 22, 23, 24


@dataclass(frozen=True, eq=False)
class ItemFold:
    """An item split: test items are unseen; validation items are carved from training items."""

    index: int
    train_items: np.ndarray
    val_items: np.ndarray
    test_items: np.ndarray


def item_folds(
    data: RatingsDataset, n_folds: int = 5, seed: int = 0, val_fraction: float = 0.1
) -> list[ItemFold]:
    """K folds over the items that have ratings; validation items come from training items."""
    rated = np.flatnonzero(data.counts_per_item() > 0)
    salts = (SALT_ITEM_FOLDS, SALT_ITEM_FOLD_VAL)
    parts = kfold_parts(rated, n_folds, seed, salts, val_fraction)
    return [ItemFold(f, *part) for f, part in enumerate(parts)]


def fit_validation_items(
    train_items: np.ndarray, seed: int, val_fraction: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) carved from a method's training items when none are given."""
    train, val = holdout(train_items, val_fraction, seeded_rng(seed, SALT_ITEM_FIT_VAL))
    return np.sort(train), np.sort(val)


def without_items(data: RatingsDataset, items: np.ndarray) -> RatingsDataset:
    """`data` with every rating of `items` removed (ids, catalogue and metadata unchanged):
    what a method is fitted on, so that no rating of a test item can reach it."""
    drop = np.zeros(data.n_items, dtype=bool)
    drop[np.asarray(items, dtype=np.int64)] = True
    keep = ~drop[data.item]
    ts = None if data.timestamp is None else data.timestamp[keep]
    return dataclasses.replace(
        data, user=data.user[keep], item=data.item[keep], rating=data.rating[keep], timestamp=ts
    )


def item_metadata(data: RatingsDataset, item: int) -> tuple[str, tuple[str, ...]]:
    """(title, genre names) of an item of `data` ("" and () without an items file)."""
    if data.items is None:
        return "", ()
    return str(data.items.titles[item]), tuple(data.items.genre_list(item))


@dataclass(frozen=True, eq=False)
class ItemTask(OrderedTask):
    """One item's ratings in a fixed, seeded order: support first, query last; `support(k)`
    gives the first k as (users, ratings)."""

    item: int
    title: str
    genres: tuple[str, ...]
    users: np.ndarray  # (n,) int64, permuted
    ratings: np.ndarray  # (n,) float32, permuted the same way
    query_size: int
    UNIT: ClassVar[str] = "item"
    KEYS: ClassVar[str] = "users"

    def new_item(self, k: int) -> NewItem:
        """The item as a method sees it at support size k: metadata and the first k ratings."""
        users, ratings = self.support(k)
        return NewItem(self.title, self.genres, users, ratings)


def make_item_tasks(
    data: RatingsDataset,
    items: np.ndarray,
    *,
    query: int = 10,
    min_support: int = 0,
    seed: int = 0,
) -> tuple[list[ItemTask], int]:
    """One task per item with at least ``min_support + query`` ratings.

    The permutation of an item's ratings depends only on (seed, item). Returns
    (tasks, n_left_out).
    """
    order = np.argsort(data.item, kind="stable")
    counts = np.bincount(data.item, minlength=data.n_items)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    rows, left_out = seeded_rows(order, indptr, items, min_support + query, seed, SALT_ITEM_ORDER)
    tasks = []
    for i, idx in rows:
        title, genres = item_metadata(data, i)
        tasks.append(ItemTask(i, title, genres, data.user[idx], data.rating[idx], query))
    return tasks, left_out
