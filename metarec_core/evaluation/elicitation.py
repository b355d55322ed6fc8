"""Offline evaluation of elicitation strategies: what to ask a new user first.

On the k-shot protocol's folds and test users (`protocol.splits.user_folds`,
`protocol.tasks.make_tasks` with min_support = ``questions``: the users `evaluate` scores at
k = ``questions``, the same query of ``query`` ratings each), every method is fitted once per
fold on the fold's training users (validation users for tuning), exactly as `runner` fits it;
then every strategy interviews every test user with that fitted model:

- a strategy may never ask about a query item (its rating is what is scored) nor ask twice;
- the user answers with their real rating when they rated the item outside the query;
  otherwise the answer is "haven't seen it". Two ways to count that (``unknown``):
  ``cost`` (the default, the honest one): the strategy proposes from the whole catalogue and an
  unrated item spends a question without a rating, as a newcomer who does not know a film
  spends a screen on it; ``skip``: the strategy proposes only among the items the user rated
  outside the query (the common offline simulation: every question is answered, which
  flatters strategies that pick obscure items, since a real newcomer rarely knows them);
- after each question the model adapts to the answered ratings (its public `score_many`) and is
  scored on the query: MAE, nDCG@5, recall@10 as `evaluation.metrics` defines them (recall's
  candidates: every item not in the answered support);
- per (method, unknown, strategy, number of questions t = 0..questions): the means over users
  (MAE with a bootstrap 95% CI), the share of questions answered, and paired differences
  against ``random`` and ``popularity`` on the same users (bootstrap 95% CI; negative MAE,
  positive nDCG/recall: the strategy is better).

Only the training users' ratings inform a strategy (its item statistics, the fitted model);
a test user's query ratings never reach a support (the tests check it).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metarec_core.data.dataset import RatingsDataset
from metarec_core.data.summary import DatasetSummary, summarize
from metarec_core.elicitation.strategies import (
    Answers,
    ElicitContext,
    check_names,
    make_strategy,
)
from metarec_core.evaluation import metrics
from metarec_core.evaluation.runner import (
    RECALL_K,
    VAL_FRACTION,
    EvaluationCancelled,
    _Progress,
)
from metarec_core.methods.base import Recommender
from metarec_core.methods.registry import available_methods, make_method
from metarec_core.protocol.splits import user_folds
from metarec_core.protocol.tasks import UserTask, make_tasks

__all__ = [
    "BASELINE_STRATEGIES",
    "DEFAULT_STRATEGIES",
    "UNKNOWN_MODES",
    "CurvePoint",
    "ElicitConfig",
    "ElicitDiff",
    "ElicitationReport",
    "interview",
    "run_elicitation",
]

UNKNOWN_MODES = ("cost", "skip")
BASELINE_STRATEGIES = ("random", "popularity")
DEFAULT_STRATEGIES = (
    "random",
    "popularity",
    "entropy",
    "logpop_entropy",
    "variance",
    "melu_evidence",
    "shrinkage",
    "shrinkage_known",
    "likely_known",
)
METRICS = ("mae", "ndcg_5", "recall_10")
NDCG_K = 5


@dataclass(frozen=True)
class ElicitConfig:
    """What to evaluate. ``unknown``: the ways to count "haven't seen it", the first is the
    default the text leads with; ``max_folds``: run only the first folds (a busy machine)."""

    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    methods: tuple[str, ...] = ("metasgd", "mf_foldin_levels")
    questions: int = 20
    unknown: tuple[str, ...] = ("cost",)
    query: int = 10
    folds: int = 5
    max_folds: int | None = None
    seed: int = 0
    device: str = "auto"
    n_boot: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategies", check_names(self.strategies))
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "unknown", tuple(self.unknown))
        known = available_methods()
        bad = [m for m in self.methods if m not in known]
        if not self.methods or bad:
            raise ValueError(
                f"unknown method {', '.join(map(repr, bad)) or '(none given)'}; expected one "
                f"of {', '.join(known)}"
            )
        if not self.unknown or any(u not in UNKNOWN_MODES for u in self.unknown):
            raise ValueError(f"unknown must be among {UNKNOWN_MODES}, got {self.unknown}")
        if len(set(self.unknown)) != len(self.unknown):
            raise ValueError(f"unknown lists a mode twice: {self.unknown}")
        if not 1 <= self.questions <= 100:
            raise ValueError(f"questions must be 1..100, got {self.questions}")
        if self.query < 1:
            raise ValueError(f"query must be at least 1, got {self.query}")
        if self.folds < 2:
            raise ValueError(f"folds must be at least 2, got {self.folds}")
        if self.max_folds is not None and not 1 <= self.max_folds <= self.folds:
            raise ValueError(f"max_folds must be 1..folds ({self.folds}), got {self.max_folds}")
        if self.n_boot < 100:
            raise ValueError(f"n_boot must be at least 100, got {self.n_boot}")


def _f(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


@dataclass(frozen=True)
class CurvePoint:
    """One strategy with one model after `questions` questions, averaged over users."""

    method: str
    unknown: str
    strategy: str
    questions: int
    users: int
    mae: float | None
    mae_ci95: tuple[float | None, float | None]
    ndcg_5: float | None
    recall_10: float | None
    answered: float  # share of the questions answered with a rating (1 when questions = 0)
    ratings: float  # ratings given, on average

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "mae_ci95": list(self.mae_ci95)}


@dataclass(frozen=True)
class ElicitDiff:
    """`strategy` − `vs` on the same users after `questions` questions, for one metric."""

    method: str
    unknown: str
    strategy: str
    vs: str
    questions: int
    metric: str
    diff: float | None
    ci95: tuple[float | None, float | None]
    users: int

    def _side(self) -> int:
        """The sign the CI shows for the difference: -1 below 0, +1 above, 0 when it holds 0
        (or is unknown), counted so that +1 favours the strategy (MAE: lower is better)."""
        lo, hi = self.ci95
        if lo is None or hi is None:
            return 0
        sign = -1 if hi < 0 else 1 if lo > 0 else 0
        return -sign if self.metric == "mae" else sign

    @property
    def better(self) -> bool:
        """The CI excludes 0 on the strategy's side (lower MAE, higher nDCG / recall)."""
        return self._side() == 1

    @property
    def worse(self) -> bool:
        return self._side() == -1

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ci95": list(self.ci95)}


