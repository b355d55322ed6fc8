"""Accuracy benchmark: run named evaluation configurations, write JSON, CSV and markdown tables.

    python bench/accuracy.py --out bench/out                 # every configuration whose data exists
    python bench/accuracy.py --only baselines_ml100k         # one configuration
    python bench/accuracy.py --list
    python bench/accuracy.py --suite                         # the accuracy suite (bench/accuracy_suite.py)
    python bench/accuracy.py --suite --datasets half_star --quick   # a smoke run of one dataset

Each configuration writes ``OUT/NAME.json`` (the `evaluate` report, plus a ``bench`` block with
the wall time, the equivalent CLI command and the machine), ``OUT/NAME.csv`` and ``OUT/NAME.md``;
``OUT/accuracy.md`` collects the markdown of every configuration found in OUT. Add meta-learners by
adding configurations to CONFIGS (method names as in `metarec_core.methods.registry`).

``--suite`` runs the suite's datasets instead (`accuracy_suite.SUITE`: ML-100K, ML-1M held out,
the sample and synthetic variants, written into ``--data-dir`` when missing): every baseline and
learner, k = 0,1,3,5,10,20, query 10, 5 folds (3 on ML-1M), 3 training runs, the default learner
compared with every other method. Each dataset writes ``OUT/suite_NAME.{json,csv,md}``;
``OUT/suite.md`` summarises every suite report found in OUT (verdicts per k, monotone-in-k check).
``--quick``: 2 folds and 1 training run, for a smoke run.

Timing note: the machine may be shared; the wall time is what this run took, not a benchmark of
the CPU. The acceptance target (all baselines, 5 folds, ML-100K) is < 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench import accuracy_suite as suite  # noqa: E402
from metarec_core.data.io import load_ratings  # noqa: E402
from metarec_core.evaluation.runner import EvalConfig, run_evaluation  # noqa: E402
from metarec_core.methods.registry import BASELINES  # noqa: E402
from metarec_core.runtime import limit_torch_threads  # noqa: E402

ML100K = ROOT.parent / "shared" / "datasets" / "ml-100k" / "u.data"
ML100K_ITEMS = ML100K.with_name("u.item")
SAMPLE = ROOT / "sample_data" / "ratings.csv"
SAMPLE_ITEMS = SAMPLE.with_name("items.csv")
SUPPORT = (1, 3, 5, 10, 20)
# k=0 is every model's prior before the new user's first rating: the distance from it to k=1 is
# what the first rating is worth to that model.
SEEDED_SUPPORT = (0, *SUPPORT)
# The default meta-learner beside its two ablations: the same network without the meta
# objective (finetune) and with the MeLU paper's hyperparameters (melu).
META = ("metasgd", "finetune", "melu")
ALL = (*BASELINES, *META)
SEEDED = ("user_bias", "mf_foldin", "user_bias_levels", "mf_foldin_levels", "metasgd", "finetune")


@dataclass(frozen=True)
class Config:
    data: Path
    items: Path | None
    eval: EvalConfig


def _kshot(
    data: Path,
    items: Path | None,
    methods: tuple[str, ...],
    support: tuple[int, ...] = SUPPORT,
    train_seeds: int = 1,
) -> Config:
    """The k-shot protocol: `support` ratings seen, 10 hidden, 5 folds, seed 0."""
    cfg = EvalConfig(
        methods=methods, support=support, query=10, folds=5, seed=0, train_seeds=train_seeds
    )
    return Config(data, items, cfg)


def _melu(data: Path, items: Path | None, methods: tuple[str, ...]) -> Config:
    """The MeLU paper's protocol: 10 hidden ratings, seed 0."""
    return Config(data, items, EvalConfig(methods=methods, query=10, seed=0, protocol="melu"))


