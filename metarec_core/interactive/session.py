"""The cold-start playground's computations: one brand-new user, rated one item at a time.

Everything the playground page shows is computed here (no UI code): personas (a held-out real
user whose hidden ratings are ground truth, or a taste persona whose ratings are generated from
genres), item search, the model's adaptation after every rating, the learning curve on the
persona's hidden ratings for the model beside baselines, the top-N list with its movement since
the previous rating, and a 2-D projection (PCA) of user states.

>>> import numpy as np
>>> rank_movement(np.array([3, 1, 2]), np.array([1, 4, 3]))
[('up', 1), ('new', None), ('down', 2)]
>>> list_overlap(np.array([3, 1, 2]), np.array([1, 4, 3]))
0.6666666666666666
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from metarec_core.data.dataset import RatingsDataset
from metarec_core.methods.base import AdaptationTrace, AdaptedUser, Recommender
from metarec_core.methods.baselines import BASELINE_CLASSES
from metarec_core.protocol.tasks import make_tasks

PERSONA_HIDDEN = 10  # hidden ratings of a held-out user (as the query set of the protocol)
CURVE_NDCG_K = 5
# Shown beside the model. The rating predictors use the level decision (see `baselines`): the
# model's scored point is the median of its ordinal output, so a learning curve of MAE against
# mean-predicting baselines would mostly show the decision rule, not the adaptation.
PLAYGROUND_BASELINES = ("mf_foldin_levels", "user_bias_levels", "popularity")


def fit_baselines(
    data: RatingsDataset,
    train_users: np.ndarray,
    val_users: np.ndarray,
    names: Sequence[str] = PLAYGROUND_BASELINES,
) -> dict[str, Recommender]:
    """The baselines `names` (default `PLAYGROUND_BASELINES`) fitted on the model's training
    users, `val_users` tuning their settings."""
    val = val_users if len(val_users) else None
    return {name: BASELINE_CLASSES[name](seed=0).fit(data, train_users, val) for name in names}


# Fitted baselines are read-only and derived from one dataset's content and user split, so one
# process-wide cache serves every session: a session only ever gets an entry whose key is the
# fingerprint of data it holds itself. Bounded (least recently used entries go first).
BASELINE_CACHE_SIZE = 12
_cache: OrderedDict[tuple[str, str, str], Recommender] = OrderedDict()
_cache_lock = threading.Lock()
_fit_locks: dict[tuple[str, str, str], threading.Lock] = {}


def _baseline_key(
    data: RatingsDataset, train_users: np.ndarray, val_users: np.ndarray
) -> tuple[str, str]:
    split = hashlib.sha256()
    for a in (train_users, val_users):
        split.update(np.ascontiguousarray(np.asarray(a, dtype=np.int64)).tobytes() + b"|")
    return data.fingerprint(), split.hexdigest()


def missing_baselines(
    data: RatingsDataset,
    train_users: np.ndarray,
    val_users: np.ndarray,
    names: Sequence[str] = PLAYGROUND_BASELINES,
) -> list[str]:
    """Those of `names` that `cached_baselines` would have to fit (not cached yet)."""
    fp, split = _baseline_key(data, train_users, val_users)
    with _cache_lock:
        return [n for n in names if (fp, split, n) not in _cache]


def cached_baselines(
    data: RatingsDataset,
    train_users: np.ndarray,
    val_users: np.ndarray,
    names: Sequence[str] = PLAYGROUND_BASELINES,
    *,
    on_fit: Callable[[str, int, int], None] | None = None,
) -> dict[str, Recommender]:
    """`fit_baselines`, fitted once per process for this dataset content and user split.

    `on_fit(name, i, n)` is called before the i-th (0-based) of the n baselines that must be
    fitted, for progress. Two callers asking for the same baseline at once fit it once.
    """
    fp, split = _baseline_key(data, train_users, val_users)
    todo = missing_baselines(data, train_users, val_users, names)
    out: dict[str, Recommender] = {}
    for name in names:
        key = (fp, split, name)
        with _cache_lock:
            lock = _fit_locks.setdefault(key, threading.Lock())
        with lock:
            with _cache_lock:
                model = _cache.get(key)
            if model is None:
                if on_fit is not None:
                    on_fit(name, todo.index(name) if name in todo else 0, len(todo))
                model = fit_baselines(data, train_users, val_users, [name])[name]
            with _cache_lock:
                _cache[key] = model
                _cache.move_to_end(key)
                while len(_cache) > BASELINE_CACHE_SIZE:
                    old, _ = _cache.popitem(last=False)
                    _fit_locks.pop(old, None)
        out[name] = model
    return out


def clear_baseline_cache() -> None:
    """Forget every cached baseline (tests)."""
    with _cache_lock:
        _cache.clear()
        _fit_locks.clear()


# ---------------------------------------------------------------------------------------------
# splits and personas


@dataclass(frozen=True, eq=False)
class Persona:
    """A simulated new user: ratings revealed one at a time, and hidden ratings as ground truth."""

    name: str
    kind: str  # "heldout" (a real user not trained on) or "taste" (generated from genres)
    description: str
    reveal_items: np.ndarray  # (n,) int64, in the order "Add next rating" reveals them
    reveal_ratings: np.ndarray  # (n,) float
    hidden_items: np.ndarray  # (m,) int64, never revealed
    hidden_ratings: np.ndarray  # (m,) float
    user: int | None = None  # inner user index of a held-out real user


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
    fav = favourite_genres(data, t.items, t.ratings)
    desc = f"Real user {data.user_ids[user]} (not trained on): {len(t.items)} ratings"
    desc += f"; likes {', '.join(fav)}" if fav else ""
    return Persona(
        name=f"Held-out user {data.user_ids[user]}",
        kind="heldout",
        description=desc,
        reveal_items=items.astype(np.int64),
        reveal_ratings=ratings.astype(np.float64),
        hidden_items=q_items.astype(np.int64),
        hidden_ratings=q_ratings.astype(np.float64),
        user=int(user),
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
    n_total = n_reveal + n_hidden
    if n_total > data.n_items:
        raise ValueError(f"the catalogue has {data.n_items} items; the persona needs {n_total}")
    users = np.arange(data.n_users) if train_users is None else train_users
    means = damped_item_means(data, users)
    span = data.scale.high - data.scale.low
    strength = 0.3 * span if strength is None else strength
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
    raw = means[chosen] + strength * (liked[chosen].astype(float) - disliked[chosen].astype(float))
    raw = raw + rng.normal(0.0, noise * span / 4, len(chosen))
    ratings = snap_to_scale(data, raw)
    name = "Loves " + (", ".join(likes) if likes else "nothing in particular")
    if dislikes:
        name += ", dislikes " + ", ".join(dislikes)
    return Persona(
        name=name,
        kind="taste",
        description=f"{name}: generated ratings ({n_reveal} to reveal, {n_hidden} hidden)",
        reveal_items=chosen[:n_reveal].astype(np.int64),
        reveal_ratings=ratings[:n_reveal],
        hidden_items=chosen[n_reveal:].astype(np.int64),
        hidden_ratings=ratings[n_reveal:],
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


# ---------------------------------------------------------------------------------------------
# items, rankings, projection


def search_items(
    data: RatingsDataset,
    query: str = "",
    genre: str | None = None,
    *,
    exclude: Sequence[int] | np.ndarray = (),
    limit: int = 30,
) -> np.ndarray:
    """Items whose title or raw id contains `query` (case-insensitive), optionally of `genre`,
    most rated first (ties by index), without `exclude`."""
    n = data.n_items
    keep = np.ones(n, dtype=bool)
    q = query.strip().lower()
    titles = data.items.titles if data.items is not None else data.item_ids
    if q:
        keep &= np.char.find(np.char.lower(titles.astype(str)), q) >= 0
        keep |= np.char.lower(data.item_ids.astype(str)) == q
    if genre:
        if data.items is None or genre not in data.items.genre_names:
            return np.zeros(0, dtype=np.int64)
        keep &= data.items.genres[:, data.items.genre_names.index(genre)]
    ex = np.asarray(exclude, dtype=np.int64)
    if len(ex):
        keep[ex] = False
    cand = np.flatnonzero(keep)
    counts = data.counts_per_item()[cand]
    return cand[np.lexsort((cand, -counts))][:limit].astype(np.int64)


def item_label(data: RatingsDataset, item: int) -> str:
    """Title (or raw id) and genres of one item, as plain text."""
    title = str(data.items.titles[item]) if data.items is not None else str(data.item_ids[item])
    genres = data.items.genre_list(item) if data.items is not None else []
    return f"{title} ({', '.join(genres)})" if genres else title


def rank_movement(previous: np.ndarray | None, current: np.ndarray) -> list[tuple[str, int | None]]:
    """For each item of `current` (best first): ("new", None), ("up", places), ("down", places)
    or ("same", 0) relative to its rank in `previous`. Everything is "new" without a previous list."""
    prev_rank = {} if previous is None else {int(x): r for r, x in enumerate(previous)}
    out: list[tuple[str, int | None]] = []
    for r, x in enumerate(current):
        p = prev_rank.get(int(x))
        if p is None:
            out.append(("new", None))
        elif p > r:
            out.append(("up", p - r))
        elif p < r:
            out.append(("down", r - p))
        else:
            out.append(("same", 0))
    return out


def movement_label(move: tuple[str, int | None]) -> str:
    """ "new", "↑ 2", "↓ 1" or "=" for display."""
    kind, n = move
    return {"new": "new", "up": f"↑ {n}", "down": f"↓ {n}", "same": "="}[kind]


def list_overlap(previous: np.ndarray | None, current: np.ndarray) -> float | None:
    """Share of `current`'s items that were also in `previous` (None without a previous list)."""
    if previous is None or len(current) == 0:
        return None
    return len(set(map(int, previous)) & set(map(int, current))) / len(current)


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
    model has no user states (baselines)."""
    if not model.capabilities.user_state:
        return None
    users = np.asarray(users, dtype=np.int64)
    if len(users) > max_users:
        users = np.sort(np.random.default_rng([seed, 9]).choice(users, max_users, replace=False))
    states = np.asarray(model.user_states(data, users, k=k), dtype=np.float64)
    if states.ndim != 2 or states.shape[1] == 0 or len(states) < 2:
        return None
    return project_users(states, users)


# ---------------------------------------------------------------------------------------------
# metrics on the hidden ratings


def _mae(pred: np.ndarray, true: np.ndarray) -> float:
    from metarec_core.evaluation import metrics

    return float(metrics.mae(np.asarray(pred, np.float64), np.asarray(true, np.float64)))


def _ndcg(scores: np.ndarray, true: np.ndarray, k: int, low: float) -> float:
    """nDCG@k of the hidden items ranked by `scores` (see `metrics.ndcg_at_k`)."""
    from metarec_core.evaluation import metrics

    s, t = np.asarray(scores, np.float64), np.asarray(true, np.float64)
    return float(metrics.ndcg_at_k(s, t, k, low=low))


@dataclass(frozen=True)
class CurvePoint:
    """Errors on the hidden ratings after `n` ratings, per method (MAE only for rating predictors)."""

    n: int
    mae: dict[str, float]
    ndcg: dict[str, float]


def curve_point(
    n: int,
    adapted: Mapping[str, AdaptedUser],
    predicts_ratings: Mapping[str, bool],
    hidden_items: np.ndarray,
    hidden_ratings: np.ndarray,
    k: int = CURVE_NDCG_K,
    low: float = 0.0,
) -> CurvePoint:
    """One learning-curve point from each method's adapted user (`low`: the scale's lowest
    rating, for the nDCG gains)."""
    mae, ndcg = {}, {}
    for name, a in adapted.items():
        s = a.predict(hidden_items)
        if predicts_ratings.get(name, True):
            mae[name] = _mae(s, hidden_ratings)
        ndcg[name] = _ndcg(s, hidden_ratings, k, low)
    return CurvePoint(n, mae, ndcg)


def learning_curve(
    methods: Mapping[str, Recommender],
    items: np.ndarray,
    ratings: np.ndarray,
    hidden_items: np.ndarray,
    hidden_ratings: np.ndarray,
    k: int = CURVE_NDCG_K,
    low: float = 0.0,
) -> list[CurvePoint]:
    """Errors on the hidden ratings after 0, 1, ..., len(items) ratings (prefixes, in order)."""
    out = []
    for n in range(len(items) + 1):
        adapted = {name: m.adapt(items[:n], ratings[:n]) for name, m in methods.items()}
        flags = {name: m.predicts_ratings for name, m in methods.items()}
        out.append(curve_point(n, adapted, flags, hidden_items, hidden_ratings, k, low))
    return out


# ---------------------------------------------------------------------------------------------
# the session


@dataclass(frozen=True, eq=False)
class PlaygroundView:
    """What the page shows after the latest change."""

    n_ratings: int
    adapted: AdaptedUser
    top_items: np.ndarray  # (N,) best first
    top_scores: np.ndarray  # (N,)
    movement: list[tuple[str, int | None]]
    overlap: float | None  # with the previous top-N
    point: np.ndarray | None  # (2,) the new user in the projection

    @property
    def trace(self) -> AdaptationTrace | None:
        return self.adapted.trace


@dataclass(eq=False)
class PlaygroundSession:
    """One new user: ratings so far, the model's view after each change, and the learning curve.

    `baselines` are fitted on the same training users as `model` and only feed the learning
    curve (which needs a persona's hidden ratings), so they may be given later (`set_baselines`).
    Changes recompute only what they must: adding a rating costs one adaptation per method.
    """

    data: RatingsDataset
    model: Recommender
    model_name: str = "model"
    baselines: dict[str, Recommender] = field(default_factory=dict)
    projection: Projection | None = None
    top_n: int = 10
    persona: Persona | None = None
    items: list[int] = field(default_factory=list)
    ratings: list[float] = field(default_factory=list)
    # per rating: True when the persona gave it ("Add next rating", Play), False when by hand
    from_persona: list[bool] = field(default_factory=list)
    view: PlaygroundView | None = None
    curve: list[CurvePoint] = field(default_factory=list)
    revealed: int = 0  # how many of the persona's reveal sequence have been added

    def __post_init__(self) -> None:
        self._check_names(self.baselines)
        if len(self.from_persona) != len(self.items):
            self.from_persona = [False] * len(self.items)
        if self.view is None:
            self._refresh(previous=None)

    def _check_names(self, baselines: Mapping[str, Recommender]) -> None:
        if self.model_name in baselines:
            raise ValueError(f"the model's name {self.model_name!r} is also a baseline's name")

    # -- queries -----------------------------------------------------------------------------
    def support(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.items, dtype=np.int64), np.asarray(self.ratings, dtype=np.float64)

    def methods(self) -> dict[str, Recommender]:
        return {self.model_name: self.model, **self.baselines}

    def has_next(self) -> bool:
        return self.persona is not None and self.revealed < len(self.persona.reveal_items)

    def recommendation_rows(self) -> list[dict]:
        """Top-N as rows: rank, item id, title, genres, predicted score, movement."""
        v = self.view
        assert v is not None
        info = self.data.items
        rows = []
        for r, (i, mv) in enumerate(zip(v.top_items, v.movement, strict=True)):
            i = int(i)
            rows.append(
                {
                    "rank": r + 1,
                    "item": str(self.data.item_ids[i]),
                    "title": str(info.titles[i])
                    if info is not None
                    else str(self.data.item_ids[i]),
                    "genres": ", ".join(info.genre_list(i)) if info is not None else "",
                    "predicted": float(v.adapted.display_ratings([i])[0]),
                    "movement": movement_label(mv),
                }
            )
        return rows

    # -- changes -----------------------------------------------------------------------------
    def set_baselines(self, baselines: Mapping[str, Recommender]) -> None:
        """Use `baselines` beside the model in the learning curve (recomputed for them)."""
        self._check_names(baselines)
        self.baselines = dict(baselines)
        self.curve = []
        if self.persona is not None and self.view is not None:
            self._extend_curve(self.view.adapted)

    def set_persona(self, persona: Persona | None) -> PlaygroundView:
        """Start over as `persona` (None: a manual user with no ground truth)."""
        self.persona = persona
        return self.reset()

    def reset(self) -> PlaygroundView:
        """Remove every rating (the persona stays)."""
        self.items, self.ratings, self.revealed, self.curve = [], [], 0, []
        self.from_persona = []
        return self._refresh(previous=None)

    def add_rating(self, item: int, rating: float, *, by_persona: bool = False) -> PlaygroundView:
        """Rate `item` (re-rating replaces the earlier rating in place); `by_persona`: the
        persona gave it, not the person at the screen."""
        item = int(item)
        if not 0 <= item < self.data.n_items:
            raise ValueError(f"item index {item} is outside the catalogue [0, {self.data.n_items})")
        s = self.data.scale
        if not (np.isfinite(rating) and s.low <= rating <= s.high):
            raise ValueError(f"rating {rating} is outside the scale {s.low:g}-{s.high:g}")
        if item in self.items:
            pos = self.items.index(item)
            self.ratings[pos] = float(rating)
            self.from_persona[pos] = by_persona
            del self.curve[pos + 1 :]
        else:
            self.items.append(item)
            self.ratings.append(float(rating))
            self.from_persona.append(by_persona)
        return self._refresh(previous=self.view)

    def add_next(self) -> PlaygroundView:
        """Reveal the persona's next rating."""
        if self.persona is None:
            raise ValueError("pick a persona first: only a persona has a next rating")
        if not self.has_next():
            raise ValueError(f"{self.persona.name} has no more ratings to reveal")
        p = self.persona
        # skip items the person already rated by hand
        while (
            self.revealed < len(p.reveal_items) and int(p.reveal_items[self.revealed]) in self.items
        ):
            self.revealed += 1
        if self.revealed >= len(p.reveal_items):
            raise ValueError(f"{p.name} has no more ratings to reveal")
        i, r = int(p.reveal_items[self.revealed]), float(p.reveal_ratings[self.revealed])
        self.revealed += 1
        return self.add_rating(i, r, by_persona=True)

    def remove_rating(self, item: int) -> PlaygroundView:
        """Remove the rating of `item` (the learning curve from that position is recomputed)."""
        item = int(item)
        if item not in self.items:
            raise ValueError(f"item {self.data.item_ids[item]} has not been rated")
        pos = self.items.index(item)
        del self.items[pos], self.ratings[pos], self.from_persona[pos]
        del self.curve[pos + 1 :]
        return self._refresh(previous=self.view)

    # -- internals ---------------------------------------------------------------------------
    def _refresh(self, previous: PlaygroundView | None) -> PlaygroundView:
        items, ratings = self.support()
        p = self.persona
        if p is not None:
            adapted = self.model.adapt(
                items, ratings, query_items=p.hidden_items, query_ratings=p.hidden_ratings
            )
        else:
            adapted = self.model.adapt(items, ratings)
        top_items, top_scores = adapted.recommend(self.top_n)
        prev_top = None if previous is None else previous.top_items
        point = None
        if self.projection is not None and adapted.state is not None:
            point = self.projection.transform(np.ravel(adapted.state)[None])[0]
        self.view = PlaygroundView(
            n_ratings=len(items),
            adapted=adapted,
            top_items=top_items,
            top_scores=top_scores,
            movement=rank_movement(prev_top, top_items),
            overlap=list_overlap(prev_top, top_items),
            point=point,
        )
        if p is not None:
            self._extend_curve(adapted)
        return self.view

    def _extend_curve(self, latest: AdaptedUser) -> None:
        """Fill the curve up to the current number of ratings (only missing points are computed)."""
        p = self.persona
        assert p is not None
        items, ratings = self.support()
        flags = {name: m.predicts_ratings for name, m in self.methods().items()}
        for n in range(len(self.curve), len(items) + 1):
            adapted = {
                name: (
                    latest
                    if name == self.model_name and n == len(items)
                    else m.adapt(items[:n], ratings[:n])
                )
                for name, m in self.methods().items()
            }
            self.curve.append(
                curve_point(
                    n, adapted, flags, p.hidden_items, p.hidden_ratings, low=self.data.scale.low
                )
            )
