"""The evaluation report as typed records: what `runner.run_evaluation` returns.

`EvaluationReport.to_dict()` is the JSON of ``evaluate --out`` (keys and values as before this
module existed, explanatory notes included); `from_dict` / `from_json` read it back, e.g. a report
saved in a workspace. `to_csv()` gives the rows as CSV, `to_text()` the aligned table the CLI
prints. A support size of None stands for MeLU's "all the rest" (``"all"`` in the JSON).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from metarec_core.data.dataset import RatingScale
from metarec_core.data.summary import DatasetSummary

__all__ = [
    "CSV_COLUMNS",
    "ROW_COLUMNS",
    "BothKShotProtocol",
    "EvaluationReport",
    "ItemKShotProtocol",
    "KShotProtocol",
    "MeluProtocol",
    "MeluStateProtocol",
    "MethodRow",
    "PairedDifference",
    "SupportSizes",
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
CSV_COLUMNS = (
    *ROW_COLUMNS,
    "mae_ci95_lo",
    "mae_ci95_hi",
    "recall_users",
    "recall_excluded",
    "fit_seconds",
    "score_seconds",
)
PAIRED_NOTE = (
    "each rating predictor vs the best other rating predictor at the same support size "
    "(lowest mean MAE); mae_diff = mean per-user MAE(method) - MAE(vs), < 0: method better"
)
SECONDS_NOTE = "fit time summed over folds and training runs + scoring time at that support size"
ALL = "all"  # the JSON's support size of the melu protocol

Interval = tuple[float | None, float | None]  # a 95% CI; None where it is not finite


_REQUIRED = object()  # `_Reader`: no default, the key must be there


class _Reader:
    """Reads one JSON object of a report; a missing or mistyped value is a ValueError naming
    where it is (e.g. "rows[3].users")."""

    def __init__(self, obj: object, where: str) -> None:
        if not isinstance(obj, Mapping):
            raise ValueError(f"evaluation report: {where} must be an object, got {obj!r:.60}")
        self.obj, self.where = obj, where

    def _path(self, key: str) -> str:
        return key if self.where == "report" else f"{self.where}.{key}"

    def _get(self, key: str, kinds: tuple[type, ...], default: Any, optional: bool) -> Any:
        if key not in self.obj:
            if default is not _REQUIRED:
                return default
            raise ValueError(f"evaluation report: {self.where} has no {key!r}")
        v = self.obj[key]
        if v is None and optional:
            return None
        if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
            raise ValueError(f"evaluation report: {self._path(key)} = {v!r:.60} is not valid")
        return v

    def integer(self, key: str, default: Any = _REQUIRED) -> int:
        return int(self._get(key, (int,), default, False))

    def number(self, key: str, default: Any = _REQUIRED, optional: bool = False) -> float | None:
        """A float; with `optional`, null (and a missing key) read as None."""
        v = self._get(key, (int, float), None if optional else default, optional)
        return None if v is None else float(v)

    def text(self, key: str) -> str:
        return self._get(key, (str,), _REQUIRED, False)

    def support(self, key: str) -> int | None:
        v = self._get(key, (int, str), _REQUIRED, False)
        if isinstance(v, str) and v != ALL:
            raise ValueError(f"evaluation report: {self._path(key)} = {v!r} is not a support size")
        return None if v == ALL else v

    def interval(self, key: str, optional: bool) -> Interval | None:
        v = self._get(key, (list, tuple), None if optional else _REQUIRED, optional)
        if v is None:
            return None
        if len(v) != 2 or not all(x is None or isinstance(x, int | float) for x in v):
            raise ValueError(f"evaluation report: {self._path(key)} = {v!r:.60} is not [lo, hi]")
        return _interval(*v)

    def support_sizes(self, key: str = "support") -> tuple[int, ...]:
        """A k-shot protocol's list of support sizes."""
        support = self._get(key, (list, tuple), _REQUIRED, False)
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in support):
            raise ValueError(f"evaluation report: {self._path(key)} = {support!r:.60} is not valid")
        return tuple(support)

    def sub(self, key: str) -> _Reader:
        return _Reader(self._get(key, (Mapping,), _REQUIRED, False), self._path(key))


def _interval(lo: float | None, hi: float | None) -> Interval:
    return (None if lo is None else float(lo), None if hi is None else float(hi))