CONFIGS: dict[str, Config] = {
    "baselines_ml100k": _kshot(ML100K, None, BASELINES),
    "baselines_ml100k_melu": _melu(ML100K, None, BASELINES),
    "baselines_sample": _kshot(SAMPLE, None, BASELINES),
    "meta_ml100k": _kshot(ML100K, ML100K_ITEMS, ALL),
    "meta_ml100k_melu": _melu(ML100K, ML100K_ITEMS, ALL),
    "meta_sample": _kshot(SAMPLE, SAMPLE_ITEMS, ALL),
    # The default learner against its no-meta-objective ablation and the best baselines (also
    # with the level decision), every method trained with 3 seeds per fold (per-user metrics
    # averaged over the fits), so that one training run's luck does not decide the comparison.
    "seeds_ml100k": _kshot(ML100K, ML100K_ITEMS, SEEDED, SEEDED_SUPPORT, train_seeds=3),
    "seeds_sample": _kshot(SAMPLE, SAMPLE_ITEMS, SEEDED, SEEDED_SUPPORT, train_seeds=3),
}


def _rel(path: Path) -> str:
    try:
        return os.path.relpath(path, ROOT)
    except ValueError:  # another drive (Windows)
        return str(path)


def cli_command(conf: Config, out: Path) -> str:
    """The `python -m metarec_core evaluate` command (run from the repo root) for the same report."""
    cfg = conf.eval
    parts = ["python -m metarec_core evaluate", _rel(conf.data)]
    if conf.items is not None:
        parts.append(f"--items {_rel(conf.items)}")
    parts.append(f"--methods {','.join(cfg.methods)}")
    if cfg.protocol == "kshot":
        parts += [
            f"--support {','.join(map(str, cfg.support))}",
            f"--query {cfg.query}",
            f"--folds {cfg.folds}",
        ]
    parts += [f"--seed {cfg.seed}", f"--protocol {cfg.protocol}"]
    if cfg.train_seeds > 1:
        parts.append(f"--train-seeds {cfg.train_seeds}")
    parts.append(f"--out {_rel(out)}")
    return " ".join(parts)


