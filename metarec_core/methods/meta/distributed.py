"""Meta-training across processes and machines with torch.distributed (data parallel).

Launch with torchrun (one process per CPU socket or GPU, on one or several machines)::

    torchrun --nproc_per_node 2 -m metarec_core train DATA --out model.pt --distributed

How a meta-step is shared (`ShardSync`, attached to a learner as ``learner.sync_``; the
training loop in `trainer.py` calls it at four marked hooks):

- **Episodes.** The meta-batch of ``meta_batch`` users is cut into ``world`` shards
  (`shard_sizes`). Every step the loop's own generator draws one 63-bit seed, the same on every
  rank; shard r is drawn by the learner's own `_sample` from ``default_rng([seed, r])``. A rank
  samples, pads and differentiates its shard only; the union of the shards is the meta-batch
  that one process with ``ShardSync(world, ranks=range(world))`` draws (what the tests compare).
- **Meta-gradients.** Each rank's gradient (and loss) is weighted by its share of the meta-batch
  and summed with one ``all_reduce`` over a flat buffer: the mean over the whole meta-batch, as
  one process computes it. Clipping and the Adam step then run identically on every rank.
- **Start.** Every rank builds and warm-starts the model (seeded, cheap next to training); the
  weights are then broadcast from rank 0 at the start of every training loop, so ranks on
  machines with different BLAS libraries still start from the same bits.
- **Validation and early stopping.** Rank 0 scores the validation users and broadcasts
  (MAE, criterion); every rank takes the same early-stopping and prior-calibration decisions.
- **Failure.** The process group has a timeout (`DEFAULT_TIMEOUT_S`, ``--dist-timeout``): a
  rank that raises or disappears ends the others' next collective with an error (gloo reports
  the closed connection at once, the timeout covers the rest) and torchrun stops the run with
  the failed rank's error.

Backends: gloo on CPU, NCCL on CUDA (each process on ``cuda:LOCAL_RANK``). Exact equality with
one process holds for learners without dropout (the default: dropout masks are drawn per rank).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from metarec_core.data.dataset import RatingsDataset
    from metarec_core.methods.meta.trainer import MetaLearner, Pair, _Episodes

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DistContext",
    "ShardSync",
    "init_process_group",
    "shard_sizes",
    "train_command",
]

# Seconds a rank waits in a collective for the others: longer than the longest stretch one
# rank works alone between two collectives (rank 0's validation run), short enough that a
# stuck run ends within minutes.
DEFAULT_TIMEOUT_S = 600.0


def shard_sizes(meta_batch: int, world: int) -> list[int]:
    """Episodes per rank: `meta_batch` split as evenly as possible, the first ranks one more."""
    if world < 1:
        raise ValueError(f"world size must be >= 1, got {world}")
    if meta_batch < world:
        raise ValueError(
            f"a meta-batch of {meta_batch} cannot be split over {world} processes: every "
            f"process needs at least one episode (use fewer processes or a larger meta_batch)"
        )
    base, extra = divmod(meta_batch, world)
    return [base + (r < extra) for r in range(world)]


@dataclass(frozen=True)
class DistContext:
    """This process's place in the process group (`init_process_group`)."""

    rank: int
    world: int
    local_rank: int
    device: torch.device  # where this rank trains and where its collectives' tensors live
    backend: str

    @property
    def is_root(self) -> bool:
        return self.rank == 0


def _env_int(name: str) -> int:
    raw = os.environ.get(name)
    if raw is None:
        raise ValueError(
            f"--distributed needs the environment torchrun sets ({name} is missing); launch "
            "with `torchrun --nproc_per_node N -m metarec_core train ... --distributed`"
        )
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None


