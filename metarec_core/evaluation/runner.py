"""Cold-start evaluation of several methods on the same users and the same queries.

Protocols (see `metarec_core.protocol.tasks`):
- ``kshot``: K folds over users. In each fold every method is fitted on the fold's training users
  (its validation users for tuning/early stopping; test users are never seen), then each test
  user with at least max(k) + query ratings is evaluated at every support size k: support = the
  first k of the user's seeded permutation, query = the last ``query`` ratings. The same users and
  queries serve every k and every method, so rows are directly comparable.
- ``melu``: the MeLU split (users with 13-100 ratings, 20% new users), query = 10 random ratings,
  support = all the rest (``"support": "all"``). With ``state`` (warm, user, item, both): MeLU's
  four states, items split by release year (`protocol.both_splits`). The new-item state
  (``state="item"``: existing users, query on new items) also takes the new-item methods
  (``content``, ``item_metasgd``, ...: the names only the items' registry has): each is fitted
  on the existing items and predicts each query item from its metadata alone (k = 0) for the
  task's user, whom it knows (`_score_known_users`).
- ``cold="both"``: new users rated on new items (`protocol.both_splits`): support from warm
  items, query on the fold's new items; every method is fitted without any rating of a test
  user or a new item, then given its new items' parameters from metadata (`methods.both`).
- ``cold="items"``: folds over items (`protocol.item_splits`, `_run_items`).

Rows average per-user metrics (see `metarec_core.evaluation.metrics`) over the test users of all folds.
``mae_ci95`` is a seeded bootstrap 95% interval of the row's mean MAE. ``paired`` compares, at each
support size, every rating predictor with the best *other* rating predictor (lowest mean MAE at
that k): mae_diff = mean over users of MAE(method) − MAE(vs), with a seeded paired bootstrap 95%
interval; negative means `method` is better, an interval excluding 0 means the difference is
unlikely to be resampling noise. ``compare_all`` names methods that are also compared, the same
way, with *every* other rating predictor (the report's ``pairwise``; absent when empty). ``seconds`` = fitting time summed over folds and training runs
+ scoring time at that k (``fit_seconds``/``score_seconds`` give the parts).

``train_seeds`` > 1 fits every method that many times per fold (seeds ``seed`` .. ``seed + n - 1``;
the folds and queries stay those of ``seed``) and averages each user's metrics over the fits, so a
comparison reflects the methods rather than one lucky or unlucky training run; rows then also
give ``mae_by_seed``, the MAE each training seed alone would have scored. The bootstrap
intervals resample users; they do not cover the training randomness that is left.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.data.summary import summarize
from metarec_core.evaluation import metrics
from metarec_core.evaluation.report import (
    BothKShotProtocol,
    EvaluationReport,
    ItemKShotProtocol,
    KShotProtocol,
    MeluProtocol,
    MeluStateProtocol,
    MethodRow,
    PairedDifference,
    SupportSizes,
)
from metarec_core.methods.base import ItemRecommender, NewItem
from metarec_core.methods.both import fill_new_items
from metarec_core.methods.registry import (
    ITEM_META_LEARNER,
    META_LEARNER,
    META_LEARNERS,
    available_methods,
    default_methods,
    make_method,
    method_class,
    spec,
)
from metarec_core.protocol.both_splits import (
    MELU_MIN_SUPPORT,
    MELU_STATES,
    both_folds,
    make_both_tasks,
    melu_state_tasks,
    melu_states,
)
from metarec_core.protocol.item_splits import (
    fit_validation_items,
    item_folds,
    item_metadata,
    make_item_tasks,
    without_items,
)
from metarec_core.protocol.splits import (
    MELU_MAX_RATINGS,
    MELU_MIN_RATINGS,
    MELU_TEST_FRACTION,
    Fold,
    melu_split,
    user_folds,
)
from metarec_core.protocol.tasks import MELU_QUERY, make_tasks

__all__ = ["EvalConfig", "EvaluationCancelled", "run_evaluation"]

VAL_FRACTION = 0.1
COLDS = ("users", "items", "both")
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


def _items_only(name: str) -> bool:
    """Whether only the items' registry has `name` (a name both have, as ``mf_foldin_levels``,
    is the users')."""
    return name not in available_methods() and name in available_methods(cold="items")