def _cell(x, digits: int = 4) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def markdown(name: str, report: dict) -> str:
    """MAE by support size (methods x k), the full row table and the paired comparisons."""
    rows, bench = report["rows"], report.get("bench", {})
    ks = list(dict.fromkeys(r["support"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    by = {(r["method"], r["support"]): r for r in rows}
    pr = report["protocol"]
    out = [f"### {name}", ""]
    if bench:
        out += [f"`{bench['command']}`", ""]
        out += [f"{bench['wall_seconds']:.1f} s wall on {bench['machine']}", ""]
    out += [
        f"{pr['test_users']} test users ({pr['left_out']} left out), query {pr['query']}, "
        f"seed {pr['seed']}; mean per-user MAE [bootstrap 95% CI]",
        "",
        *([pr["train_seeds_note"], ""] if pr.get("train_seeds_note") else []),
        "| method | " + " | ".join(f"k={k}" for k in ks) + " |",
        "|---|" + "---:|" * len(ks),
    ]
    for m in methods:
        cells = []
        for k in ks:
            r = by[(m, k)]
            ci = r.get("mae_ci95")
            cells.append(
                "–"
                if r["mae"] is None
                else f"{r['mae']:.4f} [{ci[0]:.3f}, {ci[1]:.3f}]"
                if ci
                else f"{r['mae']:.4f}"
            )
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    seeded = [m for m in methods if by[(m, ks[0])].get("mae_by_seed")]
    if seeded:
        out += ["", "MAE of each training seed alone (the rows above average over them):", ""]
        out += [
            "| method | " + " | ".join(f"k={k}" for k in ks) + " |",
            "|---|" + "---:|" * len(ks),
        ]
        for m in seeded:
            cells = [" / ".join(f"{x:.4f}" for x in by[(m, k)]["mae_by_seed"]) for k in ks]
            out.append(f"| {m} | " + " | ".join(cells) + " |")
    cols = ["method", "support", "users", "mae", "rmse", "ndcg@3", "ndcg@5", "recall@10", "seconds"]
    out += ["", "| " + " | ".join(cols) + " |", "|---|---|" + "---:|" * (len(cols) - 2)]
    for r in rows:
        out.append("| " + " | ".join(_cell(r[c], 1 if c == "seconds" else 4) for c in cols) + " |")
    if report["paired"]:
        out += [
            "",
            "Paired MAE difference vs the best other rating predictor at the same k "
            "(< 0: method better; 95% bootstrap CI over users):",
            "",
            "| method | vs | support | mae_diff | ci95 |",
            "|---|---|---|---:|---|",
        ]
        for p in report["paired"]:
            lo, hi = p["ci95"]
            out.append(
                f"| {p['method']} | {p['vs']} | {p['support']} | {p['mae_diff']:+.4f} | "
                f"[{lo:+.4f}, {hi:+.4f}] |"
            )
    return "\n".join(out) + "\n"


def machine() -> str:
    return (
        f"{os.cpu_count()} CPUs ({platform.machine()}), Python {platform.python_version()}, "
        f"numpy {np.__version__}"
    )


def run(
    name: str, conf: Config, out_dir: Path, progress: bool, command: str | None = None
) -> str | None:
    """Evaluate one configuration and write OUT/NAME.{json,csv,md}; `command` (default: the
    equivalent `evaluate` command) is recorded as the way to reproduce it."""
    if not conf.data.exists():
        print(f"[{name}] skipped: {conf.data} not found", file=sys.stderr)
        return None
    t0 = time.perf_counter()
    data = load_ratings(conf.data, items=conf.items)
    result = run_evaluation(data, conf.eval, progress=progress)
    report = result.to_dict()
    wall = time.perf_counter() - t0
    json_path = out_dir / f"{name}.json"
    report["bench"] = {
        "name": name,
        "wall_seconds": wall,
        "command": command or cli_command(conf, json_path),
        "machine": machine(),
    }
    json_path.write_text(json.dumps(report, indent=2))
    (out_dir / f"{name}.csv").write_text(result.to_csv())
    md = markdown(name, report)
    (out_dir / f"{name}.md").write_text(md)
    print(result.to_text())
    print(f"[{name}] {wall:.1f} s; wrote {json_path}", file=sys.stderr)
    return md


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def suite_config(
    ds: suite.SuiteDataset,
    data: Path,
    items: Path | None,
    methods: tuple[str, ...] = suite.SUITE_METHODS,
    train_seeds: int | None = None,
    folds: int | None = None,
    quick: bool = False,
) -> Config:
    """The evaluation of one suite dataset: its protocol, `methods`, and the learners (the
    default one first) compared with every other method. `quick`: 2 folds, 1 training run."""
    compare = tuple(
        m for m in dict.fromkeys((suite.DEFAULT_LEARNER, *suite.SUITE_LEARNERS)) if m in methods
    ) or (methods[-1],)
    cfg = EvalConfig(
        methods=methods,
        support=ds.support,
        query=ds.query,
        folds=folds or (2 if quick else ds.folds),
        seed=suite.SUITE_SEED,
        train_seeds=train_seeds or (1 if quick else 3),
        compare_all=compare,
    )
    return Config(data, items, cfg)


def suite_command(name: str, args: argparse.Namespace) -> str:
    """The bench command that reproduces one suite dataset's report."""
    parts = ["python bench/accuracy.py --suite --datasets", name]
    if args.quick:
        parts.append("--quick")
    if args.methods:
        parts.append(f"--methods {args.methods}")
    if args.train_seeds:
        parts.append(f"--train-seeds {args.train_seeds}")
    if args.folds:
        parts.append(f"--folds {args.folds}")
    parts.append(f"--out {_rel(Path(args.out))}")
    return " ".join(parts)


def write_suite_summary(
    out_dir: Path, subject: str = suite.DEFAULT_LEARNER, data_dir: Path = suite.DATA_DIR
) -> Path | None:
    """OUT/suite.md from every suite report in OUT (runs may go in parallel)."""
    summaries, roles, notes = [], {}, {}
    for name, ds in suite.SUITE.items():
        path = out_dir / f"suite_{name}.json"
        if not path.exists():
            continue
        report = json.loads(path.read_text())
        methods = [r["method"] for r in report["rows"]]
        pairwise = report.get("pairwise") or [{"method": methods[-1]}]
        who = subject if subject in methods else pairwise[0]["method"]  # compare_all's first
        summaries.append(suite.summarize(name, report, subject=who))
        roles[name] = ds.role
        bench = report.get("bench", {})
        pr = report["protocol"]
        notes[name] = [
            ds.about + ".",
            f"`{bench.get('command', '')}`",
            f"{pr['test_users']} test users, {pr['folds']} folds, query {pr['query']}, "
            f"{pr.get('train_seeds', 1)} training run(s); "
            f"{bench.get('wall_seconds', 0.0):.0f} s wall on {bench.get('machine', '?')}",
            *([f"Data: `{ds.command(data_dir)}`"] if ds.spec is not None else []),
        ]
    if not summaries:
        return None
    path = out_dir / "suite.md"
    path.write_text(suite.suite_markdown(summaries, roles, notes))
    return path


def run_suite(args: argparse.Namespace) -> int:
    names = _names(args.datasets) if args.datasets else list(suite.SUITE)
    unknown = [n for n in names if n not in suite.SUITE]
    if unknown:
        print(
            f"error: unknown suite dataset {unknown}; known: {', '.join(suite.SUITE)}",
            file=sys.stderr,
        )
        return 2
    methods = tuple(_names(args.methods)) if args.methods else suite.SUITE_METHODS
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        ds = suite.SUITE[name]
        data, items = suite.ensure_data(ds, Path(args.data_dir))
        conf = suite_config(ds, data, items, methods, args.train_seeds, args.folds, args.quick)
        run(f"suite_{name}", conf, out_dir, not args.no_progress, suite_command(name, args))
    path = write_suite_summary(out_dir, data_dir=Path(args.data_dir))
    if path is not None:
        print(f"[suite] wrote {path}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "bench" / "out"), help="output folder")
    p.add_argument("--only", action="append", help="configuration name (repeatable)")
    p.add_argument("--list", action="store_true", help="list configurations and exit")
    p.add_argument("--no-progress", action="store_true")
    g = p.add_argument_group("suite")
    g.add_argument("--suite", action="store_true", help="run the accuracy suite's datasets")
    g.add_argument(
        "--datasets",
        help="comma-separated suite datasets (default: all): " + ", ".join(suite.SUITE),
    )
    g.add_argument(
        "--methods", help="comma-separated methods (default: " + ",".join(suite.SUITE_METHODS) + ")"
    )
    g.add_argument("--train-seeds", type=int, help="training runs per fold (default 3; --quick 1)")
    g.add_argument("--folds", type=int, help="folds (default 5, 3 on ml1m; --quick 2)")
    g.add_argument("--quick", action="store_true", help="smoke run: 2 folds, 1 training run")
    g.add_argument(
        "--data-dir", default=str(suite.DATA_DIR), help="where the synthetic suite data is written"
    )
    args = p.parse_args(argv)
    if args.suite:
        if args.list:
            for name, ds in suite.SUITE.items():
                print(f"{name} ({ds.role}): {ds.about}")
            return 0
        limit_torch_threads()
        return run_suite(args)
    if args.list:
        for name, conf in CONFIGS.items():
            print(f"{name}: {cli_command(conf, Path(args.out) / (name + '.json'))}")
        return 0
    names = args.only or list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        print(
            f"error: unknown configuration {unknown}; known: {', '.join(CONFIGS)}", file=sys.stderr
        )
        return 2
    limit_torch_threads()  # as the CLI does: 1 thread unless METAREC_TORCH_THREADS says otherwise
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for n in names:
        run(n, CONFIGS[n], out_dir, not args.no_progress)
    # every configuration's latest tables, not only this call's (runs may go in parallel)
    done = [(out_dir / f"{n}.md").read_text() for n in CONFIGS if (out_dir / f"{n}.md").exists()]
    if done:
        (out_dir / "accuracy.md").write_text("## Accuracy\n\n" + "\n".join(done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
