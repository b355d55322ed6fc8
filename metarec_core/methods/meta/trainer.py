"""The shared training loop of the meta-learners, vectorised with `torch.func`.

One meta-step runs the inner loops of the whole meta-batch at once: `vmap` over padded, masked
support/query tensors, `grad` for the inner gradients and `functional_call` for the fast
weights; no per-task Python loop and no deepcopy (the plain loop is in `reference.py`, and the
tests check that both give the same meta-gradient).

`MetaLearner` holds everything the algorithms share: building and warm-starting the model, the
inner loop, adaptation, validation and early stopping, pretraining, persistence. Each algorithm
(`algorithms.py`) is a small subclass that owns its update rule: its outer objective
(`_objective`), how its inner optimiser is made (`learned_lr`, `learned_prior`), how its
episodes are sampled and which learner pretrains it (`pretrainer`).

Inner objective (``LearnerConfig.inner_objective``), see `model.InnerOptimizer`:
- ``posterior``: sum of squared errors on the support + learned Gaussian prior around the
  meta-learned start: a MAP estimate of the user state. By default (``inner_solver="newton"``)
  each step solves the state's Gauss-Newton system on the expected rating, so one full step of
  a model that is biased MF is the closed-form ridge fold-in of the baselines, on any rating
  scale; ``"diagonal"`` keeps the diagonal of that system (step preconditioned by
  1/(n_support + c), on the raw output), the default before issue 14.
- ``mean``: mean squared error on the support (MeLU).

After training, the user state's prior precision is scaled by the factor with the best
validation criterion (``calibrate_prior``, `MetaLearner._calibrate_prior`).

Output and outer objective (``LearnerConfig.outer_loss``): by default ``ordinal``: the network's
output z is the location of an ordered logit over the scale's levels (`model.OrdinalOutput`),
meta-trained by its negative log-likelihood on the query, and the prediction is the median of
that distribution, the Bayes-optimal point under absolute error (the reported MAE). On an
integer 1-5 scale this alone lowers MAE a lot against mean predictors and raises RMSE; the
``finetune`` and ``melu`` ablations use the same output, so comparisons among learners isolate
the meta-objective. ``mse``/``mae``/``huber`` give a plain regression output.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.evaluation.check import CHECK_BASELINES, CheckConfig, ModelCheck, run_model_check
from metarec_core.methods.base import AdaptationTrace, AdaptedUser, Capabilities, Recommender
from metarec_core.methods.baselines import MFFoldIn, level_grid
from metarec_core.methods.meta.config import LearnerConfig, preset, resolve_device
from metarec_core.methods.meta.model import InnerOptimizer, RatingModel, param_key
from metarec_core.protocol.splits import fit_validation_split
from metarec_core.protocol.tasks import TaskBatch, make_tasks, pad_tasks, user_ratings

__all__ = [
    "CHECK_BASELINES",
    "PHASE_LABELS",
    "STATE_FORMAT",
    "STATE_VERSION",
    "BaselineCheck",
    "MetaLearner",
    "TrainProgress",
]

# `to_state()`'s format; version 1 is also what learners.MetaLearner.export_state wrote
STATE_FORMAT = "metarec-learner"
STATE_VERSION = 1

Pair = tuple[np.ndarray, np.ndarray]

# The phases of `MetaLearner.fit`, in order (see `LearnerConfig.phases`), for people.
PHASE_LABELS = {
    "warm_start": "Warm start (matrix factorisation)",
    "pretrain": "Pre-training",
    "meta": "Meta-training",
    "check": "Comparing with the plain baselines",  # after fit: `compare_with_baselines`
}
# Rough shares of a fit's time per phase (measured on MovieLens 100K and 1M with the presets;
# only used to pace a progress bar over the whole fit, never for results).
PHASE_WEIGHTS = {"warm_start": 0.2, "pretrain": 0.15, "meta": 0.65}


# Factors of the user state's prior precision tried on the validation users after training.
PRIOR_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


class _Stopped(Exception):
    """`should_stop()` said so between two units of work of a fit."""


@dataclass(frozen=True)
class TrainProgress:
    """One unit of a fit, as reported to `fit(callback=...)`; meta-steps are kept in `history_`.

    ``phase``: "meta" (a meta-step), "pretrain" (a step of the finetune phase, pretrain=True)
    or "warm_start" (the ALS warm start, step/total = percent done; no losses).
    """

    step: int  # 1-based meta-step just done
    total: int  # maximum number of steps
    train_loss: float | None  # meta-batch query loss (the outer objective) of this step
    val_mae: float | None  # validation MAE when validation ran at this step
    best_val_mae: float | None  # validation MAE of the best (kept) weights so far
    seconds: float  # since fit() started
    phase: str = "meta"


# The model check's result (`evaluation.check.ModelCheck`), under the name it had here.
BaselineCheck = ModelCheck


class _FitReporter:
    """Passes each `TrainProgress` of a fit on to its callback, and the fraction of the whole
    fit (phases weighted by `PHASE_WEIGHTS`) with a message to its progress hook."""

    def __init__(
        self,
        phases: Sequence[str],
        callback: Callable[[TrainProgress], None] | None,
        progress: Callable[[float, str], None] | None,
    ) -> None:
        self.callback, self.progress = callback, progress
        total = sum(PHASE_WEIGHTS[p] for p in phases)
        self.span: dict[str, tuple[float, float]] = {}
        start = 0.0
        for p in phases:
            self.span[p] = (start / total, PHASE_WEIGHTS[p] / total)
            start += PHASE_WEIGHTS[p]

    def __call__(self, p: TrainProgress) -> None:
        if self.callback is not None:
            self.callback(p)
        if self.progress is not None:
            start, width = self.span.get(p.phase, (0.0, 1.0))
            done = p.step / p.total if p.total > 0 else 1.0
            label = PHASE_LABELS.get(p.phase, p.phase).lower()
            what = f"{p.step}%" if p.phase == "warm_start" else f"step {p.step}/{p.total}"
            self.progress(min(1.0, start + width * done), f"{label}: {what}")


@dataclass
class _Episodes:
    """Training users' ratings for sampling episodes."""

    pairs: list[Pair]
    items: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ratings: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


