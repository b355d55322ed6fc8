"""The plain per-task reference loop of the meta-learners (tests and speed bench only).

For every task of the meta-batch, in a Python loop: copy the meta-weights into fast weights,
take the inner steps with `torch.autograd.grad` (``create_graph`` for second order), evaluate
the query loss, and average. It is written independently of the vectorised path in
`trainer.py` and `algorithms.py` (no `vmap`, no `torch.func.grad`, the model's own `forward`), so that the test
"both give the same meta-gradient" checks the vectorisation, not a shared helper.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.func import functional_call

from metarec_core.methods.meta.algorithms import Finetune, Reptile
from metarec_core.methods.meta.model import param_key
from metarec_core.methods.meta.trainer import MetaLearner

Pair = tuple[np.ndarray, np.ndarray]


def _forward(learner: MetaLearner, fast: dict[str, torch.Tensor], items: torch.Tensor):
    weights = {k: v for k, v in fast.items() if k != "user_init"}
    kwargs = {"state": fast["user_init"], "raw": True}
    return functional_call(learner.model_, weights, (items,), kwargs)


def _ordinal_nll(out, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean NLL of the ordered logit, one rating at a time (P(level c) = F(theta_c) - F(theta_c-1))."""
    theta = [out.cut0]
    for gap in out.log_gaps.exp():
        theta.append(theta[-1] + gap)
    spread = out.log_spread.exp()
    total = torch.zeros((), dtype=z.dtype, device=z.device)
    for zj, rj in zip(z, target, strict=True):
        c = min(max(int(round((float(rj) - out.low) / out.step)), 0), out.levels - 1)
        upper = torch.sigmoid((theta[c] - zj) / spread) if c < out.levels - 1 else 1.0
        lower = torch.sigmoid((theta[c - 1] - zj) / spread) if c > 0 else 0.0
        total = total - torch.log(torch.clamp(upper - lower, min=1e-12))
    return total / len(target)


