"""The meta-learning algorithms: one small class each, owning its update rule.

Every class shares `trainer.MetaLearner` (model, vectorised inner loop, adaptation, validation,
early stopping, persistence) and declares what differs: its outer objective (`_objective`),
whether the inner learning rates and prior are meta-learned, how its episodes are sampled and
which learner pretrains it.

- `MAML`: second order, the outer gradient flows through the inner updates (Finn et al. 2017).
- `FOMAML`: first order, inner gradients are treated as constants.
- `MetaSGD`: MAML with learned per-parameter (and optionally per-step) inner learning rates
  (Li et al. 2017).
- `Reptile`: first order; the adapted parameters move towards the task-adapted ones
  (Nichol et al. 2018). Parameters that are not adapted in the inner loop (item tables) get the
  first-order gradient of the task loss at the adapted weights.
- `Finetune`: the same network trained without the meta objective (plain regression of all
  training ratings from the shared initial user state), adapted at test time with the same
  inner loop. The ablation that shows what meta-learning itself buys; it pretrains the others.
- `MeLU`: MAML in MeLU's set-up (Lee et al. 2019; its preset): only the decision layers adapt.

Each class declares its preset: ``name`` and ``defaults``, the `LearnerConfig` fields that
differ from the dataclass's defaults (`MetaLearner.preset`). A new algorithm is a subclass
(here or in any importable module) and one `registry.register(registry.MethodSpec.of(cls,
display, description))`; `learner_class`, `preset` and `make_learner` find it through the
registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch.func import vmap

from metarec_core.data.dataset import RatingsDataset
from metarec_core.methods import registry
from metarec_core.methods.meta.config import DEFAULT_METHOD, LearnerConfig, preset
from metarec_core.methods.meta.inner import Pair
from metarec_core.methods.meta.trainer import MetaLearner
from metarec_core.methods.meta.training import _Episodes
from metarec_core.protocol.tasks import TaskBatch

__all__ = [
    "ALGORITHMS",
    "ALGORITHM_CLASSES",
    "FOMAML",
    "MAML",
    "Finetune",
    "MeLU",
    "MetaSGD",
    "PRESETS",
    "Reptile",
    "learner_class",
    "make_learner",
]


class Finetune(MetaLearner):
    """Plain regression of single training ratings from the shared initial user state: no
    inner loop, no meta objective (fixed inner rates; adapts at test time like the others)."""

    name: ClassVar[str] = "finetune"
    defaults: ClassVar[Mapping[str, Any]] = {"meta_batch": 1024}
    varies_state: ClassVar[bool] = False

    def _objective(self, s, q, dropout_masks):
        feats = self._feats(q.items) if self.config.adapt != "all" else None
        mask = q.mask.to(q.ratings.dtype)
        return self._outer_loss(self._fast0(), q.items, q.ratings, mask, feats), {}

    def _episodes(self, data: RatingsDataset, users: np.ndarray) -> _Episodes:
        ep = super()._episodes(data, users)
        ep.items = np.concatenate([i for i, _ in ep.pairs])
        ep.ratings = np.concatenate([r for _, r in ep.pairs])
        return ep

    def _sample(self, ep: _Episodes, rng: np.random.Generator) -> tuple[list[Pair], list[Pair]]:
        """`meta_batch` single ratings drawn from all training ratings, as one empty support
        and one query."""
        idx = rng.integers(0, len(ep.items), size=self.config.meta_batch)
        return [(ep.items[idx[:0]], ep.ratings[idx[:0]])], [(ep.items[idx], ep.ratings[idx])]


class MAML(MetaLearner):
    """Second-order MAML: the outer gradient flows through the inner updates (unless the
    config's ``first_order``); the prior and damping of the posterior objective are learned."""

    name: ClassVar[str] = "maml"
    pretrainer: ClassVar[type[MetaLearner] | None] = Finetune
    learned_prior: ClassVar[bool] = True

    @property
    def first_order(self) -> bool:
        return self.config.first_order

    def _objective(self, s, q, dropout_masks):
        return self._meta_loss(s, q, dropout_masks), {}

    def _meta_loss(
        self, support: TaskBatch, query: TaskBatch, dropout_masks: Sequence[torch.Tensor] | None
    ) -> torch.Tensor:
        """Mean query loss after the vectorised inner loops."""
        cfg = self.config
        fast0 = self._fast0()
        fs, fq = self._batch_feats(support.items), self._batch_feats(query.items)
        first_order = self.first_order

        def task(si, sr, sm, sf, qi, qr, qm, qf, dm):
            fast, _, _ = self._inner_loop(fast0, si, sr, sm, sf, first_order, cfg.inner_steps)
            return self._outer_loss(fast, qi, qr, qm, qf, dm)

        fdim = None if fs is None else 0
        dm_dim = None if dropout_masks is None else 0
        losses = vmap(task, in_dims=(0, 0, 0, fdim, 0, 0, 0, fdim, dm_dim))(
            support.items,
            support.ratings,
            support.mask.to(support.ratings.dtype),
            fs,
            query.items,
            query.ratings,
            query.mask.to(query.ratings.dtype),
            fq,
            dropout_masks,
        )
        return losses.mean()


class FOMAML(MAML):
    """First-order MAML: inner gradients are treated as constants."""

    name: ClassVar[str] = "fomaml"

    @property
    def first_order(self) -> bool:
        return True


class MetaSGD(MAML):
    """MAML with meta-learned inner learning rates: per parameter, and per inner step with
    the config's ``per_step_lr``."""

    name: ClassVar[str] = "metasgd"
    learned_lr: ClassVar[bool] = True


class MeLU(MAML):
    """MAML in MeLU's set-up (Lee et al., KDD 2019): its preset adapts the decision layers
    only, with tiny steps on the mean squared error, and meta-trains from scratch."""

    name: ClassVar[str] = "melu"
    # MeLU on our model: embedding 32, decision layers 64-64, only the decision layers adapt,
    # local lr 5e-6 on the mean squared error, global lr 5e-5 (Adam), 1 local step (the paper
    # also reports 5), 32 users per meta-batch. The paper regresses with MSE; here it keeps our
    # network's ordinal output and loss, like every other learner, so the comparison is about
    # the set-up, not the output layer.
    defaults: ClassVar[Mapping[str, Any]] = {
        "embedding_dim": 32,
        "hidden": (64, 64),
        "adapt": "head",
        "inner_objective": "mean",
        "inner_steps": 1,
        "inner_lr": 5e-6,
        "per_step_lr": False,
        "outer_lr": 5e-5,
        "item_lr": None,
        "meta_batch": 32,
        "pretrain": False,  # MeLU meta-trains from scratch
    }


class Reptile(MetaLearner):
    """Reptile: adapt on the whole episode (support and query); adapted parameters move by
    θ0 − mean θ', the others get the first-order gradient of the loss at the adapted weights."""

    name: ClassVar[str] = "reptile"
    defaults: ClassVar[Mapping[str, Any]] = {"outer_lr": 1e-3}
    pretrainer: ClassVar[type[MetaLearner] | None] = Finetune

    def _objective(self, s, q, dropout_masks):
        both = TaskBatch(
            torch.cat([s.items, q.items], 1),
            torch.cat([s.ratings, q.ratings], 1),
            torch.cat([s.mask, q.mask], 1),
        )
        fast0 = self._fast0()
        fb = self._batch_feats(both.items)
        steps = self.config.inner_steps

        def task(i, r, m, f):
            fast, _, _ = self._inner_loop(fast0, i, r, m, f, True, steps)
            fast = {k: v.detach() for k, v in fast.items()}
            return self._outer_loss(fast, i, r, m, f), fast

        losses, fast = vmap(task, in_dims=(0, 0, 0, None if fb is None else 0))(
            both.items, both.ratings, both.mask.to(both.ratings.dtype), fb
        )
        direction = {k: fast0[k].detach() - fast[k].mean(0) for k in fast0}
        return losses.mean(), direction


# The built-in algorithms, from the registry's list (tests pin them; `learner_class` also
# finds any registered one).
ALGORITHM_CLASSES = registry.builtin_classes(registry.META_LEARNER)
ALGORITHMS = tuple(ALGORITHM_CLASSES)
PRESETS: dict[str, LearnerConfig] = {name: cls.preset() for name, cls in ALGORITHM_CLASSES.items()}


def learner_class(config: LearnerConfig) -> type[MetaLearner]:
    """The class that trains `config` (its ``algorithm``, a registered meta-learner); build it
    with `cls(config)`."""
    return registry.method_class(config.algorithm)  # type: ignore[return-value]


def make_learner(
    name: str = DEFAULT_METHOD, *, seed: int = 0, device: str = "auto", **overrides: Any
) -> MetaLearner:
    """A fresh, unfitted learner from a preset, with `seed`, `device` and field overrides."""
    cfg = dataclasses.replace(preset(name), seed=seed, device=str(device), **overrides)
    return learner_class(cfg)(cfg)
