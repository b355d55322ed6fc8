"""The cold-start playground's session: one brand-new user, rated one item at a time.

Everything the playground page shows is computed here as numbers and records (no UI code, no
display text): item search, the model's adaptation after every rating, the learning curve on a
persona's hidden ratings for the model beside baselines, and the top-N list with each item's
movement since the previous rating. Personas are in `personas`, the taste map in `projection`.

>>> import numpy as np
>>> rank_movement(np.array([3, 1, 2]), np.array([1, 4, 3]))
[1, None, -2]
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
from metarec_core.evaluation import intervals as iv
from metarec_core.interactive import explain as ex
from metarec_core.interactive.personas import Persona
from metarec_core.interactive.projection import Projection
from metarec_core.methods.base import AdaptationTrace, AdaptedUser, Recommender
from metarec_core.methods.registry import make_method

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
    return {name: make_method(name, seed=0).fit(data, train_users, val) for name in names}


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
# items and rankings


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


def rank_movement(previous: np.ndarray | None, current: np.ndarray) -> list[int | None]:
    """For each item of `current` (best first): the places it moved up since `previous` (> 0
    up, < 0 down, 0 same), None when it was not in `previous` (every item without a previous
    list)."""
    prev_rank = {} if previous is None else {int(x): r for r, x in enumerate(previous)}
    out: list[int | None] = []
    for r, x in enumerate(current):
        p = prev_rank.get(int(x))
        out.append(None if p is None else p - r)
    return out


def list_overlap(previous: np.ndarray | None, current: np.ndarray) -> float | None:
    """Share of `current`'s items that were also in `previous` (None without a previous list)."""
    if previous is None or len(current) == 0:
        return None
    return len(set(map(int, previous)) & set(map(int, current))) / len(current)


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
        flags = {name: m.capabilities.predicts_ratings for name, m in methods.items()}
        out.append(curve_point(n, adapted, flags, hidden_items, hidden_ratings, k, low))
    return out


# ---------------------------------------------------------------------------------------------
# the session


@dataclass(frozen=True)
class Reason:
    """A support rating that moved a recommendation (`explain.Influence` with the rated
    item's title): `delta` = predicted rating with it - without it."""

    item: int
    title: str
    rating: float
    delta: float


@dataclass(frozen=True)
class Recommendation:
    """One item of the top-N: its rank (1 = best), inner index, raw id, title and genres (the
    raw id and no genres without an items file), the predicted rating (the method's score for
    ranking-only methods) and `movement`: places up since the previous list (< 0 down, None
    new); `because`: the ratings that moved it most, strongest first (`explain`); `low`,
    `high`: its prediction interval (None: the method has none)."""

    rank: int
    item: int
    item_id: str
    title: str
    genres: tuple[str, ...]
    predicted: float
    movement: int | None
    because: tuple[Reason, ...] = ()
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, eq=False)
class PlaygroundView:
    """What the page shows after the latest change."""

    n_ratings: int
    adapted: AdaptedUser
    top_items: np.ndarray  # (N,) best first
    top_scores: np.ndarray  # (N,)
    movement: list[int | None]  # per top item: places up since the previous list (`rank_movement`)
    overlap: float | None  # with the previous top-N
    point: np.ndarray | None  # (2,) the new user in the projection
    # per top item: what moved it (empty beyond `explain.MAX_SUPPORT` ratings)
    explanations: tuple[ex.Explanation, ...] = ()
    # the top items' prediction intervals (`intervals`), None when the method has none
    band: iv.Intervals | None = None

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
    # the model's validation users: the intervals are calibrated on them (None: a model with a
    # predictive distribution shows its raw central intervals, one without shows none)
    val_users: np.ndarray | None = None
    coverage: float = iv.DEFAULT_COVERAGE
    _calibration: iv.Calibration | None = field(default=None, init=False, repr=False)
    _calibrated: bool = field(default=False, init=False, repr=False)

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

    def recommendations(self) -> list[Recommendation]:
        """The current top-N, best first, as records."""
        v = self.view
        assert v is not None
        info = self.data.items
        shown = v.adapted.display_ratings(v.top_items)
        because = {e.item: e.influences for e in v.explanations}
        return [
            Recommendation(
                rank=r + 1,
                item=int(i),
                item_id=str(self.data.item_ids[i]),
                title=self.title(int(i)),
                genres=tuple(info.genre_list(int(i))) if info is not None else (),
                predicted=float(shown[r]),
                movement=mv,
                because=tuple(
                    Reason(f.item, self.title(f.item), f.rating, f.delta)
                    for f in because.get(int(i), ())
                ),
                low=None if v.band is None else float(v.band.low[0, i]),
                high=None if v.band is None else float(v.band.high[0, i]),
            )
            for r, (i, mv) in enumerate(zip(v.top_items, v.movement, strict=True))
        ]

    def title(self, item: int) -> str:
        """An item's title (its raw id without an items file)."""
        info = self.data.items
        return str(info.titles[item]) if info is not None else str(self.data.item_ids[item])

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
            raise ValueError("the persona has no more ratings to reveal")
        p = self.persona
        # skip items the person already rated by hand
        while (
            self.revealed < len(p.reveal_items) and int(p.reveal_items[self.revealed]) in self.items
        ):
            self.revealed += 1
        if self.revealed >= len(p.reveal_items):
            raise ValueError("the persona has no more ratings to reveal")
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
        explanations: tuple[ex.Explanation, ...] = ()
        if 0 < len(items) <= ex.MAX_SUPPORT:  # one batched call: k + 1 adaptations
            explanations = tuple(ex.explain(self.model, items, ratings, top_items))
        self.view = PlaygroundView(
            n_ratings=len(items),
            adapted=adapted,
            top_items=top_items,
            top_scores=top_scores,
            movement=rank_movement(prev_top, top_items),
            overlap=list_overlap(prev_top, top_items),
            point=point,
            explanations=explanations,
            band=self._band(items, ratings),
        )
        if p is not None:
            self._extend_curve(adapted)
        return self.view

    def _band(self, items: np.ndarray, ratings: np.ndarray) -> iv.Intervals | None:
        """The catalogue's intervals for this support, calibrated on the validation users
        (once, at the first need) when the session has them."""
        if self.val_users is not None and not self._calibrated:
            self._calibration = iv.calibrate(self.model, self.data, self.val_users)
            self._calibrated = True
        return iv.intervals_many(
            self.model, [(items, ratings)], self.coverage, self._calibration, scale=self.data.scale
        )

    def _extend_curve(self, latest: AdaptedUser) -> None:
        """Fill the curve up to the current number of ratings (only missing points are computed)."""
        p = self.persona
        assert p is not None
        items, ratings = self.support()
        flags = {name: m.capabilities.predicts_ratings for name, m in self.methods().items()}
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
