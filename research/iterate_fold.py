"""Fast research loop: train one learner on one ML-100K fold and compare with the baselines.

Not a benchmark to quote (one fold, the official numbers come from `evaluate`). Usage, from the
repository root::

    python -m research.iterate_fold metasgd '{"outer_lr": 0.003}' --fold 0

The second argument is JSON overrides of `LearnerConfig`. The baselines' (user_bias, mf_foldin)
per-user errors are cached per fold in research/out/iterate_fold/base_fold{FOLD}.npz (gitignored;
delete it after changing a baseline). Prints MAE at k = 0 (the prior alone), 1, 3, 5, 10, 20 and
the paired bootstrap 95% CI against the best baseline at each k. The environment variables FOLD,
NT (torch threads) and ML100K (the data folder) of the earlier version still set the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from metarec_core.data.io import load_ratings
from metarec_core.methods import baselines
from metarec_core.methods.meta import make_learner
from metarec_core.protocol.splits import user_folds
from metarec_core.protocol.tasks import make_tasks
from research.probe_setup import ML as DEFAULT_ML
from research.probe_setup import ROOT

K = (1, 3, 5, 10, 20)
KS = (0, *K)
CACHE = ROOT / "research" / "out" / "iterate_fold"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", help="learner name, e.g. metasgd, finetune, maml")
    p.add_argument("overrides", nargs="?", default="{}", help="JSON LearnerConfig overrides")
    p.add_argument("--fold", type=int, default=int(os.environ.get("FOLD", "0")))
    p.add_argument("--threads", type=int, default=int(os.environ.get("NT", "1")))
    p.add_argument("--data", type=Path, default=Path(os.environ.get("ML100K", str(DEFAULT_ML))))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not (args.data / "u.data").exists():
        print(f"needs MovieLens-100K at {args.data} (see ../shared/datasets/PROVENANCE.md)")
        return 2
    torch.set_num_threads(args.threads)
    data = load_ratings(args.data / "u.data", items=args.data / "u.item")
    fi = args.fold
    fold = user_folds(data, 5, 0)[fi]
    tasks, _ = make_tasks(data, fold.test_users, query=10, min_support=max(K), seed=0)

    def evaluate(m) -> np.ndarray:
        """(len(KS), users): each test user's query MAE at each k."""
        per = np.zeros((len(KS), len(tasks)))
        for i, k in enumerate(KS):
            S = m.score_many([t.support(k) for t in tasks])
            per[i] = [np.abs(S[b][t.query[0]] - t.query[1]).mean() for b, t in enumerate(tasks)]
        return per

    cache = CACHE / f"base_fold{fi}.npz"
    if cache.exists():
        base = dict(np.load(cache))
    else:
        base = {}
        for b in ("user_bias", "mf_foldin"):
            m = baselines.BASELINE_CLASSES[b](seed=0).fit(data, fold.train_users, fold.val_users)
            base[b] = evaluate(m)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **base)
    for b, per in base.items():
        print(f"{b:10s}", " ".join(f"{e:.4f}" for e in per.mean(1)))
    ov = json.loads(args.overrides)
    t = time.time()
    m = make_learner(args.name, device="cpu", **ov)
    m.fit(data, fold.train_users, fold.val_users)
    fit_s = time.time() - t
    per = evaluate(m)
    print(
        f"{args.name:10s}",
        " ".join(f"{e:.4f}" for e in per.mean(1)),
        f"fit {fit_s:.0f}s steps {len(m.history_)} best {m.best_step_} val {m.best_val_mae_:.4f}",
        json.dumps(ov),
    )
    out = []
    for k in K:
        i = KS.index(k)
        bb = min(base, key=lambda b: base[b][i].mean())
        diff = per[i] - base[bb][i]
        rng = np.random.default_rng(0)
        bs = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(1000)]
        out.append(
            f"k={k}:{diff.mean():+.4f}[{np.percentile(bs, 2.5):+.4f},{np.percentile(bs, 97.5):+.4f}]"
        )
    print("  vs best:", " ".join(out))
    print(
        "  val:", " ".join(f"{h.step}:{h.val_mae:.4f}" for h in m.history_ if h.val_mae is not None)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
