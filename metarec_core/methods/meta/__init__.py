"""The meta-learners (the MAML family): their public names, from the modules below.

- `config.py`: `LearnerConfig`, `preset(name)` (any registered meta-learner's), `resolve_device`.
- `algorithms.py`: one class per algorithm (`MAML`, `FOMAML`, `MetaSGD`, `Reptile`,
  `Finetune`, `MeLU`), each declaring its preset, `learner_class(config)` and
  `make_learner(name)` (both through the registry, so a registered algorithm is found too).
- `trainer.py`: `MetaLearner`, the base they share, made of one mixin per job:
  `building.py` (model, inner optimiser's start, warm start), `inner.py` (the vectorised inner
  loop, outer losses, padding), `adaptation.py` (`adapt`, `adapt_batch`, `score_many`),
  `validation.py` (validation, early stopping's snapshots, the prior's calibration, the model
  check), `training.py` (`fit`: episodes, `_meta_step`, the loop, pretraining) and
  `persistence.py` (`to_state` / `from_state`); `progress.py`: `TrainProgress`.
- `model.py`: the rating network and the inner optimiser; `reference.py`: a plain per-task loop
  that the tests check the vectorised meta-gradients against.

The product default is ``metasgd`` (`DEFAULT_METHOD`).
"""

from __future__ import annotations

from metarec_core.methods.meta.algorithms import (
    ALGORITHM_CLASSES,
    ALGORITHMS,
    FOMAML,
    MAML,
    PRESETS,
    Finetune,
    MeLU,
    MetaSGD,
    Reptile,
    learner_class,
    make_learner,
)
from metarec_core.methods.meta.config import (
    ADAPT_GROUPS,
    DEFAULT_METHOD,
    OUTER_LOSSES,
    LearnerConfig,
    preset,
    resolve_device,
)
from metarec_core.methods.meta.trainer import (
    CHECK_BASELINES,
    PHASE_LABELS,
    STATE_FORMAT,
    STATE_VERSION,
    BaselineCheck,
    MetaLearner,
    TrainProgress,
)

__all__ = [
    "ADAPT_GROUPS",
    "ALGORITHMS",
    "ALGORITHM_CLASSES",
    "CHECK_BASELINES",
    "DEFAULT_METHOD",
    "FOMAML",
    "MAML",
    "OUTER_LOSSES",
    "PHASE_LABELS",
    "PRESETS",
    "STATE_FORMAT",
    "STATE_VERSION",
    "BaselineCheck",
    "Finetune",
    "LearnerConfig",
    "MeLU",
    "MetaLearner",
    "MetaSGD",
    "Reptile",
    "TrainProgress",
    "learner_class",
    "make_learner",
    "preset",
    "resolve_device",
]
