"""The new-item playground's session: one new item, its first ratings arriving one at a time.

The page "A new item arrives" shows what is computed here as numbers and records (no UI code,
no display text):

- the held-out item fold: fold `HELDOUT_FOLD` of the protocol's seeded item folds
  (`protocol.item_splits.item_folds`); its items are the ones a person can pick, and no rating of
  them reaches any fit, tuning or early stopping (`fit_item_models` fits on
  `without_items(data, fold.test_items)`);
- the item models: the item baselines and an item learner, fitted in a background job
  (`ItemFitJob`) and shared read-only (`ItemModels`, predictions under one lock);
- the replay order of a held-out item's real ratings: the protocol's seeded permutation
  (`make_item_tasks`): the last `ITEM_QUERY` ratings are hidden (the query users, on which
  each model's error is measured) and the others arrive one by one in that order;
- the ratings that arrive: the held-out item's own (replayed), a user's picked by hand, or a
  taste persona's (`RatingSource`): the real user who best matches a persona ("loves Sci-Fi",
  `personas.taste_order`) rates it as that persona would (`personas.taste_ratings`);
- after every rating, each model's predicted rating for every user and their distribution
  (`rating_distribution`), its audience (the top users by predicted rating, raters excluded)
  with each user's movement since the previous rating, the errors on the hidden raters, and,
  for a model with item states, where the item lands on the map of the training items
  (`projection.fit_item_map`, computed once per fitted model);
- the shipped sample's models, fitted once and saved (`save_models`, `load_models`), so that a
  newcomer's first visit does not wait minutes for the learner's fit.

>>> sorted(ITEM_PLAYGROUND_METHODS)
['content', 'item_bias_levels', 'item_metasgd', 'mf_foldin_levels']
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.interactive import personas
from metarec_core.interactive.personas import favourite_genres
from metarec_core.interactive.projection import ItemMap, fit_item_map
from metarec_core.interactive.session import list_overlap, rank_movement
from metarec_core.interactive.whatif import ModelComparison, compare_lists
from metarec_core.jobs import BackgroundJob, JobContext
from metarec_core.methods.base import FitProgress, ItemRecommender, NewItem, StopFlag, top_items
from metarec_core.methods.registry import make_method, method_class, spec
from metarec_core.protocol.item_splits import (
    ItemFold,
    ItemTask,
    item_folds,
    make_item_tasks,
    without_items,
)
from metarec_core.protocol.splits import seeded_rng

ITEM_FOLDS = 5  # the protocol's folds over items (`evaluate --cold items` default)
HELDOUT_FOLD = 0  # the fold whose test items the playground holds out
ITEM_QUERY = 10  # a held-out item's hidden raters (the protocol's query size)
MIN_REVEAL = 5  # a held-out item is offered when it has this many ratings to replay
AUDIENCE_N = 20  # users in an audience
CURVE_NDCG_K = 5
# Beside the learner: the rating predictors with the level decision (as the user playground):
# the learner's point prediction is the median of its ordinal output, on the scale's levels.
ITEM_PLAYGROUND_BASELINES = ("content", "item_bias_levels", "mf_foldin_levels")
ITEM_PLAYGROUND_LEARNER = "item_metasgd"
ITEM_PLAYGROUND_METHODS = (*ITEM_PLAYGROUND_BASELINES, ITEM_PLAYGROUND_LEARNER)
# `LearnerConfig` fields of the item learner (empty: its preset). Tests make it tiny.
LEARNER_SETTINGS: dict[str, Any] = {}
# A learner's share of the fit's progress bar against a baseline's (it takes far longer).
LEARNER_WEIGHT = 20.0
SALT_PERSONA_RATING = 32  # seeded_rng salt of a persona's rating noise (protocol salts < 30)


def item_display_name(name: str) -> str:
    """The plain name of a registered item method (the registry's `display_name` is the users'
    table); any other name unchanged."""
    try:
        return spec(name, cold="items").display
    except ValueError:
        return name


def is_learner(name: str) -> bool:
    """Whether the item method `name` is meta-learned (declared by its class)."""
    return bool(method_class(name, cold="items").capabilities.meta_learned)


# ---------------------------------------------------------------------------------------------
# the held-out items


def heldout_item_fold(data: RatingsDataset, seed: int = 0) -> ItemFold:
    """The item fold whose test items are the playground's held-out items (fold `HELDOUT_FOLD`
    of `item_folds(data, ITEM_FOLDS, seed)`); the models fit on its training items and tune on
    its validation items."""
    return item_folds(data, ITEM_FOLDS, seed)[HELDOUT_FOLD]


def heldout_items(
    data: RatingsDataset,
    fold: ItemFold,
    *,
    query: int = ITEM_QUERY,
    min_reveal: int = MIN_REVEAL,
) -> np.ndarray:
    """The fold's test items with at least `min_reveal` + `query` ratings, most rated first
    (ties by index)."""
    items = np.asarray(fold.test_items, dtype=np.int64)
    counts = data.counts_per_item()[items]
    ok = counts >= min_reveal + query
    items, counts = items[ok], counts[ok]
    return items[np.lexsort((items, -counts))]


def replay_task(
    data: RatingsDataset, item: int, *, query: int = ITEM_QUERY, seed: int = 0
) -> ItemTask:
    """A held-out item's real ratings in the protocol's seeded order: the first ones arrive one
    by one (`ItemTask.support`), the last `query` stay hidden (`ItemTask.query`)."""
    tasks, _ = make_item_tasks(data, np.array([int(item)]), query=query, min_support=1, seed=seed)
    if not tasks:
        n = int(data.counts_per_item()[int(item)])
        raise ValueError(
            f"item {data.item_ids[int(item)]} has {n} ratings; a held-out item needs at least "
            f"{query + 1} ({query} stay hidden to measure the error)"
        )
    return tasks[0]


# ---------------------------------------------------------------------------------------------
# the fitted models


@dataclass(eq=False)
class ItemModels:
    """Item methods fitted on one dataset's training items, the held-out fold's test items'
    ratings removed. Read-only once made; one lock serialises their predictions (a learner's
    adaptation swaps its network's weights while it runs, so two sessions must not predict
    with it at once)."""

    fingerprint: str
    seed: int
    fold: ItemFold
    models: dict[str, ItemRecommender]
    fit_seconds: dict[str, float]

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        # each model's map of the training items (None: no item state), made on first use
        self._maps: dict[str, ItemMap | None] = {}

    def __getstate__(self) -> dict[str, Any]:  # a lock does not pickle (worker -> server)
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.models)

    @property
    def mapped(self) -> tuple[str, ...]:
        """The models with item states (a map of items), as declared by their classes."""
        return tuple(n for n, m in self.models.items() if m.capabilities.item_state)

    def scores(self, new_item: NewItem) -> dict[str, np.ndarray]:
        """Each model's predicted rating of every user for `new_item`: name -> (n_users,)."""
        with self._lock:
            return {
                name: np.asarray(m.score_items([new_item])[0], dtype=np.float64)
                for name, m in self.models.items()
            }

    def states(self, new_item: NewItem) -> dict[str, np.ndarray]:
        """The state of `new_item` under each model with item states: name -> (d,)."""
        with self._lock:
            return {
                n: np.asarray(self.models[n].item_states([new_item])[0], dtype=np.float64)
                for n in self.mapped
            }

    def item_map(self, name: str, data: RatingsDataset) -> ItemMap | None:
        """Model `name`'s map of its training items (`fit_item_map` on `data` without the
        held-out items' ratings), made once; None for a model without item states."""
        if data.fingerprint() != self.fingerprint:
            raise ValueError("the item models were fitted on other data than this dataset")
        with self._lock:
            if name not in self._maps:
                seen = without_items(data, self.fold.test_items)
                self._maps[name] = fit_item_map(
                    self.models[name], seen, self.fold.train_items, seed=self.seed
                )
            return self._maps[name]


