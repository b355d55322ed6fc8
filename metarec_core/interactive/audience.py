"""A new item arrives: who should see it? The users a fitted new-item model predicts to rate it
highest (``python -m metarec_core audience``; the app's new-item page can call the same).

`audience` ranks every user by the model's predicted rating of the new item (its metadata and
first ratings, a `NewItem`), leaving out the users who rated it already; ties are broken by
user index, never by anything the item has not given. `read_item_ratings` reads the first
ratings (``user,rating``, raw user ids) from a file.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metarec_core.data.dataset import DataError, RatingScale
from metarec_core.data.io import RATING_COLUMNS, USER_COLUMNS
from metarec_core.methods.base import ItemRecommender, NewItem, top_items

__all__ = ["Audience", "ItemRatings", "audience", "read_item_ratings", "with_year"]

MAX_BYTES = 1 << 20  # a file of a new item's first ratings


@dataclass(frozen=True, eq=False)
class Audience:
    """The ranked users (inner indices, best first) and their predicted ratings."""

    users: np.ndarray  # (n,) int64
    predicted: np.ndarray  # (n,) float
    excluded: int  # users left out for having rated the item already

    def rows(self, user_ids: np.ndarray | None = None) -> list[dict[str, object]]:
        """One dict per user: rank, user (raw id if given, else the inner index), prediction."""
        return [
            {
                "rank": r,
                "user": str(user_ids[u]) if user_ids is not None else int(u),
                "predicted_rating": round(float(p), 4),
            }
            for r, (u, p) in enumerate(zip(self.users, self.predicted, strict=True), 1)
        ]


def audience(model: ItemRecommender, item: NewItem, top: int = 20) -> Audience:
    """The `top` users `model` predicts to rate `item` highest, without its raters."""
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    scores = np.asarray(model.score_items([item])[0], dtype=np.float64)
    raters = np.unique(np.asarray(item.users, dtype=np.int64))
    order = top_items(scores, raters, top)
    return Audience(order.astype(np.int64), scores[order], len(raters))


def with_year(title: str, year: int | None) -> str:
    """`title` with " (year)" appended when a year is given and the title has none."""
    if year is None or re.search(r"\(\d{4}\)", title):
        return title
    return f"{title} ({int(year)})".strip()


@dataclass(frozen=True, eq=False)
class ItemRatings:
    """A new item's first ratings mapped onto a model's users."""

    users: np.ndarray  # (n,) int64 inner user indices (a repeated user: its last rating)
    ratings: np.ndarray  # (n,) float
    unknown_ids: tuple[str, ...]
    duplicates: int


def _norm(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


def read_item_ratings(
    source: str | Path | bytes,
    user_index: dict[str, int],
    scale: RatingScale,
    *,
    name: str | None = None,
) -> ItemRatings:
    """Read ``user,rating`` rows (a header naming them, or exactly two columns without one);
    unknown users are dropped and counted. DataError naming the file and row otherwise."""
    label = name or (str(source) if isinstance(source, str | Path) else "item ratings")
    raw = Path(source).read_bytes() if isinstance(source, str | Path) else bytes(source)
    if len(raw) > MAX_BYTES:
        raise DataError(f"{label}: {len(raw):,} bytes, over the limit of {MAX_BYTES:,}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{label}: not UTF-8 text") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{label}: no ratings (expected rows of user,rating)")
    c_user, c_rating, start = 0, 1, 0
    head = [_norm(c) for c in rows[0]]
    if not _number(rows[0][1] if len(rows[0]) > 1 else ""):
        users = [i for i, h in enumerate(head) if h in USER_COLUMNS]
        ratings = [i for i, h in enumerate(head) if h in RATING_COLUMNS]
        if not users or not ratings:
            raise DataError(
                f"{label}: row 1 is a header without a user column ({', '.join(USER_COLUMNS)}) "
                f"and a rating column ({', '.join(RATING_COLUMNS)}): {rows[0]!r:.120}"
            )
        c_user, c_rating, start = users[0], ratings[0], 1
    last: dict[int, float] = {}
    unknown: list[str] = []
    duplicates = 0
    for n, row in enumerate(rows[start:], start + 1):
        if len(row) <= max(c_user, c_rating):
            raise DataError(f"{label}: row {n} has {len(row)} column(s), expected user,rating")
        uid, value = row[c_user].strip(), row[c_rating].strip()
        if not _number(value):
            raise DataError(f"{label}: row {n}: rating {value!r:.40} is not a number")
        r = float(value)
        if not scale.low <= r <= scale.high:
            raise DataError(
                f"{label}: row {n}: rating {r:g} is outside the model's scale "
                f"{scale.low:g} to {scale.high:g}"
            )
        if uid not in user_index:
            unknown.append(uid)
            continue
        u = user_index[uid]
        duplicates += u in last
        last.pop(u, None)  # a repeated user: its last rating, at its last place
        last[u] = r
    if not last:
        shown = ", ".join(repr(x) for x in unknown[:5])
        raise DataError(
            f"{label}: none of the {len(unknown):,} users is known to the model (for example "
            f"{shown}); use the raw user ids of the dataset it was trained on"
        )
    return ItemRatings(
        np.fromiter(last, dtype=np.int64),
        np.fromiter(last.values(), dtype=np.float64),
        tuple(unknown),
        duplicates,
    )


def _number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
