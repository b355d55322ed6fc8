"""Training a meta-learner: episodes and their sampling, the meta-step (meta-gradients, then
the optimiser's step), the training loop with early stopping (`fit`, `_train`), pretraining and
`train_from`."""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from metarec_core.data.dataset import RatingsDataset
from metarec_core.methods.base import FitHooks
from metarec_core.methods.meta.config import preset
from metarec_core.methods.meta.inner import Pair
from metarec_core.methods.meta.progress import TrainProgress, _check_stop, _FitReporter, _Stopped
from metarec_core.protocol.splits import fit_validation_split
from metarec_core.protocol.tasks import TaskBatch, user_ratings
from metarec_core.runtime import deterministic_cpu_kernels

if TYPE_CHECKING:
    from metarec_core.methods.meta.trainer import MetaLearner


@dataclass
class _Episodes:
    """Training users' ratings for sampling episodes."""

    pairs: list[Pair]
    items: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ratings: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


@dataclass(frozen=True, eq=False)
class _FitRun:
    """What one training run reads and reports to: the data, its training and validation
    users, the progress callback and the stop flag (`fit`, pretraining and `train_from` pass
    it to `_train`)."""

    data: RatingsDataset
    train_users: np.ndarray
    val_users: np.ndarray | None
    callback: Callable[[TrainProgress], None] | None = None
    should_stop: Callable[[], bool] | None = None


