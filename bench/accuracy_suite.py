"""The accuracy suite: datasets that differ where real data differ, and its summary.

    python bench/accuracy.py --suite                      # every suite dataset whose data exists
    python bench/accuracy.py --suite --datasets ml100k,half_star --quick

`SUITE` names the datasets: ML-100K (the design set, where the learner was tuned), ML-1M (HELD
OUT: never used for a design decision; 3 folds), the sample, and synthetic variants written by
`metarec_core.data.synthetic` (seeded, regenerated into a cache folder when missing or when
their options changed). `summarize` reads one dataset's evaluation report (a dict, as
``evaluate --out`` writes it, with the ``pairwise`` comparisons of the default learner vs every
other method) and gives, per support size k, the verdicts of issue 14's acceptance;
`suite_markdown` writes ``suite.md``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from metarec_core.data.synthetic import SyntheticSpec, make_sample_command, write_sample

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
DATA_DIR = ROOT / "bench" / "out" / "suite_data"  # bench/out/ is gitignored

DEFAULT_LEARNER = "metasgd"
SUITE_BASELINES = ("user_bias", "mf_foldin", "user_bias_levels", "mf_foldin_levels")
SUITE_LEARNERS = ("metasgd", "finetune")
SUITE_METHODS = (*SUITE_BASELINES, *SUITE_LEARNERS)
SUITE_SUPPORT = (0, 1, 3, 5, 10, 20)
SUITE_QUERY = 10
SUITE_SEED = 0
DESIGN, HELD_OUT = "design", "held out"


@dataclass(frozen=True)
class SuiteDataset:
    """One suite dataset: a ratings file (or a synthetic spec written to the cache folder),
    whether it may inform design decisions, and its protocol's sizes."""

    name: str
    about: str
    role: str = DESIGN
    ratings: Path | None = None  # a real file; None: synthetic
    items: Path | None = None
    spec: SyntheticSpec | None = None
    seed: int = 1  # of the synthetic data
    folds: int = 5
    support: tuple[int, ...] = SUITE_SUPPORT
    query: int = SUITE_QUERY

    def paths(self, data_dir: Path = DATA_DIR) -> tuple[Path, Path | None]:
        """(ratings, items) of this dataset; synthetic ones live in `data_dir`/NAME/."""
        if self.spec is None:
            assert self.ratings is not None
            return self.ratings, self.items
        folder = Path(data_dir) / self.name
        return folder / "ratings.csv", folder / "items.csv"

    def command(self, data_dir: Path = DATA_DIR) -> str | None:
        """The `make-sample` command that writes a synthetic dataset (None for a real one)."""
        if self.spec is None:
            return None
        return make_sample_command(_rel(Path(data_dir) / self.name), self.seed, self.spec)


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def ensure_data(ds: SuiteDataset, data_dir: Path = DATA_DIR) -> tuple[Path, Path | None]:
    """The dataset's files, writing a synthetic one first when it is missing or was written
    with other options (its ``spec.json`` records them)."""
    ratings, items = ds.paths(data_dir)
    if ds.spec is None:
        return ratings, items
    stamp = ratings.with_name("spec.json")
    want = json.dumps({"seed": ds.seed, **asdict(ds.spec)}, sort_keys=True)
    if not (ratings.exists() and items is not None and items.exists()) or (
        not stamp.exists() or stamp.read_text() != want
    ):
        write_sample(ratings.parent, seed=ds.seed, spec=ds.spec)
        stamp.write_text(want)
    return ratings, items


def _ml(name: str, *parts: str) -> Path:
    return DATASETS.joinpath(name, *parts)


