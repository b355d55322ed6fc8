"""The shared training loop of the meta-learners, vectorised with `torch.func`.

One meta-step runs the inner loops of the whole meta-batch at once: `vmap` over padded, masked
support/query tensors, `grad` for the inner gradients and `functional_call` for the fast
weights; no per-task Python loop and no deepcopy (the plain loop is in `reference.py`, and the
tests check that both give the same meta-gradient).

`MetaLearner` holds everything the algorithms share, one job per module of its mixins:
`building.py` (the model, the inner optimiser's start, the warm start), `inner.py` (the
functional inner loop, the outer losses, padding), `adaptation.py` (new users),
`validation.py` (validation, early-stopping snapshots, the prior's calibration, the model
check), `training.py` (`fit`: episodes, the meta-step, the loop, pretraining) and
`persistence.py` (`to_state` / `from_state`); `progress.py` has `TrainProgress`. Each algorithm
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

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from metarec_core.evaluation.check import CHECK_BASELINES, ModelCheck
from metarec_core.methods.base import Capabilities, Recommender
from metarec_core.methods.meta.adaptation import AdaptationMixin
from metarec_core.methods.meta.building import BuildMixin
from metarec_core.methods.meta.config import LearnerConfig, preset
from metarec_core.methods.meta.inner import InnerLoopMixin, Pair
from metarec_core.methods.meta.persistence import STATE_FORMAT, STATE_VERSION, PersistenceMixin
from metarec_core.methods.meta.progress import PHASE_LABELS, PHASE_WEIGHTS, TrainProgress
from metarec_core.methods.meta.training import TrainingMixin, _Episodes
from metarec_core.methods.meta.validation import PRIOR_SCALES, ValidationMixin
from metarec_core.protocol.tasks import TaskBatch

__all__ = [
    "CHECK_BASELINES",
    "PHASE_LABELS",
    "PHASE_WEIGHTS",
    "PRIOR_SCALES",
    "STATE_FORMAT",
    "STATE_VERSION",
    "BaselineCheck",
    "MetaLearner",
    "Pair",
    "TrainProgress",
    "_Episodes",
]

# The model check's result (`evaluation.check.ModelCheck`), under the name it had here.
BaselineCheck = ModelCheck


class MetaLearner(
    TrainingMixin,
    ValidationMixin,
    AdaptationMixin,
    InnerLoopMixin,
    BuildMixin,
    PersistenceMixin,
    Recommender,
):
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
        predicts_ratings=True, user_state=True, device=True, meta_learned=True, distribution=True
    )
    # --- the update rule, declared by each algorithm
    # the learner trained first (phase "pretrain") when the config asks for it; None: never
    pretrainer: ClassVar[type[MetaLearner] | None] = None
    learned_lr: ClassVar[bool] = False  # the inner learning rates are meta-learned (Meta-SGD)
    # the posterior objective's prior and damping are meta-learned
    learned_prior: ClassVar[bool] = False
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
