"""Why a recommendation: the support ratings that moved it most, measured by leave-one-out.

For a new user with k support ratings, the method re-adapts k more times, each time without one
of them, all in one batched `Recommender.display_many` call (k + 1 supports), so it works the
same for every registered method. A rating's signed influence on an item is

    influence = displayed rating with all k ratings - displayed rating without that one,

so > 0: the rating pushed the item up, < 0: down, 0: it did not move it (a ranking-only method
such as popularity ignores the ratings). Nothing here is a template: an explanation names only
ratings whose removal changes the item's predicted rating.

>>> import numpy as np
>>> top_influences(np.array([[0.2, -0.5], [0.0, 0.1]]), np.array([7, 9]), np.array([5.0, 1.0]), 0)
(Influence(item=7, rating=5.0, delta=0.2),)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metarec_core.methods.base import Recommender

# Support sizes above this are not explained: k + 1 adaptations per change is the budget the
# playground can afford at every rating (the "re-adapting is cheap at k <= 20").
MAX_SUPPORT = 20
# Changes smaller than this (in rating units) are float noise of the batched paths, not a
# rating's effect: 1e-6 is far below any shown digit and far above float32 round-off.
MIN_DELTA = 1e-6


@dataclass(frozen=True)
class Influence:
    """One support rating's effect on one item: `delta` = predicted rating with it - without it."""

    item: int  # the rated (support) item, inner index
    rating: float  # what the user gave it
    delta: float


@dataclass(frozen=True)
class Explanation:
    """A recommended item and the support ratings that moved it, strongest |delta| first."""

    item: int
    predicted: float  # the displayed rating with every support rating
    influences: tuple[Influence, ...]

    @property
    def strongest(self) -> Influence | None:
        """The rating whose removal changes the prediction most (None: none changes it)."""
        return self.influences[0] if self.influences else None


def leave_one_out_supports(
    items: np.ndarray, ratings: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The full support, then the support without rating j for j = 0..k-1 (k + 1 supports)."""
    items = np.asarray(items, dtype=np.int64).ravel()
    ratings = np.asarray(ratings, dtype=np.float64).ravel()
    keep = ~np.eye(len(items), dtype=bool)
    return [(items, ratings)] + [(items[m], ratings[m]) for m in keep]


def influence_matrix(
    model: Recommender, items: np.ndarray, ratings: np.ndarray, targets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(predicted (T,), influence (k, T)) of the k support ratings on the `targets`' displayed
    ratings, from one batched `display_many` call over the k + 1 leave-one-out supports."""
    if len(items) > MAX_SUPPORT:
        raise ValueError(f"explanations need at most {MAX_SUPPORT} ratings, got {len(items)}")
    targets = np.asarray(targets, dtype=np.int64).ravel()
    supports = leave_one_out_supports(items, ratings)
    shown = model.display_many(supports, np.broadcast_to(targets, (len(supports), len(targets))))
    return shown[0], shown[0][None, :] - shown[1:]


def top_influences(
    delta: np.ndarray, items: np.ndarray, ratings: np.ndarray, col: int, top: int = 3
) -> tuple[Influence, ...]:
    """The `top` ratings that moved column `col` of `delta` (k, T) most, strongest first (ties:
    earlier rating first); ratings that moved it less than `MIN_DELTA` are left out."""
    d = np.asarray(delta, dtype=np.float64)[:, col]
    order = np.lexsort((np.arange(len(d)), -np.abs(d)))
    return tuple(
        Influence(int(items[j]), float(ratings[j]), float(d[j]))
        for j in order[:top]
        if abs(d[j]) >= MIN_DELTA
    )


def explain(
    model: Recommender,
    items: np.ndarray,
    ratings: np.ndarray,
    targets: Sequence[int] | np.ndarray,
    *,
    top: int = 3,
) -> list[Explanation]:
    """Explanations of the `targets` (e.g. the top-10) for the user who gave `ratings` to
    `items` (at most `MAX_SUPPORT`), through the one interface every method has."""
    items = np.asarray(items, dtype=np.int64).ravel()
    ratings = np.asarray(ratings, dtype=np.float64).ravel()
    targets = np.asarray(targets, dtype=np.int64).ravel()
    predicted, delta = influence_matrix(model, items, ratings, targets)
    return [
        Explanation(int(t), float(predicted[c]), top_influences(delta, items, ratings, c, top))
        for c, t in enumerate(targets)
    ]
