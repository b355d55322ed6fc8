"""One rank of the distributed tests (tests/core/test_distributed.py), run as a subprocess.

    RANK=r WORLD_SIZE=n MASTER_ADDR=127.0.0.1 MASTER_PORT=p python tests/core/dist_worker.py OUT
        [--fail-step S]

Writes OUT/rank<r>.pt: the all-reduced meta-gradient of the first meta-batch, then the weights,
history and best step after `distributed.fit` (the settings: `CONFIG`). With --fail-step, rank 1
raises `InjectedFailure` at that meta-step; with --stall-step it stops taking part there.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from metarec_core.methods.meta import distributed, make_learner  # noqa: E402
from tests.helpers import tiny_dataset, tiny_split  # noqa: E402

# float64, warm start and pretraining (the pretrainer's loop is shared too), validation every
# 2 steps with patience 0 so that early stopping is decided on the way
CONFIG = dict(
    device="cpu",
    dtype="float64",
    factors=3,
    embedding_dim=4,
    hidden=(8, 8),
    meta_batch=9,  # uneven shards: 5 + 4
    max_support=8,
    steps=6,
    eval_every=2,
    patience=0,
    val_repeats=1,
    val_support=(1, 3),
    seed=3,
)
FIRST_BATCH_SEED = 5  # the generator of the meta-batch whose gradient is compared


class InjectedFailure(RuntimeError):
    pass


def run(
    sync: distributed.ShardSync,
    algo: str,
    fail_step: int | None = None,
    stall_step: int | None = None,
) -> dict:
    """The compared quantities of one process (a rank, or all shards in one process)."""
    data = tiny_dataset()
    train, val = tiny_split(data)
    learner = make_learner(algo, **CONFIG).setup(data, train, val)
    eps = learner._episodes(data, train)
    sup, qry = sync.sample(learner, eps, np.random.default_rng(FIRST_BATCH_SEED))
    loss, grads = learner._gradients(learner._pad(sup), learner._pad(qry), None)
    loss, grads = sync.all_reduce(loss, grads)
    rank = sync.ranks[0]

    def callback(p) -> None:
        if fail_step is not None and rank == 1 and p.phase == "meta" and p.step == fail_step:
            raise InjectedFailure(f"rank 1 failed on purpose at meta-step {p.step}")
        if stall_step is not None and rank == 1 and p.phase == "meta" and p.step == stall_step:
            time.sleep(3600)  # alive but gone from the collectives (the test kills it)

    learner = make_learner(algo, **CONFIG)
    distributed.fit(learner, data, train, val, sync, callback=callback)
    return {
        "loss": loss,
        "grads": {k: v.detach().clone() for k, v in grads.items()},
        "model": {k: v.detach().clone() for k, v in learner.model_.state_dict().items()},
        "inner": {k: v.detach().clone() for k, v in learner.inner_.state_dict().items()},
        "history": [(p.step, p.train_loss, p.val_mae) for p in learner.history_],
        "best_step": learner.best_step_,
        "best_val_mae": learner.best_val_mae_,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--algo", default="metasgd")
    ap.add_argument("--fail-step", type=int, default=None)
    ap.add_argument("--stall-step", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ctx = distributed.init_process_group("cpu", timeout_s=args.timeout)
    try:
        sync = distributed.ShardSync(ctx.world, (ctx.rank,), ctx=ctx)
        result = run(sync, args.algo, args.fail_step, args.stall_step)
        torch.save(result, Path(args.out) / f"rank{ctx.rank}.pt")
    finally:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
