"""Cold-start evaluation of several methods on the same users and the same queries.

Protocols (see `metarec_core.protocol.tasks`):
- ``kshot``: K folds over users. In each fold every method is fitted on the fold's training users
  (its validation users for tuning/early stopping; test users are never seen), then each test
  user with at least max(k) + query ratings is evaluated at every support size k: support = the
  first k of the user's seeded permutation, query = the last ``query`` ratings. The same users and
  queries serve every k and every method, so rows are directly comparable.
- ``melu``: the MeLU split (users with 13-100 ratings, 20% new users), query = 10 random ratings,
  support = all the rest (``"support": "all"``).

Rows average per-user metrics (see `metarec_core.evaluation.metrics`) over the test users of all folds.
``mae_ci95`` is a seeded bootstrap 95% interval of the row's mean MAE. ``paired`` compares, at each
support size, every rating predictor with the best *other* rating predictor (lowest mean MAE at
that k): mae_diff = mean over users of MAE(method) − MAE(vs), with a seeded paired bootstrap 95%
interval; negative means `method` is better, an interval excluding 0 means the difference is
unlikely to be resampling noise. ``seconds`` = fitting time summed over folds and training runs
+ scoring time at that k (``fit_seconds``/``score_seconds`` give the parts).

``train_seeds`` > 1 fits every method that many times per fold (seeds ``seed`` .. ``seed + n - 1``;
the folds and queries stay those of ``seed``) and averages each user's metrics over the fits, so a
comparison reflects the methods rather than one lucky or unlucky training run; rows then also
give ``mae_by_seed``, the MAE each training seed alone would have scored. The bootstrap
intervals resample users; they do not cover the training randomness that is left.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.data.summary import summarize
from metarec_core.evaluation import metrics
from metarec_core.methods.registry import META_LEARNERS, available_methods, make_method
from metarec_core.protocol.splits import (
    MELU_MAX_RATINGS,
    MELU_MIN_RATINGS,
    MELU_TEST_FRACTION,
    melu_split,
    user_folds,
)
from metarec_core.protocol.tasks import MELU_QUERY, UserTask, make_tasks

__all__ = [
    "EvalConfig",
    "EvaluationCancelled",
    "ROW_COLUMNS",
    "format_table",
    "report_rows_csv",
    "run_evaluation",
]

ROW_COLUMNS = (
    "method",
    "support",
    "users",
    "mae",
    "rmse",
    "ndcg@3",
    "ndcg@5",
    "recall@10",
    "seconds",
)
VAL_FRACTION = 0.1
RECALL_K = 10
NDCG_KS = (3, 5)
# scores of at most this many (user, item) cells are held at once
SCORE_CELLS = 4_000_000
# Rough time of one fit in units of one scoring pass (on the sample, 1,000 users: mf_foldin's
# fit, 3 ALS runs, ~15 s against ~0.3 s per scoring pass; a meta-learner's fit minutes): only
# paces the progress bar and its ETA; fits report their own progress within these units.
FIT_UNITS = {
    "user_bias": 3.0,
    "user_bias_levels": 3.0,
    "mf_foldin": 30.0,
    "mf_foldin_levels": 30.0,
    **dict.fromkeys(META_LEARNERS, 200.0),
}

Progress = bool | Callable[[float, str], None]


class EvaluationCancelled(Exception):
    """`should_stop()` returned True; the evaluation stopped between two steps."""


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate. Lists are normalised to tuples; support sizes sorted and de-duplicated.

    For ``protocol="melu"`` `support` is ignored (support = all ratings but the query) and
    `query` must be 10, as in the MeLU paper.
    """

    methods: tuple[str, ...] = ("global_mean", "item_mean", "user_bias", "mf_foldin", "popularity")
    support: tuple[int, ...] = (1, 3, 5, 10, 20)
    query: int = 10
    folds: int = 5
    seed: int = 0
    protocol: str = "kshot"
    device: str = "auto"
    n_boot: int = 2000
    train_seeds: int = 1  # fits per method and fold, per-user metrics averaged over them

    def __post_init__(self) -> None:
        methods = tuple(self.methods)
        support = tuple(sorted({int(k) for k in self.support}))
        object.__setattr__(self, "methods", methods)
        object.__setattr__(self, "support", support)
        if not methods:
            raise ValueError("no methods to evaluate")
        known = available_methods()
        unknown = [m for m in methods if m not in known]
        if unknown:
            raise ValueError(
                f"unknown method {', '.join(map(repr, unknown))}; expected one of {', '.join(known)}"
            )
        dupes = sorted({m for m in methods if methods.count(m) > 1})
        if dupes:
            raise ValueError(f"method listed more than once: {', '.join(dupes)}")
        if self.protocol not in ("kshot", "melu"):
            raise ValueError(f"unknown protocol {self.protocol!r}; expected 'kshot' or 'melu'")
        if self.protocol == "kshot":
            if not support or support[0] < 0:
                raise ValueError(f"support sizes must be non-negative integers, got {support}")
            if self.folds < 2:
                raise ValueError(f"folds must be at least 2, got {self.folds}")
        if self.query < 1:
            raise ValueError(f"query must be at least 1, got {self.query}")
        if self.protocol == "melu" and self.query != MELU_QUERY:
            raise ValueError(f"the melu protocol uses query={MELU_QUERY}; got query={self.query}")
        if self.train_seeds < 1:
            raise ValueError(f"train_seeds must be at least 1, got {self.train_seeds}")
        if self.n_boot < 100:
            raise ValueError(f"n_boot must be at least 100, got {self.n_boot}")


