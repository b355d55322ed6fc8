"""Elicitation: which item to ask a new user to rate next, and why (plain words, with numbers).

Every strategy shares one interface (`Strategy.propose(answers, allowed)` → `Proposal`: the
item, its score, its reason) and is found by name in the registry (`available_strategies`,
`make_strategy`, `register`). A strategy is built on an `ElicitContext`: the item statistics
of the *training* users (`ItemStats`), the fitted model (for the model-based ones) and a seed.

- ``random``: uniform among the items that may be asked (seeded per user and question).
- ``popularity``: the most rated item (Rashid et al., IUI 2002).
- ``entropy``: the highest Shannon entropy of the item's rating distribution (divisive).
- ``logpop_entropy``: log(1 + number of ratings) × entropy (Rashid et al.'s balance).
- ``variance``: the largest variance of the item's ratings.
- ``melu_evidence``: MeLU's evidence candidates (``evidence_candidate.py``): the item's average
  gradient norm of the squared error with respect to the adapted parameters at the model's
  start (the new user's state before any rating), over its training ratings, divided by the
  largest such average, times its number of ratings divided by the largest. MeLU divides each
  loss by its own value first, which makes the gradient 2∇r̂ / (r̂ − r), unbounded when a
  prediction is right; the squared error's own gradient is used here. Without a state to
  differentiate (`views.state_view` is None) the gradient of a scalar user offset stands in:
  the average |prior prediction − rating|.
- ``shrinkage`` (adaptive, model-based): the item whose answer is expected to shrink the
  uncertainty of the new user's predicted ratings most, given the answers so far. Under the
  Laplace approximation of the state's posterior at the adapted state (`views.StateView`:
  covariance σ² A, A = H⁻¹), an answer to item j (Jacobian row x_j) removes
  σ² ‖J A x_j‖² / (1 + x_jᵀ A x_j) from the summed predictive variance of the catalogue's items
  rated in training (J their rows); the score is that share of the current sum
  σ² tr(J A Jᵀ), times the probability that the user knows the item (its share of training
  users who rated it): an unknown item teaches nothing. Without a state view it asks the most
  known item (popularity).
- ``likely_known`` (adaptive): the item this user is most likely to know given the items they
  said they know and do not know (`known.CoRating`: naive Bayes over the training users'
  co-rating); before any answer, the most rated item.
- ``shrinkage_known`` (adaptive, model-based): ``shrinkage``'s share of variance removed times
  that personal chance of knowing the item, instead of everyone's.

Every strategy may be told how likely a user is to know an item (`ItemStats.known`, or
`ElicitContext.known_now` from the user's answers); the classic ones (entropy, variance) ignore
it, as published; `logpop_entropy`, `melu_evidence` and `shrinkage` use everyone's chance,
`likely_known` and `shrinkage_known` the personal one. Ties go to the lower item index.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

import numpy as np

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.elicitation.known import CoRating
from metarec_core.elicitation.views import StateView, state_view
from metarec_core.methods.base import Recommender
from metarec_core.protocol.splits import seeded_rng

__all__ = [
    "Answers",
    "ElicitContext",
    "ItemStats",
    "Proposal",
    "Strategy",
    "available_strategies",
    "check_names",
    "make_strategy",
    "register",
    "strategy_class",
]

SALT_RANDOM = 23  # the random strategy's draws (protocol/splits.py has the other salts)
HIST_BINS = 5  # bins of a continuous scale's rating distribution (entropy)


def _band_label(levels: np.ndarray) -> str:
    """'4 or 5', '5', '4–5.5' for the rating levels of a band."""
    vals = [f"{v:g}" for v in levels]
    if len(vals) == 1:
        return vals[0]
    if len(vals) == 2:
        return f"{vals[0]} or {vals[1]}"
    return f"{vals[0]}–{vals[-1]}"


def _pct(x: float) -> int:
    return int(round(100 * x))


@dataclass(frozen=True, eq=False)
class ItemStats:
    """Per-item statistics of a set of (training) users' ratings.

    ``levels`` are the scale's rating levels (a continuous scale: HIST_BINS equal bins);
    ``hist`` (n_items, levels) counts; ``high``/``low`` mark the levels in the top and bottom
    quarter of the scale (1–5: 4 or 5, 1 or 2).
    """

    n_users: int
    count: np.ndarray  # (n_items,) ratings per item
    mean: np.ndarray  # (n_items,) NaN without ratings
    var: np.ndarray  # (n_items,) population variance, 0 without ratings
    hist: np.ndarray  # (n_items, n_levels)
    levels: np.ndarray  # (n_levels,) rating value of each level (bin centre)
    high: np.ndarray  # (n_levels,) bool
    low: np.ndarray  # (n_levels,) bool

    @classmethod
    def from_ratings(cls, data: RatingsDataset, users: np.ndarray | None = None) -> ItemStats:
        """Statistics of the ratings of `users` (None: every user)."""
        keep = np.ones(data.n_ratings, bool) if users is None else np.isin(data.user, users)
        item, r = data.item[keep], data.rating[keep].astype(np.float64)
        n = data.n_items
        n_users = len(np.unique(data.user[keep]))
        count = np.bincount(item, minlength=n)
        total = np.bincount(item, weights=r, minlength=n)
        sq = np.bincount(item, weights=r * r, minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
            var = np.where(count > 0, sq / np.maximum(count, 1) - np.nan_to_num(mean) ** 2, 0.0)
        levels, idx = _levels(data.scale, r)
        hist = np.zeros((n, len(levels)))
        np.add.at(hist, (item, idx), 1.0)
        span = data.scale.high - data.scale.low
        high = levels >= data.scale.high - 0.25 * span - 1e-9
        low = levels <= data.scale.low + 0.25 * span + 1e-9
        return cls(n_users, count, mean, np.maximum(var, 0.0), hist, levels, high, low)

    @property
    def known(self) -> np.ndarray:
        """(n_items,) the chance a user knows each item: the share of users who rated it."""
        return self.count / max(1, self.n_users)

    @property
    def entropy(self) -> np.ndarray:
        """(n_items,) Shannon entropy (bits) of each item's rating distribution."""
        p = self.hist / np.maximum(self.hist.sum(1, keepdims=True), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0).sum(1)

    def share(self, item: int, band: str) -> float:
        """Share of the item's ratings in the ``"high"`` or ``"low"`` band (0 without ratings)."""
        mask = self.high if band == "high" else self.low
        c = self.hist[item].sum()
        return float(self.hist[item, mask].sum() / c) if c else 0.0

    def spread(self, item: int) -> str:
        """'61% of them rated it 4 or 5, 22% rated it 1 or 2'."""
        return (
            f"{_pct(self.share(item, 'high'))}% of them rated it {_band_label(self.levels[self.high])}, "
            f"{_pct(self.share(item, 'low'))}% rated it {_band_label(self.levels[self.low])}"
        )

    def raters(self, item: int) -> str:
        """'583 of 943 people (62%)'."""
        c = int(self.count[item])
        return f"{c} of {self.n_users} people ({_pct(c / max(1, self.n_users))}%)"


