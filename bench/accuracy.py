"""Accuracy benchmark: run named evaluation configurations, write JSON, CSV and markdown tables.

    python bench/accuracy.py --out bench/out                 # every configuration whose data exists
    python bench/accuracy.py --only baselines_ml100k         # one configuration
    python bench/accuracy.py --list

Each configuration writes ``OUT/NAME.json`` (the `evaluate` report, plus a ``bench`` block with
the wall time, the equivalent CLI command and the machine), ``OUT/NAME.csv`` and ``OUT/NAME.md``;
``OUT/accuracy.md`` collects the markdown of every configuration found in OUT. Add meta-learners by
adding configurations to CONFIGS (method names as in `metarec_core.methods.registry`).

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


def run(name: str, conf: Config, out_dir: Path, progress: bool) -> str | None:
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
        "command": cli_command(conf, json_path),
        "machine": machine(),
    }
    json_path.write_text(json.dumps(report, indent=2))
    (out_dir / f"{name}.csv").write_text(result.to_csv())
    md = markdown(name, report)
    (out_dir / f"{name}.md").write_text(md)
    print(result.to_text())
    print(f"[{name}] {wall:.1f} s; wrote {json_path}", file=sys.stderr)
    return md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "bench" / "out"), help="output folder")
    p.add_argument("--only", action="append", help="configuration name (repeatable)")
    p.add_argument("--list", action="store_true", help="list configurations and exit")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
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
