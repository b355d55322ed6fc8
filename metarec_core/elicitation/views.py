"""A fitted model seen as a posterior over the new user's state: what the model-based
elicitation strategies (`shrinkage`, `melu_evidence`) read.

A `StateView` exposes, for methods whose new user is a state vector s fitted to the support
ratings with a Gaussian prior (ridge fold-in, the meta-learners' Newton inner loop):

- ``prior_precision`` (d,): the prior's diagonal precision in the units of the support's sum
  of squared errors (the inner objective is Σ (r̂ − r)² + Σ prec ⊙ (s − s0)²);
- ``state(items, ratings)``: the adapted state, through the method's public `adapt`;
- ``linearise(state, items)``: (r̂ (L,), J (L, d)) the predicted (expected) rating of each item
  and its derivative with respect to the state.

Around the adapted state the objective's Gauss-Newton Hessian is H = Σ_support JᵀJ + diag(prec):
σ² H⁻¹ is the Laplace approximation of the state's posterior covariance, the quantity the
Newton inner loop already solves with. Methods without such a state (item means, popularity,
a meta-learner adapting its decision layers) have no view: `state_view` returns None and the
strategies say what they fall back to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from metarec_core.methods.base import Recommender
from metarec_core.methods.baselines.bias import UserBias
from metarec_core.methods.baselines.mf import MFFoldIn
from metarec_core.methods.meta import MetaLearner

__all__ = ["LinearStateView", "MetaStateView", "StateView", "state_view"]


class StateView(ABC):
    """The new user's state of a fitted method, linearised (see the module doc)."""

    def __init__(self, method: Recommender) -> None:
        self.method = method

    @property
    @abstractmethod
    def prior_precision(self) -> np.ndarray:
        """(d,) the prior's diagonal precision, in units of the support's squared error."""

    def state(self, items: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """(d,) the state the method adapts to from (items, ratings)."""
        s = self.method.adapt(np.asarray(items, np.int64), np.asarray(ratings, np.float64)).state
        if s is None:
            raise ValueError(f"{type(self.method).__name__} returned no user state")
        return np.asarray(s, dtype=np.float64)

    @abstractmethod
    def linearise(self, state: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(predicted rating (L,), Jacobian (L, d)) of `items` at `state`."""

    def hessian(self, state: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(d, d) Gauss-Newton Hessian Σ_items JᵀJ + diag(prior precision) at `state`."""
        _, J = self.linearise(state, np.asarray(items, np.int64))
        return J.T @ J + np.diag(self.prior_precision)


class LinearStateView(StateView):
    """Ridge fold-in baselines: MF fold-in (s = [p_u, b_u], J = [q_i, 1]) and the user bias
    (s = [b_u], J = [1]); their levels versions too (the view reads the unrounded model)."""

    @property
    def _mf(self) -> bool:
        return isinstance(self.method, MFFoldIn)

    @property
    def prior_precision(self) -> np.ndarray:
        m = self.method
        if self._mf:
            lp, lb = m.fold_reg_
            return np.r_[np.full(m.item_factors_.shape[1], float(lp)), float(lb)]
        return np.array([float(m.fold_damping_)])

    def linearise(self, state: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = self.method
        items = np.asarray(items, np.int64)
        ones = np.ones((len(items), 1))
        J = np.hstack([m.item_factors_[items], ones]) if self._mf else ones
        pred = m.global_mean_ + m.item_bias_[items] + J @ np.asarray(state, np.float64)
        return pred, J


class MetaStateView(StateView):
    """A meta-learner adapting the user state (``adapt="user"``): the network's expected
    rating and its Jacobian (`DecisionHead.value_and_jacobian`, times the ordinal output's
    slope), the inner loop's learned prior precision (``inner_.log_prec["user_init"]``)."""

    @property
    def prior_precision(self) -> np.ndarray:
        lp = self.method.inner_.log_prec["user_init"]
        return lp.detach().exp().double().cpu().numpy()

    def linearise(self, state: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        m = self.method.model_
        p = next(m.parameters())
        with torch.no_grad():
            it = torch.as_tensor(np.asarray(items, np.int64), device=p.device)
            s = torch.as_tensor(np.asarray(state), dtype=p.dtype, device=p.device)
            z, J = m.head.value_and_jacobian(s, m.item_enc(it))
            if m.ordinal is not None:
                z, slope = m.ordinal.mean_and_slope(z)
                J = J * slope.unsqueeze(-1)
        return z.double().cpu().numpy(), J.double().cpu().numpy()


def state_view(method: Recommender | None) -> StateView | None:
    """The view of `method`'s new-user state, or None when it has none to linearise."""
    if method is None or not method.capabilities.predicts_ratings:
        return None
    if isinstance(method, MetaLearner):
        if method.config.adapt == "user" and "user_init" in method.inner_.names:
            return MetaStateView(method)
        return None
    if isinstance(method, (MFFoldIn, UserBias)):  # their levels versions are subclasses
        return LinearStateView(method)
    return None
