"""Item metadata as numbers: genres, title words and release year (for new-item methods).

The vocabulary (genre names, frequent title words, the year's centre) is fitted on training
items only, so a new item's features never depend on test items.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from metarec_core.data.dataset import RatingsDataset

_YEAR = re.compile(r"\((\d{4})\)")
_WORD = re.compile(r"[a-z]{3,}")
_STOP = frozenset({"the", "and", "for", "with", "from", "les", "der", "die", "des", "une"})
MIN_WORD_ITEMS = 3  # a title word is a feature when at least this many training items have it
MAX_WORDS = 500
MAX_GENRES = 1_000  # in a saved featuriser (a checkpoint's bound)
MAX_NAME_CHARS = 200  # one genre name or title word in a saved featuriser


def title_year(title: str) -> int | None:
    """The year in parentheses in a title ("Toy Story (1995)" -> 1995), if any."""
    m = _YEAR.findall(title)
    return int(m[-1]) if m else None


def title_words(title: str) -> set[str]:
    """Lower-case words of 3+ letters of a title, without the year and a few stop words."""
    return set(_WORD.findall(_YEAR.sub(" ", title.lower()))) - _STOP


@dataclass(frozen=True, eq=False)
class ItemFeatures:
    """Fitted featuriser: [genres | title words | year (centred, /10), its square, no year]."""

    genres: tuple[str, ...]
    words: tuple[str, ...]
    year_centre: float

    @property
    def width(self) -> int:
        return len(self.genres) + len(self.words) + 3

    @classmethod
    def fit(cls, data: RatingsDataset, train_items: np.ndarray) -> ItemFeatures:
        """The vocabulary of the training items' metadata (empty without an items file)."""
        if data.items is None:
            return cls((), (), 0.0)
        titles = [str(data.items.titles[i]) for i in np.asarray(train_items, dtype=np.int64)]
        counts = Counter(w for t in titles for w in title_words(t))
        words = sorted(
            (w for w, c in counts.items() if c >= MIN_WORD_ITEMS),
            key=lambda w: (-counts[w], w),
        )[:MAX_WORDS]
        years = [y for y in map(title_year, titles) if y is not None]
        centre = float(np.mean(years)) if years else 0.0
        return cls(tuple(data.items.genre_names), tuple(sorted(words)), centre)

    def to_state(self) -> dict[str, Any]:
        """Plain values (`from_state` rebuilds the featuriser)."""
        return {
            "genres": list(self.genres),
            "words": list(self.words),
            "year_centre": float(self.year_centre),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ItemFeatures:
        check_features_state(state)
        return cls(tuple(state["genres"]), tuple(state["words"]), float(state["year_centre"]))

    def transform(self, titles: Sequence[str], genres: Sequence[Sequence[str]]) -> np.ndarray:
        """(B, width) features of items given by title and genre names."""
        g_col = {g: c for c, g in enumerate(self.genres)}
        w_col = {w: len(self.genres) + c for c, w in enumerate(self.words)}
        y0 = len(self.genres) + len(self.words)
        X = np.zeros((len(titles), self.width))
        for b, (title, gs) in enumerate(zip(titles, genres, strict=True)):
            for g in gs:
                if g in g_col:
                    X[b, g_col[g]] = 1.0
            for w in title_words(title):
                if w in w_col:
                    X[b, w_col[w]] = 1.0
            year = title_year(title)
            if year is None:
                X[b, y0 + 2] = 1.0
            else:
                z = (year - self.year_centre) / 10.0
                X[b, y0], X[b, y0 + 1] = z, z * z
        return X


def ridge(X: np.ndarray, y: np.ndarray, w: np.ndarray, lam: float) -> np.ndarray:
    """Weighted ridge with an unpenalised intercept: coefficients (width + 1,), intercept last.

    `y` may be (n,) or (n, d) (then (width + 1, d))."""
    Xa = np.hstack([X, np.ones((len(X), 1))])
    pen = np.full(Xa.shape[1], float(lam))
    pen[-1] = 1e-8
    A = Xa.T @ (Xa * w[:, None]) + np.diag(pen)
    return np.linalg.solve(A, Xa.T @ (y * (w[:, None] if y.ndim == 2 else w)))


def ridge_predict(X: np.ndarray, coef: np.ndarray) -> np.ndarray:
    return X @ coef[:-1] + coef[-1]


def check_features_state(state: Any) -> int:
    """The width of a saved featuriser; ValueError naming what is wrong with it."""
    if not isinstance(state, dict) or set(state) != {"genres", "words", "year_centre"}:
        raise ValueError("features are not {genres, words, year_centre}")
    for key, most in (("genres", MAX_GENRES), ("words", MAX_WORDS)):
        names = state[key]
        if not isinstance(names, list) or len(names) > most:
            raise ValueError(f"features.{key} is not a list of at most {most:,} names")
        if not all(isinstance(n, str) and len(n) <= MAX_NAME_CHARS for n in names):
            raise ValueError(f"features.{key} holds something other than short names")
    y = state["year_centre"]
    if not isinstance(y, int | float) or isinstance(y, bool) or not abs(y) < 1e5:
        raise ValueError("features.year_centre is not a year")
    return len(state["genres"]) + len(state["words"]) + 3