def init_process_group(device: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S) -> DistContext:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
    MASTER_PORT): NCCL when `device` resolves to CUDA (this rank on ``cuda:LOCAL_RANK``), gloo
    otherwise; collectives fail after `timeout_s` seconds instead of waiting forever."""
    from metarec_core.methods.meta.config import resolve_device

    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    local = int(os.environ.get("LOCAL_RANK", rank))
    if timeout_s <= 0:
        raise ValueError(f"--dist-timeout must be > 0 seconds, got {timeout_s}")
    dev = resolve_device(device)
    if dev.type == "cuda":
        n = torch.cuda.device_count()
        if local >= n:
            raise ValueError(
                f"LOCAL_RANK {local} has no GPU: this machine has {n} (use --nproc_per_node {n})"
            )
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        if dev.type != "cpu":  # MPS has no collective backend
            raise ValueError(f"--distributed runs on CPU (gloo) or CUDA (NCCL), not {dev.type}")
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(
            backend,
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(seconds=timeout_s),
            device_id=dev if backend == "nccl" else None,
        )
    return DistContext(rank, world, local, dev, backend)


class ShardSync:
    """The distributed hooks of the training loop (``learner.sync_``): this process's share
    of every meta-batch and the collectives that keep the ranks in step.

    ``ShardSync(world, ranks=(rank,), ctx=ctx)`` on every rank of a process group; in one
    process ``ShardSync(world, ranks=range(world))`` draws all `world` shards (no
    collectives): the same meta-batches and the same training as the group.
    """

    def __init__(self, world: int, ranks: Sequence[int], *, ctx: DistContext | None = None) -> None:
        self.world, self.ranks, self.ctx = int(world), tuple(int(r) for r in ranks), ctx
        if not self.ranks or not all(0 <= r < self.world for r in self.ranks):
            raise ValueError(f"ranks must be in 0..{self.world - 1}, got {self.ranks}")
        if ctx is not None and (self.ranks != (ctx.rank,) or self.world != ctx.world):
            raise ValueError("a process group's rank samples its own shard only")
        self._share = 1.0  # this process's fraction of the last meta-batch
        self._configs: dict[tuple[Any, int], Any] = {}

    @property
    def is_root(self) -> bool:
        """Whether this process scores validation and writes results (rank 0)."""
        return 0 in self.ranks

    # ---------------------------------------------------------------- hooks of the loop
    def sample(
        self, learner: MetaLearner, episodes: _Episodes, rng: np.random.Generator
    ) -> tuple[list[Pair], list[Pair]]:
        """This process's shards of the next meta-batch, drawn by `learner._sample`."""
        seed = int(rng.integers(2**63 - 1))  # the same on every rank: same loop generator
        full = learner.config
        sizes = shard_sizes(full.meta_batch, self.world)
        support: list = []
        query: list = []
        for r in self.ranks:
            s, q = self._draw(learner, episodes, np.random.default_rng([seed, r]), sizes[r])
            support += s
            query += q
        self._share = sum(sizes[r] for r in self.ranks) / full.meta_batch
        return support, query

    def _draw(self, learner: MetaLearner, episodes, rng, size: int):
        """`learner._sample` with a meta-batch of `size` (its config, briefly swapped)."""
        full = learner.config
        key = (full, size)
        if key not in self._configs:
            self._configs[key] = dataclasses.replace(full, meta_batch=size)
        learner.config = self._configs[key]
        try:
            return learner._sample(episodes, rng)
        finally:
            learner.config = full

    def all_reduce(
        self, loss: float, grads: dict[str, torch.Tensor]
    ) -> tuple[float, dict[str, torch.Tensor]]:
        """(loss, meta-gradients) averaged over the whole meta-batch: one all_reduce."""
        if self.ctx is None:
            return loss, grads

        names = list(grads)
        ref = grads[names[0]]
        flat = torch.cat([grads[n].reshape(-1) for n in names] + [ref.new_tensor([loss])])
        flat.mul_(self._share)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        out, at = {}, 0
        for n in names:
            g = grads[n]
            out[n] = flat[at : at + g.numel()].view_as(g)
            at += g.numel()
        return float(flat[-1]), out

    def broadcast_weights(self, *modules: torch.nn.Module) -> None:
        """Every rank takes rank 0's parameters and buffers of `modules`."""
        if self.ctx is None:
            return

        with torch.no_grad():
            for m in modules:
                for t in m.state_dict().values():
                    dist.broadcast(t, src=0)

    def decide(self, scores: tuple[float, float] | None) -> tuple[float, float]:
        """Rank 0's validation (MAE, criterion), on every rank (others pass None)."""
        if self.ctx is None:
            assert scores is not None
            return scores

        buf = torch.zeros(2, dtype=torch.float64, device=self.ctx.device)
        if self.ctx.is_root:
            assert scores is not None
            buf[0], buf[1] = scores
        dist.broadcast(buf, src=0)
        mae, crit = buf.tolist()
        return mae, crit


