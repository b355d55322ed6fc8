"""Building a meta-learner's model: the rating network, the inner optimiser's starting values
(the Newton or diagonal step's rates and the prior), the held state path of learners that train
at one shared state, and the warm start from the MF fold-in baseline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.methods.baselines import MFFoldIn, level_grid
from metarec_core.methods.meta.config import resolve_device
from metarec_core.methods.meta.model import InnerOptimizer, RatingModel
from metarec_core.methods.meta.progress import TrainProgress

if TYPE_CHECKING:
    from metarec_core.methods.meta.trainer import MetaLearner


class BuildMixin:
    """`MetaLearner`'s set-up: `setup` (build, then warm-start), `_build`, `_make_inner`."""

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
        # E[q_id²] over training ratings: what the inner Hessian sees per state dimension. From
        # each item's count of training ratings, not a (ratings x factors) array of q_i²: that
        # was 1.4 GB at 10 million ratings, the set-up's peak (docs/scale.md).
        tr = np.isin(data.user, np.asarray(train_users))
        counts = np.bincount(data.item[tr], minlength=len(Q)).astype(np.float64)
        sq = torch.as_tensor(counts @ np.asarray(mf.item_factors_) ** 2 / counts.sum(), **dt)
        fr = mf.fold_reg_
        self._inner_init = (sq.clamp(min=1e-4), (float(fr[0]), float(fr[1])))
        self.inner_ = self._make_inner(*self._inner_init)

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
