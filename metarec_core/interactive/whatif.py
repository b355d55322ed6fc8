"""What-if: the same new user's ratings fed to several models, compared side by side.

For each model: its top-N after all the ratings, where the models disagree, and how many
ratings it needs before its top-N stops changing (or that it never changes: a model whose list
ignores the ratings does not adapt, which is not the same as settling at once). Every list
excludes all of the user's rated items (also at shorter prefixes), so an item does not leave a
list merely because it was rated later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from metarec_core.data.dataset import RatingsDataset
from metarec_core.evaluation import intervals as iv
from metarec_core.interactive import explain as ex
from metarec_core.methods.base import Recommender, top_items


def top_n(scores: np.ndarray, exclude: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n best scores (ties by index) without `exclude`, best first."""
    return top_items(scores, exclude, n)


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """|a ∩ b| / max(|a|, |b|) (1.0 for two empty lists)."""
    m = max(len(a), len(b))
    return 1.0 if m == 0 else len(set(map(int, a)) & set(map(int, b))) / m


def prefix_top_lists(
    model: Recommender, items: np.ndarray, ratings: np.ndarray, n: int = 10
) -> list[np.ndarray]:
    """The model's top-n after 0, 1, ..., len(items) ratings (one vectorised `score_many` call)."""
    items = np.asarray(items, dtype=np.int64)
    ratings = np.asarray(ratings, dtype=np.float64)
    supports = [(items[:k], ratings[:k]) for k in range(len(items) + 1)]
    scores = model.score_many(supports)
    return [top_n(scores[k], items, n) for k in range(len(supports))]


def kept_from_previous(tops: list[np.ndarray]) -> list[float]:
    """Per rating k = 1..n: the overlap of the top list after k ratings with the one before."""
    return [overlap(tops[k - 1], tops[k]) for k in range(1, len(tops))]


@dataclass(frozen=True)
class Stability:
    """How a model's top list settles over ratings 0..n.

    kind: "settled" (after `after` ratings every next list keeps >= threshold of the previous
    one, and at least one rating confirmed it), "changing" (the last rating still changed it),
    "never_adapts" (the same items at every prefix as with no rating: the ratings do not move
    it) or "no_ratings" (n = 0: nothing to judge).
    """

    kind: Literal["settled", "changing", "never_adapts", "no_ratings"]
    after: int | None = None  # "settled" only: ratings before the list stopped changing


def stability(tops: list[np.ndarray], threshold: float = 1.0) -> Stability:
    """The `Stability` of the top lists after 0, 1, ..., n ratings (`tops[k]`: after k)."""
    n = len(tops) - 1
    if n < 1:
        return Stability("no_ratings")
    if all(overlap(tops[0], t) == 1.0 for t in tops[1:]):
        return Stability("never_adapts")
    kept = kept_from_previous(tops)
    changed = [k for k in range(1, n + 1) if kept[k - 1] < threshold]
    last = max(changed, default=0)
    if last == n:
        return Stability("changing")
    return Stability("settled", last)


def stable_after(tops: list[np.ndarray], threshold: float = 1.0) -> int | None:
    """Ratings after which the top list stopped changing (`stability`), None unless settled."""
    s = stability(tops, threshold)
    return s.after if s.kind == "settled" else None


@dataclass(frozen=True)
class ModelComparison:
    """Side-by-side result for several models on one new user's ratings."""

    names: tuple[str, ...]
    top: dict[str, np.ndarray]  # name -> top-n items after all ratings
    scores: dict[str, np.ndarray]  # name -> their scores
    pairwise_overlap: np.ndarray  # (m, m)
    only_in: dict[str, np.ndarray]  # items in this model's list and in no other
    in_all: np.ndarray  # items every model lists
    stability: dict[str, Stability]  # when (whether) each top-n stops changing
    overlap_with_final: dict[str, list[float]]  # per prefix 0..n, overlap with the final list
    kept: dict[str, list[float]]  # per rating 1..n, overlap with the list before it
    # per model: what moved each item of its top-n (`explain`; empty beyond MAX_SUPPORT ratings)
    explanations: dict[str, tuple[ex.Explanation, ...]] = field(default_factory=dict)
    # per model: its intervals over the catalogue (`intervals`; None: it has none)
    bands: dict[str, iv.Intervals | None] = field(default_factory=dict)

    @property
    def stable_at(self) -> dict[str, int | None]:
        """Ratings before each top-n stopped changing; None unless it settled."""
        return {k: (s.after if s.kind == "settled" else None) for k, s in self.stability.items()}


def compare_models(
    models: Mapping[str, Recommender],
    items: np.ndarray,
    ratings: np.ndarray,
    *,
    n: int = 10,
    threshold: float = 1.0,
    data: RatingsDataset | None = None,
    val_users: np.ndarray | None = None,
) -> ModelComparison:
    """Compare `models` (two or more, fitted on the same catalogue) on one user's ratings.

    With `data` and the models' `val_users`, each model's intervals are calibrated there
    (`intervals.calibrate`); without them only a model with a predictive distribution has
    intervals (its raw central ones)."""
    if len(models) < 2:
        raise ValueError(f"pick at least two models to compare, got {len(models)}")
    if len({m.n_items for m in models.values()}) > 1:
        raise ValueError(
            "the models were fitted on different catalogues; compare models of one dataset"
        )
    items = np.asarray(items, dtype=np.int64)
    ratings = np.asarray(ratings, dtype=np.float64)
    lists, scores = {}, {}
    why: dict[str, tuple[ex.Explanation, ...]] = {}
    bands: dict[str, iv.Intervals | None] = {}
    calibrated = data is not None and val_users is not None
    scale = None if data is None else data.scale
    for name, m in models.items():
        lists[name] = prefix_top_lists(m, items, ratings, n)
        final = lists[name][-1]
        scores[name] = m.adapt(items, ratings).display_ratings(final)
        if 0 < len(items) <= ex.MAX_SUPPORT:
            why[name] = tuple(ex.explain(m, items, ratings, final))
        cal = iv.calibrate(m, data, val_users) if calibrated else None
        bands[name] = iv.intervals_many(m, [(items, ratings)], calibration=cal, scale=scale)
    return replace(compare_lists(lists, scores, threshold), explanations=why, bands=bands)


def compare_lists(
    lists: Mapping[str, list[np.ndarray]],
    scores: Mapping[str, np.ndarray],
    threshold: float = 1.0,
) -> ModelComparison:
    """The `ModelComparison` of each model's top lists after 0, 1, ..., n ratings
    (`lists[name][k]`: after k; the last is compared) and the scores of its last list: for a new
    user's top items (`compare_models`) as for a new item's audience (its top users)."""
    names = tuple(lists)
    tops, stable, curves, kept = {}, {}, {}, {}
    for name in names:
        final = lists[name][-1]
        tops[name] = final
        stable[name] = stability(lists[name], threshold)
        curves[name] = [overlap(t, final) for t in lists[name]]
        kept[name] = kept_from_previous(lists[name])
    pair = np.array([[overlap(tops[a], tops[b]) for b in names] for a in names])
    sets = {name: set(map(int, t)) for name, t in tops.items()}
    only_in = {}
    for name in names:
        others = set().union(*(sets[o] for o in names if o != name))
        only_in[name] = np.array([i for i in tops[name] if int(i) not in others], dtype=np.int64)
    common = set.intersection(*sets.values())
    in_all = np.array([i for i in tops[names[0]] if int(i) in common], dtype=np.int64)
    return ModelComparison(names, tops, dict(scores), pair, only_in, in_all, stable, curves, kept)