def _check_stop(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise _Stopped


def _strip(d: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in d.items() if k.startswith(prefix)}


class MetaLearner(Recommender):
    """The shared part of the MAML-family meta-learners behind the `Recommender` interface;
    `algorithms.py` has one subclass per algorithm (`make_learner` and `learner_class` pick
    it), each owning its update rule.

    Attributes (only after fit or from_state): ``model_`` (`RatingModel`), ``inner_``
    (`InnerOptimizer`), ``history_`` (list of `TrainProgress`), ``device_``, ``n_items_``,
    ``scale_``, ``best_step_``, ``best_val_mae_``, ``fitted_``.

    >>> from metarec_core.methods.meta import make_learner
    >>> learner = make_learner("metasgd", seed=0, device="cpu", steps=10)
    >>> learner.config.algorithm
    'metasgd'
    """

    name: ClassVar[str]  # the algorithm: `LearnerConfig.algorithm` of this class's configs
    # its preset: the `LearnerConfig` fields that differ from the dataclass's defaults
    defaults: ClassVar[Mapping[str, Any]] = {}
    capabilities: ClassVar[Capabilities] = Capabilities(
        predicts_ratings=True, user_state=True, device=True, meta_learned=True
    )
    # --- the update rule, declared by each algorithm
    # the learner trained first (phase "pretrain") when the config asks for it; None: never
    pretrainer: ClassVar[type[MetaLearner] | None] = None
    learned_lr: ClassVar[bool] = False  # the inner learning rates are meta-learned (Meta-SGD)
    learned_prior: ClassVar[bool] = False  # the posterior objective's prior and damping are
    # whether training varies the user state, so that the network can learn how the state
    # acts on the decision layers; a learner that trains at one shared state (finetune) holds
    # that path (the head's user_proj) at zero: its states then act through b_u + <p_u, q_i>
    # alone, and adapting them cannot wander into what the network never saw
    varies_state: ClassVar[bool] = True
    # distributed hook (issue 16): a `distributed.ShardSync` while training across processes
    sync_: Any = None

    @classmethod
    def preset(cls) -> LearnerConfig:
        """This algorithm's preset: named after it, with its ``defaults``."""
        return LearnerConfig(name=cls.name, algorithm=cls.name, **cls.defaults)

    def __init__(self, config: LearnerConfig | None = None) -> None:
        """`config` defaults to the preset of this class's name."""
        if config is None:
            config = preset(self.name)
        if config.algorithm != self.name:
            raise ValueError(
                f"a {config.algorithm} configuration cannot make a {type(self).__name__} "
                f"({self.name}); use learner_class(config)"
            )
        self.config = config
        self.name = self.config.name  # type: ignore[misc]  # per-instance method name

    @property
    def first_order(self) -> bool:
        """Whether the outer gradient drops the second-order terms of the inner loop."""
        return True

    @abstractmethod
    def _objective(
        self, s: TaskBatch, q: TaskBatch, dropout_masks: Sequence[torch.Tensor] | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss to differentiate, update direction of adapted parameters by model name) for
        one padded meta-batch: a direction replaces the parameter's gradient (Reptile)."""

    # ------------------------------------------------------------------ set-up
    @property
    def _dtype(self) -> torch.dtype:
        return torch.float64 if self.config.dtype == "float64" else torch.float32

    def _build(
        self, n_items: int, genres: torch.Tensor | None, scale: RatingScale, device: torch.device
    ) -> None:
        """Create model and inner optimiser with default (not warm-started) values."""
        cfg = self.config
        self.device_ = device
        self.n_items_ = int(n_items)
        self.scale_ = scale
        self.model_ = RatingModel(
            n_items,
            factors=cfg.factors,
            embedding_dim=cfg.embedding_dim,
            hidden=cfg.hidden,
            dropout=cfg.dropout,
            genres=genres if cfg.use_genres else None,
            seed=cfg.seed,
            implicit=cfg.implicit,
            ordinal=level_grid(scale) if cfg.outer_loss == "ordinal" else None,
        )
        with torch.no_grad():
            self.model_.item_enc.mu.fill_((scale.low + scale.high) / 2)
        self.model_.to(device=device, dtype=self._dtype)
        self._fast_names = self._adapted_names()
        self._inner_init: tuple[torch.Tensor | None, tuple[float, float] | None] = (None, None)
        self.inner_ = self._make_inner(*self._inner_init)
        self._hold_state_path()

    def _hold_state_path(self) -> None:
        """Zero and freeze the state's path into the decision layers unless `varies_state`."""
        proj = getattr(self.model_.head, "user_proj", None)
        if self.varies_state or proj is None:
            return
        with torch.no_grad():
            proj.weight.zero_()
        proj.weight.requires_grad_(False)

    def _adapted_names(self) -> list[str]:
        names = ["user_init"]
        params = dict(self.model_.named_parameters())
        if self.config.adapt in ("head", "all"):
            names += [n for n in params if n.startswith("head.")]
        if self.config.adapt == "all":
            names += [n for n in params if n.startswith("item_enc.")]
        return names

    def _make_inner(
        self, sq_factor: torch.Tensor | None, prior: tuple[float, float] | None
    ) -> InnerOptimizer:
        """Initial inner-loop quantities; for the user state, a full Gauss-Newton step
        (``newton_steps``: lr 1/2, the prior precision from the MF fold-in) or a damped
        diagonal Newton step.

        Diagonal: with E[x_d²] the mean squared feature of state dimension d (q_id² for factors, 1 for the
        bias), the posterior objective's diagonal Hessian is 2 (n E[x_d²] + prec_d), so
        lr_d = inner_lr / (2 E[x_d²]) and c_d = prec_d / E[x_d²] make the first step a damped
        Newton step.
        """
        cfg = self.config
        params = dict(self.model_.named_parameters())
        f = cfg.factors
        dt = dict(dtype=self._dtype, device=self.device_)
        sq = torch.full((f,), 0.01, **dt) if sq_factor is None else sq_factor.to(**dt)
        lam_p, lam_b = prior if prior is not None else (8.0, 4.0)
        shapes, lr0, lp0, lc0 = {}, {}, {}, {}
        for n in self._fast_names:
            shape = params[n].shape
            shapes[n] = shape
            if cfg.inner_objective == "mean":
                lr0[n] = torch.tensor(cfg.inner_lr, **dt)
                lp0[n] = torch.tensor(0.0, **dt)
                lc0[n] = torch.tensor(0.0, **dt)
            elif n == "user_init":
                ex2 = torch.cat([sq, torch.ones(1, **dt)])
                prec = torch.cat([torch.full((f,), lam_p, **dt), torch.full((1,), lam_b, **dt)])
                lp0[n] = prec.log()
                if cfg.newton_steps:
                    # the Gauss-Newton system carries the scale: lr 1/2 is a full step
                    lr0[n] = torch.full((f + 1,), cfg.inner_lr, **dt)
                    lc0[n] = torch.zeros(f + 1, **dt)  # unused by the newton step
                else:
                    lr0[n] = cfg.inner_lr / (2 * ex2)
                    lc0[n] = (prec / ex2).log()
            else:
                lr0[n] = torch.tensor(cfg.head_inner_lr, **dt)
                lp0[n] = torch.tensor(0.0, **dt)
                lc0[n] = torch.tensor(0.0, **dt)
        inner = InnerOptimizer(
            shapes,
            cfg.inner_steps,
            lr_init=lr0,
            log_prec_init=lp0,
            log_c_init=lc0,
            per_step=cfg.per_step_lr and self.learned_lr,
        ).to(**dt)
        learn = set()
        if self.learned_lr:
            learn.add("lr")
        if self.learned_prior and cfg.inner_objective == "posterior":
            learn |= {"log_prec", "log_c"}
        for kind in ("lr", "log_prec", "log_c"):
            for key, p in getattr(inner, kind).items():
                unused = kind == "log_c" and key == "user_init" and cfg.newton_steps
                p.requires_grad_(kind in learn and not unused)
        return inner

    def _warm_start(
        self,
        data: RatingsDataset,
        train_users: np.ndarray,
        val_users,
        callback: Callable[[TrainProgress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        """mu, b_i, q_i, the initial state and the prior from the MF fold-in baseline."""
        cfg = self.config
        t0 = time.perf_counter()
        report = None
        if callback is not None:

            def report(fraction: float, message: str) -> None:
                pct = int(round(100 * fraction))
                callback(
                    TrainProgress(
                        pct, 100, None, None, None, time.perf_counter() - t0, phase="warm_start"
                    )
                )

        mf = MFFoldIn(seed=cfg.seed, factors=cfg.factors, reg=cfg.mf_reg)
        mf.fit(
            data,
            train_users,
            val_users if val_users is not None and len(val_users) else None,
            should_stop=should_stop,
            progress=report,
        )
        if not mf.fitted_:  # stopped: fit() returns before training
            return
        dt = dict(dtype=self._dtype, device=self.device_)
        Q = torch.as_tensor(np.asarray(mf.item_factors_), **dt)
        enc = self.model_.item_enc
        with torch.no_grad():
            enc.mu.fill_(float(mf.global_mean_))
            enc.bias.copy_(torch.as_tensor(np.asarray(mf.item_bias_), **dt))
            enc.factor.copy_(Q)
            P = np.asarray(mf.user_factors_)
            bu = np.asarray(mf.user_bias_)
            self.model_.user_init.copy_(torch.as_tensor(np.r_[P.mean(0), bu.mean()], **dt))
        # E[q_id²] over training ratings: what the inner Hessian sees per state dimension.
        tr = np.isin(data.user, np.asarray(train_users))
        sq = torch.as_tensor((np.asarray(mf.item_factors_)[data.item[tr]] ** 2).mean(0), **dt)
        fr = mf.fold_reg_
        self._inner_init = (sq.clamp(min=1e-4), (float(fr[0]), float(fr[1])))
        self.inner_ = self._make_inner(*self._inner_init)

    # ------------------------------------------------------------------ functional core
    def _feats(self, items: torch.Tensor) -> torch.Tensor:
        return self.model_.item_enc(items)

    def _predict(
        self,
        fast: dict[str, torch.Tensor],
        items: torch.Tensor,
        feats: torch.Tensor | None,
        dropout_masks: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Predictions of one task with fast weights (feats None: computed from fast items)."""
        if feats is None:
            feats = functional_call(self.model_.item_enc, _strip(fast, "item_enc."), (items,))
        head = _strip(fast, "head.")
        args = (fast["user_init"], feats, dropout_masks)
        return functional_call(self.model_.head, head, args) if head else self.model_.head(*args)

    def _inner_loss(self, fast, fast0, items, ratings, mask, feats):
        pred = self._predict(fast, items, feats)
        se = ((pred - ratings) ** 2 * mask).sum()
        n = mask.sum()
        mse = se / n.clamp(min=1)
        if self.config.inner_objective == "mean":
            return mse, mse
        prior = sum(
            (self.inner_.log_prec[param_key(k)].exp() * (fast[k] - fast0[k]) ** 2).sum()
            for k in fast
        )
        return se + prior, mse

    def _inner_loop(
        self,
        fast0: dict[str, torch.Tensor],
        items: torch.Tensor,
        ratings: torch.Tensor,
        mask: torch.Tensor,
        feats: torch.Tensor | None,
        first_order: bool,
        steps: int,
        q: tuple | None = None,
    ) -> tuple[dict[str, torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Adapt one task (called under vmap). Returns fast weights and per-step losses."""
        grad_fn = grad(self._inner_loss, has_aux=True)
        posterior = self.config.inner_objective == "posterior"
        newton = self.config.newton_steps
        n = mask.sum()
        fast = dict(fast0)
        if self.model_.implicit is not None:
            fast["user_init"] = self.model_.start_state(items, mask, fast0["user_init"])
            fast0 = dict(fast)  # the prior is centred on the implicit-feedback start
        s_losses, q_losses = [], []
        for t in range(steps):
            if q is not None:
                q_losses.append(self._masked_mse(fast, *q))
            if newton:  # the user state is all that adapts (LearnerConfig checks)
                state, mse = self._newton_step(
                    fast, fast0, items, ratings, mask, feats, t, first_order
                )
                s_losses.append(mse)
                fast = {"user_init": state}
                continue
            g, mse = grad_fn(fast, fast0, items, ratings, mask, feats)
            s_losses.append(mse)
            new = {}
            for k, v in fast.items():
                gk = g[k].detach() if first_order else g[k]
                step = self.inner_.step_lr(k, t) * gk
                if posterior:
                    step = step / (n + self.inner_.log_c[param_key(k)].exp())
                new[k] = v - step
            fast = new
        return fast, s_losses, q_losses

    def _newton_step(self, fast, fast0, items, ratings, mask, feats, t: int, first_order: bool):
        """One damped Gauss-Newton step of the user state on the posterior objective
        Σ m (r̂ - r)² + Σ prec (s - s0)²: s - lr_t ⊙ (JᵀMJ + diag prec)⁻¹ ∇, with J = ∂r̂/∂s.

        r̂ is the expected rating (the ordinal output's mean of z; z itself without one), so
        the residuals are in rating units whatever scale the ordinal cut points have learned.
        With lr 1/2 (a full step) and a model that is biased MF (no ordinal output, decision
        layers adding nothing), the first step is the closed-form ridge fold-in, whatever the
        scale of the ratings. Returns (new state, support MSE before the step).
        """
        key = "user_init"
        s, s0 = fast[key], fast0[key]

        # adapt="user": the item features are given and the head is the module's own
        r_hat, J = self.model_.head.value_and_jacobian(s, feats)  # (L,), (L, d)
        ordinal = self.model_.ordinal
        if ordinal is not None:  # fit the expected rating: z's scale is learned, the ratings' is not
            r_hat, slope = ordinal.mean_and_slope(r_hat)
            J = J * slope.unsqueeze(-1)
        err = (r_hat - ratings) * mask
        prec = self.inner_.log_prec[key].exp()
        hess = (J * mask.unsqueeze(-1)).T @ J + torch.diag(prec)
        g = 2 * (J.T @ err + prec * (s - s0))
        # solve_ex: solve checks for a singular system and so waits for the GPU at every inner
        # step (issue 16, GPU path); hess is positive definite (prec > 0)
        step = torch.linalg.solve_ex(hess, g)[0]
        if first_order:
            step = step.detach()
        mse = (err**2).sum() / mask.sum().clamp(min=1)
        return s - self.inner_.step_lr(key, t) * step, mse

    def _masked_mse(self, fast, items, ratings, mask, feats, dropout_masks=None) -> torch.Tensor:
        pred = self._predict(fast, items, feats, dropout_masks)
        return ((pred - ratings) ** 2 * mask).sum() / mask.sum().clamp(min=1)

    def _outer_loss(self, fast, items, ratings, mask, feats, dropout_masks=None) -> torch.Tensor:
        """The meta-objective on the query: ordinal NLL, MSE, MAE (the evaluation metric), Huber."""
        loss = self.config.outer_loss
        ordinal = self.model_.ordinal
        if loss == "ordinal" and ordinal is not None:
            z = self._predict(fast, items, feats, dropout_masks)
            return (ordinal.nll(z, ratings) * mask).sum() / mask.sum().clamp(min=1)
        if loss == "mse":
            return self._masked_mse(fast, items, ratings, mask, feats, dropout_masks)
        err = self._predict(fast, items, feats, dropout_masks) - ratings
        if loss in ("mae", "ordinal"):  # ordinal without discrete levels: MAE
            e = err.abs()
        else:
            e = torch.nn.functional.huber_loss(
                err, torch.zeros_like(err), reduction="none", delta=0.5
            )
        return (e * mask).sum() / mask.sum().clamp(min=1)

    def _fast0(self) -> dict[str, torch.Tensor]:
        params = dict(self.model_.named_parameters())
        return {n: params[n] for n in self._fast_names}

    def _batch_feats(self, items: torch.Tensor) -> torch.Tensor | None:
        """Item features of a padded batch, or None when the item tables adapt per task."""
        return None if self.config.adapt == "all" else self._feats(items)

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

    def _pad(self, pairs: Sequence[Pair], length: int | None = None) -> TaskBatch:
        for b, (i, r) in enumerate(pairs):
            i = np.asarray(i)
            if len(i) != len(np.asarray(r)):
                raise ValueError(f"task {b}: {len(i)} items but {len(np.asarray(r))} ratings")
            if len(i) and (i.min() < 0 or i.max() >= self.n_items_):
                raise ValueError(
                    f"task {b}: item index out of range [0, {self.n_items_}): "
                    f"found {int(i.min())}..{int(i.max())}"
                )
            if not np.isfinite(np.asarray(r, dtype=np.float64)).all():
                raise ValueError(f"task {b}: ratings must be finite numbers")
        pairs = [(np.asarray(i, dtype=np.int64), np.asarray(r, dtype=np.float64)) for i, r in pairs]
        return pad_tasks(pairs, length=length, dtype=self._dtype, device=self.device_)

    def _check_built(self) -> None:
        if not hasattr(self, "model_"):
            self._check_fitted()

    # ------------------------------------------------------------------ adaptation
    def _adapt_batch(
        self, support: TaskBatch, query: TaskBatch | None = None, trace: bool = False
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, torch.Tensor | None]:
        """Vectorised inner loops without outer graph: (fast (B, ...), support/query losses)."""
        cfg = self.config
        with torch.no_grad():
            fast0 = {k: v.detach() for k, v in self._fast0().items()}
            fs = self._batch_feats(support.items)
            fq = None if query is None else self._batch_feats(query.items)

        def task(si, sr, sm, sf, qi, qr, qm, qf):
            qq = None if (not trace or qi is None) else (qi, qr, qm, qf)
            fast, sl, ql = self._inner_loop(fast0, si, sr, sm, sf, True, cfg.inner_steps, qq)
            if not trace:
                return (fast,)
            s_out = torch.stack([*sl, self._masked_mse(fast, si, sr, sm, sf)])
            if qq is None:
                return fast, s_out
            return fast, s_out, torch.stack([*ql, self._masked_mse(fast, *qq)])

        fdim = None if fs is None else 0
        qdim = None if query is None else 0
        qfdim = None if fq is None else 0
        with torch.no_grad():
            args = (
                support.items,
                support.ratings,
                support.mask.to(support.ratings.dtype),
                fs,
                None if query is None else query.items,
                None if query is None else query.ratings,
                None if query is None else query.mask.to(query.ratings.dtype),
                fq,
            )
            out = vmap(task, in_dims=(0, 0, 0, fdim, qdim, qdim, qdim, qfdim))(*args)
        out = (*out, None, None)
        return out[0], out[1], out[2]

    def _catalogue_z(self, fast: dict[str, torch.Tensor], chunk: int = 64) -> torch.Tensor:
        """(B, n_items) raw outputs z over the catalogue for adapted states `fast`."""
        B = fast["user_init"].shape[0]
        all_items = torch.arange(self.n_items_, device=self.device_)
        out = []
        with torch.no_grad():
            feats = None if self.config.adapt == "all" else self._feats(all_items)
            for a in range(0, B, chunk):
                part = {k: v[a : a + chunk] for k, v in fast.items()}
                if self.config.adapt == "user":
                    out.append(self.model_.head(part["user_init"], feats))
                else:
                    out.append(vmap(lambda f: self._predict(f, all_items, feats))(part))
        return torch.cat(out)

    def _ratings(self, z: torch.Tensor, *, expected: bool = False) -> np.ndarray:
        """Point predictions (or, `expected`, the expected ratings) for raw outputs z, as
        float64 numpy clipped to the rating scale."""
        with torch.no_grad():
            r = self.model_.expected(z) if expected else self.model_.point(z)
        return np.clip(r.double().cpu().numpy(), self.scale_.low, self.scale_.high)

    def adapt(
        self,
        items: np.ndarray,
        ratings: np.ndarray,
        *,
        query_items: np.ndarray | None = None,
        query_ratings: np.ndarray | None = None,
    ) -> AdaptedUser:
        """Adapt to one new user (empty support: the meta-learned prior alone).

        The trace holds the support MSE (NaN for an empty support) and, when hidden ratings are
        given, the query MSE, before and after each inner step. Meta-weights are not changed.
        """
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64).ravel()
        ratings = np.asarray(ratings, dtype=np.float64).ravel()
        s = self._pad([(items, ratings)])
        q = None
        if query_items is not None:
            if query_ratings is None:
                raise ValueError("query_items given without query_ratings")
            q = self._pad([(np.asarray(query_items).ravel(), np.asarray(query_ratings).ravel())])
        fast, sl, ql = self._adapt_batch(s, q, trace=True)
        z = self._catalogue_z(fast)
        scores = self._ratings(z)[0]
        s_loss = tuple(float(x) for x in sl[0]) if len(items) else (math.nan,) * sl.shape[1]
        trace = AdaptationTrace(
            support_loss=s_loss,
            query_loss=None if ql is None else tuple(float(x) for x in ql[0]),
        )
        state = fast["user_init"][0].detach().double().cpu().numpy()
        expected = None
        if self.model_.ordinal is not None:
            expected = self._ratings(z, expected=True)[0]
        return AdaptedUser(scores, items, ratings.astype(np.float32), trace, state, expected)

    def score_many(self, supports: Sequence[Pair]) -> np.ndarray:
        """(n_users, n_items) predicted ratings after adapting to each support set at once."""
        self._check_fitted()
        out = []
        for a in range(0, len(supports), 256):
            fast, _, _ = self._adapt_batch(self._pad(supports[a : a + 256]))
            out.append(self._ratings(self._catalogue_z(fast)))
        if not out:
            return np.zeros((0, self.n_items_))
        return np.concatenate(out)

    def predict_batch(self, supports: Sequence[Pair], queries: Sequence[np.ndarray]) -> np.ndarray:
        """(n_users, max query length) predictions of the query items (clipped; padding 0)."""
        self._check_built()
        z, q = self._query_z(supports, [(np.asarray(i), np.zeros(len(i))) for i in queries])
        return self._ratings(z) * q.mask.cpu().numpy()

    def _query_z(self, supports: Sequence[Pair], queries: Sequence[Pair]):
        """Raw outputs z (B, L) of the query items after adapting to each support, and the
        padded query batch."""
        fast, _, _ = self._adapt_batch(self._pad(supports))
        q = self._pad(queries)
        with torch.no_grad():
            fq = self._batch_feats(q.items)
            z = vmap(self._predict, in_dims=(0, 0, None if fq is None else 0))(fast, q.items, fq)
        return z, q

    def user_states(self, data: RatingsDataset, users: np.ndarray, k: int = 10) -> np.ndarray:
        """(n, factors + 1) adapted user states of dataset users from k of their ratings.

        The k ratings are the first k of the user's seeded permutation (`make_tasks` order);
        users with fewer use all theirs. With ``adapt="head"`` the state is the prior for all.
        """
        self._check_fitted()
        tasks, _ = make_tasks(
            data, np.asarray(users), query=0, min_support=0, seed=self.config.seed
        )
        pairs = [(t.items[:k], t.ratings[:k]) for t in tasks]
        out = []
        for a in range(0, len(pairs), 256):
            fast, _, _ = self._adapt_batch(self._pad(pairs[a : a + 256]))
            out.append(fast["user_init"].detach().double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.config.factors + 1))

    # ------------------------------------------------------------------ training
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

    def _val_batches(
        self,
        data: RatingsDataset,
        val_users: np.ndarray | None,
        should_stop: Callable[[], bool] | None = None,
    ):
        """[(supports, queries)] of the validation MAE, one batch per (draw, support size)."""
        return [(s, q) for s, q, _ in self._val_episodes(data, val_users, should_stop)]

    def _val_episodes(
        self,
        data: RatingsDataset,
        val_users: np.ndarray | None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[tuple[list[Pair], list[Pair], np.ndarray]]:
        """The validation batches with the user of each row: [(supports, queries, users)]."""
        if val_users is None or len(val_users) == 0:
            return []
        out = []
        # Several seeded draws of each validation user's support/query: the few validation
        # users alone give a noisy early-stopping signal.
        for rep in range(self.config.val_repeats):
            _check_stop(should_stop)
            seed = self.config.seed + 7919 * rep
            tasks, _ = make_tasks(data, val_users, query=10, min_support=1, seed=seed)
            for k in self.config.val_support:
                ok = [t for t in tasks if t.n_available >= k]
                if ok:
                    users = np.array([t.user for t in ok], dtype=np.int64)
                    out.append(([t.support(k) for t in ok], [t.query for t in ok], users))
        return out

    def _val_metrics(
        self, batches, should_stop: Callable[[], bool] | None = None
    ) -> tuple[float, float | None]:
        """(mean query MAE, mean query NLL of the ordinal output or None) over the validation
        batches, both from one adaptation per batch."""
        ordinal = self.model_.ordinal
        maes, nlls = [], []
        for sup, qry in batches:
            _check_stop(should_stop)
            z, q = self._query_z(sup, qry)
            m = q.mask.cpu().numpy()
            n = m.sum(1).clip(min=1)
            err = np.abs(self._ratings(z) - q.ratings.double().cpu().numpy())
            maes.append(float(((err * m).sum(1) / n).mean()))
            if ordinal is not None:
                with torch.no_grad():
                    mt = q.mask.to(z.dtype)
                    per_user = (ordinal.nll(z, q.ratings) * mt).sum(1) / mt.sum(1).clamp(min=1)
                nlls.append(float(per_user.mean()))
        return float(np.mean(maes)), (float(np.mean(nlls)) if nlls else None)

    def _val_scores(
        self, batches, should_stop: Callable[[], bool] | None = None
    ) -> tuple[float, float]:
        """(validation MAE, early-stopping criterion: `val_metric`)."""
        if self.sync_ is not None and not self.sync_.is_root:  # distributed hook (issue 16):
            return self.sync_.decide(None)  # rank 0 scores, every rank takes its decision
        mae, nll = self._val_metrics(batches, should_stop)
        out = mae, (nll if self.config.val_metric == "nll" and nll is not None else mae)
        return out if self.sync_ is None else self.sync_.decide(out)

    def compare_with_baselines(
        self,
        data: RatingsDataset,
        train_users: np.ndarray,
        val_users: np.ndarray | None,
        *,
        methods: Sequence[str] = CHECK_BASELINES,
        should_stop: Callable[[], bool] | None = None,
        progress: Callable[[float, str], None] | None = None,
    ) -> ModelCheck | None:
        """The model check (`evaluation.check.run_model_check`) of this learner on `val_users`,
        its episodes drawn with this learner's seed; None without validation users, or once
        `should_stop()` says so."""
        self._check_fitted()
        cfg = CheckConfig(seed=self.config.seed, baselines=tuple(methods))
        return run_model_check(
            self, data, train_users, val_users, config=cfg, should_stop=should_stop,
            progress=progress,
        )  # fmt: skip

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

    def setup(
        self,
        data: RatingsDataset,
        train_users: np.ndarray,
        val_users=None,
        *,
        callback: Callable[[TrainProgress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> MetaLearner:
        """Build (and warm-start) the model without meta-training; `fit` calls it first.

        The warm start reports to `callback` (phase "warm_start") and polls `should_stop()`
        inside its ALS; stopped, it leaves the model as built (not warm-started).
        """
        cfg = self.config
        device = resolve_device(cfg.device)
        genres = None
        if data.items is not None and data.items.genres.size and data.items.genres.shape[1]:
            genres = torch.as_tensor(np.asarray(data.items.genres, dtype=np.float32))
        self._build(data.n_items, genres, data.scale, device)
        if cfg.warm_start:
            self._warm_start(data, train_users, val_users, callback, should_stop)
        return self

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

        Without `val_users`, a seeded ``val_fraction`` of the training users validates. Raises
        FloatingPointError when the loss becomes NaN/inf. `callback` gets every unit of every
        phase (`TrainProgress`); `progress(fraction, message)` the fraction of the whole fit.
        `should_stop()` is polled in every phase (inside the ALS warm start, between validation
        batches, before every step); stopping early keeps what was learned (``fitted_`` if any
        meta-step ran).
        """
        cfg = self.config
        t0 = time.perf_counter()
        train_users = np.unique(np.asarray(train_users, dtype=np.int64))
        if val_users is None and len(train_users) >= 20:
            train_users, val_users = fit_validation_split(train_users, cfg.seed, cfg.val_fraction)
        self.fitted_ = False
        report = _FitReporter(cfg.phases, callback, progress)
        self.setup(data, train_users, val_users, callback=report, should_stop=should_stop)
        if cfg.pretrain and self.pretrainer is not None:
            self._pretrain(data, train_users, val_users, report, should_stop)
        return self._train(data, train_users, val_users, report, should_stop, t0)

    def _train(
        self,
        data: RatingsDataset,
        train_users: np.ndarray,
        val_users: np.ndarray | None,
        callback: Callable[[TrainProgress], None] | None,
        should_stop: Callable[[], bool] | None,
        t0: float,
    ) -> MetaLearner:
        """The training loop of `fit` on the model as set up (and pretrained)."""
        cfg = self.config
        self.fitted_ = False
        self.history_: list[TrainProgress] = []
        self.best_step_, self.best_val_mae_ = 0, None
        try:
            # the set-up before the first step takes seconds on large data: stop between parts
            _check_stop(should_stop)
            if cfg.meta_params == "inner":
                for n, p in self.model_.named_parameters():
                    p.requires_grad_(n == "user_init")
            episodes = self._episodes(data, train_users)
            val = self._val_batches(data, val_users, should_stop)
            rng = np.random.default_rng([cfg.seed, 17])
            gen = torch.Generator().manual_seed(cfg.seed + 1)
            opt = self._optimizer()
            learn = self._learnable()
            best_state = None
            best_crit = math.inf
            if self.sync_ is not None:  # distributed hook (issue 16): rank 0's start
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
            else:  # distributed hook (issue 16): this rank's shard of the meta-batch
                support, query = self.sync_.sample(self, episodes, rng)
            s = self._pad(support)
            q = self._pad(query)
            loss, grads = self._gradients(s, q, self._dropout_masks(q, gen))
            if self.sync_ is not None:  # distributed hook (issue 16): mean over all ranks
                loss, grads = self.sync_.all_reduce(loss, grads)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"meta-training loss became {loss} at step {step} of {cfg.steps} "
                    f"({cfg.name}); try a smaller outer_lr ({cfg.outer_lr}) or inner_lr "
                    f"({cfg.inner_lr})"
                )
            for n, p in learn.items():
                p.grad = grads[n]
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(list(learn.values()), cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
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

    def _calibrate_prior(
        self, val, crit: float, should_stop: Callable[[], bool] | None = None
    ) -> None:
        """Scale the prior precision of the user state by the factor of `PRIOR_SCALES` with the
        best validation criterion (1 unless another is better by more than 1e-4).

        How far a new user's ratings should move the state depends on the data (its scale, its
        noise, how many ratings users give); the meta-objective sets the prior on training
        episodes, this confirms it on the validation users, as the fold-in baselines choose
        their penalties. ``prior_scale_`` says what was chosen.
        """
        self.prior_scale_ = 1.0
        if self.config.inner_objective != "posterior" or not val:
            return
        key = param_key("user_init")
        params = [self.inner_.log_prec[key]]
        if not self.config.newton_steps:
            params.append(self.inner_.log_c[key])  # its step size follows the precision
        base = [p.detach().clone() for p in params]

        def use(scale: float) -> None:
            with torch.no_grad():
                for p, b in zip(params, base, strict=True):
                    p.copy_(b + math.log(scale))

        best = (crit - 1e-4, 1.0, self.best_val_mae_)
        try:
            for scale in PRIOR_SCALES:
                if scale == 1.0:
                    continue
                use(scale)
                mae, score = self._val_scores(val, should_stop)
                if score < best[0]:
                    best = (score, scale, mae)
        except _Stopped:
            best = (crit, 1.0, self.best_val_mae_)
        use(best[1])
        self.prior_scale_, self.best_val_mae_ = best[1], best[2]

    def _pretrain(
        self,
        data: RatingsDataset,
        train_users: np.ndarray,
        val_users: np.ndarray | None,
        callback: Callable[[TrainProgress], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
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
        report = None
        if callback is not None:

            def report(p: TrainProgress) -> None:
                callback(dataclasses.replace(p, phase="pretrain"))

        pre = self.pretrainer(cfg)
        pre.sync_ = self.sync_  # distributed hook (issue 16): pretrain across ranks too
        pre.train_from(self, data, train_users, val_users, callback=report, should_stop=should_stop)
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
        return self._train(data, train_users, val_users, callback, should_stop, time.perf_counter())

    def _snapshot(self) -> tuple[dict, dict]:
        return (
            {k: v.detach().clone() for k, v in self.model_.state_dict().items()},
            {k: v.detach().clone() for k, v in self.inner_.state_dict().items()},
        )

    def _restore(self, snap: tuple[dict, dict]) -> None:
        self.model_.load_state_dict(snap[0])
        self.inner_.load_state_dict(snap[1])

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> dict[str, Any]:
        """Weights, config and history as tensors and plain values (`weights_only` loadable)."""
        self._check_fitted()
        genres = getattr(self.model_.item_enc, "genre_weights", None)
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "n_items": self.n_items_,
            "scale": [self.scale_.low, self.scale_.high, self.scale_.step],
            "genres": None if genres is None else (genres > 0).cpu(),
            "model": {k: v.detach().cpu() for k, v in self.model_.state_dict().items()},
            "inner": {k: v.detach().cpu() for k, v in self.inner_.state_dict().items()},
            "history": [dataclasses.asdict(p) for p in getattr(self, "history_", [])],
            "best_step": int(getattr(self, "best_step_", 0)),
            "best_val_mae": getattr(self, "best_val_mae_", None),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str = "cpu") -> MetaLearner:
        """Rebuild a fitted learner from `to_state()` (on `device`, CPU by default), as the
        class of its configuration's algorithm (`learner_class`), which must be `cls` or one
        of its subclasses. Reads the states of every version so far (version 1)."""
        from metarec_core.methods.meta.algorithms import learner_class  # it imports this

        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError("not a MetaLearner state (missing or wrong 'format')")
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"unsupported MetaLearner state version {state.get('version')!r} "
                f"(this code reads version {STATE_VERSION})"
            )
        cfg_dict = dict(state["config"])
        known = {f.name for f in dataclasses.fields(LearnerConfig)}
        unknown = set(cfg_dict) - known
        if unknown:
            raise ValueError(f"unknown config fields in state: {sorted(unknown)}")
        cfg_dict["device"] = str(device)
        # states from before the Newton inner solver were trained with, and adapt by, the
        # diagonal step
        cfg_dict.setdefault("inner_solver", "diagonal")
        cfg = LearnerConfig(**cfg_dict)
        target = learner_class(cfg)
        if not issubclass(target, cls):
            raise ValueError(f"the state is a {target.__name__}, not a {cls.__name__}")
        learner = target(cfg)
        low, high, step = state["scale"]
        genres = state.get("genres")
        learner._build(
            int(state["n_items"]),
            None if genres is None else torch.as_tensor(genres).float(),
            RatingScale(float(low), float(high), float(step)),
            resolve_device(device),
        )
        learner.model_.load_state_dict(state["model"])
        learner.inner_.load_state_dict(state["inner"])
        learner.history_ = [TrainProgress(**h) for h in state.get("history", [])]
        learner.best_step_ = int(state.get("best_step", 0))
        learner.best_val_mae_ = state.get("best_val_mae")
        learner.fitted_ = True
        return learner