# ---------------------------------------------------------------------------------------------


class _Progress:
    """Reports the fraction done to a callable, a tqdm bar on stderr, or nowhere.

    Work comes in units of different sizes (`FIT_UNITS`); a unit under way reports its own
    fraction through `within`, so the fraction moves inside a long fit too.
    """

    def __init__(self, progress: Progress, total: float) -> None:
        self.total, self.done, self.partial = max(1.0, float(total)), 0.0, 0.0
        self.callback: Callable[[float, str], None] | None = None
        self.bar = None
        if callable(progress):
            self.callback = progress
        elif progress:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, file=sys.stderr, unit="unit", leave=False)

    def message(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(text)
        if self.callback is not None:
            self.callback(min(1.0, (self.done + self.partial) / self.total), text)

    def within(self, units: float, fraction: float, text: str) -> None:
        """The unit under way (`units` large) is `fraction` done."""
        partial = units * min(1.0, max(0.0, float(fraction)))
        if self.bar is not None:
            self.bar.update(partial - self.partial)
        self.partial = partial
        self.message(text)

    def step(self, text: str, units: float = 1.0) -> None:
        if self.bar is not None:
            self.bar.update(units - self.partial)
        self.done += units
        self.partial = 0.0
        self.message(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class _Acc:
    """Per-user metric arrays of one (method, k), concatenated over folds in a fixed order."""

    mae: list[np.ndarray] = field(default_factory=list)
    rmse: list[np.ndarray] = field(default_factory=list)
    ndcg: dict[int, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in NDCG_KS})
    recall: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0
    # per training run (train_seeds > 1): its per-user MAE arrays, before averaging over runs
    mae_by_run: list[list[np.ndarray]] = field(default_factory=list)

    def cat(self, name: str) -> np.ndarray:
        parts = self.ndcg[int(name)] if name in ("3", "5") else getattr(self, name)
        return np.concatenate(parts) if parts else np.zeros(0)

    def add_mean_of(self, fits: Sequence[_Acc]) -> None:
        """Append the per-user mean over several fits of the same method on the same users."""
        for name in ("mae", "rmse", "recall"):
            if getattr(fits[0], name):
                getattr(self, name).append(np.mean([f.cat(name) for f in fits], axis=0))
        if len(fits) > 1 and fits[0].mae:
            if not self.mae_by_run:
                self.mae_by_run = [[] for _ in fits]
            for run, f in zip(self.mae_by_run, fits, strict=True):
                run.append(f.cat("mae"))
        for k in NDCG_KS:
            self.ndcg[k].append(np.mean([f.cat(str(k)) for f in fits], axis=0))


def _instantiate(name: str, cfg: EvalConfig, seed: int):
    try:
        return make_method(name, seed=seed, device=cfg.device)
    except ImportError as e:  # a registered method whose module has not landed / cannot load
        raise ValueError(f"method {name!r} is not available: {e}") from e


def _fit(
    method,
    data: RatingsDataset,
    fold,
    should_stop: Callable[[], bool] | None,
    progress: Callable[[float, str], None] | None = None,
) -> None:
    """Fit `method` on the fold with the interface's hooks: long fits (meta-learners, ALS) stop
    early on `should_stop()` and report their own `progress(fraction, message)`."""
    method.fit(data, fold.train_users, fold.val_users, should_stop=should_stop, progress=progress)


def _score(
    method,
    name: str,
    supports: Sequence[tuple[np.ndarray, np.ndarray]],
    q_items: np.ndarray,
    q_ratings: np.ndarray,
    n_items: int,
    scale: RatingScale,
    acc: _Acc,
) -> None:
    """Score all users (in chunks bounding memory) and append their per-user metrics to `acc`."""
    threshold, low = float(scale.relevant_threshold), float(scale.low)
    B = len(supports)
    chunk = max(1, SCORE_CELLS // max(1, n_items))
    for s in range(0, B, chunk):
        e = min(B, s + chunk)
        scores = np.asarray(method.score_many(list(supports[s:e])), dtype=np.float64)
        if scores.shape != (e - s, n_items):
            raise ValueError(
                f"method {name!r} returned scores of shape {scores.shape}, "
                f"expected {(e - s, n_items)}"
            )
        bad = ~np.isfinite(scores).all(1)
        if bad.any():
            raise ValueError(
                f"method {name!r} produced non-finite scores for {int(bad.sum())} of {e - s} users"
            )
        qi, qr = q_items[s:e], q_ratings[s:e]
        pred = np.take_along_axis(scores, qi, axis=1)
        if method.predicts_ratings:
            acc.mae.append(metrics.mae(pred, qr))
            acc.rmse.append(metrics.rmse(pred, qr))
        for k in NDCG_KS:
            acc.ndcg[k].append(metrics.ndcg_at_k(pred, qr, k, low=low))
        rows = np.arange(e - s)
        exclude = np.zeros((e - s, n_items), dtype=bool)
        for r, (items, _) in enumerate(supports[s:e]):
            exclude[r, np.asarray(items, dtype=np.int64)] = True
        relevant = np.zeros((e - s, n_items), dtype=bool)
        rr, cc = np.nonzero(qr >= threshold)
        relevant[rows[rr], qi[rr, cc]] = True
        acc.recall.append(metrics.recall_at_k(scores, exclude, relevant, RECALL_K))


def _mean(x: np.ndarray) -> float | None:
    x = x[~np.isnan(x)]
    return float(x.mean()) if len(x) else None


def _json_float(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def run_evaluation(
    data: RatingsDataset,
    cfg: EvalConfig,
    *,
    progress: Progress = False,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Evaluate `cfg.methods` under `cfg.protocol`; returns the JSON-ready report.

    Raises `EvaluationCancelled` when `should_stop()` is True (checked before every fit and every
    support size, and passed to fits that accept it), ValueError on an unusable configuration.
    """
    dataset = summarize(data).to_dict()
    threshold = float(data.scale.relevant_threshold)

    if cfg.protocol == "kshot":
        ks: tuple[int | None, ...] = cfg.support
        kmax, query = max(cfg.support), cfg.query
        plan: list[tuple[object, list[UserTask]]] = []
        left_out = 0
        for fold in user_folds(data, cfg.folds, cfg.seed, VAL_FRACTION):
            tasks, lo = make_tasks(
                data, fold.test_users, query=query, min_support=kmax, seed=cfg.seed
            )
            left_out += lo
            if tasks:
                plan.append((fold, tasks))
        n_test = sum(len(t) for _, t in plan)
        if n_test == 0:
            raise ValueError(
                f"no test user has the {kmax + query} ratings needed for support {kmax} + query "
                f"{query}; use smaller support sizes or fewer query ratings"
            )
        protocol = {
            "name": "kshot",
            "folds": cfg.folds,
            "query": query,
            "support": list(cfg.support),
            "seed": cfg.seed,
            "val_fraction": VAL_FRACTION,
            "min_ratings": kmax + query,
            "test_users": n_test,
            "left_out": left_out,
        }
    else:
        ks = (None,)
        fold, n_out = melu_split(data, cfg.seed, VAL_FRACTION)
        tasks, lo = make_tasks(data, fold.test_users, query=MELU_QUERY, seed=cfg.seed)
        if not tasks:
            raise ValueError(
                f"no user has {MELU_MIN_RATINGS}-{MELU_MAX_RATINGS} ratings: the melu protocol "
                "has no test users on this dataset"
            )
        plan = [(fold, tasks)]
        sizes = np.array([t.n_available for t in tasks])
        protocol = {
            "name": "melu",
            "query": MELU_QUERY,
            "support": "all",
            "seed": cfg.seed,
            "val_fraction": VAL_FRACTION,
            "min_ratings": MELU_MIN_RATINGS,
            "max_ratings": MELU_MAX_RATINGS,
            "test_fraction": MELU_TEST_FRACTION,
            "train_users": len(fold.train_users),
            "val_users": len(fold.val_users),
            "test_users": len(tasks),
            "left_out": n_out + lo,
            "support_sizes": {
                "min": int(sizes.min()),
                "median": float(np.median(sizes)),
                "max": int(sizes.max()),
            },
        }
    protocol.update(
        relevant_threshold=threshold,
        bootstrap_resamples=cfg.n_boot,
        paired="each rating predictor vs the best other rating predictor at the same support "
        "size (lowest mean MAE); mae_diff = mean per-user MAE(method) - MAE(vs), < 0: method better",
        seconds="fit time summed over folds and training runs + scoring time at that support size",
        train_seeds=cfg.train_seeds,
    )
    if cfg.train_seeds > 1:
        protocol["train_seeds_note"] = (
            f"every method fitted {cfg.train_seeds} times per fold (seeds {cfg.seed}.."
            f"{cfg.seed + cfg.train_seeds - 1}); per-user metrics are means over the fits"
        )

    acc = {(m, k): _Acc() for m in cfg.methods for k in ks}
    fit_seconds = dict.fromkeys(cfg.methods, 0.0)
    predicts = {}
    fit_units = {m: FIT_UNITS.get(m, 1.0) for m in cfg.methods}
    prog = _Progress(
        progress, len(plan) * cfg.train_seeds * sum(u + len(ks) for u in fit_units.values())
    )

    def check_stop() -> None:
        if should_stop is not None and should_stop():
            raise EvaluationCancelled("evaluation cancelled")

    try:
        for f, (fold, tasks) in enumerate(plan):
            q_items = np.stack([t.query[0] for t in tasks]).astype(np.int64)
            q_ratings = np.stack([t.query[1] for t in tasks]).astype(np.float64)
            where = f"fold {f + 1}/{len(plan)}" if cfg.protocol == "kshot" else "melu split"
            for name in cfg.methods:
                fits: dict[int | None, list[_Acc]] = {k: [] for k in ks}
                for s in range(cfg.train_seeds):
                    check_stop()
                    run = name if cfg.train_seeds == 1 else f"{name} (seed {cfg.seed + s})"
                    prog.message(f"{where}: fitting {run}")
                    method = _instantiate(name, cfg, cfg.seed + s)

                    def inside(
                        fraction: float,
                        text: str,
                        head=f"{where}: fitting {run}",
                        units=fit_units[name],
                    ) -> None:
                        prog.within(units, fraction, f"{head}: {text}")

                    t0 = time.perf_counter()
                    _fit(method, data, fold, should_stop, inside)
                    fit_seconds[name] += time.perf_counter() - t0
                    predicts[name] = bool(method.predicts_ratings)
                    prog.step(f"{where}: fitted {run}", fit_units[name])
                    for k in ks:
                        check_stop()
                        supports = [t.support(k) for t in tasks]
                        fits[k].append(_Acc())
                        t0 = time.perf_counter()
                        _score(
                            method,
                            name,
                            supports,
                            q_items,
                            q_ratings,
                            data.n_items,
                            data.scale,
                            fits[k][-1],
                        )
                        acc[(name, k)].seconds += time.perf_counter() - t0
                        prog.step(f"{where}: scored {run} at k={'all' if k is None else k}")
                for k in ks:
                    acc[(name, k)].add_mean_of(fits[k])
    finally:
        prog.close()

    rows, per_user_mae = [], {}
    for name in cfg.methods:
        for k in ks:
            a = acc[(name, k)]
            recall = a.cat("recall")
            n_users = len(recall)
            row = {
                "method": name,
                "support": "all" if k is None else k,
                "users": n_users,
                "mae": None,
                "rmse": None,
                "ndcg@3": _mean(a.cat("3")),
                "ndcg@5": _mean(a.cat("5")),
                "recall@10": _mean(recall),
                "seconds": fit_seconds[name] + a.seconds,
                "mae_ci95": None,
                "recall_users": int((~np.isnan(recall)).sum()),
                "recall_excluded": int(np.isnan(recall).sum()),
                "fit_seconds": fit_seconds[name],
                "score_seconds": a.seconds,
            }
            if predicts[name]:
                mae = a.cat("mae")
                per_user_mae[(name, k)] = mae
                lo, hi = metrics.bootstrap_ci(mae, n_boot=cfg.n_boot, seed=cfg.seed)
                row.update(
                    mae=_mean(mae),
                    rmse=_mean(a.cat("rmse")),
                    mae_ci95=[_json_float(lo), _json_float(hi)],
                )
                if a.mae_by_run:  # the spread that one training run alone would show
                    row["mae_by_seed"] = [_mean(np.concatenate(run)) for run in a.mae_by_run]
            rows.append(row)

    paired = []
    raters = [m for m in cfg.methods if predicts[m]]
    if len(raters) >= 2:
        for k in ks:
            means = {m: float(per_user_mae[(m, k)].mean()) for m in raters}
            for m in raters:
                vs = min((o for o in raters if o != m), key=lambda o: means[o])
                diff, lo, hi = metrics.paired_bootstrap_ci(
                    per_user_mae[(m, k)], per_user_mae[(vs, k)], n_boot=cfg.n_boot, seed=cfg.seed
                )
                paired.append(
                    {
                        "method": m,
                        "vs": vs,
                        "support": "all" if k is None else k,
                        "mae_diff": _json_float(diff),
                        "ci95": [_json_float(lo), _json_float(hi)],
                        "users": len(per_user_mae[(m, k)]),
                    }
                )
    prog.message("done")
    return {"dataset": dataset, "protocol": protocol, "rows": rows, "paired": paired}


# ---------------------------------------------------------------------------------------------


def _fmt(x, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def format_table(report: dict) -> str:
    """The report as aligned text: a header line, the rows, then the paired comparisons."""
    ds, pr = report.get("dataset", {}), report.get("protocol", {})
    head = []
    src = ds.get("source") or ""
    size = ", ".join(
        f"{ds[key]} {label}"
        for key, label in (("n_users", "users"), ("n_items", "items"), ("n_ratings", "ratings"))
        if key in ds
    )
    if src or size:
        head.append(f"dataset: {src}{' (' + size + ')' if size else ''}")
    if pr:
        if pr.get("name") == "melu":
            head.append(
                f"protocol: melu, query {pr.get('query')}, support = all the rest, "
                f"{pr.get('test_users')} test users ({pr.get('left_out')} users left out), "
                f"seed {pr.get('seed')}"
            )
        else:
            head.append(
                f"protocol: kshot, {pr.get('folds')} folds, query {pr.get('query')}, "
                f"{pr.get('test_users')} test users with >= {pr.get('min_ratings')} ratings "
                f"({pr.get('left_out')} left out), seed {pr.get('seed')}"
            )
        if pr.get("train_seeds_note"):
            head.append(pr["train_seeds_note"])
    table = [list(ROW_COLUMNS)]
    for r in report.get("rows", []):
        table.append(
            [
                str(r["method"]),
                str(r["support"]),
                str(r["users"]),
                *(_fmt(r[c]) for c in ("mae", "rmse", "ndcg@3", "ndcg@5", "recall@10")),
                _fmt(r["seconds"], 1),
            ]
        )
    out = head + [""] if head else []
    out += _align(table, left=2)
    if report.get("paired"):
        out += ["", "paired MAE difference (method - vs; < 0: method better), bootstrap 95% CI:"]
        ptable = [["method", "vs", "support", "mae_diff", "ci95"]]
        for p in report["paired"]:
            lo, hi = p["ci95"]
            ptable.append(
                [
                    p["method"],
                    p["vs"],
                    str(p["support"]),
                    _fmt(p["mae_diff"]),
                    f"[{_fmt(lo)}, {_fmt(hi)}]",
                ]
            )
        out += _align(ptable, left=3)
    return "\n".join(out)


def _align(table: list[list[str]], left: int) -> list[str]:
    """Columns padded to equal width: the first `left` left-aligned, the rest right-aligned."""
    widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
    return [
        "  ".join(
            cell.ljust(w) if c < left else cell.rjust(w)
            for c, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in table
    ]


CSV_COLUMNS = (
    *ROW_COLUMNS,
    "mae_ci95_lo",
    "mae_ci95_hi",
    "recall_users",
    "recall_excluded",
    "fit_seconds",
    "score_seconds",
)


def report_rows_csv(report: dict) -> str:
    """The report's rows as CSV text (header first; empty cells for nulls)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in report.get("rows", []):
        ci = r.get("mae_ci95") or [None, None]
        flat = {**r, "mae_ci95_lo": ci[0], "mae_ci95_hi": ci[1]}
        w.writerow(["" if flat.get(c) is None else flat.get(c) for c in CSV_COLUMNS])
    return buf.getvalue()
