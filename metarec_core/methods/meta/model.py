"""Neural modules of the meta-learners (no training code here).

The rating predictor contains the classic baselines as special cases::

    r̂(s, i) = mu + b_i + b_u + <p_u, q_i> + MLP([p_u, e_i, g_i])      with user state s = (p_u, b_u)

- ``mu``, ``b_i``, ``q_i`` can be warm-started from a biased matrix factorisation (ALS); with the
  MLP's output layer at zero the model *is* that factorisation, so meta-training starts from the
  MF fold-in baseline and learns what it fixes by hand.
- ``e_i`` is a free item embedding, ``g_i`` the mean embedding of the item's genres (when item
  metadata exists).
- A new user has no id embedding: the user state starts at a meta-learned vector
  (``RatingModel.user_init``) and is adapted from the user's ratings by the learner.

`InnerOptimizer` holds the meta-learned parts of the inner loop (prior precision, step
preconditioner, per-parameter learning rates) as an `nn.Module`, so the outer optimiser and
checkpoints treat them like any other weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from metarec_core.methods.base import LEVEL_TIE_BREAK

__all__ = [
    "DecisionHead",
    "InnerOptimizer",
    "ItemEncoder",
    "OrdinalOutput",
    "RatingModel",
    "param_key",
]


def _uniform_(t: torch.Tensor, bound: float, gen: torch.Generator | None) -> None:
    with torch.no_grad():
        t.uniform_(-bound, bound, generator=gen)


class ItemEncoder(nn.Module):
    """Per-item features packed in one tensor: ``[mu + b_i, q_i (factors), h_i (hidden[0])]``.

    ``h_i = W_e e_i + W_g g_i + b`` is the item's contribution to the first decision layer; it does
    not depend on the user, so the learner computes it once per task, outside the inner loop.
    """

    def __init__(
        self,
        n_items: int,
        factors: int,
        embedding_dim: int,
        first_hidden: int,
        genres: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.factors = factors
        self.mu = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(n_items))
        self.factor = nn.Parameter(torch.empty(n_items, factors))
        with torch.no_grad():
            self.factor.normal_(0.0, 0.1, generator=generator)
        self.has_mlp = first_hidden > 0
        if self.has_mlp:
            self.embedding = nn.Parameter(torch.empty(n_items, embedding_dim))
            with torch.no_grad():
                self.embedding.normal_(0.0, 0.1, generator=generator)
            in_dim = embedding_dim
            if genres is not None:
                g = genres.to(torch.float32)
                # Mean over the item's genres: rows are normalised; items without genres get 0.
                g = g / g.sum(1, keepdim=True).clamp(min=1.0)
                self.register_buffer("genre_weights", g)
                self.genre_embedding = nn.Parameter(torch.empty(g.shape[1], embedding_dim))
                with torch.no_grad():
                    self.genre_embedding.normal_(0.0, 0.1, generator=generator)
                in_dim += embedding_dim
            else:
                self.genre_weights = None
            self.proj = nn.Linear(in_dim, first_hidden)
            _uniform_(self.proj.weight, 1.0 / math.sqrt(in_dim), generator)
            nn.init.zeros_(self.proj.bias)

    @property
    def feature_dim(self) -> int:
        return 1 + self.factors + (self.proj.out_features if self.has_mlp else 0)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """items (...,) int64 -> features (..., 1 + factors + hidden[0])."""
        parts = [(self.mu + self.bias[items]).unsqueeze(-1), self.factor[items]]
        if self.has_mlp:
            x = self.embedding[items]
            if self.genre_weights is not None:
                x = torch.cat([x, self.genre_weights[items] @ self.genre_embedding], dim=-1)
            parts.append(self.proj(x))
        return torch.cat(parts, dim=-1)


class DecisionHead(nn.Module):
    """The user-dependent part: ``b_u + <p_u, q_i> + MLP([p_u, e_i, g_i])`` on item features.

    The output layer starts at zero so that an untrained head adds nothing to the MF part.
    """

    def __init__(
        self,
        factors: int,
        hidden: Sequence[int],
        dropout: float = 0.0,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.factors = factors
        self.hidden = tuple(int(h) for h in hidden)
        self.dropout = dropout
        if self.hidden:
            self.user_proj = nn.Linear(factors, self.hidden[0], bias=False)
            _uniform_(self.user_proj.weight, 1.0 / math.sqrt(max(factors, 1)), generator)
            self.layers = nn.ModuleList(
                nn.Linear(a, b) for a, b in zip(self.hidden[:-1], self.hidden[1:], strict=True)
            )
            for layer in self.layers:
                _uniform_(layer.weight, 1.0 / math.sqrt(layer.in_features), generator)
                # Zero biases: with small item embeddings a random bias would dominate and
                # leave many ReLUs dead for every item.
                nn.init.zeros_(layer.bias)
            self.out = nn.Linear(self.hidden[-1], 1)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(
        self,
        state: torch.Tensor,
        feats: torch.Tensor,
        dropout_masks: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """state (..., factors + 1), feats (L, F) or (..., L, F) -> predictions (..., L).

        `dropout_masks` (one per hidden layer, already scaled by 1/(1-p)) are drawn by the caller
        with a seeded generator, so training stays deterministic and thread-safe.
        """
        f = self.factors
        p, b_u = state[..., :f], state[..., f:]
        base = feats[..., 0] + b_u + (feats[..., 1 : 1 + f] @ p.unsqueeze(-1)).squeeze(-1)
        if not self.hidden:
            return base
        h = F.relu(feats[..., 1 + f :] + self.user_proj(p).unsqueeze(-2))
        for j, layer in enumerate(self.layers):
            if dropout_masks is not None:
                h = h * dropout_masks[j]
            h = F.relu(layer(h))
        if dropout_masks is not None:
            h = h * dropout_masks[-1]
        return base + self.out(h).squeeze(-1)


    def value_and_jacobian(
        self, state: torch.Tensor, feats: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(predictions (L,), their Jacobian (L, factors + 1) with respect to the state) for one
        state (factors + 1,) and item features (L, F), without dropout.

        Written out rather than left to `torch.func.jacfwd`: the ReLU masks are constants, so
        the Jacobian is a few matrix products per item, and differentiating through it (the
        outer gradient of a Newton inner step) is as cheap. Same values as autograd's.
        """
        f = self.factors
        q = feats[..., 1 : 1 + f]
        base = feats[..., 0] + state[f] + q @ state[:f]
        ones = torch.ones_like(base).unsqueeze(-1)
        if not self.hidden:
            return base, torch.cat([q, ones], -1)
        pre = [feats[..., 1 + f :] + self.user_proj(state[:f])]
        h = F.relu(pre[0])
        for layer in self.layers:
            pre.append(layer(h))
            h = F.relu(pre[-1])
        out = self.out(h).squeeze(-1)
        v = self.out.weight.expand(base.shape[0], -1)  # d out / d h_last, one row per item
        for layer, a in zip(reversed(self.layers), reversed(pre[1:]), strict=True):
            v = (v * (a > 0)) @ layer.weight
        v = (v * (pre[0] > 0)) @ self.user_proj.weight
        return base + out, torch.cat([q + v, ones], -1)