@dataclass(frozen=True)
class ElicitationReport:
    """Curves of every (method, unknown, strategy) and their paired differences."""

    dataset: DatasetSummary
    config: ElicitConfig
    folds_run: int
    test_users: int
    left_out: int
    points: tuple[CurvePoint, ...]
    diffs: tuple[ElicitDiff, ...]
    seconds: float
    proposal_ms: dict[str, float] = field(default_factory=dict)  # mean time of one proposal

    def point(self, method: str, unknown: str, strategy: str, q: int) -> CurvePoint | None:
        for p in self.points:
            if (p.method, p.unknown, p.strategy, p.questions) == (method, unknown, strategy, q):
                return p
        return None

    def diff(
        self, method: str, unknown: str, strategy: str, vs: str, q: int, metric: str = "mae"
    ) -> ElicitDiff | None:
        for d in self.diffs:
            key = (d.method, d.unknown, d.strategy, d.vs, d.questions, d.metric)
            if key == (method, unknown, strategy, vs, q, metric):
                return d
        return None

    def to_dict(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "dataset": self.dataset.to_dict(),
            "protocol": {
                "name": "elicitation",
                "folds": cfg.folds,
                "folds_run": self.folds_run,
                "query": cfg.query,
                "questions": cfg.questions,
                "unknown": list(cfg.unknown),
                "default_unknown": "cost",
                "seed": cfg.seed,
                "val_fraction": VAL_FRACTION,
                "test_users": self.test_users,
                "left_out": self.left_out,
                "min_ratings": cfg.questions + cfg.query,
                "bootstrap_resamples": cfg.n_boot,
                "methods": list(cfg.methods),
                "strategies": list(cfg.strategies),
            },
            "points": [p.to_dict() for p in self.points],
            "paired": [d.to_dict() for d in self.diffs],
            "seconds": self.seconds,
            "proposal_ms": self.proposal_ms,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self, at: Sequence[int] = (1, 3, 5, 10, 20)) -> str:
        """The curves' table: per model and way of counting unknowns, each strategy's MAE
        after `at` questions (and nDCG@5, recall@10, answered share at the largest), then its
        MAE minus random's and popularity's with 95% CIs (* where the CI excludes 0)."""
        cfg = self.config
        at = [q for q in at if q <= cfg.questions] or [cfg.questions]
        last = at[-1]
        lines = [
            f"Elicitation on {self.dataset.source or 'the data'}: {self.test_users} test users "
            f"({self.folds_run} of {cfg.folds} folds; {self.left_out} users with fewer than "
            f"{cfg.questions + cfg.query} ratings left out), query {cfg.query}, up to "
            f"{cfg.questions} questions, seed {cfg.seed}.",
            "unknown=cost (default): a question about an item the user has not rated is spent "
            "without a rating; unknown=skip: only rated items are asked.",
        ]
        for m in cfg.methods:
            for u in cfg.unknown:
                lines += ["", f"{m}, unknown={u}"]
                head = f"{'strategy':<16}" + "".join(f"{'MAE@' + str(q):>9}" for q in at)
                head += f"{'nDCG5@' + str(last):>10}{'R10@' + str(last):>9}{'answered':>10}"
                lines.append(head)
                for s in cfg.strategies:
                    row = f"{s:<16}"
                    for q in at:
                        p = self.point(m, u, s, q)
                        row += f"{_num(p.mae if p else None):>9}"
                    p = self.point(m, u, s, last)
                    row += (
                        f"{_num(p.ndcg_5 if p else None):>10}{_num(p.recall_10 if p else None):>9}"
                    )
                    row += f"{(100 * p.answered if p else float('nan')):>9.0f}%"
                    lines.append(row)
                for vs in BASELINE_STRATEGIES:
                    if vs not in cfg.strategies:
                        continue
                    lines.append(f"  MAE − {vs} (95% CI; * excludes 0)")
                    for s in cfg.strategies:
                        if s == vs:
                            continue
                        cells = []
                        for q in at:
                            d = self.diff(m, u, s, vs, q)
                            cells.append(_diff_cell(d))
                        lines.append(f"  {s:<14}" + " ".join(f"{c:>24}" for c in cells))
        return "\n".join(lines)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _diff_cell(d: ElicitDiff | None) -> str:
    if d is None or d.diff is None or None in d.ci95:
        return "-"
    star = "*" if (d.better or d.worse) else " "
    return f"{d.diff:+.4f} [{d.ci95[0]:+.3f},{d.ci95[1]:+.3f}]{star}"