# Sizes keep each synthetic set at 45k-100k ratings, so that the default learner trains in about a
# minute on 2 cores.
SUITE: dict[str, SuiteDataset] = {
    d.name: d
    for d in (
        SuiteDataset(
            "ml100k",
            "MovieLens-100K (943 users, 1,682 items, 1-5 stars): the design set",
            ratings=_ml("ml-100k", "u.data"),
            items=_ml("ml-100k", "u.item"),
        ),
        SuiteDataset(
            "ml1m",
            "MovieLens-1M (6,040 users, 3,449 items as rebuilt, 1-5 stars): HELD OUT, never used for a "
            "design decision",
            role=HELD_OUT,
            ratings=_ml("ml-1m", "ratings.csv"),
            items=_ml("ml-1m", "items.csv"),
            folds=3,
        ),
        SuiteDataset(
            "sample",
            "the committed synthetic sample (1,000 users, 1,500 items, 1-5 stars)",
            ratings=ROOT / "sample_data" / "ratings.csv",
            items=ROOT / "sample_data" / "items.csv",
        ),
        SuiteDataset(
            "half_star",
            "synthetic, half stars 0.5-5 (ten levels), 800 users, 2,000 items",
            spec=SyntheticSpec(n_users=800, n_items=2000, n_ratings=60_000, scale="0.5-5"),
        ),
        SuiteDataset(
            "ten_point",
            "synthetic, 1-10 points, 1,000 users, 1,500 items",
            spec=SyntheticSpec(n_users=1000, n_items=1500, n_ratings=60_000, scale="1-10"),
        ),
        SuiteDataset(
            "small_catalogue",
            "synthetic, a small catalogue (150 items) and many users (3,000), 20-75 ratings each",
            spec=SyntheticSpec(n_users=3000, n_items=150, n_ratings=100_000),
        ),
        SuiteDataset(
            "sparse_longtail",
            "synthetic, very sparse (density 0.6%) and long-tailed (popularity skew 1.6: "
            "46% of 5,000 items rated once), 2,500 users",
            spec=SyntheticSpec(n_users=2500, n_items=5000, n_ratings=80_000, popularity_skew=1.6),
        ),
        SuiteDataset(
            "short_users",
            "synthetic, every user has 10-20 ratings (3,000 users, 1,500 items); k up to 10 "
            "and query 5, so test users are those with 15-20 ratings",
            spec=SyntheticSpec(
                n_users=3000, n_items=1500, n_ratings=45_000, min_ratings=10, max_ratings=20
            ),
            support=(0, 1, 3, 5, 10),
            query=5,
        ),
    )
}


# -- summary -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KVerdict:
    """The default learner at one support size k against the baselines."""

    k: int
    mae: float | None
    mae_ci95: tuple[float | None, float | None] | None
    best_baseline: str | None
    best_baseline_mae: float | None
    diff: float | None  # learner - best baseline (< 0: learner better)
    diff_ci95: tuple[float | None, float | None] | None
    worse_than: tuple[str, ...]  # baselines significantly better (paired CI above 0)
    never_worse: bool  # not significantly worse than any baseline
    lowest: bool  # lowest mean MAE of every method in the report
    below_baselines: bool = False  # mean MAE below every baseline's


@dataclass(frozen=True)
class Monotone:
    """Whether a method's MAE rises with k beyond its CI: MAE(k2) above the 95% CI of
    MAE(k1) for some k1 < k2. `rise` is the largest MAE(k2) - MAE(k1) over k1 < k2."""

    method: str
    rises: bool
    rise: float
    at: tuple[int, int] | None  # (k1, k2) of the largest rise


@dataclass(frozen=True)
class DatasetSummary:
    name: str
    subject: str  # the learner the verdicts are about
    baselines: tuple[str, ...]
    ks: tuple[KVerdict, ...]
    monotone: tuple[Monotone, ...]
    missing: tuple[str, ...] = field(default=())  # pairs the report lacks

    @property
    def never_worse(self) -> bool:
        return all(v.never_worse for v in self.ks)

    @property
    def lowest_k1(self) -> bool:
        """Lowest mean MAE at every k >= 1."""
        return all(v.lowest for v in self.ks if v.k >= 1)

    @property
    def below_baselines_k1(self) -> bool:
        """Mean MAE below every baseline's at every k >= 1."""
        return all(v.below_baselines for v in self.ks if v.k >= 1)

    @property
    def no_rise(self) -> bool:
        return not any(m.rises for m in self.monotone)