class OrdinalOutput(nn.Module):
    """Ordered-logit reading of the model's output z on a discrete rating scale.

    P(r <= level_c) = sigmoid((theta_c - z) / s) with learned ordered cut points theta_c
    (initialised half-way between levels, so z stays on the rating scale) and spread s. The
    point prediction is the median of that distribution -- the Bayes-optimal answer under
    absolute error, which a mean (the MSE answer) is not on an integer scale -- plus 1e-3 times
    (mean - median), which only breaks ties so that rankings stay informative.
    """

    TIE_BREAK = LEVEL_TIE_BREAK  # the level baselines break ties the same way

    def __init__(self, low: float, step: float, levels: int) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError(f"an ordinal output needs at least 2 levels, got {levels}")
        self.low, self.step, self.levels = float(low), float(step), int(levels)
        self.cut0 = nn.Parameter(torch.tensor(self.low + 0.5 * self.step))
        self.log_gaps = nn.Parameter(torch.full((self.levels - 2,), math.log(self.step)))
        self.log_spread = nn.Parameter(torch.tensor(math.log(0.5 * self.step)))

    def cuts(self) -> torch.Tensor:
        """(levels - 1,) increasing cut points on the rating scale."""
        return torch.cat([self.cut0.reshape(1), self.cut0 + self.log_gaps.exp().cumsum(0)])

    def cdf(self, z: torch.Tensor) -> torch.Tensor:
        """(..., levels - 1): P(r <= level_c) for c = 0 .. levels - 2."""
        return torch.sigmoid((self.cuts() - z.unsqueeze(-1)) / self.log_spread.exp())

    def nll(self, z: torch.Tensor, ratings: torch.Tensor) -> torch.Tensor:
        """Per-rating negative log-likelihood (same shape as z); ratings snap to the nearest level."""
        cdf = self.cdf(z)
        lo = torch.zeros_like(cdf[..., :1])
        probs = torch.cat([cdf, lo + 1.0], -1) - torch.cat([lo, cdf], -1)
        idx = ((ratings - self.low) / self.step).round().clamp(0, self.levels - 1)
        levels = torch.arange(self.levels, dtype=z.dtype, device=z.device)
        onehot = (idx.unsqueeze(-1) == levels).to(z.dtype)
        return -(probs.clamp(min=1e-12).log() * onehot).sum(-1)

    def mean(self, z: torch.Tensor) -> torch.Tensor:
        """Expected rating for each z."""
        return self.low + self.step * (1.0 - self.cdf(z)).sum(-1)

    def mean_and_slope(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(expected rating, its derivative with respect to z) for each z."""
        cdf = self.cdf(z)
        mean = self.low + self.step * (1.0 - cdf).sum(-1)
        slope = self.step * (cdf * (1.0 - cdf)).sum(-1) / self.log_spread.exp()
        return mean, slope

    def point(self, z: torch.Tensor) -> torch.Tensor:
        """Median rating (+ a tie-breaking 1e-3 x (mean - median)) for each z."""
        mean = self.mean(z)
        median = self.low + self.step * (self.cuts() < z.unsqueeze(-1)).to(z.dtype).sum(-1)
        return median + self.TIE_BREAK * (mean - median)


class RatingModel(nn.Module):
    """Item encoder + decision head + the meta-learned initial user state ``user_init``."""

    def __init__(
        self,
        n_items: int,
        *,
        factors: int = 20,
        embedding_dim: int = 32,
        hidden: Sequence[int] = (64, 64),
        dropout: float = 0.0,
        genres: torch.Tensor | None = None,
        seed: int = 0,
        implicit: bool = False,
        ordinal: tuple[float, float, int] | None = None,
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        # (low, step, levels) of a discrete scale: the output z is read as an ordered logit
        self.ordinal = None if ordinal is None else OrdinalOutput(*ordinal)
        hidden = tuple(int(h) for h in hidden)
        self.item_enc = ItemEncoder(
            n_items, factors, embedding_dim, hidden[0] if hidden else 0, genres, generator=gen
        )
        self.head = DecisionHead(factors, hidden, dropout, generator=gen)
        self.user_init = nn.Parameter(torch.zeros(factors + 1))
        # Implicit feedback (which items the user chose to rate, SVD++-style): the start of the
        # inner loop is user_init + Σ_support y_j / (n + c); zero at first, so off until learned.
        if implicit:
            self.implicit = nn.Parameter(torch.zeros(n_items, factors + 1))
            self.implicit_log_c = nn.Parameter(torch.tensor(math.log(5.0)))
        else:
            self.implicit = None

    def start_state(
        self, items: torch.Tensor, mask: torch.Tensor, user_init: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The user's inner-loop start (and prior mean) from the support items (..., L)."""
        s0 = self.user_init if user_init is None else user_init
        if self.implicit is None:
            return s0
        n = mask.sum(-1, keepdim=True)
        y = (self.implicit[items] * mask.unsqueeze(-1)).sum(-2)
        return s0 + y / (n + self.implicit_log_c.exp())

    @property
    def state_dim(self) -> int:
        return self.user_init.shape[0]

    def forward(
        self, items: torch.Tensor, state: torch.Tensor | None = None, raw: bool = False
    ) -> torch.Tensor:
        """Predicted ratings (unclipped) of `items` for `state` (default: the initial state).

        ``raw=True`` gives the head's output z, which the losses use; without an ordinal output
        the two are the same.
        """
        z = self.head(self.user_init if state is None else state, self.item_enc(items))
        return z if raw else self.point(z)

    def point(self, z: torch.Tensor) -> torch.Tensor:
        """The rating prediction for raw outputs z (z itself without an ordinal output)."""
        return z if self.ordinal is None else self.ordinal.point(z)

    def expected(self, z: torch.Tensor) -> torch.Tensor:
        """The expected rating for raw outputs z (z itself without an ordinal output)."""
        return z if self.ordinal is None else self.ordinal.mean(z)


def param_key(name: str) -> str:
    """A parameter name usable as an `nn.ParameterDict` key ('head.out.weight' -> 'head__out__weight')."""
    return name.replace(".", "__")


class InnerOptimizer(nn.Module):
    """Meta-learned inner-loop quantities, one set per adapted parameter tensor.

    For the ``posterior`` inner objective a step on parameter θ (initial value θ0) is::

        θ <- θ - lr_t ⊙ ∇θ [ Σ_support (r̂ - r)² + Σ exp(log_prec) ⊙ (θ - θ0)² ] / (n + exp(log_c))

    a gradient step on a MAP objective (sum of squared errors + Gaussian prior around the
    meta-learned start) whose size shrinks with the evidence n like a posterior update. One such
    step with lr = 1/2 and c = prec is exactly the closed-form ridge fold-in of a user bias.
    For the ``mean`` objective (MeLU) the step is ``θ <- θ - lr_t ⊙ ∇ mean_support (r̂ - r)²``.
    ``lr`` has shape (steps, *θ.shape) when per-step rates are learned, else θ.shape.
    """

    def __init__(
        self,
        shapes: dict[str, torch.Size],
        steps: int,
        *,
        lr_init: dict[str, torch.Tensor],
        log_prec_init: dict[str, torch.Tensor],
        log_c_init: dict[str, torch.Tensor],
        per_step: bool,
    ) -> None:
        super().__init__()
        self.names = tuple(shapes)
        self.steps = steps
        self.per_step = per_step
        self.lr = nn.ParameterDict()
        self.log_prec = nn.ParameterDict()
        self.log_c = nn.ParameterDict()
        for n, shape in shapes.items():
            k = param_key(n)
            lr = lr_init[n].expand(shape).clone()
            if per_step:
                lr = lr.unsqueeze(0).repeat(max(steps, 1), *([1] * len(shape)))
            self.lr[k] = nn.Parameter(lr)
            self.log_prec[k] = nn.Parameter(log_prec_init[n].expand(shape).clone())
            self.log_c[k] = nn.Parameter(log_c_init[n].expand(shape).clone())

    def step_lr(self, name: str, t: int) -> torch.Tensor:
        lr = self.lr[param_key(name)]
        return lr[min(t, lr.shape[0] - 1)] if self.per_step else lr

    def groups(self, kinds: Iterable[str]) -> list[nn.Parameter]:
        out: list[nn.Parameter] = []
        for kind in kinds:
            out.extend(getattr(self, kind).values())
        return out