def playground_parts() -> tuple[tuple[str, ...], ...]:
    """`ITEM_PLAYGROUND_METHODS` in the parts fitted by separate jobs, quick ones first: the
    baselines (seconds to a minute), then the learners (minutes), so that the page can be used
    with the baselines while the learner fits. Empty parts are left out."""
    names = ITEM_PLAYGROUND_METHODS
    parts = (
        tuple(n for n in names if not is_learner(n)),
        tuple(n for n in names if is_learner(n)),
    )
    return tuple(p for p in parts if p)


def merge_models(parts: Sequence[ItemModels]) -> ItemModels:
    """One `ItemModels` of several parts fitted on the same data, split and held-out fold."""
    if not parts:
        raise ValueError("no item models to merge")
    first = parts[0]
    for p in parts[1:]:
        same = p.fingerprint == first.fingerprint and p.seed == first.seed
        if not same or not np.array_equal(p.fold.test_items, first.fold.test_items):
            raise ValueError("item models of different data or held-out items cannot be merged")
    models = {n: m for p in parts for n, m in p.models.items()}
    seconds = {n: t for p in parts for n, t in p.fit_seconds.items()}
    merged = ItemModels(first.fingerprint, first.seed, first.fold, models, seconds)
    for p in parts:
        merged._maps.update(p._maps)  # maps made already need not be made again
    return merged


