"""The playground's taste map: a 2-D projection (PCA) of user states, fitted on training users;
and the new-item page's map of items: the same projection of training items' states.

Only methods that declare ``capabilities.user_state`` (users) or ``capabilities.item_state``
(new-item methods) have states to project.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metarec_core.data.dataset import RatingsDataset
from metarec_core.methods.base import ItemRecommender, NewItem, Recommender
from metarec_core.protocol.item_splits import item_metadata
from metarec_core.protocol.splits import seeded_rng

MAP_ITEMS = 2000  # training items on a map of items (the most rated)
MAP_RATINGS = 200  # ratings an item's state on the map is computed from (a seeded subset)
SALT_MAP_RATINGS = 33  # seeded_rng salt of that subset (protocol salts are below 30)


@dataclass(frozen=True, eq=False)
class Projection:
    """A PCA of user states to 2-D, fitted on training users."""

    mean: np.ndarray  # (d,)
    components: np.ndarray  # (2, d)
    points: np.ndarray  # (n, 2) the fitted users' coordinates
    users: np.ndarray  # (n,) their inner indices
    explained: np.ndarray  # (2,) share of variance per axis

    def transform(self, states: np.ndarray) -> np.ndarray:
        """(m, d) states -> (m, 2) coordinates."""
        return (np.atleast_2d(np.asarray(states, dtype=np.float64)) - self.mean) @ self.components.T


def project_users(states: np.ndarray, users: np.ndarray) -> Projection:
    """PCA (via SVD) of `states` (n, d) to two axes; each axis's sign fixed so that its largest
    loading is positive (deterministic across runs)."""
    x = np.asarray(states, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need a (n >= 2, d) array of user states, got shape {x.shape}")
    mean = x.mean(0)
    xc = x - mean
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    comps = np.zeros((2, x.shape[1]))
    k = min(2, vt.shape[0])
    comps[:k] = vt[:k]
    for j in range(k):
        if comps[j, np.argmax(np.abs(comps[j]))] < 0:
            comps[j] = -comps[j]
    var = s**2
    explained = np.zeros(2)
    if var.sum() > 0:
        explained[:k] = var[:k] / var.sum()
    return Projection(mean, comps, xc @ comps.T, np.asarray(users, dtype=np.int64), explained)


def fit_projection(
    model: Recommender,
    data: RatingsDataset,
    users: np.ndarray,
    *,
    k: int = 10,
    max_users: int = 400,
    seed: int = 0,
) -> Projection | None:
    """Project the adapted states of (at most `max_users`, seeded) training users; None when the
    model declares no user state (`capabilities.user_state`: baselines)."""
    if not model.capabilities.user_state:
        return None
    users = np.asarray(users, dtype=np.int64)
    if len(users) > max_users:
        users = np.sort(np.random.default_rng([seed, 9]).choice(users, max_users, replace=False))
    states = np.asarray(model.user_states(data, users, k=k), dtype=np.float64)
    if states.ndim != 2 or states.shape[1] == 0 or len(states) < 2:
        return None
    return project_users(states, users)


@dataclass(frozen=True, eq=False)
class ItemMap:
    """Training items' states projected to 2-D (`project_users`' PCA; its ``users`` hold item
    indices here), each item labelled by one genre (its rarest in the catalogue, "" without
    genres): new items are placed among them with `place`."""

    projection: Projection
    items: np.ndarray  # (n,) inner item indices, in the projection's order
    genres: tuple[str, ...]  # (n,) each item's colour

    @property
    def points(self) -> np.ndarray:
        return self.projection.points

    def place(self, states: np.ndarray) -> np.ndarray:
        """(m, d) new items' states -> (m, 2) coordinates on the map."""
        return self.projection.transform(states)


def rarest_genres(data: RatingsDataset, items: np.ndarray) -> tuple[str, ...]:
    """Each item's rarest genre (fewest items in the catalogue carry it; ties by the genre
    list's order), "" for an item without genres: the most telling single label."""
    info = data.items
    items = np.asarray(items, dtype=np.int64)
    if info is None or not info.genre_names:
        return ("",) * len(items)
    g = info.genres[items]
    count = info.genres.sum(0).astype(np.float64)
    rank = np.where(g, count[None, :], np.inf)
    best = np.argmin(rank, axis=1)  # the first of the rarest on ties
    return tuple(info.genre_names[b] if has else "" for b, has in zip(best, g.any(1), strict=True))


def fit_item_map(
    model: ItemRecommender,
    data: RatingsDataset,
    train_items: np.ndarray,
    *,
    max_items: int = MAP_ITEMS,
    max_ratings: int = MAP_RATINGS,
    seed: int = 0,
) -> ItemMap | None:
    """The map of (at most `max_items`, the most rated of) `train_items`: each item's state as
    the model computes a new item's (`item_states`: its metadata and up to `max_ratings` of its
    ratings in `data`, a seeded subset), so a new item lands where training items with its
    description and ratings are. None when the model declares no item state or fewer than 2
    items have ratings. Only `train_items`' ratings are read."""
    if not model.capabilities.item_state:
        return None
    counts = data.counts_per_item()
    items = np.unique(np.asarray(train_items, dtype=np.int64))
    items = items[counts[items] > 0]
    items = items[np.lexsort((items, -counts[items]))][:max_items]
    if len(items) < 2:
        return None
    order = np.argsort(data.item, kind="stable")  # each item's ratings, in file order
    indptr = np.concatenate([[0], np.cumsum(counts)])
    news = []
    for j in items:
        rows = order[indptr[j] : indptr[j + 1]]
        if len(rows) > max_ratings:
            rows = rows[seeded_rng(seed, SALT_MAP_RATINGS, int(j)).permutation(len(rows))]
            rows = rows[:max_ratings]
        title, genres = item_metadata(data, int(j))
        news.append(NewItem.of(title, genres, data.user[rows], data.rating[rows]))
    states = np.asarray(model.item_states(news), dtype=np.float64)
    if states.ndim != 2 or states.shape[1] == 0:
        return None
    return ItemMap(project_users(states, items), items, rarest_genres(data, items))
