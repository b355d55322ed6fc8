"""The model check: a fitted model against the fold-in baselines on its own validation users.

After a training, the model and the plain rating baselines (`CHECK_BASELINES`, fitted on the
same training users and tuned on the same validation users) are scored on the validation users
(never test users) at a few support sizes k: each user's ratings are drawn into support and
query as the learners' validation episodes are (seeded, query 10, several draws averaged per
user). Per k, each method's per-user MAE gets a bootstrap 95% interval, and the model's paired
per-user difference from each baseline (model − baseline; < 0: the model is better) gets a
paired bootstrap 95% interval (`metrics.paired_bootstrap_ci`).

The verdict: `ModelCheck.worse` when some baseline is significantly better than the model at
some k (the interval of model − baseline lies above 0); the app then does not make the model
active by itself and offers the baseline instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from metarec_core.data.dataset import RatingsDataset
from metarec_core.evaluation import metrics
from metarec_core.methods.base import Recommender
from metarec_core.protocol.splits import DEFAULT_MAX_VAL_USERS, capped_users
from metarec_core.protocol.tasks import make_tasks

__all__ = [
    "CHECK_BASELINES",
    "CHECK_KS",
    "CheckConfig",
    "CheckDiff",
    "CheckRow",
    "ModelCheck",
    "fit_check_baselines",
    "run_model_check",
]

# The fold-in baselines a trained model must not lose to (their level versions decide like
# the learners' ordinal median: the MAE-optimal point).
CHECK_BASELINES = ("user_bias", "mf_foldin", "user_bias_levels", "mf_foldin_levels")
CHECK_KS = (1, 3, 5, 10)
MODEL = "model"  # the checked model's name in `ModelCheck.rows`
# Scores held at once while scoring (users x items): bounds memory on a large catalogue.
SCORE_CELLS = 2_000_000


@dataclass(frozen=True)
class CheckConfig:
    """How the model check draws its episodes and intervals (every random step seeded)."""

    ks: tuple[int, ...] = CHECK_KS  # support sizes
    query: int = 10  # query ratings per user, as in the learners' validation episodes
    repeats: int = 3  # seeded support/query draws per user, averaged per user
    seed: int = 0  # the draws (as `LearnerConfig.seed` + 7919 x draw) and the bootstrap
    baseline_seed: int = 0  # the baselines' fits (the playground fits its baselines with 0)
    n_boot: int = 1000
    baselines: tuple[str, ...] = CHECK_BASELINES
    # Fewer check users than this at a k give no verdict there: a bootstrap over 2 or 3 users
    # calls any difference significant.
    min_users: int = 5
    # Most validation users checked (a sample seeded by `seed`, `splits.capped_users`: those a
    # learner of the same seed and cap validated on); the baselines are tuned on them too.
    # None: all. It bounds the check's cost on many users.
    max_users: int | None = DEFAULT_MAX_VAL_USERS

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 0:
            raise ValueError(f"ks must be support sizes >= 0, got {self.ks}")
        if min(self.query, self.repeats, self.n_boot, self.min_users) < 1:
            raise ValueError("query, repeats, n_boot and min_users must be at least 1")
        if not self.baselines:
            raise ValueError("the check needs at least one baseline")
        if self.max_users is not None and self.max_users < 1:
            raise ValueError(f"max_users must be >= 1 or None, got {self.max_users}")


@dataclass(frozen=True)
class CheckRow:
    """One method's MAE at one k on the check users, with its bootstrap 95% interval."""

    method: str  # `MODEL` or a baseline's registry name
    k: int
    mae: float
    ci95: tuple[float, float]
    users: int


@dataclass(frozen=True)
class CheckDiff:
    """Model − baseline per-user MAE at one k (< 0: the model is better), paired bootstrap CI."""

    baseline: str
    k: int
    diff: float
    ci95: tuple[float, float]
    users: int

    @property
    def worse(self) -> bool:
        """The model is significantly worse than the baseline here (interval above 0)."""
        return self.ci95[0] > 0

    @property
    def better(self) -> bool:
        """The model is significantly better than the baseline here (interval below 0)."""
        return self.ci95[1] < 0