class TrainingMixin:
    """`MetaLearner`'s `fit`: set-up, pretraining, then meta-steps with early stopping."""

    def _episodes(self, data: RatingsDataset, users: np.ndarray) -> _Episodes:
        floor = self.config.query_floor
        pairs = [(i, r) for i, r in user_ratings(data, users) if len(i) >= floor + 1]
        if not pairs:
            raise ValueError(
                f"no training user has at least {floor + 1} ratings (query {floor} + 1 support)"
            )
        return _Episodes(pairs)

    def _sample(self, ep: _Episodes, rng: np.random.Generator) -> tuple[list[Pair], list[Pair]]:
        """A meta-batch mimicking evaluation: log-uniform support size, a query of `query`."""
        cfg = self.config
        users = rng.choice(
            len(ep.pairs), size=cfg.meta_batch, replace=len(ep.pairs) < cfg.meta_batch
        )
        support, query = [], []
        for u in users:
            items, ratings = ep.pairs[u]
            avail = len(items) - cfg.query_floor
            top = max(1, min(cfg.max_support, avail))
            low = min(cfg.min_support, top)
            # log-uniform over low..top (shifted by one so that 0 can be drawn)
            k = int(math.exp(rng.uniform(0.0, math.log(top - low + 2)))) - 1 + low
            k = min(k, top)  # exp(...) >= 1, so k >= low already
            perm = rng.permutation(len(items))
            s, q = perm[:k], perm[k : k + cfg.query]
            support.append((items[s], ratings[s]))
            query.append((items[q], ratings[q]))
        return support, query

    def _optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        item_names = {"item_enc.bias", "item_enc.factor", "item_enc.embedding", "implicit"}
        items, rest = [], []
        for n, p in self.model_.named_parameters():
            (items if n in item_names else rest).append(p)
        rest += [p for p in self.inner_.parameters() if p.requires_grad]
        groups = [{"params": rest, "lr": cfg.outer_lr}]
        if items:
            groups.append(
                {"params": items, "lr": cfg.outer_lr if cfg.item_lr is None else cfg.item_lr}
            )
        return torch.optim.Adam(groups, weight_decay=cfg.weight_decay)

    def _dropout_masks(self, q: TaskBatch, gen: torch.Generator) -> list[torch.Tensor] | None:
        p = self.config.dropout
        if p <= 0 or not self.config.hidden:
            return None
        B, L = q.items.shape
        masks = []
        for h in self.config.hidden:
            keep = torch.rand(B, L, h, generator=gen) >= p
            masks.append((keep.to(self._dtype) / (1 - p)).to(self.device_))
        return masks

    def _learnable(self) -> dict[str, torch.nn.Parameter]:
        """Meta-parameters the outer loop updates, by qualified name."""
        out = {f"model.{n}": p for n, p in self.model_.named_parameters() if p.requires_grad}
        out.update({f"inner.{n}": p for n, p in self.inner_.named_parameters() if p.requires_grad})
        return out

    def meta_gradients(
        self, support: Sequence[Pair], query: Sequence[Pair]
    ) -> tuple[float, dict[str, torch.Tensor]]:
        """(loss, gradient of the meta-objective per learnable name) for one meta-batch.

        For ``reptile`` the "gradient" of an adapted parameter is θ0 − mean θ'. Used by the
        tests (against `reference.py`) and the speed bench; `fit` runs the same code.
        """
        self._check_built()
        s, q = self._pad(support), self._pad(query)
        return self._gradients(s, q, None)

    def _gradients(
        self, s: TaskBatch, q: TaskBatch, dropout_masks: Sequence[torch.Tensor] | None
    ) -> tuple[float, dict[str, torch.Tensor]]:
        learn = self._learnable()
        names, params = list(learn), list(learn.values())
        loss, direction = self._objective(s, q, dropout_masks)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        out = {
            n: torch.zeros_like(p) if g is None else g
            for n, p, g in zip(names, params, grads, strict=True)
        }
        for k, d in direction.items():
            out[f"model.{k}"] = d
        return float(loss.detach()), out

    def _meta_step(
        self,
        support: Sequence[Pair],
        query: Sequence[Pair],
        opt: torch.optim.Optimizer,
        learn: dict[str, torch.nn.Parameter],
        gen: torch.Generator,
        step: int,
    ) -> float:
        """One meta-step on a sampled meta-batch: the meta-gradients (`_gradients`), then the
        optimiser's step with them (`_apply_gradients`); returns the meta-batch's loss.

        Anything that must see every step's gradients before they are applied (an all-reduce
        across processes) goes between the two calls.
        """
        cfg = self.config
        s = self._pad(support)
        q = self._pad(query)
        loss, grads = self._gradients(s, q, self._dropout_masks(q, gen))
        if self.sync_ is not None:  # distributed (issue 16): the mean over all ranks
            loss, grads = self.sync_.all_reduce(loss, grads)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"meta-training loss became {loss} at step {step} of {cfg.steps} "
                f"({cfg.name}); try a smaller outer_lr ({cfg.outer_lr}) or inner_lr "
                f"({cfg.inner_lr})"
            )
        self._apply_gradients(grads, opt, learn)
        return loss

    def _apply_gradients(
        self,
        grads: dict[str, torch.Tensor],
        opt: torch.optim.Optimizer,
        learn: dict[str, torch.nn.Parameter],
    ) -> None:
        """Set each learnable parameter's gradient, clip (``grad_clip``), step, zero."""
        cfg = self.config
        for n, p in learn.items():
            p.grad = grads[n]
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(list(learn.values()), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def fit(
        self,
        data: RatingsDataset,
        train_users: np.ndarray,
        val_users: np.ndarray | None = None,
        *,
        callback: Callable[[TrainProgress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        progress: Callable[[float, str], None] | None = None,
    ) -> MetaLearner:
        """Meta-train on `train_users`; early-stop on the validation criterion, keep the best weights.

        Without `val_users`, a seeded ``val_fraction`` of the training users validates; at most
        ``max_val_users`` of them do (`_validation_users`). Raises
        FloatingPointError when the loss becomes NaN/inf. `callback` gets every unit of every
        phase (`TrainProgress`); `progress(fraction, message)` the fraction of the whole fit.
        `should_stop()` is polled in every phase (inside the ALS warm start, between validation
        batches, before every step); stopping early keeps what was learned (``fitted_`` if any
        meta-step ran).
        """
        self.fitted_ = False
        hooks = FitHooks(should_stop, progress, callback)
        self.fitted_ = self._fit_users(data, train_users, val_users, hooks)
        return self

    def _split(
        self, train: np.ndarray, val: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The distinct training users and the validation users: without any given, a seeded
        ``val_fraction`` of 20 or more training users."""
        cfg = self.config
        train = np.unique(np.asarray(train, dtype=np.int64))
        if val is None and len(train) >= 20:
            train, val = fit_validation_split(train, cfg.seed, cfg.val_fraction)
        return train, val

    def _fit_users(
        self, data: RatingsDataset, train: np.ndarray, val: np.ndarray | None, hooks: FitHooks
    ) -> bool:
        """`fit` on checked arguments: split (`_split`), set up, pretrain, meta-train; True
        when a meta-step ran."""
        cfg = self.config
        t0 = time.perf_counter()
        train, val = self._split(train, val)
        val = self._validation_users(val)
        report = _FitReporter(cfg.phases, hooks.callback, hooks.progress)
        self.setup(data, train, val, callback=report, should_stop=hooks.should_stop)
        if self.device_.type == "cpu":  # same seed, same weights, however many threads
            deterministic_cpu_kernels()
        run = _FitRun(data, train, val, report, hooks.should_stop)
        if cfg.pretrain and self.pretrainer is not None:
            self._pretrain(run)
        return self._train(run, t0).fitted_

    def _train(self, run: _FitRun, t0: float) -> MetaLearner:
        """The training loop of `fit` on the model as set up (and pretrained)."""
        cfg = self.config
        data, callback, should_stop = run.data, run.callback, run.should_stop
        self.fitted_ = False
        self.history_: list[TrainProgress] = []
        self.best_step_, self.best_val_mae_ = 0, None
        try:
            # the set-up before the first step takes seconds on large data: stop between parts
            _check_stop(should_stop)
            if cfg.meta_params == "inner":
                for n, p in self.model_.named_parameters():
                    p.requires_grad_(n == "user_init")
            episodes = self._episodes(data, run.train_users)
            val = self._val_batches(data, run.val_users, should_stop)
            rng = np.random.default_rng([cfg.seed, 17])
            gen = torch.Generator().manual_seed(cfg.seed + 1)
            opt = self._optimizer()
            learn = self._learnable()
            best_state = None
            best_crit = math.inf
            if self.sync_ is not None:  # distributed (issue 16): every rank starts from rank 0's
                self.sync_.broadcast_weights(self.model_, self.inner_)
            if val:
                self.best_val_mae_, best_crit = self._val_scores(val, should_stop)
                best_state = self._snapshot()
        except _Stopped:
            self.best_val_mae_ = None
            self.train_seconds_ = time.perf_counter() - t0
            return self  # nothing learned: unfitted
        bad = 0
        stopped = False
        for step in range(1, cfg.steps + 1):
            if should_stop is not None and should_stop():
                stopped = True
                break
            if self.sync_ is None:
                support, query = self._sample(episodes, rng)
            else:  # distributed (issue 16): this rank's shard of the meta-batch
                support, query = self.sync_.sample(self, episodes, rng)
            loss = self._meta_step(support, query, opt, learn, gen, step)
            self.fitted_ = True
            val_mae = None
            if val and (step % cfg.eval_every == 0 or step == cfg.steps):
                try:
                    val_mae, crit = self._val_scores(val, should_stop)
                except _Stopped:  # stopped inside a validation run: keep the best so far
                    stopped = True
                    break
                if not (math.isfinite(val_mae) and math.isfinite(crit)):
                    raise FloatingPointError(f"validation MAE became {val_mae} at step {step}")
                if crit < best_crit - 1e-5:
                    best_crit, self.best_val_mae_, self.best_step_, bad = crit, val_mae, step, 0
                    best_state = self._snapshot()
                else:
                    bad += 1
            progress = TrainProgress(
                step, cfg.steps, loss, val_mae, self.best_val_mae_, time.perf_counter() - t0
            )
            self.history_.append(progress)
            if callback is not None:
                callback(progress)
            if val_mae is not None and bad > cfg.patience:
                break
        if best_state is not None:
            self._restore(best_state)
            if cfg.calibrate_prior and not stopped:
                self._calibrate_prior(val, best_crit, should_stop)
        # Stopped before any step: nothing was learned, stay unfitted. A run of 0 steps by
        # configuration is the warm-started model itself and counts as fitted.
        self.fitted_ = self.fitted_ or not stopped
        self.train_seconds_ = time.perf_counter() - t0
        return self

    def _pretrain(self, run: _FitRun) -> None:
        """Load the weights of the `pretrainer` trained from this learner's set-up (same model
        configuration and warm start, which is not computed again)."""
        assert self.pretrainer is not None  # fit asks for it
        cfg = dataclasses.replace(
            self.config,
            algorithm=self.pretrainer.name,
            meta_batch=preset(self.pretrainer.name).meta_batch,
            pretrain=False,
            meta_params="all",
        )
        callback, report = run.callback, None
        if callback is not None:

            def report(p: TrainProgress) -> None:
                callback(dataclasses.replace(p, phase="pretrain"))

        pre = self.pretrainer(cfg)
        pre.sync_ = self.sync_  # distributed (issue 16): pretrain across ranks too
        pre.train_from(
            self, run.data, run.train_users, run.val_users,
            callback=report, should_stop=run.should_stop,
        )  # fmt: skip
        self.model_.load_state_dict(pre.model_.state_dict())
        self.pretrain_step_ = pre.best_step_

    def train_from(
        self,
        source: MetaLearner,
        data: RatingsDataset,
        train_users: np.ndarray,
        val_users: np.ndarray | None = None,
        *,
        callback: Callable[[TrainProgress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> MetaLearner:
        """Train this learner's own way from `source`'s set-up: its catalogue, device, a copy
        of its (warm-started) weights and its inner-loop start, which are not computed again
        (how a learner is pretrained). `source` is not changed."""
        self.device_, self.n_items_, self.scale_ = source.device_, source.n_items_, source.scale_
        self.model_ = copy.deepcopy(source.model_)
        self._fast_names = self._adapted_names()
        self._inner_init = source._inner_init
        self.inner_ = self._make_inner(*self._inner_init)  # this learner's own inner rule
        self._hold_state_path()
        val_users = self._validation_users(val_users)
        run = _FitRun(data, train_users, val_users, callback, should_stop)
        return self._train(run, time.perf_counter())