def _kshot_head(p: Any) -> dict[str, Any]:
    """The settings every k-shot protocol (users, items, both) writes first."""
    return {
        "folds": p.folds,
        "query": p.query,
        "support": list(p.support),
        "seed": p.seed,
        "val_fraction": p.val_fraction,
        "min_ratings": p.min_ratings,
    }


def _with_seeds_note(out: dict[str, Any], note: str | None) -> dict[str, Any]:
    """`out` with the training runs' note, when there is one."""
    if note:
        out["train_seeds_note"] = note
    return out


def _support_json(k: int | None) -> int | str:
    return ALL if k is None else k


@dataclass(frozen=True)
class MethodRow:
    """One method at one support size: means of per-user metrics over all test users.

    `mae`, `rmse` and `mae_ci95` are None for ranking-only methods; `recall_10` is over the
    `recall_users` users with a relevant hidden rating (`recall_excluded` have none).
    `mae_by_seed`: the MAE of each training run alone (only with several training runs).
    """

    method: str
    support: int | None
    users: int
    mae: float | None
    rmse: float | None
    ndcg_3: float | None
    ndcg_5: float | None
    recall_10: float | None
    seconds: float  # fit_seconds + score_seconds
    mae_ci95: Interval | None
    recall_users: int
    recall_excluded: int
    fit_seconds: float  # summed over folds and training runs
    score_seconds: float  # at this support size
    mae_by_seed: tuple[float | None, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The row as in the JSON report (keys in `ROW_COLUMNS` order, then the extras)."""
        out: dict[str, Any] = {
            "method": self.method,
            "support": _support_json(self.support),
            "users": self.users,
            "mae": self.mae,
            "rmse": self.rmse,
            "ndcg@3": self.ndcg_3,
            "ndcg@5": self.ndcg_5,
            "recall@10": self.recall_10,
            "seconds": self.seconds,
            "mae_ci95": None if self.mae_ci95 is None else list(self.mae_ci95),
            "recall_users": self.recall_users,
            "recall_excluded": self.recall_excluded,
            "fit_seconds": self.fit_seconds,
            "score_seconds": self.score_seconds,
        }
        if self.mae_by_seed is not None:
            out["mae_by_seed"] = list(self.mae_by_seed)
        return out

    @classmethod
    def from_dict(cls, d: object, where: str = "row") -> MethodRow:
        r = _Reader(d, where)
        by_seed = r._get("mae_by_seed", (list, tuple), None, True)
        return cls(
            method=r.text("method"),
            support=r.support("support"),
            users=r.integer("users"),
            mae=r.number("mae", optional=True),
            rmse=r.number("rmse", optional=True),
            ndcg_3=r.number("ndcg@3", optional=True),
            ndcg_5=r.number("ndcg@5", optional=True),
            recall_10=r.number("recall@10", optional=True),
            seconds=r.number("seconds"),
            mae_ci95=r.interval("mae_ci95", optional=True),
            recall_users=r.integer("recall_users", default=0),
            recall_excluded=r.integer("recall_excluded", default=0),
            fit_seconds=r.number("fit_seconds", default=0.0),
            score_seconds=r.number("score_seconds", default=0.0),
            mae_by_seed=None
            if by_seed is None
            else tuple(None if x is None else float(x) for x in by_seed),
        )


@dataclass(frozen=True)
class PairedDifference:
    """`method` against `vs` (the best other rating predictor at that support size), user by
    user: mae_diff = mean of MAE(method) − MAE(vs) (< 0: `method` better) with its paired
    bootstrap 95% interval."""

    method: str
    vs: str
    support: int | None
    mae_diff: float | None
    ci95: Interval
    users: int

    @property
    def excludes_zero(self) -> bool:
        """The interval lies wholly on one side of 0: unlikely to be resampling noise."""
        lo, hi = self.ci95
        return lo is not None and hi is not None and (lo > 0 or hi < 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "vs": self.vs,
            "support": _support_json(self.support),
            "mae_diff": self.mae_diff,
            "ci95": list(self.ci95),
            "users": self.users,
        }

    @classmethod
    def from_dict(cls, d: object, where: str = "paired") -> PairedDifference:
        r = _Reader(d, where)
        ci = r.interval("ci95", optional=False)
        assert ci is not None
        return cls(
            method=r.text("method"),
            vs=r.text("vs"),
            support=r.support("support"),
            mae_diff=r.number("mae_diff", optional=True),
            ci95=ci,
            users=r.integer("users"),
        )


@dataclass(frozen=True)
class _Protocol:
    """What both protocols record: the configuration and the users it drew."""

    query: int  # hidden ratings per test user
    seed: int
    val_fraction: float  # of training users kept for tuning / early stopping
    min_ratings: int  # a test user needs at least this many ratings
    test_users: int
    left_out: int  # users with too few (or, melu, too many) ratings
    relevant_threshold: float  # a hidden rating >= this is relevant for recall@10
    bootstrap_resamples: int
    train_seeds: int  # fits per method and fold, per-user metrics averaged over them

    name: ClassVar[str]

    @property
    def train_seeds_note(self) -> str | None:
        """What several training runs mean, in words (None for one run)."""
        if self.train_seeds <= 1:
            return None
        last = self.seed + self.train_seeds - 1
        return (
            f"every method fitted {self.train_seeds} times per fold (seeds {self.seed}.."
            f"{last}); per-user metrics are means over the fits"
        )

    @property
    def notes(self) -> tuple[str, ...]:
        """The report's explanatory notes: paired differences, seconds, training runs."""
        extra = self.train_seeds_note
        return (PAIRED_NOTE, SECONDS_NOTE, *((extra,) if extra else ()))

    def _tail(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "relevant_threshold": self.relevant_threshold,
            "bootstrap_resamples": self.bootstrap_resamples,
            "paired": PAIRED_NOTE,
            "seconds": SECONDS_NOTE,
            "train_seeds": self.train_seeds,
        }
        return _with_seeds_note(out, self.train_seeds_note)

    @staticmethod
    def _common(r: _Reader) -> dict[str, Any]:
        return {
            "query": r.integer("query"),
            "seed": r.integer("seed"),
            "val_fraction": r.number("val_fraction"),
            "min_ratings": r.integer("min_ratings"),
            "test_users": r.integer("test_users"),
            "left_out": r.integer("left_out"),
            "relevant_threshold": r.number("relevant_threshold"),
            "bootstrap_resamples": r.integer("bootstrap_resamples"),
            "train_seeds": r.integer("train_seeds", default=1),
        }


@dataclass(frozen=True)
class KShotProtocol(_Protocol):
    """K folds over users; every test user scored after each support size k."""

    folds: int
    support: tuple[int, ...]

    name: ClassVar[str] = "kshot"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **_kshot_head(self),
            "test_users": self.test_users,
            "left_out": self.left_out,
            **self._tail(),
        }

    @classmethod
    def from_reader(cls, r: _Reader) -> KShotProtocol:
        support = r.support_sizes()  # checked first, as before
        return cls(**cls._common(r), folds=r.integer("folds"), support=support)