def default_factory(name: str, seed: int, settings: Mapping[str, Any]) -> ItemRecommender:
    """A fresh item method by registry name; a meta-learner gets `settings` (LearnerConfig
    fields) over its preset."""
    if settings and is_learner(name):
        cls = method_class(name, cold="items")
        return cls(seed=seed, **dict(settings))  # type: ignore[call-arg]
    return make_method(name, seed=seed, cold="items")  # type: ignore[return-value]


Factory = Callable[[str, int, Mapping[str, Any]], ItemRecommender]


def fit_item_models(
    data: RatingsDataset,
    *,
    seed: int = 0,
    names: Sequence[str] | None = None,
    settings: Mapping[str, Any] | None = None,
    factory: Factory | None = None,
    should_stop: StopFlag | None = None,
    progress: FitProgress | None = None,
) -> ItemModels | None:
    """Fit the item methods `names` (default `ITEM_PLAYGROUND_METHODS`) on `data` without the
    held-out fold's test items' ratings, tuned on the fold's validation items; a learner gets
    `settings` (default `LEARNER_SETTINGS`). None when `should_stop()` stopped it."""
    names = ITEM_PLAYGROUND_METHODS if names is None else tuple(names)
    fold = heldout_item_fold(data, seed)
    seen = without_items(data, fold.test_items)
    build = factory or default_factory
    settings = dict(LEARNER_SETTINGS if settings is None else settings)
    weights = [LEARNER_WEIGHT if is_learner(n) else 1.0 for n in names]
    total, done = float(sum(weights)) + 1.0, 0.0  # + 1: the maps of the training items
    models: dict[str, ItemRecommender] = {}
    seconds: dict[str, float] = {}
    for name, w in zip(names, weights, strict=True):
        if should_stop is not None and should_stop():
            return None
        label = item_display_name(name)

        def inside(fraction: float, message: str, w=w, start=done, label=label) -> None:
            if progress is not None:
                progress((start + w * fraction) / total, f"fitting {label}: {message}")

        inside(0.0, "started")
        t0 = time.perf_counter()
        model = build(name, seed, settings)
        model.fit(seen, fold.train_items, fold.val_items, should_stop=should_stop, progress=inside)
        if should_stop is not None and should_stop():
            return None
        if not getattr(model, "fitted_", False):
            raise ValueError(f"the item method {name!r} did not finish fitting")
        seconds[name] = time.perf_counter() - t0
        models[name] = model
        done += w
    out = ItemModels(data.fingerprint(), int(seed), fold, models, seconds)
    if progress is not None:
        progress(done / total, "mapping the training items")
    for name in out.mapped:  # here, in the background, rather than on the page's first run
        out.item_map(name, data)
    if progress is not None:
        progress(1.0, "done")
    return out


class ItemFitJob(BackgroundJob):
    """Fit the playground's item models for `data` in the background (`fit_item_models`; the
    defaults are read when the job is made); `result` is the `ItemModels` once ``done``. A
    custom `factory` (tests) keeps the job in its thread."""

    kind = "item models"

    def __init__(
        self,
        data: RatingsDataset,
        *,
        seed: int = 0,
        names: Sequence[str] | None = None,
        settings: Mapping[str, Any] | None = None,
        factory: Factory | None = None,
    ) -> None:
        super().__init__()
        self.data = data
        self.seed = int(seed)
        self.names = ITEM_PLAYGROUND_METHODS if names is None else tuple(names)
        self.settings = dict(LEARNER_SETTINGS if settings is None else settings)
        self._factory = factory
        with self._lock:
            self._message = "waiting to start"

    def matches(
        self, data: RatingsDataset, seed: int = 0, names: Sequence[str] | None = None
    ) -> bool:
        """Whether this job fits the models `names` (any, if None) of `data`'s content with
        this split seed."""
        same = self.seed == int(seed) and self.data.fingerprint() == data.fingerprint()
        return same and (names is None or tuple(names) == self.names)

    def _portable(self) -> dict[str, Any] | None:
        if self._factory is not None:
            return None
        return {
            "data": self.data,
            "seed": self.seed,
            "names": self.names,
            "settings": self.settings,
        }

    def _work(self, ctx: JobContext) -> ItemModels | None:
        def progress(fraction: float, message: str) -> None:
            ctx.progress(fraction=fraction, message=message)
            ctx.check_cancelled()

        return fit_item_models(
            self.data,
            seed=self.seed,
            names=self.names,
            settings=self.settings,
            factory=self._factory,
            should_stop=ctx.should_stop,
            progress=progress,
        )


