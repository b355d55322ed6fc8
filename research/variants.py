"""Research loop for the meta-learner: a config variant against `finetune`, over seeds and folds.

One training run moves a fold's MAE by about as much as the differences being looked for, so this
trains every learner with several seeds on a few ML-100K folds (one process per fold), averages
each test user's error over the seeds, and pools the folds. Not an official benchmark (that is
``python bench/accuracy.py --only seeds_ml100k``); a quick way to see whether an idea moves the
gap::

    python -m research.variants default '{}'                  # the reference run, cached
    python -m research.variants items '{"item_lr": 0.001}'     # metasgd variant vs finetune
    python -m research.variants f40 '{"factors": 40}' --both   # architecture: both learners

Prints, per support size k, the seed-averaged MAE of the variant and of finetune, their paired
difference (bootstrap 95% CI over users), how much of that difference's spread over users is
training noise (with several seeds), and the difference from the cached ``default`` run (or
``--ref NAME``).
Per-user errors are saved in research/out/variants/NAME_f{FOLD}.npz (gitignored); ``--saved``
pools saved runs without training (e.g. folds 0,1 and 2,3,4 run separately:
``--folds 0,1,2,3,4 --saved``). Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from metarec_core.data.io import load_ratings
from metarec_core.methods.meta import make_learner
from metarec_core.protocol.splits import user_folds
from metarec_core.protocol.tasks import make_tasks
from research.probe_setup import ML, ROOT

OUT = ROOT / "research" / "out" / "variants"
K = (0, 1, 3, 5, 10, 20)


def run_fold(fold_index: int, overrides: dict, both: bool, seeds: list[int]) -> dict:
    """Per-user query MAE, (seeds, users) per learner and k, on one fold's test users."""
    torch.set_num_threads(1)
    data = load_ratings(ML / "u.data", items=ML / "u.item")
    fold = user_folds(data, 5, 0)[fold_index]
    tasks, _ = make_tasks(data, fold.test_users, query=10, min_support=max(K), seed=0)
    out: dict[str, np.ndarray] = {}
    for name in ("metasgd", "finetune"):
        errs = np.zeros((len(K), len(seeds), len(tasks)))
        for j, seed in enumerate(seeds):
            kw = overrides if (name == "metasgd" or both) else {}
            m = make_learner(name, seed=seed, device="cpu", **kw)
            t0 = time.perf_counter()
            m.fit(data, fold.train_users, fold.val_users)
            fit_s = time.perf_counter() - t0
            q_items = [t.query[0] for t in tasks]
            q_ratings = np.stack([t.query[1] for t in tasks])
            for i, k in enumerate(K):
                pred = m.predict_batch([t.support(k) for t in tasks], q_items)
                errs[i, j] = np.abs(pred - q_ratings).mean(1)
            print(
                f"fold {fold_index} {name} seed {seed}: best step {m.best_step_}, fit {fit_s:.0f} s",
                flush=True,
            )
        out[name] = errs
    return out


def paired(d: np.ndarray, seed: int = 0, n_boot: int = 2000) -> str:
    rng = np.random.default_rng(seed)
    boot = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(n_boot)]
    return f"{d.mean():+.4f} [{np.percentile(boot, 2.5):+.4f}, {np.percentile(boot, 97.5):+.4f}]"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", help="a name for this variant (default: the reference run)")
    p.add_argument("overrides", nargs="?", default="{}", help="JSON LearnerConfig overrides")
    p.add_argument("--both", action="store_true", help="apply the overrides to finetune too")
    p.add_argument("--folds", default="0,1")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--ref", default="default", help="the saved run to compare metasgd with")
    p.add_argument(
        "--saved",
        action="store_true",
        help="train nothing: pool the errors saved by earlier runs of NAME on these folds",
    )
    args = p.parse_args(argv)
    overrides = json.loads(args.overrides)
    folds = [int(f) for f in args.folds.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    if not args.saved and not (ML / "u.data").exists():
        print(f"needs MovieLens-100K at {ML} (see ../shared/datasets/PROVENANCE.md)")
        return 2
    if args.saved:
        missing = [f for f in folds if not (OUT / f"{args.name}_f{f}.npz").exists()]
        if missing:
            print(f"no saved run of {args.name!r} for folds {missing} in {OUT}")
            return 2
        results = [dict(np.load(OUT / f"{args.name}_f{f}.npz")) for f in folds]
        seeds = list(range(results[0]["metasgd"].shape[1]))
    else:
        OUT.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(max_workers=min(2, len(folds))) as pool:
            futures = [pool.submit(run_fold, f, overrides, args.both, seeds) for f in folds]
            results = [fut.result() for fut in futures]
        for f, res in zip(folds, results, strict=True):
            np.savez(OUT / f"{args.name}_f{f}.npz", **res)
    # seed-averaged per-user errors, folds pooled: (len(K), users)
    ms = np.concatenate([r["metasgd"].mean(1) for r in results], axis=1)
    ft = np.concatenate([r["finetune"].mean(1) for r in results], axis=1)
    ref = None
    ref_files = [OUT / f"{args.ref}_f{f}.npz" for f in folds]
    if args.name != args.ref and all(x.exists() for x in ref_files):
        ref = np.concatenate([np.load(x)["metasgd"].mean(1) for x in ref_files], axis=1)
    print(
        f"{args.name} {'(saved runs)' if args.saved else json.dumps(overrides)}"
        f"{' (both)' if args.both else ''}: folds {folds}, "
        f"seeds {seeds}, {ms.shape[1]} test users; seed-averaged MAE"
    )
    # (seeds, users) per k: each seed's metasgd - finetune difference per user
    runs = np.concatenate([r["metasgd"] - r["finetune"] for r in results], axis=2)
    for i, k in enumerate(K):
        line = (
            f"k={k:2d}  metasgd {ms[i].mean():.4f}  finetune {ft[i].mean():.4f}  "
            f"metasgd - finetune {paired(ms[i] - ft[i])}"
        )
        if len(seeds) > 1:
            line += f"  training noise {training_noise_share(runs[i]):.0%}"
        if ref is not None:
            line += f"  vs {args.ref} metasgd {paired(ms[i] - ref[i])}"
        print(line)
    return 0


def training_noise_share(d: np.ndarray) -> float:
    """Share of the variance over users of the seed-averaged differences `d` (seeds, users)
    that is training noise: the mean within-user variance across seeds, over the number of
    seeds. More training runs shrink that part, and with it the CI."""
    return float(d.var(0, ddof=1).mean() / len(d) / d.mean(0).var(ddof=1))


if __name__ == "__main__":
    sys.exit(main())