class SupportSizes(NamedTuple):
    """Ratings seen per test user under the melu protocol (all but the hidden ones)."""

    min: int
    median: float
    max: int


@dataclass(frozen=True)
class MeluProtocol(_Protocol):
    """The MeLU paper's split: users with `min_ratings`..`max_ratings` ratings, a
    `test_fraction` of them new users who show all their ratings but the `query` hidden ones."""

    max_ratings: int
    test_fraction: float
    train_users: int
    val_users: int
    support_sizes: SupportSizes

    name: ClassVar[str] = "melu"

    def to_dict(self) -> dict[str, Any]:
        s = self.support_sizes
        return {
            "name": self.name,
            "query": self.query,
            "support": ALL,
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "min_ratings": self.min_ratings,
            "max_ratings": self.max_ratings,
            "test_fraction": self.test_fraction,
            "train_users": self.train_users,
            "val_users": self.val_users,
            "test_users": self.test_users,
            "left_out": self.left_out,
            "support_sizes": {"min": s.min, "median": s.median, "max": s.max},
            **self._tail(),
        }

    @classmethod
    def from_reader(cls, r: _Reader) -> MeluProtocol:
        s = r.sub("support_sizes")
        return cls(
            **cls._common(r),
            max_ratings=r.integer("max_ratings"),
            test_fraction=r.number("test_fraction"),
            train_users=r.integer("train_users"),
            val_users=r.integer("val_users"),
            support_sizes=SupportSizes(
                s.integer("min"), float(s.number("median")), s.integer("max")
            ),
        )


