"""Meta-training throughput with 1, 2, ... processes (torch.distributed, one machine).

    python bench/dist_speed.py --data ../shared/datasets/ml-100k/u.data --procs 1,2 --steps 30

For each number of processes N, spawns N ranks (gloo on CPU, NCCL with --device cuda, one GPU
per rank) that run the real training loop (`MetaLearner._train` with `distributed.ShardSync`:
each rank samples and differentiates its shard of the meta-batch, one all_reduce per step) of
the default learner for --steps meta-steps, without validation. Rank 0 times the steps after
--warmup and reports tasks/s (meta-batch users per second over all ranks) and its own CPU
time per step (what a rank computes, waits included: on a machine shared with other work the
wall-clock figures say more about the load than about the scaling). Each rank uses one
intra-op thread (`runtime.limit_torch_threads`), as `torchrun` runs do. Weights are not
warm-started or trained: the speed of a step does not depend on their values.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import print_and_save  # noqa: E402
from metarec_core.data.io import load_ratings  # noqa: E402
from metarec_core.methods.meta import DEFAULT_METHOD, distributed, make_learner  # noqa: E402
from metarec_core.methods.meta.training import _FitRun  # noqa: E402
from metarec_core.runtime import limit_torch_threads  # noqa: E402


def _rank(rank: int, world: int, port: int, args: argparse.Namespace, out: dict) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    limit_torch_threads()
    ctx = distributed.init_process_group(args.device, timeout_s=300)
    try:
        data = load_ratings(args.data, items=args.items)
        users = np.arange(data.n_users)
        learner = make_learner(
            args.algo, seed=0, device=str(ctx.device), warm_start=False, pretrain=False,
            steps=args.warmup + args.steps, meta_batch=args.meta_batch,
        )  # fmt: skip
        learner.setup(data, users)
        stamps: dict[int, tuple[float, float]] = {}

        def callback(p) -> None:
            if ctx.device.type == "cuda":
                torch.cuda.synchronize()
            stamps[p.step] = (time.perf_counter(), time.process_time())

        learner.sync_ = distributed.ShardSync(world, (rank,), ctx=ctx)
        learner._train(_FitRun(data, users, None, callback), time.perf_counter())
        if rank == 0:
            (w0, c0), (w1, c1) = stamps[args.warmup], stamps[args.warmup + args.steps]
            out["tasks_per_s"] = args.meta_batch * args.steps / (w1 - w0)
            out["ms_per_step"] = 1000 * (w1 - w0) / args.steps
            out["rank0_cpu_ms_per_step"] = 1000 * (c1 - c0) / args.steps
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(world: int, args: argparse.Namespace) -> dict:
    """{tasks_per_s, ms_per_step} of `world` ranks."""
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_rank, args=(world, _free_port(), args, out), nprocs=world, join=True)
        return dict(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="ratings file (any format load_ratings reads)")
    ap.add_argument("--items", default=None, help="optional item metadata")
    ap.add_argument("--algo", default=DEFAULT_METHOD)
    ap.add_argument("--procs", default="1,2", help="numbers of processes, comma-separated")
    ap.add_argument("--steps", type=int, default=30, help="timed meta-steps")
    ap.add_argument("--warmup", type=int, default=5, help="meta-steps before the timing")
    ap.add_argument("--meta-batch", type=int, default=64, help="users per meta-step, all ranks")
    ap.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, a GPU per rank)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    procs = [int(x) for x in args.procs.split(",") if x.strip()]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results = {"data": args.data, "algo": args.algo, "device": args.device,
               "meta_batch": args.meta_batch, "cpus": os.cpu_count(),
               "load_before": load, "runs": {}}  # fmt: skip
    base = None
    for n in procs:
        r = measure(n, args)
        base = base or r["tasks_per_s"]
        r["speed_up"] = r["tasks_per_s"] / base
        results["runs"][n] = r
        print(
            f"{n} process(es): {r['tasks_per_s']:8.1f} tasks/s  {r['ms_per_step']:7.1f} ms/step  "
            f"x{r['speed_up']:.2f}  rank 0 CPU {r['rank0_cpu_ms_per_step']:6.1f} ms/step",
            file=sys.stderr,
        )
    results["load_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print_and_save(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