@dataclass(frozen=True)
class ModelCheck:
    """The model check's result: MAE per (method, k), paired differences per (baseline, k)."""

    rows: tuple[CheckRow, ...]
    diffs: tuple[CheckDiff, ...]
    users: int  # validation users with enough ratings for the smallest k
    ks: tuple[int, ...]
    baselines: tuple[str, ...]
    baseline_seed: int = 0  # `fit_check_baselines(seed=...)` refits the very same baselines
    min_users: int = 5  # a difference on fewer check users is no verdict (`CheckConfig`)

    def mae(self, method: str, k: int) -> float:
        """`method`'s MAE at `k` (`MODEL` for the model); KeyError if it was not scored."""
        for r in self.rows:
            if r.method == method and r.k == k:
                return r.mae
        raise KeyError((method, k))

    def mean_mae(self, method: str) -> float:
        """`method`'s MAE averaged over the scored k."""
        return float(np.mean([r.mae for r in self.rows if r.method == method]))

    @property
    def best(self) -> str:
        """The baseline with the lowest MAE averaged over k."""
        return min(self.baselines, key=self.mean_mae)

    def counts(self, d: CheckDiff) -> bool:
        """Whether `d` is on enough check users to count towards a verdict."""
        return d.users >= self.min_users

    def worse_than(self, baseline: str) -> tuple[int, ...]:
        """The k at which `baseline` is significantly better than the model."""
        return tuple(
            d.k for d in self.diffs if d.baseline == baseline and d.worse and self.counts(d)
        )

    def better_than(self, baseline: str) -> tuple[int, ...]:
        """The k at which the model is significantly better than `baseline`."""
        return tuple(
            d.k for d in self.diffs if d.baseline == baseline and d.better and self.counts(d)
        )

    @property
    def decided(self) -> bool:
        """Whether some k has enough check users for a verdict (`min_users`)."""
        return any(self.counts(d) for d in self.diffs)

    @property
    def worse(self) -> bool:
        """Some baseline is significantly better than the model at some k."""
        return any(self.worse_than(b) for b in self.baselines)

    @property
    def better(self) -> bool:
        """Never significantly worse, and significantly better than the best baseline at some k."""
        return not self.worse and bool(self.better_than(self.best))

    @property
    def winner(self) -> str | None:
        """The baseline to use instead of the model: of those significantly better at some k,
        the one better at the most k (then the lowest mean MAE); None when the model is not
        worse."""
        beats = [b for b in self.baselines if self.worse_than(b)]
        if not beats:
            return None
        return min(beats, key=lambda b: (-len(self.worse_than(b)), self.mean_mae(b)))

    def describe(self, name: Callable[[str], str] = str) -> str:
        """One plain sentence: which baseline beats the model where, or that none does
        (baselines named by `name`, e.g. the registry's display names; default: as registered)."""
        head = f"On your {self.users:,} check users, "
        if self.worse:
            b = self.winner
            assert b is not None
            ks = self.worse_than(b)
            pair = _pair(_mean(self, b, ks), _mean(self, MODEL, ks))
            others = [o for o in self.baselines if o != b and self.worse_than(o)]
            verb = "is" if len(others) == 1 else "are"
            also = (
                f" {_join([name(o) for o in others])} {verb} better at some k too."
                if others
                else ""
            )
            return f"{head}{name(b)} is better than this model at {_ks(ks)} (MAE {pair}).{also}"
        b = self.best
        if not self.decided:
            pair = _pair(self.mean_mae(MODEL), self.mean_mae(b))
            return (
                f"{head}too few for a verdict (it takes {self.min_users}): this model's MAE "
                f"against the best baseline's, {name(b)}, is {pair} over {_ks(self.ks)}."
            )
        if self.better:
            ks = self.better_than(b)
            pair = _pair(_mean(self, MODEL, ks), _mean(self, b, ks))
            return (
                f"{head}this model is better than the best baseline, {name(b)}, at {_ks(ks)} "
                f"(MAE {pair}), and no baseline is better than it at any k."
            )
        pair = _pair(self.mean_mae(MODEL), self.mean_mae(b))
        return (
            f"{head}this model is about as good as the best baseline, {name(b)} (MAE {pair} over "
            f"{_ks(self.ks)}): no baseline is significantly better than it at any k."
        )

    def to_text(self) -> str:
        """The check as a plain-text table (k x method MAE, then model − baseline with CIs)."""
        methods = (MODEL, *self.baselines)
        width = max(len(m) for m in methods) + 2
        lines = [f"model check on {self.users:,} validation users: MAE by support size k"]
        lines.append("k".rjust(4) + "".join(m.rjust(width) for m in methods))
        for k in self.ks:
            cells = "".join(_cell(self, m, k).rjust(width) for m in methods)
            lines.append(f"{k:>4}{cells}")
        lines.append("model - baseline (paired per-user MAE difference, bootstrap 95% CI):")
        for d in self.diffs:
            flag = (
                "" if not self.counts(d) else " worse" if d.worse else " better" if d.better else ""
            )
            lines.append(
                f"  {d.baseline:<{width}} k={d.k:<3} {d.diff:+.4f} "
                f"[{d.ci95[0]:+.4f}, {d.ci95[1]:+.4f}]{flag}"
            )
        lines.append(self.describe())
        return "\n".join(lines)