# The sample's fitted models are the same for every session (the sample is shared read-only
# too): one process-wide entry per (fingerprint, seed, model names), a few at most. Uploaded
# data's models stay with the workspace's job that fitted them (the page), never here.
SHARED_SIZE = 4
_shared: dict[tuple[str, int, tuple[str, ...]], ItemModels] = {}
_shared_lock = threading.Lock()


def share_models(models: ItemModels) -> None:
    """Keep `models` for every session (only for the shipped sample's data)."""
    key = (models.fingerprint, models.seed, models.names)
    with _shared_lock:
        _shared.pop(key, None)
        _shared[key] = models
        while len(_shared) > SHARED_SIZE:
            _shared.pop(next(iter(_shared)))


def shared_models(
    data: RatingsDataset, seed: int = 0, names: Sequence[str] | None = None
) -> ItemModels | None:
    """The shared models `names` (default `ITEM_PLAYGROUND_METHODS`) of `data` (its content's
    fingerprint) and `seed`, if any."""
    names = ITEM_PLAYGROUND_METHODS if names is None else tuple(names)
    with _shared_lock:
        return _shared.get((data.fingerprint(), int(seed), names))


def clear_shared_models() -> None:
    """Forget the shared models (tests)."""
    with _shared_lock:
        _shared.clear()


# The shipped sample's models, fitted once (`make sample-model`) and read by the page on the
# sample's first visit: the learner's fit takes minutes on a CPU, a newcomer should not wait.
SAMPLE_MODELS_DIR = "item_models"  # in the sample's folder: one NAME.pt per model


def save_models(models: ItemModels, data: RatingsDataset, folder: str | Path) -> list[Path]:
    """Write each of `models` to `folder`/NAME.pt (`checkpoint.save_checkpoint`), saved with
    the data it was fitted on: `data` without the held-out items' ratings, whose fingerprint
    `load_models` requires."""
    from metarec_core.checkpoint import save_checkpoint

    if models.fingerprint != data.fingerprint():
        raise ValueError("the item models were fitted on other data than this dataset")
    seen = without_items(data, models.fold.test_items)
    folder = Path(folder)
    return [save_checkpoint(m, seen, folder / f"{n}.pt") for n, m in models.models.items()]


def load_models(
    data: RatingsDataset,
    folder: str | Path,
    seed: int = 0,
    names: Sequence[str] | None = None,
) -> ItemModels | None:
    """The models `names` (default `ITEM_PLAYGROUND_METHODS`) that `save_models` wrote to
    `folder` for `data` and split seed `seed`; None when a file is missing. A file is refused
    (`CheckpointError`) unless it holds that method, fitted with that seed on exactly `data`
    without the held-out items' ratings (the same fingerprint): no held-out rating reached it."""
    from metarec_core.checkpoint import CheckpointError, load_checkpoint

    names = ITEM_PLAYGROUND_METHODS if names is None else tuple(names)
    paths = [Path(folder) / f"{n}.pt" for n in names]
    if not all(p.is_file() for p in paths):
        return None
    fold = heldout_item_fold(data, seed)
    seen = without_items(data, fold.test_items)
    models: dict[str, ItemRecommender] = {}
    for name, path in zip(names, paths, strict=True):
        ck = load_checkpoint(path, seen, strict=True, cold="items")
        if ck.method != name or ck.config.get("seed") != int(seed):
            raise CheckpointError(
                f"{path} holds {ck.method!r} fitted with seed {ck.config.get('seed')}, not "
                f"{name!r} with seed {seed}"
            )
        models[name] = ck.learner  # type: ignore[assignment]
    return ItemModels(data.fingerprint(), int(seed), fold, models, {})


# ---------------------------------------------------------------------------------------------
# the session


