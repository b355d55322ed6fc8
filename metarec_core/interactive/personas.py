"""Simulated new users for the playground and the what-if page.

A persona is either a held-out real user (never trained on; their hidden ratings are the
protocol's query set, so the learning curve has ground truth) or a taste persona whose ratings
are generated from the genres it loves and dislikes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metarec_core.data.dataset import RatingsDataset
from metarec_core.protocol.tasks import make_tasks

PERSONA_HIDDEN = 10  # hidden ratings of a held-out user (as the query set of the protocol)


@dataclass(frozen=True, eq=False)
class Persona:
    """A simulated new user: ratings revealed one at a time, and hidden ratings as ground truth.

    A record, not text: the app names and describes it (`app_support.format.persona_name`).
    """

    kind: str  # "heldout" (a real user not trained on) or "taste" (generated from genres)
    reveal_items: np.ndarray  # (n,) int64, in the order "Add next rating" reveals them
    reveal_ratings: np.ndarray  # (n,) float
    hidden_items: np.ndarray  # (m,) int64, never revealed
    hidden_ratings: np.ndarray  # (m,) float
    # a held-out real user: inner index, raw id, ratings in the data, favourite genres
    user: int | None = None
    user_id: str | None = None
    n_ratings: int = 0
    favourites: tuple[str, ...] = ()
    # a taste persona: the genres it loves and dislikes
    likes: tuple[str, ...] = ()
    dislikes: tuple[str, ...] = ()
    # the home page's demo: only the user's first `replays` ratings are revealed
    replays: int | None = None


def heldout_candidates(
    data: RatingsDataset,
    users: np.ndarray,
    *,
    hidden: int = PERSONA_HIDDEN,
    min_reveal: int = 5,
) -> np.ndarray:
    """Users (from `users`: ones the model never trained on) with enough ratings to be a persona,
    most active first."""
    users = np.unique(np.asarray(users, dtype=np.int64))
    counts = data.counts_per_user()[users]
    ok = counts >= hidden + min_reveal
    users, counts = users[ok], counts[ok]
    return users[np.lexsort((users, -counts))]


def favourite_genres(
    data: RatingsDataset, items: np.ndarray, ratings: np.ndarray, n: int = 2
) -> list[str]:
    """Genres with the highest mean rating minus the user's mean, among genres rated at least twice."""
    if data.items is None or len(items) == 0 or not data.items.genre_names:
        return []
    g = data.items.genres[np.asarray(items, dtype=np.int64)].astype(np.float64)  # (k, G)
    r = np.asarray(ratings, dtype=np.float64) - float(np.mean(ratings))
    cnt = g.sum(0)
    score = np.where(cnt >= 2, (g * r[:, None]).sum(0) / np.maximum(cnt, 1), -np.inf)
    order = np.lexsort((np.arange(len(score)), -score))
    return [data.items.genre_names[j] for j in order[:n] if np.isfinite(score[j]) and score[j] > 0]


def heldout_persona(
    data: RatingsDataset, user: int, *, hidden: int = PERSONA_HIDDEN, seed: int = 0
) -> Persona:
    """A real user as a persona: a seeded permutation, the last `hidden` ratings kept hidden.

    The permutation is the protocol's own (`make_tasks`), so the hidden ratings are exactly
    the user's evaluation query set.
    """
    tasks, _ = make_tasks(data, np.array([user]), query=hidden, min_support=1, seed=seed)
    if not tasks:
        n = int(data.counts_per_user()[user])
        raise ValueError(
            f"user {data.user_ids[user]} has {n} ratings; a persona needs at least {hidden + 1}"
        )
    t = tasks[0]
    items, ratings = t.support()
    q_items, q_ratings = t.query
    return Persona(
        kind="heldout",
        reveal_items=items.astype(np.int64),
        reveal_ratings=ratings.astype(np.float64),
        hidden_items=q_items.astype(np.int64),
        hidden_ratings=q_ratings.astype(np.float64),
        user=int(user),
        user_id=str(data.user_ids[user]),
        n_ratings=len(t.items),
        favourites=tuple(favourite_genres(data, t.items, t.ratings)),
    )