def _levels(scale: RatingScale, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(level values, each rating's level index): the scale's steps, or HIST_BINS bins."""
    if scale.step > 0:
        n = int(round((scale.high - scale.low) / scale.step)) + 1
        if 2 <= n <= 21:
            levels = scale.low + scale.step * np.arange(n)
            idx = np.clip(np.round((r - scale.low) / scale.step), 0, n - 1).astype(np.int64)
            return levels, idx
    edges = np.linspace(scale.low, scale.high, HIST_BINS + 1)
    idx = np.clip(np.searchsorted(edges, r, side="right") - 1, 0, HIST_BINS - 1)
    return (edges[:-1] + edges[1:]) / 2, idx.astype(np.int64)


@dataclass(frozen=True)
class Answers:
    """What a new user was asked so far, in order; a rating of None: "haven't seen it".

    ``key`` tells users apart in seeded draws (the random strategy); the app uses 0.
    """

    items: tuple[int, ...] = ()
    ratings: tuple[float | None, ...] = ()
    key: int = 0

    def __post_init__(self) -> None:
        if len(self.items) != len(self.ratings):
            raise ValueError(f"{len(self.items)} items asked but {len(self.ratings)} answers")

    def add(self, item: int, rating: float | None) -> Answers:
        """These answers and one more (None: the user has not seen the item)."""
        r = None if rating is None else float(rating)
        return Answers((*self.items, int(item)), (*self.ratings, r), self.key)

    def rated(self) -> tuple[np.ndarray, np.ndarray]:
        """(items, ratings) of the answered questions: the new user's support."""
        pairs = [(i, r) for i, r in zip(self.items, self.ratings, strict=True) if r is not None]
        items = np.array([i for i, _ in pairs], dtype=np.int64)
        return items, np.array([r for _, r in pairs], dtype=np.float64)

    @property
    def n_asked(self) -> int:
        return len(self.items)

    @property
    def n_answered(self) -> int:
        return sum(r is not None for r in self.ratings)


@dataclass(frozen=True)
class Proposal:
    """The next question: the item, the strategy's score for it, and why, in plain words."""

    item: int
    score: float
    reason: str
    strategy: str


@dataclass(frozen=True, eq=False)
class ElicitContext:
    """What strategies read: the training users' item statistics, the fitted model, a seed."""

    stats: ItemStats
    method: Recommender | None = None
    seed: int = 0
    view: StateView | None = field(default=None)
    # makes the co-rating counts of the personal chance of knowing an item (`known.CoRating`,
    # seconds on a million ratings: built on first use, once); None: strategies that use it
    # fall back to `stats.known`, the same chance for everyone
    corating_source: Callable[[], CoRating] | None = field(default=None)

    @cached_property
    def corating(self) -> CoRating | None:
        """The co-rating counts, made on first use (None without a source)."""
        return None if self.corating_source is None else self.corating_source()

    @classmethod
    def build(
        cls,
        data: RatingsDataset,
        method: Recommender | None = None,
        train_users: np.ndarray | None = None,
        seed: int = 0,
    ) -> ElicitContext:
        """The context of `method` fitted on `train_users` of `data` (None: every user)."""
        return cls(
            ItemStats.from_ratings(data, train_users),
            method,
            seed,
            state_view(method),
            lambda: CoRating.from_ratings(data, train_users),
        )

    def known_now(self, answers: Answers) -> np.ndarray:
        """(n_items,) the chance this user knows each item given their answers so far (the
        same for everyone without `corating`)."""
        if self.corating is None:
            return self.stats.known
        unseen = [i for i, r in zip(answers.items, answers.ratings, strict=True) if r is None]
        return self.corating.probability(answers.rated()[0], np.array(unseen, dtype=np.int64))

    @property
    def n_items(self) -> int:
        return len(self.stats.count)


class Strategy(ABC):
    """Proposes the next item to ask among the allowed ones, with a reason."""

    name: ClassVar[str]
    display: ClassVar[str]
    description: ClassVar[str]
    adaptive: ClassVar[bool] = False  # reads the answers so far (not just which were asked)

    def __init__(self, ctx: ElicitContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def rank(self, answers: Answers, candidates: np.ndarray) -> np.ndarray:
        """Scores of `candidates` (higher: ask first)."""

    @abstractmethod
    def explain(self, item: int, score: float, answers: Answers) -> str:
        """The plain-words reason for asking `item` (its numbers from the statistics)."""

    def allowed(self, answers: Answers, exclude: np.ndarray | None = None) -> np.ndarray:
        """(n_items,) bool: items not asked yet and not in `exclude`."""
        mask = np.ones(self.ctx.n_items, dtype=bool)
        if answers.items:
            mask[np.asarray(answers.items, np.int64)] = False
        if exclude is not None and len(exclude):
            mask[np.asarray(exclude, np.int64)] = False
        return mask

    def propose(self, answers: Answers, allowed: np.ndarray | None = None) -> Proposal | None:
        """The next item among `allowed` ((n_items,) bool; default: every item) that was not
        asked yet, or None when none is left."""
        mask = self.allowed(answers) if allowed is None else allowed & self.allowed(answers)
        cands = np.flatnonzero(mask)
        if len(cands) == 0:
            return None
        scores = np.asarray(self.rank(answers, cands), dtype=np.float64)
        j = int(np.argmax(scores))  # first maximum: the lowest item index among ties
        item = int(cands[j])
        return Proposal(
            item, float(scores[j]), self.explain(item, float(scores[j]), answers), self.name
        )


class _Static(Strategy):
    """A strategy with one fixed score per item (computed once from the context)."""

    def __init__(self, ctx: ElicitContext) -> None:
        super().__init__(ctx)
        self.item_scores = np.asarray(self._item_scores(), dtype=np.float64)

    @abstractmethod
    def _item_scores(self) -> np.ndarray: ...

    def rank(self, answers: Answers, candidates: np.ndarray) -> np.ndarray:
        return self.item_scores[candidates]


class RandomStrategy(Strategy):
    name = "random"
    display = "Random"
    description = "Any item the user may be asked, at random (seeded)."

    def rank(self, answers: Answers, candidates: np.ndarray) -> np.ndarray:
        rng = seeded_rng(self.ctx.seed, SALT_RANDOM, int(answers.key), answers.n_asked)
        return rng.random(len(candidates))

    def explain(self, item: int, score: float, answers: Answers) -> str:
        n = len(np.flatnonzero(self.allowed(answers)))
        return f"picked at random among the {n} items not asked yet"


class Popularity(_Static):
    name = "popularity"
    display = "Most rated"
    description = "The item most people have rated: the one a newcomer most likely knows."

    def _item_scores(self) -> np.ndarray:
        return self.ctx.stats.count.astype(np.float64)

    def explain(self, item: int, score: float, answers: Answers) -> str:
        return f"popular: rated by {self.ctx.stats.raters(item)}"


class Entropy(_Static):
    name = "entropy"
    display = "Most divisive"
    description = "The item whose ratings are spread most evenly over the scale (entropy)."

    def _item_scores(self) -> np.ndarray:
        return self.ctx.stats.entropy

    def explain(self, item: int, score: float, answers: Answers) -> str:
        st = self.ctx.stats
        top = math.log2(len(st.levels))
        return (
            f"divisive: its ratings spread over the scale (entropy {score:.2f} of at most "
            f"{top:.2f} bits); {int(st.count[item])} people rated it, {st.spread(item)}"
        )


class LogPopEntropy(_Static):
    name = "logpop_entropy"
    display = "Popular and divisive"
    description = "log(number of ratings) × entropy: known to many, and rated every which way."

    def _item_scores(self) -> np.ndarray:
        st = self.ctx.stats
        return np.log1p(st.count) * st.entropy

    def explain(self, item: int, score: float, answers: Answers) -> str:
        st = self.ctx.stats
        return f"popular and divisive: rated by {st.raters(item)}; {st.spread(item)}"


class Variance(_Static):
    name = "variance"
    display = "Most disagreed on"
    description = "The item whose ratings vary most (variance)."

    def _item_scores(self) -> np.ndarray:
        return self.ctx.stats.var

    def explain(self, item: int, score: float, answers: Answers) -> str:
        st = self.ctx.stats
        return (
            f"people disagree on it: its ratings' standard deviation is {math.sqrt(score):.2f} "
            f"over {int(st.count[item])} ratings; {st.spread(item)}"
        )


class MeluEvidence(_Static):
    name = "melu_evidence"
    display = "Moves the model most (MeLU)"
    description = (
        "MeLU's evidence candidates: how far the item's ratings push the model's adapted "
        "parameters (normalised gradient norm) × how many rated it."
    )

    def _item_scores(self) -> np.ndarray:
        ctx, st = self.ctx, self.ctx.stats
        n = ctx.n_items
        prior = None
        if ctx.method is not None:
            prior = ctx.method.adapt(np.zeros(0, np.int64), np.zeros(0)).display_ratings(
                np.arange(n)
            )
        norm = np.ones(n)
        if ctx.view is not None:
            s0 = ctx.view.state(np.zeros(0, np.int64), np.zeros(0))
            prior, J = ctx.view.linearise(s0, np.arange(n))
            norm = np.linalg.norm(J, axis=1)
        if prior is None:
            prior = np.full(n, float(np.nanmean(st.mean)) if st.count.any() else 0.0)
        # mean over the item's ratings of |prior − r|: from the level histogram
        dev = np.abs(prior[:, None] - st.levels[None, :])
        with np.errstate(invalid="ignore", divide="ignore"):
            mad = (st.hist * dev).sum(1) / np.maximum(st.hist.sum(1), 1.0)
        grad = 2.0 * mad * norm
        self.gradient = grad / grad.max() if grad.max() > 0 else grad
        self.popular = st.count / max(1, st.count.max())
        self.fallback = ctx.view is None
        return self.gradient * self.popular

    def explain(self, item: int, score: float, answers: Answers) -> str:
        what = "a user offset" if self.fallback else "your taste profile"
        return (
            f"moves the model most: its ratings push {what} {_pct(self.gradient[item])}% as hard "
            f"as the strongest item's, and it is rated by {self.ctx.stats.raters(item)}"
        )


class Shrinkage(Strategy):
    name = "shrinkage"
    display = "Most informative now"
    description = (
        "The item whose answer is expected to shrink the model's uncertainty about you most, "
        "given your answers so far (learned prior, Laplace approximation), weighted by the "
        "chance you know it."
    )
    adaptive = True

    def __init__(self, ctx: ElicitContext) -> None:
        super().__init__(ctx)
        self.known = ctx.stats.known
        self.targets = np.flatnonzero(ctx.stats.count > 0)  # the items whose variance counts
        self.last_cut: dict[int, float] = {}

    def known_of(self, answers: Answers) -> np.ndarray:
        """(n_items,) the chance the user knows each item: its share of training users."""
        return self.known

    def rank(self, answers: Answers, candidates: np.ndarray) -> np.ndarray:
        known = self.known_of(answers)[candidates]
        self.last_cut = {}
        if self.ctx.view is None:  # nothing to linearise: the most known item
            return known
        cut = self._cut(answers, candidates)
        scores = cut * known
        if len(scores):
            best = int(np.argmax(scores))
            self.last_cut = {int(candidates[best]): float(cut[best])}
        return scores

    def _cut(self, answers: Answers, candidates: np.ndarray) -> np.ndarray:
        """(C,) the share of the summed predictive variance an answer to each candidate
        removes (the module doc's formula)."""
        view = self.ctx.view
        items, ratings = answers.rated()
        s = view.state(items, ratings)
        _, J = view.linearise(s, np.arange(self.ctx.n_items))
        H = J[items].T @ J[items] + np.diag(view.prior_precision)
        A = np.linalg.inv(H)
        A = (A + A.T) / 2
        Jt = J[self.targets] if len(self.targets) else J
        G = Jt.T @ Jt  # (d, d)
        total = float(np.trace(G @ A))
        Xc = J[candidates]  # (C, d)
        V = Xc @ A  # rows: A x_j
        gain = np.einsum("cd,de,ce->c", V, G, V) / (1.0 + np.einsum("cd,cd->c", V, Xc))
        return gain / total if total > 0 else np.zeros(len(candidates))

    def explain(self, item: int, score: float, answers: Answers) -> str:
        st = self.ctx.stats
        if self.ctx.view is None:
            return (
                f"the most known item (this model has no taste profile to measure): rated by "
                f"{st.raters(item)}"
            )
        cut = self.last_cut.get(item, 0.0)
        return (
            f"most informative now: if you know it, your answer is expected to cut the "
            f"uncertainty of your predicted ratings by {100 * cut:.1f}%; rated by {st.raters(item)}"
        )


class _KnowsTheUser:
    """Mixin: the strategy weighs items by this user's own chance of knowing them
    (`ElicitContext.known_now`), whose counts are made when the strategy is built, not at a
    question (a second on a million ratings)."""

    ctx: ElicitContext

    def __init__(self, ctx: ElicitContext) -> None:
        super().__init__(ctx)  # type: ignore[call-arg]
        _ = ctx.corating

    def known_of(self, answers: Answers) -> np.ndarray:
        return self.ctx.known_now(answers)


class ShrinkageKnown(_KnowsTheUser, Shrinkage):
    name = "shrinkage_known"
    display = "Most informative, likely known to you"
    description = (
        "As 'Most informative now', weighted by the chance that you in particular know the "
        "item, from the items you said you know and do not know (co-rating in training)."
    )

    def explain(self, item: int, score: float, answers: Answers) -> str:
        base = super().explain(item, score, answers)
        cut = self.last_cut.get(item)
        if self.ctx.view is None or not answers.n_asked or not cut:
            return base
        # rank's score is cut x chance: the chance without a second pass over the answers
        return f"{base}; from your answers, {_pct(score / cut)}% likely that you know it"


class LikelyKnown(_KnowsTheUser, Strategy):
    name = "likely_known"
    display = "Likely known to you"
    description = (
        "The item you are most likely to have seen, given the items you said you know and do "
        "not know (co-rating in training); before any answer, the most rated item."
    )
    adaptive = True

    def rank(self, answers: Answers, candidates: np.ndarray) -> np.ndarray:
        return self.known_of(answers)[candidates]

    def explain(self, item: int, score: float, answers: Answers) -> str:
        raters = self.ctx.stats.raters(item)
        if not answers.n_asked:
            return f"the item most people know: rated by {raters}"
        return (
            f"from your answers so far, {_pct(score)}% likely that you have seen it; "
            f"rated by {raters}"
        )


# ---------------------------------------------------------------------------------- registry
_REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Add a strategy class under its ``name`` (ValueError if the name is taken by another)."""
    other = _REGISTRY.get(cls.name)
    if other is not None and other is not cls:
        raise ValueError(f"an elicitation strategy named {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


for _cls in (
    RandomStrategy,
    Popularity,
    Entropy,
    LogPopEntropy,
    Variance,
    MeluEvidence,
    Shrinkage,
    ShrinkageKnown,
    LikelyKnown,
):
    register(_cls)


def available_strategies() -> tuple[str, ...]:
    """Every registered strategy's name, in registration order."""
    return tuple(_REGISTRY)


def strategy_class(name: str) -> type[Strategy]:
    """The class of strategy `name`; ValueError names the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown elicitation strategy {name!r}; expected one of {', '.join(_REGISTRY)}"
        ) from None


def make_strategy(name: str, ctx: ElicitContext) -> Strategy:
    """A strategy `name` on `ctx`."""
    return strategy_class(name)(ctx)


def check_names(names: Sequence[str]) -> tuple[str, ...]:
    """`names` as a tuple; ValueError for an unknown or repeated one, or none at all."""
    names = tuple(names)
    if not names:
        raise ValueError("no elicitation strategy given")
    for n in names:
        strategy_class(n)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"strategy listed more than once: {', '.join(dupes)}")
    return names
