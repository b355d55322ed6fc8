"""What-if: the same new user's ratings fed to several models, compared side by side.

For each model: its top-N after all the ratings, where the models disagree, and how many
ratings it needs before its top-N stops changing. Every list excludes all of the user's rated
items (also at shorter prefixes), so an item does not leave a list merely because it was rated
later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from metarec_core.base import Recommender, top_items


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


def stable_after(tops: list[np.ndarray], threshold: float = 1.0) -> int | None:
    """Fewest ratings k after which every later top list overlaps the final one by >= threshold.

    None when only the final list itself qualifies (no evidence yet that it has settled).
    """
    if len(tops) < 2:
        return None
    final = tops[-1]
    k = len(tops) - 1
    while k > 0 and overlap(tops[k - 1], final) >= threshold:
        k -= 1
    return None if k == len(tops) - 1 else k


@dataclass(frozen=True)
class ModelComparison:
    """Side-by-side result for several models on one new user's ratings."""

    names: tuple[str, ...]
    top: dict[str, np.ndarray]  # name -> top-n items after all ratings
    scores: dict[str, np.ndarray]  # name -> their scores
    pairwise_overlap: np.ndarray  # (m, m)
    only_in: dict[str, np.ndarray]  # items in this model's list and in no other
    in_all: np.ndarray  # items every model lists
    stable_at: dict[str, int | None]  # ratings needed before the top-n stops changing
    overlap_with_final: dict[str, list[float]]  # per prefix 0..n, overlap with the final list


def compare_models(
    models: Mapping[str, Recommender],
    items: np.ndarray,
    ratings: np.ndarray,
    *,
    n: int = 10,
    threshold: float = 1.0,
) -> ModelComparison:
    """Compare `models` (two or more, fitted on the same catalogue) on one user's ratings."""
    if len(models) < 2:
        raise ValueError(f"pick at least two models to compare, got {len(models)}")
    sizes = {getattr(m, "n_items_", None) for m in models.values()}
    if len(sizes - {None}) > 1:
        raise ValueError(
            "the models were fitted on different catalogues; compare models of one dataset"
        )
    items = np.asarray(items, dtype=np.int64)
    ratings = np.asarray(ratings, dtype=np.float64)
    names = tuple(models)
    tops, scores, stable, curves = {}, {}, {}, {}
    for name, m in models.items():
        lists = prefix_top_lists(m, items, ratings, n)
        final = lists[-1]
        tops[name] = final
        scores[name] = m.adapt(items, ratings).display_ratings(final)
        stable[name] = stable_after(lists, threshold)
        curves[name] = [overlap(t, final) for t in lists]
    pair = np.array([[overlap(tops[a], tops[b]) for b in names] for a in names])
    sets = {name: set(map(int, t)) for name, t in tops.items()}
    only_in = {}
    for name in names:
        others = set().union(*(sets[o] for o in names if o != name))
        only_in[name] = np.array([i for i in tops[name] if int(i) not in others], dtype=np.int64)
    common = set.intersection(*sets.values())
    in_all = np.array([i for i in tops[names[0]] if int(i) in common], dtype=np.int64)
    return ModelComparison(names, tops, scores, pair, only_in, in_all, stable, curves)