# ------------------------------------------------------------------------------ the interview


@dataclass(frozen=True, eq=False)
class _User:
    """A test user as the interview sees them: their ratings outside the query, the query."""

    key: int
    pool: dict[int, float]
    q_items: np.ndarray
    q_ratings: np.ndarray

    @classmethod
    def of(cls, task: UserTask) -> _User:
        items, ratings = task.support(None)
        pool = {int(i): float(r) for i, r in zip(items, ratings, strict=True)}
        qi, qr = task.query
        return cls(task.user, pool, np.asarray(qi, np.int64), np.asarray(qr, np.float64))


def interview(
    strategy, user: _User, questions: int, unknown: str, n_items: int
) -> tuple[Answers, list[float]]:
    """Ask `user` up to `questions` questions with `strategy`; (answers, seconds per proposal).

    ``unknown="cost"``: any item but the query's may be asked, an unrated one is answered
    "haven't seen it" and counts; ``"skip"``: only the user's rated items outside the query.
    """
    allowed = np.zeros(n_items, dtype=bool)
    if unknown == "cost":
        allowed[:] = True
        allowed[user.q_items] = False
    else:
        allowed[np.fromiter(user.pool, dtype=np.int64, count=len(user.pool))] = True
    answers = Answers(key=user.key)
    seconds = []
    for _ in range(questions):
        t0 = time.perf_counter()
        prop = strategy.propose(answers, allowed)
        seconds.append(time.perf_counter() - t0)
        if prop is None:
            break
        allowed[prop.item] = False
        answers = answers.add(prop.item, user.pool.get(prop.item))
    return answers, seconds