def item_method_in_state(name: str, state: str | None) -> bool:
    """Whether `name` is a new-item method evaluated in MeLU's new-item state."""
    return state == "item" and _items_only(name)


def _table(name: str, cfg: EvalConfig) -> str:
    """The registry table `name` is read from under `cfg`: "items" or "users"."""
    items = cfg.cold == "items" or item_method_in_state(name, cfg.state)
    return "items" if items else "users"  # "both": a users' method, new items filled


def fit_units(name: str, cold: str = "users") -> float:
    """`FIT_UNITS` of a method; a meta-learner not listed there (an item learner, a tuned one,
    one of a plugin module) counts as a meta-learner's fit, any other method as one unit."""
    if name in FIT_UNITS:
        return FIT_UNITS[name]
    kind = spec(name, cold="items" if cold == "items" else "users").kind
    return FIT_UNITS["metasgd"] if kind in (META_LEARNER, ITEM_META_LEARNER) else 1.0


class EvaluationCancelled(Exception):
    """`should_stop()` returned True; the evaluation stopped between two steps."""


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate. Lists are normalised to tuples; support sizes sorted and de-duplicated.

    For ``protocol="melu"`` `support` is ignored (support = all ratings but the query) and
    `query` must be 10, as in the MeLU paper.
    """

    methods: tuple[str, ...] = field(default_factory=default_methods)
    support: tuple[int, ...] = (1, 3, 5, 10, 20)
    query: int = 10
    folds: int = 5
    seed: int = 0
    protocol: str = "kshot"
    device: str = "auto"
    n_boot: int = 2000
    train_seeds: int = 1  # fits per method and fold, per-user metrics averaged over them
    # methods also compared with every other rating predictor (the report's `pairwise`)
    compare_all: tuple[str, ...] = ()
    # what arrives new: "users" (the default), "items" (`item_splits`; the item methods of
    # the registry; the users' default method set stands for the items' default set) or
    # "both" (`both_splits`; the users' rating predictors, new items' parameters from metadata)
    cold: str = "users"
    # the melu protocol's state (MeLU's four: warm, user, item, both; `both_splits`); None:
    # the users' melu protocol of before (no item split)
    state: str | None = None

    def __post_init__(self) -> None:
        if self.cold not in COLDS:
            raise ValueError(f"unknown cold {self.cold!r}; expected one of {', '.join(COLDS)}")
        methods = tuple(self.methods)
        if self.cold == "items":
            if methods == default_methods():
                methods = default_methods("items")
            if self.protocol != "kshot":
                raise ValueError(f"--cold items has the kshot protocol only, got {self.protocol!r}")
        if self.state is not None:
            if self.state not in MELU_STATES:
                raise ValueError(
                    f"unknown melu state {self.state!r}; expected one of {', '.join(MELU_STATES)}"
                )
            if self.protocol != "melu" or self.cold != "users":
                raise ValueError("a melu state needs --protocol melu (and no --cold)")
        if self.cold == "both" and self.protocol != "kshot":
            raise ValueError(
                f"--cold both has the kshot protocol only, got {self.protocol!r} (MeLU's "
                "both-new state: --protocol melu --state both)"
            )
        if self.cold == "both" or self.state is not None:
            if methods == default_methods():
                methods = tuple(m for m in methods if _predicts(m))
            ranking = [m for m in methods if m in available_methods() and not _predicts(m)]
            if ranking:
                raise ValueError(
                    f"{', '.join(ranking)} predicts no rating of a new item (it ranks by rating "
                    "counts); leave it out with new items"
                )
        object.__setattr__(self, "compare_all", tuple(self.compare_all))
        support = tuple(sorted({int(k) for k in self.support}))
        object.__setattr__(self, "methods", methods)
        object.__setattr__(self, "support", support)
        if not methods:
            raise ValueError("no methods to evaluate")
        known = available_methods(cold="items" if self.cold == "items" else "users")
        if self.state is not None:
            items_only = [m for m in methods if _items_only(m)]
            if items_only and self.state != "item":
                raise ValueError(
                    f"{', '.join(items_only)} rates new items for known users: of MeLU's states "
                    "it takes the new-item state only (--state item)"
                )
            known = [*known, *items_only]
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
        stray = [m for m in self.compare_all if m not in methods]
        if stray:
            raise ValueError(
                f"compare_all names {', '.join(map(repr, stray))}, which is not among the "
                f"methods evaluated ({', '.join(methods)})"
            )


def evaluable_methods(cold: str = "users") -> tuple[list[str], tuple[str, ...]]:
    """(the registered methods an evaluation of `cold` can run, its default set): for
    ``"both"`` (and MeLU's states) the users' rating predictors, since a new item has no
    rating counts to rank it by."""
    if cold not in COLDS:
        raise ValueError(f"unknown cold {cold!r}; expected one of {', '.join(COLDS)}")
    table = "items" if cold == "items" else "users"
    names, defaults = available_methods(cold=table), default_methods(table)
    if cold == "both":
        names = [m for m in names if _predicts(m)]
        defaults = tuple(m for m in defaults if _predicts(m))
    return names, defaults


def _predicts(name: str) -> bool:
    """Whether a users' method predicts ratings (False: ranking only, e.g. popularity)."""
    try:
        return bool(method_class(name).capabilities.predicts_ratings)
    except ValueError:
        return True  # an unknown name: the known-methods check below names it


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
        self._advance(self.done + partial)
        self.partial = partial
        self.message(text)

    def step(self, text: str, units: float = 1.0) -> None:
        self.done += units
        self.partial = 0.0
        self._advance(self.done)
        self.message(text)

    def _advance(self, position: float) -> None:
        """Move the bar to `position`, set exactly: summed float increments drift past the total
        (tqdm then warns and clamps)."""
        if self.bar is not None:
            position = min(self.total, position)
            self.bar.update(position - self.bar.n)
            self.bar.n = position

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
        return make_method(name, seed=seed, device=cfg.device, cold=_table(name, cfg))
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
        if method.capabilities.predicts_ratings:
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


def _existing_items(
    seen: RatingsDataset, new_items: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) items of a new-item method in MeLU's new-item state: the items
    rated in the fit data (never a new one), a seeded tenth of them validating."""
    rated = np.flatnonzero(np.bincount(seen.item, minlength=seen.n_items) > 0)
    return fit_validation_items(np.setdiff1d(rated, new_items), seed)


def _score_known_users(
    method: ItemRecommender,
    name: str,
    data: RatingsDataset,
    tasks: Sequence,
    q_items: np.ndarray,
    q_ratings: np.ndarray,
    acc: _Acc,
) -> None:
    """Per-user metrics of a new-item method in MeLU's new-item state: each query item is new,
    known by its metadata alone (k = 0), and each task's user is an existing one, whom the
    method was fitted with. Every query item is scored for every user once (`score_items`)."""
    items = np.unique(q_items)
    scores = np.asarray(
        method.score_items([NewItem.of(*item_metadata(data, int(i))) for i in items]), np.float64
    )
    users = np.array([t.user for t in tasks], dtype=np.int64)
    pred = scores[np.searchsorted(items, q_items), users[:, None]]
    if not np.isfinite(pred).all():
        raise ValueError(f"method {name!r} produced non-finite predictions of new items")
    _add_rating_metrics(acc, pred, q_ratings, float(data.scale.low))


def _add_rating_metrics(acc: _Acc, pred: np.ndarray, true: np.ndarray, low: float) -> None:
    """Append the per-unit MAE, RMSE and nDCG@3/@5 of `pred` against `true` (units × query)."""
    acc.mae.append(metrics.mae(pred, true))
    acc.rmse.append(metrics.rmse(pred, true))
    for n in NDCG_KS:
        acc.ndcg[n].append(metrics.ndcg_at_k(pred, true, n, low=low))


def _mean(x: np.ndarray) -> float | None:
    x = x[~np.isnan(x)]
    return float(x.mean()) if len(x) else None


def _fold_plan(folds, make: Callable, cfg: EvalConfig, unit: str) -> tuple[list, int, int]:
    """([(fold, its test tasks)] for the folds with any, the count of test units left out,
    the count of test tasks); ValueError when no fold has a test `unit` ("user", "item") with
    enough ratings.

    `make(fold, query=, min_support=, seed=)` builds a fold's tasks with `cfg`'s sizes."""
    plan, left_out = [], 0
    kmax, query = max(cfg.support), cfg.query
    for fold in folds:
        tasks, lo = make(fold, query=query, min_support=kmax, seed=cfg.seed)
        left_out += lo
        if tasks:
            plan.append((fold, tasks))
    if not plan:
        raise ValueError(
            f"no test {unit} has the {kmax + query} ratings needed for support {kmax} + query "
            f"{query}; use smaller support sizes or fewer query ratings"
        )
    return plan, left_out, sum(len(t) for _, t in plan)


def _paired(
    per_unit_mae: Mapping[tuple[str, int | None], np.ndarray],
    m: str,
    vs: str,
    k: int | None,
    cfg: EvalConfig,
) -> PairedDifference:
    """`m` − `vs` at support size `k`: the mean of the paired per-unit (user or item) MAE
    differences with its bootstrap 95% CI."""
    diff, lo, hi = metrics.paired_bootstrap_ci(
        per_unit_mae[(m, k)], per_unit_mae[(vs, k)], n_boot=cfg.n_boot, seed=cfg.seed
    )
    return PairedDifference(
        method=m,
        vs=vs,
        support=k,
        mae_diff=_finite(diff),
        ci95=(_finite(lo), _finite(hi)),
        users=len(per_unit_mae[(m, k)]),
    )


def _finite(x: float) -> float | None:
    """None for NaN or ±inf (the report is strict JSON)."""
    return None if x is None or not math.isfinite(x) else float(x)


def _kshot_fields(cfg: EvalConfig, left_out: int) -> dict:
    """The fields every k-shot protocol record (users, items, both) takes from `cfg`."""
    return dict(
        folds=cfg.folds,
        query=cfg.query,
        support=cfg.support,
        seed=cfg.seed,
        val_fraction=VAL_FRACTION,
        min_ratings=max(cfg.support) + cfg.query,
        left_out=left_out,
        bootstrap_resamples=cfg.n_boot,
        train_seeds=cfg.train_seeds,
    )


def _melu_fields(cfg: EvalConfig, fold, tasks: Sequence, left_out: int, threshold: float) -> dict:
    """The fields the melu and melu-state protocol records share."""
    sizes = np.array([t.n_available for t in tasks])
    return dict(
        query=MELU_QUERY,
        seed=cfg.seed,
        val_fraction=VAL_FRACTION,
        min_ratings=MELU_MIN_RATINGS,
        max_ratings=MELU_MAX_RATINGS,
        test_fraction=MELU_TEST_FRACTION,
        train_users=len(fold.train_users),
        val_users=len(fold.val_users),
        test_users=len(tasks),
        left_out=left_out,
        support_sizes=SupportSizes(
            min=int(sizes.min()), median=float(np.median(sizes)), max=int(sizes.max())
        ),
        relevant_threshold=threshold,
        bootstrap_resamples=cfg.n_boot,
        train_seeds=cfg.train_seeds,
    )


def run_evaluation(
    data: RatingsDataset,
    cfg: EvalConfig,
    *,
    progress: Progress = False,
    should_stop: Callable[[], bool] | None = None,
) -> EvaluationReport:
    """Evaluate `cfg.methods` under `cfg.protocol`; returns the report (`report.EvaluationReport`).

    Raises `EvaluationCancelled` when `should_stop()` is True (checked before every fit and every
    support size, and passed to fits that accept it), ValueError on an unusable configuration.
    """
    if cfg.cold == "items":
        return _run_items(data, cfg, progress, should_stop)
    dataset = summarize(data)
    threshold = float(data.scale.relevant_threshold)
    # per fold index: the data its methods are fitted on and the new items whose parameters
    # come from metadata (`methods.both`); absent: the whole data, no new item
    fit_data: dict[int, RatingsDataset] = {}
    new_items: dict[int, np.ndarray] = {}

    if cfg.cold == "both":
        ks: tuple[int | None, ...] = cfg.support
        folds = both_folds(data, cfg.folds, cfg.seed, VAL_FRACTION)
        plan, left_out, n_test = _fold_plan(
            folds,
            lambda fold, **sizes: make_both_tasks(data, fold.test_users, fold.new_items, **sizes),
            cfg,
            "user",
        )
        for fold, _ in plan:
            fit_data[fold.index] = without_items(data, fold.new_items)
            new_items[fold.index] = fold.new_items
        protocol: KShotProtocol | MeluProtocol | BothKShotProtocol | MeluStateProtocol
        protocol = BothKShotProtocol(
            **_kshot_fields(cfg, left_out),
            test_users=n_test,
            relevant_threshold=threshold,
            new_items=int(sum(len(f.new_items) for f in folds)),
        )
    elif cfg.state is not None:
        ks = (None,)
        st = melu_states(data, cfg.seed, VAL_FRACTION)
        tasks, lo = melu_state_tasks(data, st, cfg.state, seed=cfg.seed)
        if not tasks:
            raise ValueError(
                f"no test user of the melu state {cfg.state!r} has {MELU_MIN_SUPPORT} support "
                f"and {MELU_QUERY} query ratings on this dataset"
            )
        fold = Fold(0, st.train_users, st.val_users, st.new_users)
        plan = [(fold, tasks)]
        fit_data[0], new_items[0] = st.fit_data, st.new_items
        protocol = MeluStateProtocol(
            **_melu_fields(cfg, fold, tasks, st.left_out_users + lo, threshold),
            state=cfg.state,
            cut_year=st.cut_year,
            new_items=len(st.new_items),
            new_users=len(st.new_users),
            fit_ratings=st.fit_data.n_ratings,
        )
    elif cfg.protocol == "kshot":
        ks: tuple[int | None, ...] = cfg.support
        plan, left_out, n_test = _fold_plan(
            user_folds(data, cfg.folds, cfg.seed, VAL_FRACTION),
            lambda fold, **sizes: make_tasks(data, fold.test_users, **sizes),
            cfg,
            "user",
        )
        protocol = KShotProtocol(
            **_kshot_fields(cfg, left_out), test_users=n_test, relevant_threshold=threshold
        )
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
        protocol = MeluProtocol(**_melu_fields(cfg, fold, tasks, n_out + lo, threshold))

    def where(f: int) -> str:
        if cfg.state is not None:
            return f"melu state {cfg.state}"
        return f"fold {f + 1}/{len(plan)}" if cfg.protocol == "kshot" else "melu split"

    def seen_of(f: int, fold) -> RatingsDataset:
        return fit_data.get(getattr(fold, "index", f), data)

    def fit(method, seen: RatingsDataset, f: int, fold, inside) -> None:
        f_index = getattr(fold, "index", f)
        if isinstance(method, ItemRecommender):  # MeLU's new-item state: the existing items
            train_items, val_items = _existing_items(seen, new_items[f_index], cfg.seed)
            method.fit(seen, train_items, val_items, should_stop=should_stop, progress=inside)
            return
        _fit(method, seen, fold, should_stop, inside)
        if f_index in new_items and method.fitted_:
            fill_new_items(method, seen, fold.train_users, new_items[f_index])

    def score(method, name: str, tasks, k, q_items: np.ndarray, q_ratings: np.ndarray) -> _Acc:
        a = _Acc()
        if isinstance(method, ItemRecommender):
            _score_known_users(method, name, data, tasks, q_items, q_ratings, a)
            return a
        supports = [t.support(k) for t in tasks]
        _score(method, name, supports, q_items, q_ratings, data.n_items, data.scale, a)
        return a

    acc, fit_seconds, predicts, prog = _fit_and_score(
        plan, cfg, ks, progress, should_stop, where, seen_of, fit, score
    )
    # recall@10 ranks the whole catalogue; with new items the query is theirs alone, so it
    # is not measured there
    return _report(dataset, protocol, cfg, ks, acc, fit_seconds, predicts, not new_items, prog)


def _check_stop(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise EvaluationCancelled("evaluation cancelled")


def _fit_and_score(
    plan: list,
    cfg: EvalConfig,
    ks: Sequence[int | None],
    progress: Progress,
    should_stop: Callable[[], bool] | None,
    where: Callable[[int], str],
    seen_of: Callable[[int, object], RatingsDataset],
    fit: Callable,
    score: Callable[..., _Acc],
) -> tuple[dict, dict[str, float], dict[str, bool], _Progress]:
    """Fit every method `cfg.train_seeds` times per fold of `plan` and score it at every `k`.

    `seen_of(f, fold)` is the data fold `f`'s methods see, `fit(method, seen, f, fold, inside)`
    fits one, `score(method, name, tasks, k, q_units, q_ratings)` returns its per-unit metrics.
    Returns (the accumulators by (method, k), fit seconds, whether each method predicts
    ratings, the progress reporter to finish with).
    """
    acc = {(m, k): _Acc() for m in cfg.methods for k in ks}
    fit_seconds = dict.fromkeys(cfg.methods, 0.0)
    predicts: dict[str, bool] = {}
    units_of = {m: fit_units(m, _table(m, cfg)) for m in cfg.methods}
    prog = _Progress(
        progress, len(plan) * cfg.train_seeds * sum(u + len(ks) for u in units_of.values())
    )
    try:
        for f, (fold, tasks) in enumerate(plan):
            seen = seen_of(f, fold)
            q_units = np.stack([t.query[0] for t in tasks]).astype(np.int64)
            q_ratings = np.stack([t.query[1] for t in tasks]).astype(np.float64)
            here = where(f)
            for name in cfg.methods:
                fits: dict[int | None, list[_Acc]] = {k: [] for k in ks}
                for s in range(cfg.train_seeds):
                    _check_stop(should_stop)
                    run = name if cfg.train_seeds == 1 else f"{name} (seed {cfg.seed + s})"
                    head = f"{here}: fitting {run}"
                    prog.message(head)
                    method = _instantiate(name, cfg, cfg.seed + s)

                    def inside(fraction: float, text: str, head=head, units=units_of[name]):
                        prog.within(units, fraction, f"{head}: {text}")

                    t0 = time.perf_counter()
                    fit(method, seen, f, fold, inside)
                    fit_seconds[name] += time.perf_counter() - t0
                    predicts[name] = bool(method.capabilities.predicts_ratings)
                    prog.step(f"{here}: fitted {run}", units_of[name])
                    for k in ks:
                        _check_stop(should_stop)
                        t0 = time.perf_counter()
                        fits[k].append(score(method, name, tasks, k, q_units, q_ratings))
                        acc[(name, k)].seconds += time.perf_counter() - t0
                        prog.step(f"{here}: scored {run} at k={'all' if k is None else k}")
                for k in ks:
                    acc[(name, k)].add_mean_of(fits[k])
    finally:
        prog.close()
    return acc, fit_seconds, predicts, prog


def _report(
    dataset,
    protocol,
    cfg: EvalConfig,
    ks: Sequence[int | None],
    acc: Mapping[tuple[str, int | None], _Acc],
    fit_seconds: Mapping[str, float],
    predicts: Mapping[str, bool],
    recall: bool,
    prog: _Progress,
) -> EvaluationReport:
    """The report's rows (one per method and k; recall@10 only where `recall`) and its paired
    MAE differences between the methods that predict ratings."""
    rows, per_unit_mae = [], {}
    for name in cfg.methods:
        for k in ks:
            a = acc[(name, k)]
            recalls = a.cat("recall")
            mae = mae_ci = rmse = by_seed = None
            if predicts[name]:
                per_unit = a.cat("mae")
                per_unit_mae[(name, k)] = per_unit
                lo, hi = metrics.bootstrap_ci(per_unit, n_boot=cfg.n_boot, seed=cfg.seed)
                mae, rmse, mae_ci = (
                    _mean(per_unit),
                    _mean(a.cat("rmse")),
                    (_finite(lo), _finite(hi)),
                )
                if a.mae_by_run:  # the spread that one training run alone would show
                    by_seed = tuple(_mean(np.concatenate(run)) for run in a.mae_by_run)
            rows.append(
                MethodRow(
                    method=name,
                    support=k,
                    users=len(a.cat("3")),  # every scored unit has an nDCG
                    mae=mae,
                    rmse=rmse,
                    ndcg_3=_mean(a.cat("3")),
                    ndcg_5=_mean(a.cat("5")),
                    recall_10=_mean(recalls) if recall else None,
                    seconds=fit_seconds[name] + a.seconds,
                    mae_ci95=mae_ci,
                    recall_users=int((~np.isnan(recalls)).sum()) if recall else 0,
                    recall_excluded=int(np.isnan(recalls).sum()) if recall else 0,
                    fit_seconds=fit_seconds[name],
                    score_seconds=a.seconds,
                    mae_by_seed=by_seed,
                )
            )

    def pair(m: str, vs: str, k: int | None) -> PairedDifference:
        return _paired(per_unit_mae, m, vs, k, cfg)

    paired, pairwise = [], []
    raters = [m for m in cfg.methods if predicts[m]]
    if len(raters) >= 2:
        for k in ks:
            means = {m: float(per_unit_mae[(m, k)].mean()) for m in raters}
            for m in raters:
                paired.append(pair(m, min((o for o in raters if o != m), key=means.get), k))
            for m in (m for m in cfg.compare_all if m in raters):
                pairwise += [pair(m, o, k) for o in raters if o != m]
    prog.message("done")
    return EvaluationReport(dataset, protocol, tuple(rows), tuple(paired), tuple(pairwise))


# ---------------------------------------------------------------------------------------------
# New items (--cold items)


def _run_items(
    data: RatingsDataset,
    cfg: EvalConfig,
    progress: Progress,
    should_stop: Callable[[], bool] | None,
) -> EvaluationReport:
    """`run_evaluation` for ``cfg.cold == "items"`` (`protocol.item_splits` says how).

    Every method is fitted on `without_items(data, test_items)`: no rating of a test item can
    reach a fit, its tuning or its early stopping. Metrics are per test item over its query
    users (MAE, RMSE, nDCG@3/@5 of the query users ranked by prediction), averaged over items.
    """
    dataset = summarize(data)
    plan, left_out, n_test = _fold_plan(
        item_folds(data, cfg.folds, cfg.seed, VAL_FRACTION),
        lambda fold, **sizes: make_item_tasks(data, fold.test_items, **sizes),
        cfg,
        "item",
    )
    protocol = ItemKShotProtocol(**_kshot_fields(cfg, left_out), test_items=n_test)
    low = float(data.scale.low)

    def seen_of(f: int, fold) -> RatingsDataset:
        return without_items(data, fold.test_items)

    def fit(method, seen: RatingsDataset, f: int, fold, inside) -> None:
        method.fit(seen, fold.train_items, fold.val_items, should_stop=should_stop, progress=inside)

    def score(method, name: str, tasks, k, q_users: np.ndarray, q_ratings: np.ndarray) -> _Acc:
        pred = np.asarray(method.predict([t.new_item(k) for t in tasks], q_users), np.float64)
        if pred.shape != q_users.shape or not np.isfinite(pred).all():
            raise ValueError(
                f"method {name!r} returned predictions of shape {pred.shape} "
                f"(expected {q_users.shape}, all finite)"
            )
        a = _Acc()
        _add_rating_metrics(a, pred, q_ratings, low)
        return a

    acc, fit_seconds, _, prog = _fit_and_score(
        plan,
        cfg,
        cfg.support,
        progress,
        should_stop,
        lambda f: f"fold {f + 1}/{len(plan)}",
        seen_of,
        fit,
        score,
    )
    # every items' method predicts ratings
    predicts = dict.fromkeys(cfg.methods, True)
    return _report(dataset, protocol, cfg, cfg.support, acc, fit_seconds, predicts, False, prog)
