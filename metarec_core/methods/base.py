"""The one interface every method shares (baselines and meta-learners alike).

A `Recommender` is fitted on training users, then, for a brand-new user, `adapt`s from the
user's support ratings and returns an `AdaptedUser` holding a predicted score for every item of
the catalogue. Meta-weights never change in `adapt`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from metarec_core.data.dataset import RatingsDataset

# The fit hooks every method takes: long fits poll `should_stop()` and report
# `progress(fraction, message)`; quick ones may ignore both.
StopFlag = Callable[[], bool]
FitProgress = Callable[[float, str], None]


@dataclass(frozen=True)
class FitHooks:
    """The hooks of one fit, as `Recommender.fit` hands them to `_fit_users`; `callback`
    gets per-unit records from methods that make them (a meta-learner's `TrainProgress`)."""

    should_stop: StopFlag | None = None
    progress: FitProgress | None = None
    callback: Callable[[Any], None] | None = None


# Predictions snapped to a rating level add this times (prediction - level), which only breaks
# ties so that rankings keep their order (the level baselines, the learners' ordinal output).
LEVEL_TIE_BREAK = 1e-3


def top_items(scores: np.ndarray, exclude: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n best scores without `exclude`, best first; ties broken by item index."""
    s = np.asarray(scores, dtype=np.float64).copy()
    s[np.asarray(exclude, dtype=np.int64)] = -np.inf
    n = int(min(n, np.isfinite(s).sum()))
    return np.lexsort((np.arange(len(s)), -s))[:n]


Pair = tuple[np.ndarray, np.ndarray]  # (items, ratings) of one user


def checked_pair(items: Any, ratings: Any, n_items: int, what: str) -> Pair:
    """(items as int64, ratings as float64), flattened; ValueError naming `what` (say
    "support 3") unless they are as many, every item is in [0, n_items) and every rating finite.
    """
    i = np.asarray(items, dtype=np.int64).ravel()
    r = np.asarray(ratings, dtype=np.float64).ravel()
    if len(i) != len(r):
        raise ValueError(f"{what}: {len(i)} items but {len(r)} ratings")
    if len(i) and (i.min() < 0 or i.max() >= n_items):
        raise ValueError(
            f"{what}: item index out of range [0, {n_items}): found {int(i.min())}..{int(i.max())}"
        )
    if not np.isfinite(r).all():
        raise ValueError(f"{what}: ratings must be finite numbers")
    return i, r


class NotFittedError(RuntimeError):
    """A method was used before `fit`."""


@dataclass(frozen=True)
class Capabilities:
    """What a method declares it can do; the CLI, the pages and evaluate read this, never probe.

    - ``predicts_ratings``: scores are ratings on the data's scale (False: a ranking only).
    - ``user_state``: `user_states()` gives a vector per user (the playground's taste map).
    - ``item_state``: an `ItemRecommender`'s `item_states()` gives a vector per new item (the
      new-item page's map of items).
    - ``device``: fit and adapt run on a torch device (`make_method` passes ``device``).
    - ``meta_learned``: one of the MAML family (trained on the Train page, adapts by inner steps).
    - ``cold``: what arrives new: ``"users"`` (a `Recommender`) or ``"items"`` (an
      `ItemRecommender`, evaluated by ``evaluate --cold items``).
    - ``distribution``: `predictive_many` can give a distribution over the scale's rating
      levels (the learners' ordinal output); a fitted model without one returns None there.
      Methods without it get intervals from their validation residuals (`evaluation.intervals`).
    """

    predicts_ratings: bool = True
    user_state: bool = False
    item_state: bool = False
    device: bool = False
    meta_learned: bool = False
    cold: str = "users"
    distribution: bool = False


@dataclass(frozen=True)
class AdaptationTrace:
    """Losses during adaptation: index 0 is before any inner step, then one entry per step."""

    support_loss: tuple[float, ...]
    query_loss: tuple[float, ...] | None = None  # only when hidden ratings were given


@dataclass(frozen=True, eq=False)
class LevelDistribution:
    """Predictive distributions over a discrete rating scale, one per (user, item)."""

    levels: np.ndarray  # (levels,) the rating levels, increasing
    probs: np.ndarray  # (n_users, n_items or L, levels) P(rating = level); rows sum to 1


@dataclass(frozen=True, eq=False)
class AdaptedUser:
    """A new user after adaptation: scores over the whole catalogue.

    `scores` are predicted ratings on the dataset's scale for rating predictors, and ranking
    scores (higher is better) for ranking-only methods such as popularity.
    """

    scores: np.ndarray  # (n_items,) float
    support_items: np.ndarray
    support_ratings: np.ndarray
    trace: AdaptationTrace | None = None
    state: np.ndarray | None = None  # the adapted user representation, when the method has one
    # The mean of the predictive distribution, for display, when it differs from `scores`
    # (learners with an ordinal output predict its median, which is MAE-optimal but coarse).
    expected: np.ndarray | None = None  # (n_items,)

    def display_ratings(self, items: np.ndarray) -> np.ndarray:
        """Predicted ratings to show a person: the expected rating where known, else scores."""
        src = self.scores if self.expected is None else self.expected
        return src[np.asarray(items, dtype=np.int64)]

    def predict(self, items: np.ndarray) -> np.ndarray:
        return self.scores[np.asarray(items, dtype=np.int64)]

    def recommend(
        self, top_n: int = 10, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-n (items, scores), best first; `exclude` defaults to the support items.

        Ties are broken by item index, never by anything the user has not given.
        """
        excl = self.support_items if exclude is None else exclude
        order = top_items(self.scores, excl, top_n)
        return order, self.scores[order]


class Recommender(ABC):
    """Base class: `fit` on training users, `adapt` to a new user, `score_many` for evaluation.

    Subclasses keep constructor arguments as plain attributes (no data, no device work) and set
    fitted attributes with a trailing underscore.
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()

    def fit(
        self,
        data: RatingsDataset,
        train_users: np.ndarray,
        val_users: np.ndarray | None = None,
        *,
        should_stop: StopFlag | None = None,
        progress: FitProgress | None = None,
    ) -> Recommender:
        """Learn from all ratings of `train_users`; tune on `val_users` (never test users).
        `should_stop` and `progress` are the hooks above (a quick fit may ignore them).
        Unfitted until `_fit_users` returns True; a fit stopped by `should_stop()` stays so."""
        self.fitted_ = False
        self.fitted_ = self._fit_users(
            data, train_users, val_users, FitHooks(should_stop, progress)
        )
        return self

    def _fit_users(
        self, data: RatingsDataset, train: np.ndarray, val: np.ndarray | None, hooks: FitHooks
    ) -> bool:
        """The method's own fit on the `train` and `val` users of `fit`: True when fitted, False when `hooks.should_stop()` stopped it.
        A method implements this, or (as methods written before it, plugins among them, do)
        overrides `fit` itself."""
        raise NotImplementedError(f"{type(self).__name__} implements neither fit nor _fit_users")

    def adapt(
        self,
        items: np.ndarray,
        ratings: np.ndarray,
        *,
        query_items: np.ndarray | None = None,
        query_ratings: np.ndarray | None = None,
    ) -> AdaptedUser:
        """Adapt to one new user from support ratings (query, if given, only feeds the trace).

        Checks the method is fitted and the arrays (`checked_pair`: int64 items in the
        catalogue, as many finite float64 ratings), then runs the method's `_adapt`.
        """
        self._check_fitted()
        items, ratings = checked_pair(items, ratings, self.n_items_, "support")
        query = None
        if query_items is not None:
            if query_ratings is None:
                raise ValueError("query_items given without query_ratings")
            query = checked_pair(query_items, query_ratings, self.n_items_, "query")
        return self._adapt(items, ratings, query)

    def _adapt(self, items: np.ndarray, ratings: np.ndarray, query: Pair | None) -> AdaptedUser:
        """The method's own `adapt` on checked arrays (`query`: hidden (items, ratings) that
        only feed the trace, or None). A method implements this, or (as methods written
        before it, plugins among them, do) overrides `adapt` itself."""
        raise NotImplementedError(f"{type(self).__name__} implements neither adapt nor _adapt")

    def score_many(self, supports: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Scores over the catalogue for many new users at once: (n_users, n_items).

        The default loops over `adapt`; methods override it with a vectorised path.
        """
        return np.stack([self.adapt(i, r).scores for i, r in supports])

    def display_many(
        self, supports: Sequence[tuple[np.ndarray, np.ndarray]], items: np.ndarray | None = None
    ) -> np.ndarray:
        """The ratings shown to a person (`AdaptedUser.display_ratings`) for many new users at
        once: of every item (n_users, n_items), or of `items` (n_users, L), a row per user.
        The default reads `score_many`; methods whose scores are snapped to levels override it
        with their expected rating, and vectorised methods score only `items`."""
        scores = self.score_many(supports)
        return scores if items is None else np.take_along_axis(scores, np.asarray(items), 1)

    def predictive_many(
        self, supports: Sequence[tuple[np.ndarray, np.ndarray]], items: np.ndarray | None = None
    ) -> LevelDistribution | None:
        """The predictive distribution of the ratings of every item (or of `items` (n_users,
        L)) for many new users at once, for methods that declare ``capabilities.distribution``;
        None when this one has none."""
        return None

    def _check_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")

    @property
    def n_items(self) -> int:
        """Catalogue size the method was fitted on."""
        self._check_fitted()
        return int(self.n_items_)  # every fit sets n_items_

    def user_states(self, data: RatingsDataset, users: np.ndarray, k: int = 10) -> np.ndarray:
        """Each user's adapted state from k of their ratings: (len(users), dim).

        Only for methods that declare ``capabilities.user_state``.
        """
        raise NotImplementedError(f"{type(self).__name__} has no user state")

    def to_state(self) -> dict[str, Any]:
        """The fitted method as tensors, arrays and plain values (`torch.load(weights_only=True)`
        can read it back); `from_state` rebuilds it."""
        raise NotImplementedError(f"{type(self).__name__} cannot be saved yet")

    @classmethod
    def check_state(cls, state: dict[str, Any], *, max_width: int) -> None:
        """Raise ValueError if `state`, read from an untrusted file, is not what this class's
        `from_state` builds from (`max_width`: the widest array axis it may declare besides
        the catalogue). The checkpoint has bounded its size, nesting and numbers already;
        classes with arrays declare their shapes and check them here, before anything is built.
        """
        return None  # nothing beyond the checkpoint's own bounds

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str = "cpu") -> Recommender:
        """Rebuild a fitted method from `to_state()`."""
        raise NotImplementedError(f"{cls.__name__} cannot be loaded yet")


# ---------------------------------------------------------------------------------------------
# New items (item cold start)


@dataclass(frozen=True, eq=False)
class NewItem:
    """A new item as a method sees it: its metadata and the first ratings it received.

    `genres` are genre names (those of the training data's items file; others are ignored);
    `users` are inner user indices of the dataset the method was fitted on.
    """

    title: str
    genres: tuple[str, ...]
    users: np.ndarray  # (k,) int64
    ratings: np.ndarray  # (k,) float

    @classmethod
    def of(
        cls,
        title: str = "",
        genres: Sequence[str] = (),
        users: Sequence[int] | np.ndarray = (),
        ratings: Sequence[float] | np.ndarray = (),
    ) -> NewItem:
        """A new item from plain values (no ratings: metadata alone, k = 0)."""
        u = np.asarray(users, dtype=np.int64).ravel()
        r = np.asarray(ratings, dtype=np.float64).ravel()
        if len(u) != len(r):
            raise ValueError(f"a new item has {len(u)} users but {len(r)} ratings")
        return cls(str(title), tuple(genres), u, r)


@dataclass(frozen=True, eq=False)
class AdaptedItem:
    """A new item after adaptation: a predicted score for every user."""

    scores: np.ndarray  # (n_users,)
    support_users: np.ndarray
    support_ratings: np.ndarray

    def audience(
        self, top_n: int = 20, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The top-n (users, scores) to show the item to; `exclude` defaults to its raters."""
        excl = self.support_users if exclude is None else exclude
        order = top_items(self.scores, excl, top_n)
        return order, self.scores[order]


def checked_train_items(train_items: np.ndarray, n_items: int) -> np.ndarray:
    """The sorted distinct training items of a fit; ValueError when there are none or one is
    not an inner item index."""
    train_items = np.unique(np.asarray(train_items, dtype=np.int64))
    if len(train_items) == 0:
        raise ValueError("fit() needs at least one training item")
    if train_items[0] < 0 or train_items[-1] >= n_items:
        raise ValueError(f"train_items must be inner item indices in [0, {n_items})")
    return train_items


class ItemRecommender(ABC):
    """Base class of item cold-start methods: `fit` on training items, then predict how users
    rate a new item from its metadata and its first (user, rating) pairs.

    Subclasses keep constructor arguments as plain attributes and set fitted attributes with a
    trailing underscore, as `Recommender`s do, and implement `_fit_items` (what `fit` runs on
    the checked training items) and `predict`.
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities(cold="items")

    def fit(
        self,
        data: RatingsDataset,
        train_items: np.ndarray,
        val_items: np.ndarray | None = None,
        *,
        should_stop: StopFlag | None = None,
        progress: FitProgress | None = None,
    ) -> ItemRecommender:
        """Learn from the ratings of `train_items` only; tune on `val_items` (never test
        items). `data` may hold other items' ratings: a method reads only these two sets.
        Unfitted until `_fit_items` returns True; a fit stopped by `should_stop()` stays so."""
        self.fitted_ = False
        train_items = checked_train_items(train_items, data.n_items)
        self.fitted_ = self._fit_items(data, train_items, val_items, should_stop, progress)
        return self

    def _fit_items(
        self,
        data: RatingsDataset,
        train_items: np.ndarray,
        val_items: np.ndarray | None,
        should_stop: StopFlag | None,
        progress: FitProgress | None,
    ) -> bool:
        """The method's own fit on `train_items` (sorted, distinct, checked by `fit`): True
        when fitted, False when `should_stop()` stopped it. A method implements this, or (as
        methods written before it, plugins among them, do) overrides `fit` itself."""
        raise NotImplementedError(f"{type(self).__name__} implements neither fit nor _fit_items")

    @abstractmethod
    def predict(self, new_items: Sequence[NewItem], users: np.ndarray) -> np.ndarray:
        """Predicted scores (B, Q) of `users` (B, Q) inner user indices for each new item."""

    def score_items(self, new_items: Sequence[NewItem]) -> np.ndarray:
        """Scores of every user for each new item: (B, n_users)."""
        self._check_fitted()
        n = int(self.n_users_)
        return self.predict(new_items, np.broadcast_to(np.arange(n), (len(new_items), n)))

    def adapt_item(self, new_item: NewItem) -> AdaptedItem:
        """One new item, scored for every user."""
        scores = self.score_items([new_item])[0]
        return AdaptedItem(scores, new_item.users, new_item.ratings)

    def item_states(self, new_items: Sequence[NewItem]) -> np.ndarray:
        """(B, d): each new item's state after its support ratings, the vector its predictions
        are made from. Only for methods that declare ``capabilities.item_state``."""
        raise NotImplementedError(f"{type(self).__name__} declares no item state")

    def _check_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")