def damped_item_means(data: RatingsDataset, users: np.ndarray, damping: float = 5.0) -> np.ndarray:
    """Per-item mean rating of `users`' ratings, shrunk towards their global mean by `damping`."""
    keep = np.isin(data.user, np.asarray(users, dtype=np.int64))
    r = data.rating[keep].astype(np.float64)
    mu = float(r.mean()) if len(r) else (data.scale.low + data.scale.high) / 2
    sums = np.bincount(data.item[keep], weights=r, minlength=data.n_items)
    cnt = np.bincount(data.item[keep], minlength=data.n_items)
    return (sums + damping * mu) / (cnt + damping)


def snap_to_scale(data: RatingsDataset, x: np.ndarray) -> np.ndarray:
    """Round to the scale's step and clip to [low, high]."""
    s = data.scale
    step = s.step if s.step > 0 else 1.0
    return np.clip(
        s.low + np.round((np.asarray(x, dtype=np.float64) - s.low) / step) * step, s.low, s.high
    )


def taste_ratings(
    data: RatingsDataset,
    base: np.ndarray,
    liked: np.ndarray,
    disliked: np.ndarray,
    rng: np.random.Generator,
    *,
    strength: float | None = None,
    noise: float = 0.35,
) -> np.ndarray:
    """A taste persona's ratings: base + strength·liked − strength·disliked + N(0, (noise·range
    / 4)²), snapped to the scale (`strength` default: 0.3 × the scale's range)."""
    span = data.scale.high - data.scale.low
    strength = 0.3 * span if strength is None else strength
    like = np.asarray(liked, dtype=np.float64) - np.asarray(disliked, dtype=np.float64)
    raw = np.asarray(base, dtype=np.float64) + strength * like
    return snap_to_scale(data, raw + rng.normal(0.0, noise * span / 4, len(raw)))


def check_tastes(data: RatingsDataset, likes: Sequence[str], dislikes: Sequence[str]) -> None:
    """ValueError unless `likes` and `dislikes` are distinct genres of `data`, at least one."""
    info = data.items
    if info is None or not info.genre_names:
        raise ValueError("taste personas need item genres: load an items file with genres")
    unknown = [g for g in (*likes, *dislikes) if g not in info.genre_names]
    if unknown:
        raise ValueError(
            f"unknown genre(s) {', '.join(unknown)}; known: {', '.join(info.genre_names)}"
        )
    if not likes and not dislikes:
        raise ValueError("a taste persona needs at least one liked or disliked genre")
    overlap = set(likes) & set(dislikes)
    if overlap:
        raise ValueError(f"genre(s) both liked and disliked: {', '.join(sorted(overlap))}")


def genre_affinity(
    data: RatingsDataset, rows: np.ndarray | None = None, damping: float = 5.0
) -> np.ndarray:
    """(n_users, n_genres): how much each user favours each genre, from the ratings `rows`
    (indices into `data`; all if None): the sum of (rating − the user's mean) over their rated
    items of the genre, divided by (their count + `damping`), so a genre rated once says little."""
    info = data.items
    if info is None or not info.genre_names:
        return np.zeros((data.n_users, 0))
    rows = np.arange(data.n_ratings) if rows is None else np.asarray(rows, dtype=np.int64)
    u, i = data.user[rows], data.item[rows]
    r = data.rating[rows].astype(np.float64)
    n = np.bincount(u, minlength=data.n_users)
    mean = np.bincount(u, weights=r, minlength=data.n_users) / np.maximum(n, 1)
    res = r - mean[u]
    out = np.zeros((data.n_users, len(info.genre_names)))
    for g in range(len(info.genre_names)):
        has = info.genres[i, g]
        cnt = np.bincount(u[has], minlength=data.n_users)
        out[:, g] = np.bincount(u[has], weights=res[has], minlength=data.n_users) / (cnt + damping)
    return out


