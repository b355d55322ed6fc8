"""Validating a meta-learner: the seeded validation episodes, their MAE and early-stopping
criterion, the snapshot of the best weights, the prior's calibration after training, and the
model check against the plain baselines."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from metarec_core.data.dataset import RatingsDataset
from metarec_core.evaluation.check import CHECK_BASELINES, CheckConfig, ModelCheck, run_model_check
from metarec_core.methods.meta.inner import Pair
from metarec_core.methods.meta.model import param_key
from metarec_core.methods.meta.progress import _check_stop, _Stopped
from metarec_core.protocol.splits import capped_users
from metarec_core.protocol.tasks import make_tasks

# Factors of the user state's prior precision tried on the validation users after training.
PRIOR_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


class ValidationMixin:
    """`MetaLearner`'s validation, early-stopping snapshots, prior calibration, model check."""

    def _validation_users(self, val_users: np.ndarray | None) -> np.ndarray | None:
        """The users that validate: `val_users`, at most ``max_val_users`` of them (a sample
        seeded by the learner's seed; `val_users` itself when there are no more)."""
        if val_users is None:
            return None
        return capped_users(val_users, self.config.max_val_users, self.config.seed)

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
        if self.sync_ is not None and not self.sync_.is_root:  # distributed (issue 16):
            return self.sync_.decide(None)  # rank 0 scores, every rank takes its decision
        mae, nll = self._val_metrics(batches, should_stop)
        out = mae, (nll if self.config.val_metric == "nll" and nll is not None else mae)
        return out if self.sync_ is None else self.sync_.decide(out)

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
        """The model check (`evaluation.check.run_model_check`) of this learner on `val_users`
        (at most ``max_val_users``, the users its fit validated on), its episodes drawn with
        this learner's seed; None without validation users, or once
        `should_stop()` says so."""
        self._check_fitted()
        cfg = CheckConfig(
            seed=self.config.seed, baselines=tuple(methods), max_users=self.config.max_val_users
        )
        return run_model_check(
            self, data, train_users, val_users, config=cfg, should_stop=should_stop,
            progress=progress,
        )  # fmt: skip

    def _snapshot(self) -> tuple[dict, dict]:
        return (
            {k: v.detach().clone() for k, v in self.model_.state_dict().items()},
            {k: v.detach().clone() for k, v in self.inner_.state_dict().items()},
        )

    def _restore(self, snap: tuple[dict, dict]) -> None:
        self.model_.load_state_dict(snap[0])
        self.inner_.load_state_dict(snap[1])
