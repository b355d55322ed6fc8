"""Learner variants against the fold-in baselines on any dataset: a quick design probe.

Trains each named learner variant (a registry learner plus `LearnerConfig` overrides) and the
baselines on a few folds of the k-shot protocol (5 folds, seed 0, query 10, as `evaluate`), and
prints the mean per-user MAE at each k with the paired difference of each variant from the best
baseline at that k (95% bootstrap CI over users; seeds averaged per user first). Not an official
benchmark (that is ``python bench/accuracy.py --suite``)::

    python -m research.learner_probe ../shared/datasets/ml-100k/u.data \\
        --items ../shared/datasets/ml-100k/u.item --folds 0 \\
        --variant 'metasgd' --variant 'newton=metasgd:{"inner_solver": "newton"}'

A variant is ``LEARNER`` or ``NAME=LEARNER:JSON``. Per-user errors are saved in
research/out/learner_probe/ (gitignored) as ``DATASTEM_NAME_fF_sS.npy``; ``--reuse`` loads them
instead of training again. Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from metarec_core.data.io import load_ratings
from metarec_core.methods.meta import make_learner
from metarec_core.methods.registry import make_method
from metarec_core.protocol.splits import user_folds
from metarec_core.protocol.tasks import make_tasks

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "research" / "out" / "learner_probe"
K = (0, 1, 3, 5, 10, 20)
BASELINES = ("user_bias", "mf_foldin", "user_bias_levels", "mf_foldin_levels")


def parse_variant(text: str) -> tuple[str, str, dict]:
    """'metasgd' or 'name=metasgd:{json}' -> (name, learner, overrides)."""
    name, _, rest = text.partition("=") if "=" in text else (text, "", text)
    learner, _, js = rest.partition(":")
    return name, learner, json.loads(js) if js else {}


def errors(method, tasks, ks: tuple[int, ...] = K) -> np.ndarray:
    """(len(K), users) per-user query MAE."""
    q_items = [t.query[0] for t in tasks]
    q_ratings = np.stack([t.query[1] for t in tasks])
    out = np.zeros((len(ks), len(tasks)))
    for i, k in enumerate(ks):
        scores = np.asarray(method.score_many([t.support(k) for t in tasks]))
        pred = np.take_along_axis(scores, np.stack(q_items), axis=1)
        out[i] = np.abs(pred - q_ratings).mean(1)
    return out


def paired(d: np.ndarray, seed: int = 0, n_boot: int = 2000) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(1)
    return float(d.mean()), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data")
    p.add_argument("--items")
    p.add_argument("--variant", action="append", required=True)
    p.add_argument("--folds", default="0")
    p.add_argument("--seeds", default="0")
    p.add_argument("--reuse", action="store_true", help="load saved errors where present")
    p.add_argument("--k", default=",".join(map(str, K)), help="support sizes")
    p.add_argument("--query", type=int, default=10)
    args = p.parse_args(argv)
    ks = tuple(int(k) for k in args.k.split(","))
    torch.set_num_threads(1)
    data = load_ratings(args.data, items=args.items)
    stem = Path(args.data).parent.name + "_" + Path(args.data).stem
    OUT.mkdir(parents=True, exist_ok=True)
    folds = [int(f) for f in args.folds.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = [parse_variant(v) for v in args.variant]
    errs: dict[str, list[np.ndarray]] = {}
    for f in folds:
        fold = user_folds(data, 5, 0)[f]
        tasks, _ = make_tasks(data, fold.test_users, query=args.query, min_support=max(ks), seed=0)
        runs = [(b, b, None) for b in BASELINES] + variants
        for name, learner, overrides in runs:
            per_seed = []
            for s in seeds if overrides is not None else [0]:
                path = OUT / f"{stem}_{name}_f{f}_s{s}.npy"
                if args.reuse and path.exists():
                    per_seed.append(np.load(path))
                    continue
                t0 = time.perf_counter()
                if overrides is None:
                    m = make_method(learner, seed=s)
                else:
                    m = make_learner(learner, seed=s, device="cpu", **overrides)
                m.fit(data, fold.train_users, fold.val_users)
                e = errors(m, tasks, ks)
                np.save(path, e)
                per_seed.append(e)
                extra = f", best step {m.best_step_}" if hasattr(m, "best_step_") else ""
                print(f"fold {f} {name} seed {s}: {time.perf_counter() - t0:.0f} s{extra}", flush=True)
            errs.setdefault(name, []).append(np.mean(per_seed, 0))
    pooled = {n: np.concatenate(v, axis=1) for n, v in errs.items()}
    users = next(iter(pooled.values())).shape[1]
    print(f"\n{stem}: folds {folds}, seeds {seeds}, {users} test users; mean per-user MAE")
    print("k   " + " ".join(f"{n[:18]:>18}" for n in pooled))
    for i, k in enumerate(ks):
        print(f"{k:<3} " + " ".join(f"{pooled[n][i].mean():18.4f}" for n in pooled))
    print("\npaired difference from the best baseline at each k [95% CI]:")
    for name, _, _ in variants:
        cells = []
        for i, _k in enumerate(ks):
            best = min(BASELINES, key=lambda b: pooled[b][i].mean())
            m, lo, hi = paired(pooled[name][i] - pooled[best][i])
            flag = "WORSE" if lo > 0 else ("better" if hi < 0 else "")
            cells.append(f"{m:+.4f} [{lo:+.4f},{hi:+.4f}] {best} {flag}")
        print(f"{name}:")
        for k, c in zip(ks, cells, strict=True):
            print(f"   k={k:<2} {c}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