def _rows(report: dict) -> dict[tuple[str, int], dict]:
    return {(r["method"], r["support"]): r for r in report["rows"] if r["mae"] is not None}


def _significantly_positive(ci: Sequence[float | None] | None) -> bool:
    return ci is not None and ci[0] is not None and ci[0] > 0


def monotone(report: dict, method: str) -> Monotone:
    """Does `method`'s MAE rise with k beyond its CI in `report`? (see `Monotone`)"""
    rows = _rows(report)
    ks = sorted(k for (m, k) in rows if m == method and isinstance(k, int))
    rises, worst, at = False, -math.inf, None
    for i, k1 in enumerate(ks):
        hi = (rows[(method, k1)].get("mae_ci95") or [None, None])[1]
        for k2 in ks[i + 1 :]:
            up = rows[(method, k2)]["mae"] - rows[(method, k1)]["mae"]
            if up > worst:
                worst, at = up, (k1, k2)
            if hi is not None and rows[(method, k2)]["mae"] > hi:
                rises = True
    return Monotone(method, rises, 0.0 if at is None else worst, at)


def summarize(
    name: str,
    report: dict,
    subject: str = DEFAULT_LEARNER,
    baselines: Sequence[str] = SUITE_BASELINES,
) -> DatasetSummary:
    """Verdicts of `subject` against `baselines` at every k of a k-shot `report` (a dict as
    ``evaluate --out`` writes it, with ``pairwise`` holding `subject` vs every other method)."""
    rows = _rows(report)
    methods = list(dict.fromkeys(m for m, _ in rows))
    if subject not in methods:
        raise ValueError(f"{name}: the report has no MAE of {subject!r} (methods: {methods})")
    base = tuple(b for b in baselines if b in methods and b != subject)
    pairs = {
        (p["vs"], p["support"]): p for p in report.get("pairwise", []) if p["method"] == subject
    }
    ks = sorted(k for (m, k) in rows if m == subject)
    verdicts, missing = [], []
    for k in ks:
        r = rows[(subject, k)]
        best = min(base, key=lambda b: rows[(b, k)]["mae"]) if base else None
        p = pairs.get((best, k))
        lacking = [b for b in base if (b, k) not in pairs]
        missing += [f"{subject} vs {b} at k={k}" for b in lacking]
        worse = tuple(
            b for b in base if _significantly_positive((pairs.get((b, k)) or {}).get("ci95"))
        )
        others = [rows[(m, k)]["mae"] for m in methods if m != subject and (m, k) in rows]
        verdicts.append(
            KVerdict(
                k=k,
                mae=r["mae"],
                mae_ci95=tuple(r["mae_ci95"]) if r.get("mae_ci95") else None,
                best_baseline=best,
                best_baseline_mae=None if best is None else rows[(best, k)]["mae"],
                diff=None if p is None else p["mae_diff"],
                diff_ci95=None if p is None else tuple(p["ci95"]),
                worse_than=worse,
                never_worse=not worse and not lacking,
                lowest=all(r["mae"] < o for o in others),
                below_baselines=all(r["mae"] < rows[(b, k)]["mae"] for b in base),
            )
        )
    mono = tuple(monotone(report, m) for m in methods)
    return DatasetSummary(name, subject, base, tuple(verdicts), mono, tuple(missing))