def audience(
    scores: np.ndarray, raters: np.ndarray, n: int = AUDIENCE_N
) -> tuple[np.ndarray, np.ndarray]:
    """The top-`n` (users, scores) by predicted rating, best first, without `raters` (the users
    who rated the item already); ties by user index."""
    order = top_items(scores, np.asarray(raters, dtype=np.int64), n)
    return order, np.asarray(scores, dtype=np.float64)[order]


@dataclass(frozen=True)
class ItemErrors:
    """A model's error on a held-out item's hidden raters: MAE and nDCG@`CURVE_NDCG_K` of
    those raters ranked by prediction (None for nDCG with a single hidden rater)."""

    mae: float
    ndcg: float | None


def item_errors(
    scores: np.ndarray, hidden_users: np.ndarray, hidden_ratings: np.ndarray, low: float = 0.0
) -> ItemErrors:
    """`ItemErrors` of one model's scores over all users (`low`: the scale's lowest rating)."""
    from metarec_core.evaluation import metrics

    pred = np.asarray(scores, dtype=np.float64)[np.asarray(hidden_users, dtype=np.int64)]
    true = np.asarray(hidden_ratings, dtype=np.float64)
    nd = float(metrics.ndcg_at_k(pred, true, CURVE_NDCG_K, low=low)) if len(true) > 1 else None
    return ItemErrors(float(metrics.mae(pred, true)), nd)


@dataclass(frozen=True)
class ItemCurvePoint:
    """Each model's errors on the hidden raters after `n` ratings."""

    n: int
    errors: dict[str, ItemErrors]


@dataclass(frozen=True)
class AudienceMember:
    """One user of a model's audience: rank (1 = best), inner index, raw id, predicted rating,
    `movement` (places up since the previous audience; < 0 down, None new), the user's
    favourite genres (from their training ratings) and their hidden rating of the item when
    they are one of a held-out item's hidden raters (None otherwise)."""

    rank: int
    user: int
    user_id: str
    predicted: float
    movement: int | None
    tastes: tuple[str, ...]
    hidden_rating: float | None


@dataclass(frozen=True, eq=False)
class RatingDistribution:
    """How a model's predicted ratings of every user spread over the scale: the share of users
    in each bin (centred on the scale's levels; a continuous scale: ten bins) and the mean."""

    centres: np.ndarray  # (b,) bin centres
    shares: np.ndarray  # (b,) share of users, summing to 1
    mean: float


def rating_distribution(scores: np.ndarray, scale: RatingScale) -> RatingDistribution:
    """The `RatingDistribution` of predicted ratings `scores` (clipped to `scale`)."""
    x = np.clip(np.asarray(scores, dtype=np.float64), scale.low, scale.high)
    step = scale.step if scale.step > 0 else (scale.high - scale.low) / 10
    n_bins = max(1, int(round((scale.high - scale.low) / step)) + (scale.step > 0))
    if scale.step > 0:  # one bin per level, its edges half a step either side
        centres = scale.low + step * np.arange(n_bins)
    else:
        centres = scale.low + step * (np.arange(n_bins) + 0.5)
    edges = np.r_[centres - step / 2, centres[-1] + step / 2]
    counts = np.histogram(x, bins=edges)[0].astype(np.float64)
    shares = counts / max(1.0, counts.sum())
    return RatingDistribution(centres, shares, float(x.mean()) if len(x) else float("nan"))


@dataclass(frozen=True)
class RatingSource:
    """Who gave a rating: ``"replay"`` (the held-out item's own, in the protocol's order),
    ``"hand"`` (a user picked by the person at the screen) or ``"persona"`` (the best-matching
    real user of a taste persona who `likes` and `dislikes` genres, rating as it would)."""

    kind: str
    likes: tuple[str, ...] = ()
    dislikes: tuple[str, ...] = ()


REPLAY, BY_HAND = RatingSource("replay"), RatingSource("hand")


@dataclass(frozen=True, eq=False)
class ItemView:
    """What the page shows after the latest change, per model."""

    n_ratings: int
    scores: dict[str, np.ndarray]  # every user's predicted rating
    audiences: dict[str, np.ndarray]  # top users, best first
    movement: dict[str, list[int | None]]
    overlap: dict[str, float | None]  # with the same model's previous audience
    errors: dict[str, ItemErrors] | None  # on the hidden raters (a held-out item only)
    states: dict[str, np.ndarray] = field(default_factory=dict)  # models with item states