def _cell(check: ModelCheck, method: str, k: int) -> str:
    try:
        return f"{check.mae(method, k):.4f}"
    except KeyError:
        return "-"


def _mean(check: ModelCheck, method: str, ks: Sequence[int]) -> float:
    return float(np.mean([check.mae(method, k) for k in ks]))


def _pair(a: float, b: float) -> str:
    """ "a vs b" with 2 decimals, or 4 where 2 would show a tie."""
    d = 2 if f"{a:.2f}" != f"{b:.2f}" else 4
    return f"{a:.{d}f} vs {b:.{d}f}"


def _join(words: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _ks(ks: Sequence[int]) -> str:
    """ "k = 1", "k = 1 and 3", "k = 1, 3 and 5"."""
    return "k = " + _join([str(k) for k in ks])


# ------------------------------------------------------------------------------- running it
class _Stopped(Exception):
    """`should_stop()` said so."""


def fit_check_baselines(
    data: RatingsDataset,
    train_users: np.ndarray,
    val_users: np.ndarray | None,
    names: Sequence[str] = CHECK_BASELINES,
    *,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Recommender]:
    """The baselines `names` (registry names) fitted on `train_users`, tuned on `val_users`."""
    from metarec_core.methods.registry import make_method

    val = None if val_users is None or len(val_users) == 0 else val_users
    out = {}
    for name in names:
        _poll(should_stop)
        out[name] = make_method(name, seed=seed).fit(
            data, train_users, val, should_stop=should_stop
        )
    return out


def _poll(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise _Stopped


def _per_user_mae(
    method: Recommender,
    supports: Sequence[tuple[np.ndarray, np.ndarray]],
    queries: Sequence[tuple[np.ndarray, np.ndarray]],
    should_stop: Callable[[], bool] | None,
) -> np.ndarray:
    """Each user's query MAE after adapting to their support (scored in chunks)."""
    n_items = method.n_items
    chunk = max(1, SCORE_CELLS // max(1, n_items))
    out = np.empty(len(supports))
    for s in range(0, len(supports), chunk):
        _poll(should_stop)
        e = min(len(supports), s + chunk)
        scores = np.asarray(method.score_many(list(supports[s:e])), dtype=np.float64)
        for b, (items, ratings) in enumerate(queries[s:e]):
            pred = scores[b, np.asarray(items, dtype=np.int64)]
            out[s + b] = float(np.abs(pred - np.asarray(ratings, dtype=np.float64)).mean())
    if not np.isfinite(out).all():
        raise ValueError(f"{type(method).__name__} produced non-finite predictions in the check")
    return out


def _episodes(
    data: RatingsDataset, val_users: np.ndarray, cfg: CheckConfig
) -> tuple[int, dict[int, list[tuple[list, list]]]]:
    """(check users, {k: [(supports, queries) per draw]}): per k, the users with at least k
    support ratings, in the same order in every draw."""
    draws = [
        make_tasks(data, val_users, query=cfg.query, min_support=1, seed=cfg.seed + 7919 * r)[0]
        for r in range(cfg.repeats)
    ]
    by_k: dict[int, list[tuple[list, list]]] = {}
    for k in cfg.ks:
        runs = []
        for tasks in draws:
            ok = [t for t in tasks if t.n_available >= max(k, 1)]
            if ok:
                runs.append(([t.support(k) for t in ok], [t.query for t in ok]))
        if runs:
            by_k[k] = runs
    return len(draws[0]), by_k


def run_model_check(
    model: Recommender,
    data: RatingsDataset,
    train_users: np.ndarray,
    val_users: np.ndarray | None,
    *,
    config: CheckConfig | None = None,
    baselines: Mapping[str, Recommender] | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> ModelCheck | None:
    """Check the fitted `model` against the baselines on `val_users` (see the module's text).

    At most `config.max_users` of `val_users` are checked (seeded). `baselines`: already fitted
    ones by name (the others of `config.baselines` are fitted on `train_users`, tuned on the
    checked users, seeded by `config.baseline_seed`). None when there is nothing to check on
    (no validation user with enough ratings, or a model that does not predict ratings) or once
    `should_stop()` says so. `progress(fraction, message)` is told
    after each method.
    """
    cfg = config or CheckConfig()
    if val_users is None or len(val_users) == 0 or not model.capabilities.predicts_ratings:
        return None
    val_users = capped_users(np.asarray(val_users, dtype=np.int64), cfg.max_users, cfg.seed)
    users, by_k = _episodes(data, val_users, cfg)
    if not by_k:
        return None
    given = dict(baselines or {})
    names = (MODEL, *cfg.baselines)
    per_user: dict[tuple[str, int], np.ndarray] = {}
    try:
        for i, name in enumerate(names):
            if name == MODEL:
                method = model
            elif name in given:
                method = given[name]
            else:
                method = fit_check_baselines(
                    data, train_users, val_users, [name], seed=cfg.baseline_seed,
                    should_stop=should_stop,
                )[name]  # fmt: skip
            for k, runs in by_k.items():
                maes = [_per_user_mae(method, s, q, should_stop) for s, q in runs]
                per_user[(name, k)] = np.mean(maes, axis=0)  # one value per user: its draws' mean
            if progress is not None:
                progress((i + 1) / len(names), f"{name} scored")
    except _Stopped:
        return None
    ks = tuple(by_k)
    rows = []
    for name in names:
        for k in ks:
            v = per_user[(name, k)]
            lo, hi = metrics.bootstrap_ci(v, n_boot=cfg.n_boot, seed=cfg.seed)
            rows.append(CheckRow(name, k, float(v.mean()), (lo, hi), len(v)))
    diffs = []
    for name in cfg.baselines:
        for k in ks:
            d, lo, hi = metrics.paired_bootstrap_ci(
                per_user[(MODEL, k)], per_user[(name, k)], n_boot=cfg.n_boot, seed=cfg.seed
            )
            diffs.append(CheckDiff(name, k, d, (lo, hi), len(per_user[(MODEL, k)])))
    return ModelCheck(
        tuple(rows), tuple(diffs), users, ks, cfg.baselines, cfg.baseline_seed, cfg.min_users
    )