def _f(x: float | None, fmt: str = ".4f") -> str:
    return "–" if x is None else format(x, fmt)


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def headline_markdown(summaries: Sequence[DatasetSummary], roles: dict[str, str]) -> str:
    """One table over the datasets: the learner's MAE minus the best baseline's at each k
    (paired 95% CI; bold where the CI excludes 0 either way)."""
    ks = sorted({v.k for s in summaries for v in s.ks})
    out = [
        "| dataset | role | " + " | ".join(f"k={k}" for k in ks) + " |",
        "|---|---|" + "---:|" * len(ks),
    ]
    for s in summaries:
        by_k = {v.k: v for v in s.ks}
        cells = []
        for k in ks:
            v = by_k.get(k)
            if v is None or v.diff is None or v.diff_ci95 is None:
                cells.append("–")
                continue
            lo, hi = v.diff_ci95
            text = f"{v.diff:+.4f} [{lo:+.3f}, {hi:+.3f}]"
            significant = lo is not None and hi is not None and (lo > 0 or hi < 0)
            cells.append(f"**{text}**" if significant else text)
        out.append(f"| {s.name} | {roles.get(s.name, '')} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def suite_markdown(
    summaries: Sequence[DatasetSummary],
    roles: dict[str, str],
    notes: dict[str, Sequence[str]] | None = None,
    learners: Sequence[str] = SUITE_LEARNERS,
) -> str:
    """``suite.md``: an overview line per dataset, then per dataset (after its `notes` lines,
    e.g. its commands) and k the verdicts, then the monotone-in-k check per method."""
    notes = notes or {}
    out = [
        "## Accuracy suite",
        "",
        "Per dataset: the default learner against the baselines at every k (paired 95% bootstrap "
        "CIs over test users; < 0: the learner better). 'never worse': not significantly worse "
        "than any baseline (no paired CI above 0); 'below baselines': a lower mean MAE than every "
        "baseline; 'lowest': the lowest mean MAE of all methods evaluated (the learners' ablation "
        "included); 'no rise': no method's MAE at a larger k lies above the 95% CI of its MAE at "
        "a smaller k.",
        "",
        "| dataset | role | learner | never worse, every k | below baselines, every k ≥ 1 | "
        "lowest, every k ≥ 1 | no rise (all methods) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        out.append(
            f"| {s.name} | {roles.get(s.name, '')} | {s.subject} | {_yes(s.never_worse)} | "
            f"{_yes(s.below_baselines_k1)} | {_yes(s.lowest_k1)} | {_yes(s.no_rise)} |"
        )
    if summaries:
        out += [
            "",
            f"{summaries[0].subject} − the best baseline at each k, MAE (paired 95% CI over test "
            "users; < 0: the learner better; bold: the CI excludes 0):",
            "",
            headline_markdown(summaries, roles).rstrip("\n"),
        ]
    for s in summaries:
        out += [
            "",
            f"### {s.name} ({roles.get(s.name, '')})",
            "",
            *(line for n in notes.get(s.name, ()) for line in (n, "")),
            f"| k | {s.subject} MAE | best baseline | its MAE | {s.subject} − best [95% CI] | "
            "never worse | below baselines | lowest | significantly better baselines |",
            "|---:|---:|---|---:|---|---|---|---|---|",
        ]
        for v in s.ks:
            ci = (
                "–"
                if v.diff_ci95 is None
                else f"{_f(v.diff, '+.4f')} [{_f(v.diff_ci95[0], '+.4f')}, "
                f"{_f(v.diff_ci95[1], '+.4f')}]"
            )
            out.append(
                f"| {v.k} | {_f(v.mae)} | {v.best_baseline or '–'} | {_f(v.best_baseline_mae)} | "
                f"{ci} | {_yes(v.never_worse)} | {_yes(v.below_baselines)} | {_yes(v.lowest)} | "
                f"{', '.join(v.worse_than) or '–'} |"
            )
        if s.missing:
            out += ["", "Missing paired comparisons: " + "; ".join(s.missing)]
        out += [
            "",
            "| method | MAE rises with k beyond its CI | largest rise, k1 → k2 (< 0: none) |",
        ]
        out.append("|---|---|---|")
        for m in s.monotone:
            tag = " (learner)" if m.method in learners else ""
            at = "–" if m.at is None else f"{m.rise:+.4f} ({m.at[0]} → {m.at[1]})"
            out.append(f"| {m.method}{tag} | {'**yes**' if m.rises else 'no'} | {at} |")
    return "\n".join(out) + "\n"