NEW_ITEMS_NOTE = (
    "new items (--cold both, melu states item and both): the methods' new items' parameters "
    "are regressed from their metadata (methods/both.py); recall@10 is not measured"
)


@dataclass(frozen=True)
class BothKShotProtocol(KShotProtocol):
    """``--cold both``: user fold f with item fold f; a test user's support is its first k
    ratings of warm items, its query `query` of its ratings of the fold's new items."""

    new_items: int  # test items over all folds (metadata only)

    name: ClassVar[str] = "kshot_both"

    @property
    def notes(self) -> tuple[str, ...]:
        return (*super().notes, NEW_ITEMS_NOTE)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "cold": "both", "new_items": self.new_items}

    @classmethod
    def from_reader(cls, r: _Reader) -> BothKShotProtocol:
        base = KShotProtocol.from_reader(r)
        return cls(**base.__dict__, new_items=r.integer("new_items"))


@dataclass(frozen=True)
class MeluStateProtocol(MeluProtocol):
    """``--protocol melu --state S``: MeLU's users split and a release-year item split; the
    state's test users and query items (protocol/both_splits.py)."""

    state: str  # warm, user, item or both
    cut_year: int  # items released in or after it are new
    new_items: int
    new_users: int
    fit_ratings: int  # ratings every state's methods are fitted on

    name: ClassVar[str] = "melu_state"

    @property
    def notes(self) -> tuple[str, ...]:
        return (*super().notes, NEW_ITEMS_NOTE)

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "state": self.state,
            "cut_year": self.cut_year,
            "new_items": self.new_items,
            "new_users": self.new_users,
            "fit_ratings": self.fit_ratings,
        }

    @classmethod
    def from_reader(cls, r: _Reader) -> MeluStateProtocol:
        base = MeluProtocol.from_reader(r)
        return cls(
            **base.__dict__,
            state=r.text("state"),
            cut_year=r.integer("cut_year"),
            new_items=r.integer("new_items"),
            new_users=r.integer("new_users"),
            fit_ratings=r.integer("fit_ratings"),
        )


ITEM_ROWS_NOTE = (
    "new items (--cold items): a row's 'users' counts test items; its metrics are means over "
    "items of per-item metrics over the item's query users (recall@10 is not measured)"
)
ITEM_PAIRED_NOTE = (
    "each rating predictor vs the best other rating predictor at the same support size "
    "(lowest mean MAE); mae_diff = mean per-item MAE(method) - MAE(vs), < 0: method better"
)


@dataclass(frozen=True)
class ItemKShotProtocol:
    """``--cold items``: K folds over items; every test item scored after each support size k
    (its first k ratings; k = 0: metadata alone), its last `query` ratings hidden."""

    folds: int
    query: int  # hidden ratings (query users) per test item
    support: tuple[int, ...]
    seed: int
    val_fraction: float  # of training items kept for tuning / early stopping
    min_ratings: int  # a test item needs at least this many ratings
    test_items: int
    left_out: int  # test items with too few ratings
    bootstrap_resamples: int
    train_seeds: int

    name: ClassVar[str] = "kshot_items"

    @property
    def train_seeds_note(self) -> str | None:
        return KShotProtocol.train_seeds_note.fget(self)  # type: ignore[arg-type]

    @property
    def notes(self) -> tuple[str, ...]:
        extra = self.train_seeds_note
        return (ITEM_ROWS_NOTE, ITEM_PAIRED_NOTE, SECONDS_NOTE, *((extra,) if extra else ()))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "cold": "items",
            **_kshot_head(self),
            "test_items": self.test_items,
            "left_out": self.left_out,
            "bootstrap_resamples": self.bootstrap_resamples,
            "rows": ITEM_ROWS_NOTE,
            "paired": ITEM_PAIRED_NOTE,
            "seconds": SECONDS_NOTE,
            "train_seeds": self.train_seeds,
        }
        return _with_seeds_note(out, self.train_seeds_note)

    @classmethod
    def from_reader(cls, r: _Reader) -> ItemKShotProtocol:
        support = r.support_sizes()
        return cls(
            folds=r.integer("folds"),
            query=r.integer("query"),
            support=support,
            seed=r.integer("seed"),
            val_fraction=r.number("val_fraction"),
            min_ratings=r.integer("min_ratings"),
            test_items=r.integer("test_items"),
            left_out=r.integer("left_out"),
            bootstrap_resamples=r.integer("bootstrap_resamples"),
            train_seeds=r.integer("train_seeds", default=1),
        )