def _supports_after(answers: Answers, t: int) -> tuple[np.ndarray, np.ndarray]:
    """The answered (items, ratings) among the first `t` questions."""
    return Answers(answers.items[:t], answers.ratings[:t]).rated()


def _score(
    method: Recommender,
    supports: list[tuple[np.ndarray, np.ndarray]],
    users: Sequence[_User],
    data: RatingsDataset,
) -> dict[str, np.ndarray]:
    """Per-user MAE, nDCG@5 and recall@10 on the query after adapting to `supports`."""
    scores = np.asarray(method.score_many(supports), dtype=np.float64)
    qi = np.stack([u.q_items for u in users])
    qr = np.stack([u.q_ratings for u in users])
    pred = np.take_along_axis(scores, qi, axis=1)
    exclude = np.zeros(scores.shape, dtype=bool)
    relevant = np.zeros(scores.shape, dtype=bool)
    for b, (items, _) in enumerate(supports):
        exclude[b, items] = True
        relevant[b, qi[b][qr[b] >= data.scale.relevant_threshold]] = True
    return {
        "mae": np.asarray(metrics.mae(pred, qr)),
        "ndcg_5": np.asarray(metrics.ndcg_at_k(pred, qr, NDCG_K, low=float(data.scale.low))),
        "recall_10": np.asarray(metrics.recall_at_k(scores, exclude, relevant, RECALL_K)),
    }


def _mean(x: np.ndarray) -> float | None:
    x = x[~np.isnan(x)]
    return float(x.mean()) if len(x) else None


