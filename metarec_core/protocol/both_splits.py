"""Both new (``--cold both``) and MeLU's four states (``--protocol melu --state ...``).

``--cold both`` (MeLU's state 4 in K folds): fold f pairs user fold f (`user_folds`) with item
fold f (`item_folds`), both from the same seed. Methods are fitted on the fold's training users'
ratings of warm items (every item outside the test fold): no rating of a test user nor of a test
item reaches a fit, its tuning or its early stopping. A test user's ratings of warm items are
permuted once (seeded per user) and the support for size k is the first k (nested); the query
is the first ``query`` of the user's ratings of new (test) items, permuted once (seeded per
user). A new item is its metadata alone: nobody's rating of it is known. A test user with fewer
than max(k) warm ratings or fewer than ``query`` new-item ratings is left out and counted.

``--protocol melu --state warm|user|item|both`` (Lee et al., KDD 2019, on our data): users with
13-100 ratings, 80 % existing / 20 % new (`melu_split`, the users' melu protocol); items
existing / new by release year (`melu_item_split`: new = released in or after the cut year,
chosen so that the newest items make the share closest to 20 %; MeLU's ML-1M rule, >= 1998,
is what this gives on ML-1M; items without a year are existing). Per state, each test user's
query is 10 random ratings of the state's query items and the support is the user's other
ratings of existing items:

- ``warm``: existing users, query on existing items (these query ratings are removed from the
  fit data, in every state, so that one fit serves the four states alike);
- ``user``: new users, query on existing items;
- ``item``: existing users, query on new items (the support, the user's existing-item ratings,
  was part of the fit: the user is warm);
- ``both``: new users, query on new items.

The fit data of every state: existing users' ratings of existing items minus the warm queries.
A test user needs ``MELU_MIN_RATINGS - MELU_QUERY`` (3) support ratings and 10 query ratings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from metarec_core.data.dataset import RatingsDataset
from metarec_core.methods.item_features import title_year
from metarec_core.protocol.item_splits import item_folds
from metarec_core.protocol.splits import (
    MELU_MIN_RATINGS,
    melu_split,
    seeded_rng,
    user_folds,
)
from metarec_core.protocol.tasks import MELU_QUERY, SupportFirst

# salts of these protocols (splits.py, tasks.py: 1-17; item_splits.py: 21-24)
SALT_BOTH_WARM, SALT_BOTH_NEW, SALT_MELU_QUERY = 25, 26, 27
MELU_STATES = ("warm", "user", "item", "both")
MELU_NEW_ITEM_SHARE = 0.2
MELU_MIN_SUPPORT = MELU_MIN_RATINGS - MELU_QUERY  # 3, as MeLU's 13 = 3 + 10


@dataclass(frozen=True, eq=False)
class BothFold:
    """A split where users and items are both new: test users and test (new) items unseen;
    the users' validation users are carved from training users."""

    index: int
    train_users: np.ndarray
    val_users: np.ndarray
    test_users: np.ndarray
    new_items: np.ndarray  # the test items: metadata only, no rating of them in any fit


def both_folds(
    data: RatingsDataset, n_folds: int = 5, seed: int = 0, val_fraction: float = 0.1
) -> list[BothFold]:
    """User fold f with item fold f, for f in 0..n_folds-1 (the same seed for both)."""
    users = user_folds(data, n_folds, seed, val_fraction)
    items = item_folds(data, n_folds, seed, val_fraction)
    return [
        BothFold(f, u.train_users, u.val_users, u.test_users, i.test_items)
        for f, (u, i) in enumerate(zip(users, items, strict=True))
    ]


@dataclass(frozen=True, eq=False)
class ColdTask(SupportFirst):
    """One test user: support ratings (warm items, seeded order) and query ratings."""

    user: int
    support_items: np.ndarray
    support_ratings: np.ndarray
    query_items: np.ndarray
    query_ratings: np.ndarray
    UNIT: ClassVar[str] = "user"

    @property
    def n_available(self) -> int:
        return len(self.support_items)

    def _support_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        return self.support_items, self.support_ratings

    @property
    def query(self) -> tuple[np.ndarray, np.ndarray]:
        return self.query_items, self.query_ratings


def _user_rows(data: RatingsDataset, u: int) -> np.ndarray:
    order, indptr = data.user_index()
    return order[indptr[u] : indptr[u + 1]]


def make_both_tasks(
    data: RatingsDataset,
    users: np.ndarray,
    new_items: np.ndarray,
    *,
    query: int = 10,
    min_support: int = 1,
    seed: int = 0,
) -> tuple[list[ColdTask], int]:
    """One task per user with >= `min_support` warm ratings and >= `query` ratings of
    `new_items`; support: the warm ratings, query: `query` new-item ratings (each seeded per
    user). Returns (tasks, n_left_out)."""
    is_new = np.zeros(data.n_items, dtype=bool)
    is_new[np.asarray(new_items, dtype=np.int64)] = True
    tasks, left_out = [], 0
    for u in np.asarray(users, dtype=np.int64):
        idx = _user_rows(data, int(u))
        new, warm = idx[is_new[data.item[idx]]], idx[~is_new[data.item[idx]]]
        if len(warm) < min_support or len(new) < query:
            left_out += 1
            continue
        warm = warm[seeded_rng(seed, SALT_BOTH_WARM, int(u)).permutation(len(warm))]
        new = new[seeded_rng(seed, SALT_BOTH_NEW, int(u)).permutation(len(new))[:query]]
        tasks.append(
            ColdTask(int(u), data.item[warm], data.rating[warm], data.item[new], data.rating[new])
        )
    return tasks, left_out