def _query_loss(learner: MetaLearner, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    err = pred - target
    kind = learner.config.outer_loss
    if kind == "ordinal" and learner.model_.ordinal is not None:
        return _ordinal_nll(learner.model_.ordinal, pred, target)
    if kind == "mse":
        return (err**2).mean()
    if kind in ("mae", "ordinal"):
        return err.abs().mean()
    a = err.abs()
    return torch.where(a <= 0.5, 0.5 * err**2, 0.5 * (a - 0.25)).mean()


def _adapt(
    learner: MetaLearner, items: torch.Tensor, ratings: torch.Tensor, first_order: bool
) -> dict[str, torch.Tensor]:
    cfg, inner = learner.config, learner.inner_
    params = dict(learner.model_.named_parameters())
    start = {n: params[n] for n in learner._fast_names}
    n = float(len(ratings))
    model = learner.model_
    if model.implicit is not None:
        shift = model.implicit[items].sum(0) / (n + model.implicit_log_c.exp())
        start = {**start, "user_init": start["user_init"] + shift}
    fast = dict(start)
    newton = cfg.newton_steps
    for t in range(cfg.inner_steps):
        if newton:  # the user state alone adapts
            fast = {"user_init": _newton(learner, fast, start, items, ratings, t, first_order)}
            continue
        err = _forward(learner, fast, items) - ratings
        sse = (err**2).sum()
        if cfg.inner_objective == "mean":
            loss = sse / max(n, 1.0)
        else:
            loss = sse
            for k in fast:
                loss = loss + (inner.log_prec[param_key(k)].exp() * (fast[k] - start[k]) ** 2).sum()
        names = list(fast)
        grads = torch.autograd.grad(
            loss, [fast[k] for k in names], create_graph=not first_order, allow_unused=True
        )
        new = {}
        for k, g in zip(names, grads, strict=True):
            g = torch.zeros_like(fast[k]) if g is None else g
            if first_order:
                g = g.detach()
            step = inner.step_lr(k, t) * g
            if cfg.inner_objective == "posterior":
                step = step / (n + inner.log_c[param_key(k)].exp())
            new[k] = fast[k] - step
        fast = new
    return fast


def _newton(learner, fast, start, items, ratings, t: int, first_order: bool) -> torch.Tensor:
    """The user state after one Gauss-Newton step; the Jacobian one row (item) at a time."""
    s = fast["user_init"]
    if not s.requires_grad:  # evaluation without a graph: rows need one to differentiate
        s = s.detach().requires_grad_(True)
    pred = _forward(learner, {**fast, "user_init": s}, items)
    out = learner.model_.ordinal
    if out is not None:  # the expected rating, level by level
        cuts = [out.cut0]
        for gap in out.log_gaps.exp():
            cuts.append(cuts[-1] + gap)
        spread = out.log_spread.exp()
        pred = out.low + out.step * sum(1 - torch.sigmoid((c - pred) / spread) for c in cuts)
    rows = [
        torch.autograd.grad(pj, s, create_graph=True, retain_graph=True)[0] for pj in pred
    ]
    J = torch.stack(rows) if rows else pred.new_zeros((0, s.shape[0]))
    prec = learner.inner_.log_prec[param_key("user_init")].exp()
    hess = J.T @ J + torch.diag(prec)
    g = 2 * (J.T @ (pred - ratings) + prec * (s - start["user_init"]))
    step = torch.linalg.solve(hess, g)
    if first_order:
        step = step.detach()
    return s - learner.inner_.step_lr("user_init", t) * step


# One task's query loss per rule; Reptile also adds its θ0 - θ' to `direction`.
def _maml_task(learner, params, si, sr, qi, qr, direction) -> torch.Tensor:
    fast = _adapt(learner, si, sr, learner.first_order)
    return _query_loss(learner, _forward(learner, fast, qi), qr)


def _finetune_task(learner, params, si, sr, qi, qr, direction) -> torch.Tensor:
    return _query_loss(learner, _forward(learner, {"user_init": params["user_init"]}, qi), qr)


def _reptile_task(learner, params, si, sr, qi, qr, direction) -> torch.Tensor:
    items, ratings = torch.cat([si, qi]), torch.cat([sr, qr])
    fast = {k: v.detach() for k, v in _adapt(learner, items, ratings, True).items()}
    for k, v in fast.items():
        d = params[k].detach() - v
        direction[k] = direction[k] + d if k in direction else d
    return _query_loss(learner, _forward(learner, fast, items), ratings)


_RULES = {Finetune: _finetune_task, Reptile: _reptile_task}


def reference_meta_gradients(
    learner: MetaLearner, support: Sequence[Pair], query: Sequence[Pair]
) -> tuple[float, dict[str, torch.Tensor]]:
    """(loss, meta-gradient per learnable name), one task at a time; same contract as
    `MetaLearner.meta_gradients`."""
    dev, dt = learner.device_, learner._dtype
    learn = learner._learnable()
    names, leaves = list(learn), list(learn.values())

    def tensors(pair: Pair) -> tuple[torch.Tensor, torch.Tensor]:
        i, r = pair
        return (
            torch.as_tensor(np.asarray(i, dtype=np.int64), device=dev),
            torch.as_tensor(np.asarray(r, dtype=np.float64), dtype=dt, device=dev),
        )

    total = torch.zeros((), dtype=dt, device=dev)
    direction: dict[str, torch.Tensor] = {}
    params = dict(learner.model_.named_parameters())
    # the rule of the learner's algorithm, written here again (the MAML family by default)
    rule = next((_RULES[c] for c in type(learner).__mro__ if c in _RULES), _maml_task)
    for s_pair, q_pair in zip(support, query, strict=True):
        total = total + rule(learner, params, *tensors(s_pair), *tensors(q_pair), direction)
    loss = total / len(query)
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    out = {
        n: torch.zeros_like(p) if g is None else g
        for n, p, g in zip(names, leaves, grads, strict=True)
    }
    for k, d in direction.items():
        out[f"model.{k}"] = d / len(query)
    return float(loss.detach()), out