# ---------------------------------------------------------------------- the train command
def fit(
    learner: MetaLearner,
    data: RatingsDataset,
    train_users: np.ndarray,
    val_users: np.ndarray | None,
    sync: ShardSync,
    callback: Callable[[Any], None] | None = None,
) -> MetaLearner:
    """`learner.fit` with `sync` attached (to it and to its pretrainer)."""
    shard_sizes(learner.config.meta_batch, sync.world)  # fail early, with the reason
    learner.sync_ = sync
    try:
        return learner.fit(data, train_users, val_users, callback=callback)
    finally:
        learner.sync_ = None  # a saved or reused learner is a plain one again


def train_command(args: argparse.Namespace, load: Callable[[], RatingsDataset]) -> int:
    """``train --distributed`` on one rank: train its shard; rank 0 reports and saves."""
    timeout = DEFAULT_TIMEOUT_S if args.dist_timeout is None else args.dist_timeout
    ctx = init_process_group(args.device, timeout)
    try:
        return _train_rank(args, load, ctx)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _train_rank(args: argparse.Namespace, load: Callable[[], RatingsDataset], ctx) -> int:
    from metarec_core.checkpoint import save_checkpoint
    from metarec_core.methods.meta import make_learner
    from metarec_core.protocol.splits import split_users

    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    data = load()
    overrides = {} if args.steps is None else {"steps": args.steps}
    learner = make_learner(args.algo, seed=args.seed, device=str(ctx.device), **overrides)
    train_users, val_users = split_users(data, args.seed)  # as the non-distributed job does
    bar = None
    if ctx.is_root:
        print(
            f"training {args.algo} on {data.source or args.data}: {data.n_users:,} users "
            f"({len(train_users):,} train, {len(val_users):,} validation), {data.n_items:,} "
            f"items, {ctx.world} processes ({ctx.backend}), device {ctx.device} on rank 0",
            file=sys.stderr,
        )
        bar = _ProgressBar()
    sync = ShardSync(ctx.world, (ctx.rank,), ctx=ctx)
    fit(learner, data, train_users, val_users, sync, callback=bar)
    if bar is not None:
        bar.close()
    if not ctx.is_root:
        return 0
    path = save_checkpoint(learner, data, args.out, train_users=train_users, val_users=val_users)
    last = learner.history_[-1].step if learner.history_ else 0
    print(f"model written to {path}")
    print(
        f"algorithm {args.algo}, {ctx.world} processes, {last:,} steps in "
        f"{learner.train_seconds_:.1f} s"
    )
    if learner.best_val_mae_ is not None:
        print(f"best validation MAE {learner.best_val_mae_:.4f} (step {learner.best_step_:,})")
    if not args.no_check:
        check = learner.compare_with_baselines(data, train_users, val_users)
        if check is not None:
            print(check.to_text())
    return 0


class _ProgressBar:
    """Rank 0's progress: a tqdm bar per phase of the fit (warm start, pre-training, meta)."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._phase: str | None = None

    def __call__(self, p: Any) -> None:
        from tqdm import tqdm

        from metarec_core.methods.meta.trainer import PHASE_LABELS

        if p.phase != self._phase:
            self.close()
            self._phase = p.phase
            unit = "%" if p.phase == "warm_start" else "step"
            label = PHASE_LABELS.get(p.phase, p.phase)
            self._bar = tqdm(total=p.total, desc=label, unit=unit, file=sys.stderr, mininterval=0.5)
        self._bar.update(p.step - self._bar.n)
        if p.train_loss is not None:
            self._bar.set_postfix(loss=f"{p.train_loss:.4f}", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