def without_users(data: RatingsDataset, users: np.ndarray) -> RatingsDataset:
    """`data` with every rating of `users` removed (ids and catalogue unchanged)."""
    drop = np.zeros(data.n_users, dtype=bool)
    drop[np.asarray(users, dtype=np.int64)] = True
    return _keep_rows(data, ~drop[data.user])


def _keep_rows(data: RatingsDataset, keep: np.ndarray) -> RatingsDataset:
    ts = None if data.timestamp is None else data.timestamp[keep]
    return dataclasses.replace(
        data, user=data.user[keep], item=data.item[keep], rating=data.rating[keep], timestamp=ts
    )


# --------------------------------------------------------------------------- MeLU's states


def melu_item_split(data: RatingsDataset) -> tuple[np.ndarray, int]:
    """(new items, cut year): items released in or after the cut year are new; the cut year
    makes the newest items' share of the dated items closest to `MELU_NEW_ITEM_SHARE`.
    ValueError without titles with years."""
    if data.items is None:
        raise ValueError(
            "the melu states split items by release year: the data needs an items file with "
            "titles like 'Toy Story (1995)' (--items)"
        )
    years = np.array([title_year(str(t)) or 0 for t in data.items.titles])
    dated = years[years > 0]
    if len(dated) == 0:
        raise ValueError("the melu states split items by release year; no item title has a year")
    cuts = np.unique(dated)
    share = np.array([(dated >= y).mean() for y in cuts])
    cut = int(cuts[np.argmin(np.abs(share - MELU_NEW_ITEM_SHARE))])
    new = np.flatnonzero(years >= cut)
    if len(new) == len(years) or len(new) == 0:
        raise ValueError(f"the release-year cut {cut} leaves no existing or no new item")
    return new, cut


@dataclass(frozen=True, eq=False)
class MeluStates:
    """The users' and items' split of MeLU's states and the data every state fits on."""

    train_users: np.ndarray  # existing users, minus validation users
    val_users: np.ndarray  # existing users kept for tuning / early stopping
    new_users: np.ndarray
    new_items: np.ndarray
    cut_year: int
    fit_data: RatingsDataset  # existing users x existing items, minus the warm queries
    warm_tasks: list[ColdTask]  # every existing user's warm query (removed from fit_data)
    left_out_users: int  # users outside 13-100 ratings


def melu_states(data: RatingsDataset, seed: int = 0, val_fraction: float = 0.1) -> MeluStates:
    """The split and fit data shared by the four states (the module doc says how)."""
    fold, n_out = melu_split(data, seed, val_fraction)
    new_items, cut = melu_item_split(data)
    existing = np.concatenate([fold.train_users, fold.val_users])
    is_new_item = np.zeros(data.n_items, dtype=bool)
    is_new_item[new_items] = True
    warm, _ = _warm_tasks(data, existing, is_new_item, seed)
    warm_tasks, warm_rows = [t for t, _ in warm], [q for _, q in warm]
    keep = np.zeros(data.n_users, dtype=bool)
    keep[existing] = True
    keep = keep[data.user] & ~is_new_item[data.item]
    if warm_rows:
        keep[np.concatenate(warm_rows)] = False
    return MeluStates(
        fold.train_users,
        fold.val_users,
        fold.test_users,
        new_items,
        cut,
        _keep_rows(data, keep),
        warm_tasks,
        n_out,
    )


def melu_state_tasks(
    data: RatingsDataset, states: MeluStates, state: str, seed: int = 0
) -> tuple[list[ColdTask], int]:
    """(test tasks of `state`, test users left out for too few support or query ratings)."""
    if state not in MELU_STATES:
        raise ValueError(f"unknown melu state {state!r}; expected one of {', '.join(MELU_STATES)}")
    existing = np.concatenate([states.train_users, states.val_users])
    if state == "warm":
        return states.warm_tasks, len(existing) - len(states.warm_tasks)
    if state == "item":
        return make_both_tasks(
            data,
            existing,
            states.new_items,
            query=MELU_QUERY,
            min_support=MELU_MIN_SUPPORT,
            seed=seed,
        )
    if state == "both":
        return make_both_tasks(
            data,
            states.new_users,
            states.new_items,
            query=MELU_QUERY,
            min_support=MELU_MIN_SUPPORT,
            seed=seed,
        )
    # user: new users, query and support on existing items
    is_new_item = np.zeros(data.n_items, dtype=bool)
    is_new_item[states.new_items] = True
    tasks, left_out = _warm_tasks(data, states.new_users, is_new_item, seed)
    return [t for t, _ in tasks], left_out


def _warm_tasks(
    data: RatingsDataset, users: np.ndarray, is_new_item: np.ndarray, seed: int
) -> tuple[list[tuple[ColdTask, np.ndarray]], int]:
    """([(task, its query rows)] of the `users` with enough ratings of items not new, the
    number left out): the first MELU_QUERY of a user's seeded order are the query."""
    out, left_out = [], 0
    for u in users:
        idx = _user_rows(data, int(u))
        idx = idx[~is_new_item[data.item[idx]]]
        if len(idx) < MELU_MIN_SUPPORT + MELU_QUERY:
            left_out += 1
            continue
        idx = idx[seeded_rng(seed, SALT_MELU_QUERY, int(u)).permutation(len(idx))]
        q, s = idx[:MELU_QUERY], idx[MELU_QUERY:]
        task = ColdTask(int(u), data.item[s], data.rating[s], data.item[q], data.rating[q])
        out.append((task, q))
    return out, left_out