def _summary_from_dict(r: _Reader) -> DatasetSummary:
    """The inverse of `DatasetSummary.to_dict` (fields a report from an older version lacks
    get their defaults)."""
    s = r.sub("scale")
    mean = r.number("mean_rating", optional=True)
    d = r.obj
    return DatasetSummary(
        source=r.text("source"),
        n_users=r.integer("n_users"),
        n_items=r.integer("n_items"),
        n_ratings=r.integer("n_ratings"),
        scale=RatingScale(float(s.number("low")), float(s.number("high")), float(s.number("step"))),
        density=float(r.number("density")),
        ratings_per_user=dict(d.get("ratings_per_user", {})),
        ratings_per_item=dict(d.get("ratings_per_item", {})),
        rating_counts=dict(d.get("rating_counts", {})),
        notes=tuple(d.get("notes", ())),
        has_items=bool(d.get("has_items", False)),
        mean_rating=math.nan if mean is None else mean,
        users_fewer_than=dict(d.get("users_fewer_than", {})),
        n_genres=r.integer("n_genres", default=0),
        items_missing=r.integer("items_missing", default=0),
    )


@dataclass(frozen=True)
class EvaluationReport:
    """An evaluation's result: the dataset, the protocol (configuration and the users drawn),
    one row per method × support size, the paired differences (each method vs the best other)
    and `pairwise`: the methods of ``EvalConfig.compare_all`` vs every other rating predictor
    (``"pairwise"`` in the JSON only when there are any)."""

    dataset: DatasetSummary
    protocol: KShotProtocol | MeluProtocol | ItemKShotProtocol
    rows: tuple[MethodRow, ...]
    paired: tuple[PairedDifference, ...]
    pairwise: tuple[PairedDifference, ...] = ()

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods evaluated, in the report's order."""
        return tuple(dict.fromkeys(r.method for r in self.rows))

    @property
    def notes(self) -> tuple[str, ...]:
        """What the paired differences and seconds mean, and how training runs were averaged."""
        return self.protocol.notes

    # -- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the keys and values ``evaluate --out`` writes (strict JSON, no NaN)."""
        out = {
            "dataset": self.dataset.to_dict(),
            "protocol": self.protocol.to_dict(),
            "rows": [r.to_dict() for r in self.rows],
            "paired": [p.to_dict() for p in self.paired],
        }
        if self.pairwise:
            out["pairwise"] = [p.to_dict() for p in self.pairwise]
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: object) -> EvaluationReport:
        """Read a report written by `to_dict` (ValueError naming the first bad value)."""
        r = _Reader(d, "report")
        p = r.sub("protocol")
        name = p.text("name")
        protocol: KShotProtocol | MeluProtocol | ItemKShotProtocol
        if name == BothKShotProtocol.name:
            protocol = BothKShotProtocol.from_reader(p)
        elif name == MeluStateProtocol.name:
            protocol = MeluStateProtocol.from_reader(p)
        elif name == KShotProtocol.name:
            protocol = KShotProtocol.from_reader(p)
        elif name == MeluProtocol.name:
            protocol = MeluProtocol.from_reader(p)
        elif name == ItemKShotProtocol.name:
            protocol = ItemKShotProtocol.from_reader(p)
        else:
            raise ValueError(f"evaluation report: unknown protocol {name!r}")
        rows = r._get("rows", (list,), _REQUIRED, False)
        paired = r._get("paired", (list,), [], False)
        pairwise = r._get("pairwise", (list,), [], False)
        return cls(
            dataset=_summary_from_dict(r.sub("dataset")),
            protocol=protocol,
            rows=tuple(MethodRow.from_dict(x, f"rows[{i}]") for i, x in enumerate(rows)),
            paired=tuple(
                PairedDifference.from_dict(x, f"paired[{i}]") for i, x in enumerate(paired)
            ),
            pairwise=tuple(
                PairedDifference.from_dict(x, f"pairwise[{i}]") for i, x in enumerate(pairwise)
            ),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> EvaluationReport:
        try:
            d = json.loads(text)
        except ValueError as e:
            raise ValueError(f"evaluation report: not JSON ({e})") from None
        return cls.from_dict(d)

    # -- CSV and text ---------------------------------------------------------------------------
    def to_csv(self) -> str:
        """The rows as CSV text (`CSV_COLUMNS`, header first; empty cells for nulls)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for row in self.rows:
            d = row.to_dict()
            ci = row.mae_ci95 or (None, None)
            flat = {**d, "mae_ci95_lo": ci[0], "mae_ci95_hi": ci[1]}
            w.writerow(["" if flat.get(c) is None else flat.get(c) for c in CSV_COLUMNS])
        return buf.getvalue()

    def to_text(self) -> str:
        """Aligned text: a header (dataset, protocol), the rows, then the paired differences."""
        ds, pr = self.dataset, self.protocol
        size = f"{ds.n_users} users, {ds.n_items} items, {ds.n_ratings} ratings"
        head = [f"dataset: {ds.source} ({size})"]
        if isinstance(pr, BothKShotProtocol):
            head.append(
                f"protocol: new users on new items (--cold both), {pr.folds} folds, support "
                f"from warm items, query {pr.query} ratings of new items ({pr.new_items} new "
                f"items in all), {pr.test_users} test users ({pr.left_out} left out), "
                f"seed {pr.seed}"
            )
        elif isinstance(pr, MeluStateProtocol):
            head.append(
                f"protocol: melu, state {pr.state}, query {pr.query}, support = the user's other "
                f"ratings of existing items, new items: released {pr.cut_year} or later "
                f"({pr.new_items}), {pr.new_users} new users, {pr.test_users} test users "
                f"({pr.left_out} users left out), seed {pr.seed}"
            )
        elif isinstance(pr, ItemKShotProtocol):
            head.append(
                f"protocol: new items (--cold items), {pr.folds} folds, query {pr.query} users, "
                f"{pr.test_items} test items with >= {pr.min_ratings} ratings "
                f"({pr.left_out} left out), seed {pr.seed}"
            )
        elif isinstance(pr, MeluProtocol):
            head.append(
                f"protocol: melu, query {pr.query}, support = all the rest, "
                f"{pr.test_users} test users ({pr.left_out} users left out), seed {pr.seed}"
            )
        else:
            head.append(
                f"protocol: kshot, {pr.folds} folds, query {pr.query}, "
                f"{pr.test_users} test users with >= {pr.min_ratings} ratings "
                f"({pr.left_out} left out), seed {pr.seed}"
            )
        if pr.train_seeds_note:
            head.append(pr.train_seeds_note)
        table = [list(ROW_COLUMNS)]
        if isinstance(pr, ItemKShotProtocol):  # a row counts test items
            table[0][ROW_COLUMNS.index("users")] = "items"
        for r in self.rows:
            table.append(
                [
                    r.method,
                    str(_support_json(r.support)),
                    str(r.users),
                    *(_fmt(x) for x in (r.mae, r.rmse, r.ndcg_3, r.ndcg_5, r.recall_10)),
                    _fmt(r.seconds, 1),
                ]
            )
        out = [*head, "", *_align(table, left=2)]
        if self.paired:
            out += [
                "",
                "paired MAE difference (method - vs; < 0: method better), bootstrap 95% CI:",
            ]
            ptable = [["method", "vs", "support", "mae_diff", "ci95"]]
            for p in self.paired:
                lo, hi = p.ci95
                ptable.append(
                    [
                        p.method,
                        p.vs,
                        str(_support_json(p.support)),
                        _fmt(p.mae_diff),
                        f"[{_fmt(lo)}, {_fmt(hi)}]",
                    ]
                )
            out += _align(ptable, left=3)
        return "\n".join(out)


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _align(table: Sequence[Sequence[str]], left: int) -> list[str]:
    """Columns padded to equal width: the first `left` left-aligned, the rest right-aligned."""
    widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
    return [
        "  ".join(
            cell.ljust(w) if c < left else cell.rjust(w)
            for c, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in table
    ]
