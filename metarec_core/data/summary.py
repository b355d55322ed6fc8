"""The dataset summary: counts, scale, density and distributions (the Data page, `validate`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from metarec_core.data.dataset import RatingScale, RatingsDataset, _fmt


@dataclass(frozen=True)
class DatasetSummary:
    """What the Data page and `validate` show."""

    source: str
    n_users: int
    n_items: int
    n_ratings: int
    scale: RatingScale
    density: float
    ratings_per_user: dict[str, float]  # min, p25, median, p75, max, mean
    ratings_per_item: dict[str, float]
    rating_counts: dict[str, int]  # rating value (as str) -> count
    notes: tuple[str, ...]
    has_items: bool
    mean_rating: float = float("nan")
    # Users with fewer than N ratings (str(N) -> count) for the thresholds the protocols use
    # (support k + query 10 for k = 1, 3, 5, 10, 20; MeLU's 13): what each protocol leaves out.
    users_fewer_than: dict[str, int] = field(default_factory=dict)
    n_genres: int = 0
    items_missing: int = 0  # rated items with no metadata row

    def to_dict(self) -> dict:
        """JSON-ready dict (the `dataset` block of evaluation reports)."""
        return {
            "source": self.source,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_ratings": self.n_ratings,
            "scale": {"low": self.scale.low, "high": self.scale.high, "step": self.scale.step},
            "density": self.density,
            "mean_rating": None if math.isnan(self.mean_rating) else self.mean_rating,
            "ratings_per_user": dict(self.ratings_per_user),
            "ratings_per_item": dict(self.ratings_per_item),
            "rating_counts": dict(self.rating_counts),
            "users_fewer_than": dict(self.users_fewer_than),
            "has_items": self.has_items,
            "n_genres": self.n_genres,
            "items_missing": self.items_missing,
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        """A few human-readable lines (what `validate` prints)."""
        s = self.scale
        step = f"step {_fmt(s.step)}" if s.step > 0 else "continuous"
        pu, pi = self.ratings_per_user, self.ratings_per_item
        lines = [
            f"{self.source}: {self.n_users:,} users, {self.n_items:,} items, "
            f"{self.n_ratings:,} ratings (density {100 * self.density:.2f}%)",
            f"scale: {_fmt(s.low)} to {_fmt(s.high)}, {step}; mean rating {self.mean_rating:.3f}",
            f"ratings per user: min {pu['min']:g}, median {pu['median']:g}, "
            f"mean {pu['mean']:.1f}, max {pu['max']:g}",
            f"ratings per item: min {pi['min']:g}, median {pi['median']:g}, "
            f"mean {pi['mean']:.1f}, max {pi['max']:g}",
            "rating counts: " + ", ".join(f"{k}: {v:,}" for k, v in self.rating_counts.items()),
        ]
        if self.users_fewer_than:
            lines.append(
                "users with fewer than N ratings: "
                + ", ".join(f"<{k}: {v:,}" for k, v in self.users_fewer_than.items())
            )
        if self.has_items:
            lines.append(
                f"item metadata: titles and {self.n_genres} genres; "
                f"{self.items_missing:,} rated items without metadata"
            )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# Users with fewer than these many ratings are left out by the default protocols
# (k + query 10 for k = 1, 3, 5, 10, 20; MeLU needs 13).
FEWER_THAN = (11, 13, 15, 20, 30)


def _distribution(counts: np.ndarray) -> dict[str, float]:
    if len(counts) == 0:
        return dict.fromkeys(("min", "p25", "median", "p75", "max", "mean"), 0.0)
    q = np.percentile(counts, [0, 25, 50, 75, 100])
    keys = ("min", "p25", "median", "p75", "max")
    out = {k: float(v) for k, v in zip(keys, q, strict=True)}
    out["mean"] = float(np.mean(counts))
    return out


def _rating_counts(values: np.ndarray, scale: RatingScale) -> dict[str, int]:
    uniq, counts = np.unique(values, return_counts=True)
    if len(uniq) <= 50:
        return {_fmt(float(v)): int(c) for v, c in zip(uniq, counts, strict=True)}
    # Many distinct values (a continuous scale): ten equal-width bins labelled "lo-hi".
    edges = np.linspace(scale.low, scale.high, 11)
    hist, _ = np.histogram(values, bins=edges)
    return {
        f"{_fmt(round(a, 4))}-{_fmt(round(b, 4))}": int(c)
        for a, b, c in zip(edges[:-1], edges[1:], hist, strict=True)
    }


def summarize(data: RatingsDataset) -> DatasetSummary:
    """Counts, scale, density and distributions of a dataset (what `validate` prints)."""
    per_user = data.counts_per_user()
    cells = data.n_users * data.n_items
    return DatasetSummary(
        source=data.source,
        n_users=data.n_users,
        n_items=data.n_items,
        n_ratings=data.n_ratings,
        scale=data.scale,
        density=float(data.n_ratings / cells) if cells else 0.0,
        ratings_per_user=_distribution(per_user),
        ratings_per_item=_distribution(data.counts_per_item()),
        rating_counts=_rating_counts(data.rating.astype(np.float64), data.scale),
        notes=tuple(data.notes),
        has_items=data.items is not None,
        mean_rating=float(np.mean(data.rating, dtype=np.float64)) if data.n_ratings else math.nan,
        users_fewer_than={str(t): int((per_user < t).sum()) for t in FEWER_THAN},
        n_genres=0 if data.items is None else len(data.items.genre_names),
        items_missing=0 if data.items is None else data.items.missing,
    )