@dataclass(eq=False)
class ItemSession:
    """One new item: its metadata, the ratings it received so far, each model's view after each
    change and, for a held-out real item, the error curve on its hidden raters.

    Build one with `held_out` (a real item of the held-out fold, its ratings replayed in the
    protocol's order) or `described` (a title and genres, no ground truth).
    """

    data: RatingsDataset
    models: ItemModels
    title: str
    genres: tuple[str, ...]
    task: ItemTask | None = None  # a held-out item's ratings (None: a described item)
    top_n: int = AUDIENCE_N
    users: list[int] = field(default_factory=list)
    ratings: list[float] = field(default_factory=list)
    sources: list[RatingSource] = field(default_factory=list)
    revealed: int = 0  # how many of the replay order have been used
    view: ItemView | None = None
    curve: list[ItemCurvePoint] = field(default_factory=list)
    # the item's state under each model with item states, after 0, 1, ... ratings
    trail: list[dict[str, np.ndarray]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.models.fingerprint != self.data.fingerprint():
            raise ValueError("the item models were fitted on other data than this dataset")
        if self.task is not None and self.task.item not in set(
            self.models.fold.test_items.tolist()
        ):
            raise ValueError(
                f"item {self.data.item_ids[self.task.item]} is not held out: the models saw "
                "its ratings"
            )
        self._tastes: dict[int, tuple[str, ...]] = {}
        self._affinity: tuple[np.ndarray, np.ndarray] | None = None  # (genre affinity, means)
        self._hidden = (
            {}
            if self.task is None
            else {int(u): float(r) for u, r in zip(*self.task.query, strict=True)}
        )
        if self.view is None:
            self.reset()

    @classmethod
    def held_out(
        cls, data: RatingsDataset, models: ItemModels, item: int, **kw: Any
    ) -> ItemSession:
        """The held-out item `item`: its ratings replay in the protocol's order (`replay_task`,
        seeded by the models' split seed), the last `ITEM_QUERY` hidden."""
        task = replay_task(data, int(item), seed=models.seed)
        return cls(data, models, task.title, task.genres, task, **kw)

    @classmethod
    def described(
        cls, data: RatingsDataset, models: ItemModels, title: str, genres: Sequence[str], **kw: Any
    ) -> ItemSession:
        """A new item described by `title` and `genres` (names from the dataset's genre list;
        others are refused)."""
        known = set(data.items.genre_names) if data.items is not None else set()
        unknown = [g for g in genres if g not in known]
        if unknown:
            raise ValueError(
                f"unknown genre {', '.join(map(repr, unknown))}; the dataset's genres are "
                f"{', '.join(sorted(known)) or 'none (no items file)'}"
            )
        return cls(data, models, str(title).strip(), tuple(genres), None, **kw)

    # -- queries -----------------------------------------------------------------------------
    @property
    def item(self) -> int | None:
        """The held-out item's inner index (None for a described item)."""
        return None if self.task is None else self.task.item

    @property
    def hidden_users(self) -> np.ndarray:
        return np.zeros(0, np.int64) if self.task is None else self.task.query[0]

    def new_item(self) -> NewItem:
        """The item as the models see it now: metadata and the ratings so far."""
        return NewItem.of(self.title, self.genres, self.users, self.ratings)

    def has_next(self) -> bool:
        """Whether a held-out item has a real rating left to replay."""
        return self._next_position() is not None

    def replay_left(self) -> int:
        """Real ratings left to replay (0 for a described item)."""
        if self.task is None:
            return 0
        rated = set(self.users)
        users = self.task.support(self.task.n_available)[0][self.revealed :]
        return int(sum(int(u) not in rated for u in users))

    def can_rate(self, user: int) -> bool:
        """Whether `user` may rate the item by hand: not a rater yet, not a hidden rater."""
        user = int(user)
        return user not in self.users and user not in self._hidden

    def audience(self, name: str) -> list[AudienceMember]:
        """Model `name`'s audience now, best first, as records."""
        v = self.view
        assert v is not None
        users, scores = v.audiences[name], v.scores[name][v.audiences[name]]
        return [
            AudienceMember(
                rank=r + 1,
                user=int(u),
                user_id=str(self.data.user_ids[u]),
                predicted=float(s),
                movement=mv,
                tastes=self.tastes(int(u)),
                hidden_rating=self._hidden.get(int(u)),
            )
            for r, (u, s, mv) in enumerate(zip(users, scores, v.movement[name], strict=True))
        ]

    def agreement(self, name: str, reference: str) -> float:
        """Share of `reference`'s audience that model `name`'s audience holds too."""
        v = self.view
        assert v is not None
        ref = set(map(int, v.audiences[reference]))
        return len(ref & set(map(int, v.audiences[name]))) / max(1, len(ref))

    def tastes(self, user: int) -> tuple[str, ...]:
        """A user's favourite genres from their ratings of the models' training items."""
        if user not in self._tastes:
            d = self.data
            rows = np.flatnonzero(d.user == user)
            rows = rows[np.isin(d.item[rows], self.models.fold.test_items, invert=True)]
            self._tastes[user] = tuple(favourite_genres(d, d.item[rows], d.rating[rows]))
        return self._tastes[user]

    def distribution(self, name: str) -> RatingDistribution:
        """Model `name`'s predicted ratings of every user now, as a distribution."""
        assert self.view is not None
        return rating_distribution(self.view.scores[name], self.data.scale)

    def item_map(self, name: str) -> ItemMap | None:
        """Model `name`'s map of the training items (None: the model has no item state)."""
        return self.models.item_map(name, self.data)

    def map_path(self, name: str) -> np.ndarray:
        """(n + 1, 2): where the item was on model `name`'s map after 0, 1, ..., n ratings
        (empty when the model has no map)."""
        m = self.item_map(name)
        if m is None or not self.trail or name not in self.trail[0]:
            return np.zeros((0, 2))
        return m.place(np.stack([t[name] for t in self.trail]))

    def compare(self, names: Sequence[str] | None = None) -> ModelComparison:
        """What-if for this item: the models `names` (default all, at least two) side by side,
        their audiences after its ratings so far (`whatif.compare_lists`: where they disagree,
        when each audience stops changing). Every audience, at every number of ratings, leaves
        out all the item's raters, so a user does not leave an audience merely by rating later."""
        names = self.models.names if names is None else tuple(names)
        if len(names) < 2:
            raise ValueError(f"pick at least two models to compare, got {len(names)}")
        raters = np.asarray(self.users, dtype=np.int64)
        lists: dict[str, list[np.ndarray]] = {n: [] for n in names}
        final: dict[str, np.ndarray] = {}
        for k in range(len(self.users) + 1):
            prefix = NewItem.of(self.title, self.genres, self.users[:k], self.ratings[:k])
            scores = self.models.scores(prefix)
            for n in names:
                lists[n].append(audience(scores[n], raters, self.top_n)[0])
                final[n] = scores[n][lists[n][-1]]
        return compare_lists(lists, final)

    def persona_rater(
        self, likes: Sequence[str], dislikes: Sequence[str] = ()
    ) -> tuple[int, float]:
        """The next rating of a taste persona: the real user who best matches it
        (`personas.taste_order` on their ratings of the training items) among those who may
        rate the item, and the rating the persona would give it (`personas.taste_ratings`
        around that user's mean rating; seeded by the models' seed, the user and the number of
        ratings so far)."""
        likes, dislikes = tuple(likes), tuple(dislikes)
        affinity, means = self._user_tastes()
        order = personas.taste_order(self.data, affinity, likes, dislikes)
        user = next((int(u) for u in order if self.can_rate(int(u))), None)
        if user is None:
            raise ValueError("every user has rated this item or is one of its hidden raters")
        genres = set(self.genres)
        rng = seeded_rng(self.models.seed, SALT_PERSONA_RATING, user, len(self.users))
        rating = personas.taste_ratings(
            self.data,
            np.array([means[user]]),
            np.array([bool(genres & set(likes))]),
            np.array([bool(genres & set(dislikes))]),
            rng,
        )[0]
        return user, float(rating)

    # -- changes -----------------------------------------------------------------------------
    def use_models(self, models: ItemModels) -> ItemView:
        """Go on with `models` (e.g. the baselines joined by the learner once it is fitted):
        the same ratings, every view and curve point computed again."""
        same = models.fingerprint == self.models.fingerprint and models.seed == self.models.seed
        if not same or not np.array_equal(models.fold.test_items, self.models.fold.test_items):
            raise ValueError("the new item models were fitted on other data or held-out items")
        self.models, self.curve, self.trail = models, [], []
        for n in range(len(self.users)):
            prefix = NewItem.of(self.title, self.genres, self.users[:n], self.ratings[:n])
            errors = self._errors(models.scores(prefix))
            if errors is not None:
                self.curve.append(ItemCurvePoint(n, errors))
            self.trail.append(models.states(prefix))
        return self._refresh(previous=None)

    def reset(self) -> ItemView:
        """Remove every rating (the item stays): back to its metadata alone (k = 0)."""
        self.users, self.ratings, self.sources = [], [], []
        self.revealed, self.curve, self.trail = 0, [], []
        return self._refresh(previous=None)

    def add_rating(self, user: int, rating: float, *, source: RatingSource = BY_HAND) -> ItemView:
        """`user` rates the item (`source`: by hand, a persona's, or replayed from the held-out
        item's real ones)."""
        user = int(user)
        if not 0 <= user < self.data.n_users:
            raise ValueError(f"user index {user} is outside [0, {self.data.n_users})")
        if user in self.users:
            raise ValueError(f"user {self.data.user_ids[user]} has rated this item already")
        if source.kind != "replay" and user in self._hidden:
            raise ValueError(
                f"user {self.data.user_ids[user]} is one of the hidden raters (their rating "
                "measures the error)"
            )
        s = self.data.scale
        if not (np.isfinite(rating) and s.low <= rating <= s.high):
            raise ValueError(f"rating {rating} is outside the scale {s.low:g}-{s.high:g}")
        self.users.append(user)
        self.ratings.append(float(rating))
        self.sources.append(source)
        return self._refresh(previous=self.view)

    def add_persona_rating(self, likes: Sequence[str], dislikes: Sequence[str] = ()) -> ItemView:
        """A taste persona's next rating (`persona_rater`)."""
        user, rating = self.persona_rater(likes, dislikes)
        return self.add_rating(
            user, rating, source=RatingSource("persona", tuple(likes), tuple(dislikes))
        )

    def add_next(self) -> ItemView:
        """Replay the held-out item's next real rating (users who rated by hand are skipped)."""
        if self.task is None:
            raise ValueError("only a held-out real item has ratings to replay")
        pos = self._next_position()
        if pos is None:
            raise ValueError("the item has no more ratings to replay")
        users, ratings = self.task.support(self.task.n_available)
        self.revealed = pos + 1
        return self.add_rating(int(users[pos]), float(ratings[pos]), source=REPLAY)

    # -- internals ---------------------------------------------------------------------------
    def _next_position(self) -> int | None:
        if self.task is None:
            return None
        users = self.task.support(self.task.n_available)[0]
        rated = set(self.users)
        for pos in range(self.revealed, len(users)):
            if int(users[pos]) not in rated:
                return pos
        return None

    def _user_tastes(self) -> tuple[np.ndarray, np.ndarray]:
        """(genre affinity (n_users, n_genres), mean rating (n_users,)) of every user, from
        their ratings of the models' training items (made once per session)."""
        if self._affinity is None:
            d = self.data
            rows = np.flatnonzero(np.isin(d.item, self.models.fold.train_items))
            n = np.bincount(d.user[rows], minlength=d.n_users)
            total = np.bincount(d.user[rows], weights=d.rating[rows], minlength=d.n_users)
            overall = float(d.rating[rows].mean()) if len(rows) else float(d.rating.mean())
            means = np.where(n > 0, total / np.maximum(n, 1), overall)
            self._affinity = (personas.genre_affinity(d, rows), means)
        return self._affinity

    def _refresh(self, previous: ItemView | None) -> ItemView:
        item = self.new_item()
        scores = self.models.scores(item)
        states = self.models.states(item)
        self.trail.append(states)
        raters = np.asarray(self.users, dtype=np.int64)
        auds, moves, over = {}, {}, {}
        for name, s in scores.items():
            auds[name] = audience(s, raters, self.top_n)[0]
            prev = None if previous is None else previous.audiences.get(name)
            moves[name] = rank_movement(prev, auds[name])
            over[name] = list_overlap(prev, auds[name])
        errors = self._errors(scores)
        if errors is not None:
            self.curve.append(ItemCurvePoint(len(self.users), errors))
        self.view = ItemView(len(self.users), scores, auds, moves, over, errors, states)
        return self.view

    def _errors(self, scores: Mapping[str, np.ndarray]) -> dict[str, ItemErrors] | None:
        if self.task is None:
            return None
        hu, hr = self.task.query
        low = float(self.data.scale.low)
        return {name: item_errors(s, hu, hr, low) for name, s in scores.items()}
