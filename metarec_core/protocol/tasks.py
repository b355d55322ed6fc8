"""Cold-start task construction: per-user support/query tasks, padded batches (splits.py: folds).

Protocols
- ``kshot``: users are split into K folds (seeded); test users are never seen in training.
  Each test user's ratings are permuted once (seeded per user); the last ``query`` ratings are
  the query set and the support set for size k is the first k (nested across k). A user with
  fewer than ``max(k) + query`` ratings is left out of that k and counted.
- ``melu``: users with 13-100 ratings; query = 10 random ratings, support = the rest;
  80/20 split of users (as in Lee et al., KDD 2019).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from metarec_core.data.dataset import RatingsDataset
from metarec_core.protocol.splits import seeded_rng

MELU_QUERY = 10
SALT_TASK_ORDER = 4  # a user's rating order (protocol/splits.py has the other salts)


class SupportFirst:
    """What every task does with its support: hand out the first k ratings.

    A task declares `n_available` (its support ratings), `UNIT` (the field naming the user or
    item it is: "user", "item") and `_support_pairs` (its support as (keys, ratings) in order)."""

    n_available: int
    UNIT: ClassVar[str]

    def _support_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    @property
    def _who(self) -> str:
        return f"{self.UNIT} {getattr(self, self.UNIT)}"

    def support(self, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The first k support ratings (k=None: all of them)."""
        n = self.n_available if k is None else k
        if n > self.n_available:
            raise ValueError(f"{self._who} has {self.n_available} support ratings, asked {n}")
        keys, ratings = self._support_pairs()
        return keys[:n], ratings[:n]


class OrderedTask(SupportFirst):
    """A task whose ratings are in one fixed, seeded order: support first, the last
    `query_size` the query. It declares `KEYS`, the field of what was rated, in the same order
    as `ratings` ("items" of a user, "users" of an item)."""

    ratings: np.ndarray
    query_size: int
    KEYS: ClassVar[str]

    @property
    def _keys(self) -> np.ndarray:
        return getattr(self, self.KEYS)

    @property
    def n_available(self) -> int:
        """Ratings available for support (all but the query)."""
        return len(self.ratings) - self.query_size

    def _support_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        return self._keys, self.ratings

    @property
    def query(self) -> tuple[np.ndarray, np.ndarray]:
        return self._keys[self.n_available :], self.ratings[self.n_available :]


@dataclass(frozen=True, eq=False)
class UserTask(OrderedTask):
    """One user's ratings in a fixed, seeded order: support first, query last."""

    user: int
    items: np.ndarray  # (n,) int64, permuted
    ratings: np.ndarray  # (n,) float32, permuted the same way
    query_size: int
    UNIT: ClassVar[str] = "user"
    KEYS: ClassVar[str] = "items"


def make_tasks(
    data: RatingsDataset,
    users: np.ndarray,
    *,
    query: int = 10,
    min_support: int = 1,
    seed: int = 0,
) -> tuple[list[UserTask], int]:
    """One task per user with at least ``min_support + query`` ratings.

    The permutation of a user's ratings depends only on (seed, user), so it does not change
    with the fold or with which other users are present. Returns (tasks, n_left_out).
    """
    order, indptr = data.user_index()
    rows, left_out = seeded_rows(order, indptr, users, min_support + query, seed, SALT_TASK_ORDER)
    return [UserTask(u, data.item[idx], data.rating[idx], query) for u, idx in rows], left_out


def seeded_rows(
    order: np.ndarray, indptr: np.ndarray, units: np.ndarray, need: int, seed: int, salt: int
) -> tuple[list[tuple[int, np.ndarray]], int]:
    """([(unit, its rating rows in the order seeded by (seed, salt, unit))] for the units
    (users or items) with at least `need` ratings, the number of units left out); a unit's
    rows are ``order[indptr[unit] : indptr[unit + 1]]``."""
    out, left_out = [], 0
    for u in np.asarray(units, dtype=np.int64):
        idx = order[indptr[u] : indptr[u + 1]]
        if len(idx) < need:
            left_out += 1
            continue
        out.append((int(u), idx[seeded_rng(seed, salt, int(u)).permutation(len(idx))]))
    return out, left_out


def user_ratings(data: RatingsDataset, users: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """All (items, ratings) of each user, in file order (for training on whole users)."""
    order, indptr = data.user_index()
    out = []
    for u in np.asarray(users, dtype=np.int64):
        idx = order[indptr[u] : indptr[u + 1]]
        out.append((data.item[idx], data.rating[idx]))
    return out


@dataclass(frozen=True, eq=False)
class TaskBatch:
    """Padded, masked tensors for many tasks at once. Padding has item 0, rating 0, mask False."""

    items: torch.Tensor  # (B, L) int64
    ratings: torch.Tensor  # (B, L) float
    mask: torch.Tensor  # (B, L) bool

    @property
    def counts(self) -> torch.Tensor:
        return self.mask.sum(1)

    def to(self, device: torch.device | str) -> TaskBatch:
        return TaskBatch(self.items.to(device), self.ratings.to(device), self.mask.to(device))


def pad_tasks(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    length: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> TaskBatch:
    """Stack variable-length (items, ratings) pairs into a padded, masked TaskBatch."""
    lengths = [len(i) for i, _ in pairs]
    L = max([1, *lengths]) if length is None else length
    if lengths and max(lengths) > L:
        raise ValueError(f"a task has {max(lengths)} ratings, longer than length={L}")
    B = len(pairs)
    items = np.zeros((B, L), dtype=np.int64)
    ratings = np.zeros((B, L), dtype=np.float64)
    mask = np.zeros((B, L), dtype=bool)
    for b, (i, r) in enumerate(pairs):
        n = len(i)
        items[b, :n], ratings[b, :n], mask[b, :n] = i, r, True
    return TaskBatch(
        torch.as_tensor(items, device=device),
        torch.as_tensor(ratings, dtype=dtype, device=device),
        torch.as_tensor(mask, device=device),
    )