def taste_order(
    data: RatingsDataset, affinity: np.ndarray, likes: Sequence[str], dislikes: Sequence[str] = ()
) -> np.ndarray:
    """Users, the best match of a persona who loves `likes` and dislikes `dislikes` first: by
    their mean `genre_affinity` over the liked genres minus that over the disliked ones (ties
    by index)."""
    check_tastes(data, likes, dislikes)
    col = {g: j for j, g in enumerate(data.items.genre_names)}
    score = np.zeros(data.n_users)
    if likes:
        score += affinity[:, [col[g] for g in likes]].mean(1)
    if dislikes:
        score -= affinity[:, [col[g] for g in dislikes]].mean(1)
    return np.lexsort((np.arange(data.n_users), -score))


def taste_persona(
    data: RatingsDataset,
    likes: Sequence[str],
    dislikes: Sequence[str] = (),
    *,
    train_users: np.ndarray | None = None,
    n_reveal: int = 30,
    n_hidden: int = 20,
    strength: float | None = None,
    noise: float = 0.35,
    seed: int = 0,
) -> Persona:
    """A persona who loves the genres `likes` and dislikes `dislikes`, with generated ratings.

    rating(i) = item_mean(i) + strength·[i has a liked genre] − strength·[i has a disliked
    genre] + N(0, noise²)·range, snapped to the scale. Item means come from `train_users` only
    (all users if None). Rated items are drawn by popularity, twice as likely when they carry a
    liked or disliked genre, so the persona's taste shows in what it reveals.
    """
    check_tastes(data, likes, dislikes)
    info = data.items
    n_total = n_reveal + n_hidden
    if n_total > data.n_items:
        raise ValueError(f"the catalogue has {data.n_items} items; the persona needs {n_total}")
    users = np.arange(data.n_users) if train_users is None else train_users
    means = damped_item_means(data, users)
    col = {g: j for j, g in enumerate(info.genre_names)}
    liked = (
        info.genres[:, [col[g] for g in likes]].any(1) if likes else np.zeros(data.n_items, bool)
    )
    disliked = (
        info.genres[:, [col[g] for g in dislikes]].any(1)
        if dislikes
        else np.zeros(data.n_items, bool)
    )
    rng = np.random.default_rng([seed, 7])
    # popularity-weighted draw without replacement (Efraimidis-Spirakis keys)
    weight = (data.counts_per_item() + 1.0) * np.where(liked | disliked, 2.0, 1.0)
    keys = np.log(rng.random(data.n_items)) / weight
    chosen = np.argsort(-keys, kind="stable")[:n_total]
    ratings = taste_ratings(
        data, means[chosen], liked[chosen], disliked[chosen], rng, strength=strength, noise=noise
    )
    return Persona(
        kind="taste",
        reveal_items=chosen[:n_reveal].astype(np.int64),
        reveal_ratings=ratings[:n_reveal],
        hidden_items=chosen[n_reveal:].astype(np.int64),
        hidden_ratings=ratings[n_reveal:],
        likes=tuple(likes),
        dislikes=tuple(dislikes),
    )


def suggest_tastes(
    data: RatingsDataset, n: int = 4
) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """A few (likes, dislikes) pairs over the most-rated genres, for one-click taste personas."""
    info = data.items
    if info is None or len(info.genre_names) < 2:
        return []
    pop = (info.genres.astype(np.float64) * data.counts_per_item()[:, None]).sum(0)
    top = [info.genre_names[j] for j in np.lexsort((np.arange(len(pop)), -pop))]
    pairs = []
    for a in range(min(len(top), n)):
        b = len(top) - 1 - a if len(top) > 2 * a + 1 else (a + 1) % len(top)
        if top[a] != top[b]:
            pairs.append(((top[a],), (top[b],)))
    return pairs[:n]