def run_elicitation(
    data: RatingsDataset,
    cfg: ElicitConfig,
    *,
    progress: bool | Callable[[float, str], None] = False,
    should_stop: Callable[[], bool] | None = None,
) -> ElicitationReport:
    """Evaluate `cfg.strategies` with `cfg.methods` (see the module doc); raises
    `runner.EvaluationCancelled` when `should_stop()` says so (checked between interviews)."""
    t_start = time.perf_counter()
    folds = user_folds(data, cfg.folds, cfg.seed, VAL_FRACTION)[: cfg.max_folds or cfg.folds]
    plan, left_out = [], 0
    for fold in folds:
        tasks, lo = make_tasks(
            data, fold.test_users, query=cfg.query, min_support=cfg.questions, seed=cfg.seed
        )
        left_out += lo
        if tasks:
            plan.append((fold, [_User.of(t) for t in tasks]))
    if not plan:
        raise ValueError(
            f"no test user has the {cfg.questions + cfg.query} ratings needed for "
            f"{cfg.questions} questions + query {cfg.query}; ask fewer questions"
        )
    T = cfg.questions
    per = {}  # (method, unknown, strategy) -> {metric: list over folds of (T+1, users)}
    answered = {}  # same key -> list of (T+1, users) answered counts
    prop_s: dict[str, list[float]] = {s: [] for s in cfg.strategies}
    units = len(plan) * len(cfg.methods) * (30 + len(cfg.unknown) * len(cfg.strategies))
    prog = _Progress(progress, units)

    def check_stop() -> None:
        if should_stop is not None and should_stop():
            raise EvaluationCancelled("evaluation cancelled")

    try:
        for f, (fold, users) in enumerate(plan):
            where = f"fold {f + 1}/{len(plan)}"
            for m in cfg.methods:
                check_stop()
                prog.message(f"{where}: fitting {m}")
                method = make_method(m, seed=cfg.seed, device=cfg.device)

                def inside(fraction: float, text: str, head=f"{where}: fitting {m}") -> None:
                    prog.within(30, fraction, f"{head}: {text}")

                method.fit(
                    data,
                    fold.train_users,
                    fold.val_users,
                    should_stop=should_stop,
                    progress=inside,
                )
                check_stop()
                prog.step(f"{where}: fitted {m}", 30)
                ctx = ElicitContext.build(data, method, fold.train_users, seed=cfg.seed)
                for u in cfg.unknown:
                    for s in cfg.strategies:
                        strat = make_strategy(s, ctx)
                        runs = []
                        for user in users:
                            check_stop()
                            ans, secs = interview(strat, user, T, u, data.n_items)
                            runs.append(ans)
                            prop_s[s] += secs
                        key = (m, u, s)
                        acc = per.setdefault(key, {k: [] for k in METRICS})
                        fold_vals = {k: np.full((T + 1, len(users)), np.nan) for k in METRICS}
                        n_ans = np.zeros((T + 1, len(users)))
                        for t in range(T + 1):
                            sups = [_supports_after(a, t) for a in runs]
                            n_ans[t] = [len(i) for i, _ in sups]
                            got = _score(method, sups, users, data)
                            for k in METRICS:
                                fold_vals[k][t] = got[k]
                        for k in METRICS:
                            acc[k].append(fold_vals[k])
                        answered.setdefault(key, []).append(n_ans)
                        prog.step(f"{where}: {m}, unknown={u}: {s} done")
    finally:
        prog.close()

    points, diffs = [], []
    cat = {key: {k: np.concatenate(v, axis=1) for k, v in d.items()} for key, d in per.items()}
    n_answered = {key: np.concatenate(v, axis=1) for key, v in answered.items()}
    n_users = sum(len(us) for _, us in plan)
    for (m, u, s), vals in cat.items():
        for t in range(T + 1):
            mae = vals["mae"][t]
            lo, hi = metrics.bootstrap_ci(mae, n_boot=cfg.n_boot, seed=cfg.seed)
            got = n_answered[(m, u, s)][t]
            points.append(
                CurvePoint(
                    method=m,
                    unknown=u,
                    strategy=s,
                    questions=t,
                    users=len(mae),
                    mae=_mean(mae),
                    mae_ci95=(_f(lo), _f(hi)),
                    ndcg_5=_mean(vals["ndcg_5"][t]),
                    recall_10=_mean(vals["recall_10"][t]),
                    answered=float(got.mean() / t) if t else 1.0,
                    ratings=float(got.mean()),
                )
            )
            for vs in BASELINE_STRATEGIES:
                if vs == s or (m, u, vs) not in cat or t == 0:
                    continue
                for k in METRICS:
                    d, dlo, dhi = metrics.paired_bootstrap_ci(
                        vals[k][t], cat[(m, u, vs)][k][t], n_boot=cfg.n_boot, seed=cfg.seed
                    )
                    diffs.append(ElicitDiff(m, u, s, vs, t, k, _f(d), (_f(dlo), _f(dhi)), len(mae)))
    ms = {s: 1000 * float(np.mean(v)) for s, v in prop_s.items() if v}
    return ElicitationReport(
        dataset=summarize(data),
        config=cfg,
        folds_run=len(plan),
        test_users=n_users,
        left_out=left_out,
        points=tuple(points),
        diffs=tuple(diffs),
        seconds=time.perf_counter() - t_start,
        proposal_ms=ms,
    )
