"""Speed of the meta-learners: vectorised meta-steps vs the per-task loop, and adapt latency.

    python bench/speed.py --data ../shared/datasets/ml-100k/u.data --json speed.json

Meta-training throughput (tasks/second) is measured on one fixed meta-batch of a MeLU-sized
model (embedding 32, decision layers 64-64 adapted in the inner loop, 5 inner steps, meta-batch
32, support sizes as in training), second order (``maml``) and first order (``fomaml``), for the
vectorised path (`MetaLearner.meta_gradients`, vmap + grad) and the plain loop
(`reference.reference_meta_gradients`); both compute the same gradient. Latency is
`adapt` + `recommend(10)` of one new user with 10 ratings over the whole catalogue with the
default learner. Weights are not trained: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import print_and_save  # noqa: E402
from metarec_core.data.io import load_ratings  # noqa: E402
from metarec_core.methods.meta import DEFAULT_METHOD, make_learner  # noqa: E402
from metarec_core.methods.meta.reference import reference_meta_gradients  # noqa: E402


def _time(fn, repeats: int, warmup: int = 2) -> float:
    """Median seconds of `fn()` over `repeats` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="ratings file (any format load_ratings reads)")
    ap.add_argument("--items", default=None, help="optional item metadata")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_ratings(args.data, items=args.items)
    users = np.arange(data.n_users)

    out: dict = {"tasks_per_s": {}, "items": int(data.n_items), "device": args.device}
    melu = dict(
        device=args.device,
        embedding_dim=32,
        hidden=(64, 64),
        adapt="head",
        inner_objective="mean",
        inner_steps=5,
        inner_lr=1e-3,
        meta_batch=32,
        warm_start=False,
    )
    for tag, algo in (("so", "maml"), ("fo", "fomaml")):
        learner = make_learner(algo, seed=0, **melu).setup(data, users)
        episodes = learner._episodes(data, users)
        support, query = learner._sample(episodes, np.random.default_rng(0))
        n = len(support)
        fast = _time(lambda m=learner, s=support, q=query: m.meta_gradients(s, q), args.repeats)
        loop = _time(
            lambda m=learner, s=support, q=query: reference_meta_gradients(m, s, q),
            max(2, args.repeats // 2),
            warmup=1,
        )
        out["tasks_per_s"][f"fast_{tag}"] = n / fast
        out["tasks_per_s"][f"loop_{tag}"] = n / loop
        print(
            f"{algo:7s} vectorised {n / fast:8.1f} tasks/s   loop {n / loop:8.1f} tasks/s   "
            f"speed-up {loop / fast:5.1f}x",
            file=sys.stderr,
        )

    # Adapt + recommend latency of the default learner, one user with 10 ratings.
    learner = make_learner(DEFAULT_METHOD, seed=0, device=args.device, warm_start=False)
    learner.setup(data, users)
    learner.fitted_ = True
    rng = np.random.default_rng(1)
    lat = []
    for r in range(60):
        items = rng.choice(data.n_items, 10, replace=False)
        ratings = rng.integers(1, 6, 10).astype(np.float64)
        t = time.perf_counter()
        learner.adapt(items, ratings).recommend(10)
        if r >= 5:  # warm-up
            lat.append((time.perf_counter() - t) * 1000)
    out["adapt_recommend_ms"] = {
        "median": float(np.median(lat)),
        "p95": float(np.percentile(lat, 95)),
    }
    out["threads"] = torch.get_num_threads()
    print_and_save(out, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
