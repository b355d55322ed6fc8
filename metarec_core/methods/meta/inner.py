"""The functional core of a meta-learner, vectorised with `torch.func`: predictions with fast
weights, the inner loop of one task (gradient steps, or the user state's Gauss-Newton step),
the outer losses, and the padding of (items, ratings) tasks into masked batches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.func import functional_call, grad

from metarec_core.methods.base import checked_pair
from metarec_core.methods.meta.model import param_key
from metarec_core.protocol.tasks import TaskBatch, pad_tasks

Pair = tuple[np.ndarray, np.ndarray]  # one task: (item indices, ratings)


def _strip(d: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in d.items() if k.startswith(prefix)}


class InnerLoopMixin:
    """`MetaLearner`'s inner loop (`_inner_loop`, called under `vmap`) and what it needs."""

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
        if (
            ordinal is not None
        ):  # fit the expected rating: z's scale is learned, the ratings' is not
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

    def _pad(self, pairs: Sequence[Pair], length: int | None = None) -> TaskBatch:
        pairs = [checked_pair(i, r, self.n_items_, f"task {b}") for b, (i, r) in enumerate(pairs)]
        return pad_tasks(pairs, length=length, dtype=self._dtype, device=self.device_)

    def _check_built(self) -> None:
        if not hasattr(self, "model_"):
            self._check_fitted()
