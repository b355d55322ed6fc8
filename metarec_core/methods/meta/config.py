"""What defines a meta-learner: `LearnerConfig`, its presets and the device choice.

``LearnerConfig.algorithm`` names the learner's class (a meta-learner of the registry,
`algorithms.learner_class`); every other field is shared by all of them. Each class declares
its preset (`MetaLearner.preset`); `preset(name)` finds it through the registry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from metarec_core.methods import registry
from metarec_core.protocol.splits import DEFAULT_MAX_VAL_USERS

__all__ = [
    "ADAPT_GROUPS",
    "DEFAULT_METHOD",
    "INNER_SOLVERS",
    "OUTER_LOSSES",
    "LearnerConfig",
    "preset",
    "resolve_device",
]

ADAPT_GROUPS = ("user", "head", "all")
INNER_SOLVERS = ("diagonal", "newton")
OUTER_LOSSES = ("ordinal", "mse", "mae", "huber")
DEFAULT_METHOD = "metasgd"


@dataclass(frozen=True)
class LearnerConfig:
    """Everything that defines a meta-learner; change it with `dataclasses.replace`."""

    name: str = DEFAULT_METHOD  # method name in reports (a preset name)
    # the learner's class (`algorithms.learner_class`): a meta-learner of the registry
    algorithm: str = "metasgd"
    # --- model
    factors: int = 20  # size of p_u and q_i; the user state is (p_u, b_u): factors + 1
    embedding_dim: int = 32  # item and genre embeddings fed to the decision layers
    hidden: tuple[int, ...] = (64, 64)  # decision layers; () = pure biased MF
    dropout: float = 0.0  # on the decision layers, outer (query) forward only
    use_genres: bool = True  # genre embedding when the dataset has item metadata
    implicit: bool = False  # start state shifted by learned embeddings of the rated items
    warm_start: bool = True  # start mu, b_i, q_i (and the prior) from ALS MF on training users
    # start meta-training from the finetune solution (plain regression of the same network,
    # early-stopped on the same validation users; reported to fit's callback as phase
    # "pretrain", not kept in history_). Ignored by learners without a pretrainer (finetune).
    pretrain: bool = True
    # what the outer loop learns: all (network, start state and inner-loop quantities) | inner
    # (the start state and inner-loop quantities only; the network keeps its warm-started or,
    # with pretrain, its finetune weights); measured in bench/variants.py, not the default
    meta_params: str = "all"
    # ALS ridge penalty of the warm start; None: chosen on the validation users among the MF
    # fold-in baseline's candidates, as that baseline does, so the warm start is that baseline
    mf_reg: float | None = 8.0
    # --- inner loop (adaptation to one user)
    adapt: str = "user"  # parameters adapted per user: user | head | all
    inner_objective: str = "posterior"  # posterior | mean
    # "newton" solves the Gauss-Newton system of the user state (d = factors + 1) at each
    # step, on the expected rating, so that one full step is the exact ridge fold-in of the MF
    # part (any rating scale, any number of ratings); "diagonal" keeps only the diagonal of
    # that system, on the raw output. Newton needs the posterior objective and adapt "user"
    # (`newton_steps`); other set-ups take the diagonal step.
    inner_solver: str = "newton"
    inner_steps: int = 5
    # posterior: 0.5 is a full (diagonal or Gauss-) Newton step, as the objective is a sum of
    # squares (its Hessian is 2 (J^T J + prec)); mean: plain lr
    inner_lr: float = 0.5
    head_inner_lr: float = 1e-2  # posterior objective: initial lr of adapted network weights
    per_step_lr: bool = True  # metasgd: a learned rate per inner step
    first_order: bool = False  # metasgd/maml: drop second-order terms (fomaml always does)
    # --- outer loop
    # query loss: ordinal (NLL of an ordered logit; predictions are its median, see
    # models.OrdinalOutput; falls back to mae on scales without a few discrete levels) | mse |
    # mae (the evaluation metric) | huber
    outer_loss: str = "ordinal"
    outer_lr: float = 2e-3  # Adam
    item_lr: float | None = 1e-4  # Adam lr of the item tables (b_i, q_i, e_i); None: outer_lr
    weight_decay: float = 0.0
    grad_clip: float = 10.0  # max global norm of the meta-gradient; 0 disables
    meta_batch: int = 64  # users per meta-step
    steps: int = 4000  # maximum meta-steps (early stopping usually ends sooner)
    max_support: int = 40  # training episodes: support size log-uniform in min..max_support
    # 0: some episodes have no support, so the prior itself (the k=0 prediction) is trained
    min_support: int = 1
    query: int = 10  # training episodes: query ratings per user (at most, see min_query)
    # fewest query ratings a training episode keeps (None: exactly `query`). Below `query`,
    # users with fewer than query + 1 ratings still train and the others give longer queries.
    min_query: int | None = None
    # --- validation / early stopping
    eval_every: int = 100  # meta-steps between validation runs
    patience: int = 6  # validation runs without improvement before stopping
    val_support: tuple[int, ...] = (1, 3, 5, 10, 20)  # val MAE is averaged over these k
    val_repeats: int = 3  # seeded support/query draws per validation user
    val_fraction: float = 0.1  # carved from train users when fit() gets no val_users
    # most validation users fit scores (a seeded sample, `protocol.splits.capped_users`; the
    # others neither validate nor train), so that a validation run and the model check cost
    # the same on 100,000 users as on 2,000; None: all. Fewer users than this: all of them.
    max_val_users: int | None = DEFAULT_MAX_VAL_USERS
    # early-stopping criterion: mae, or nll (the query log-loss of the ordinal output: smooth,
    # where the MAE of a median moves in steps and is noisy on a few validation users; the MAE
    # is still what is reported). nll falls back to mae without an ordinal output.
    val_metric: str = "nll"
    # after training: scale the user state's prior precision by the factor (0.25..8) with the
    # best validation criterion (`MetaLearner._calibrate_prior`)
    calibrate_prior: bool = True
    # --- runtime
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    dtype: str = "float32"  # float32 | float64 (tests)

    def __post_init__(self) -> None:
        algorithms = tuple(registry.available_methods(registry.META_LEARNER))
        if self.algorithm not in algorithms:
            raise ValueError(f"unknown algorithm {self.algorithm!r}; expected one of {algorithms}")
        if self.adapt not in ADAPT_GROUPS:
            raise ValueError(f"adapt must be one of {ADAPT_GROUPS}, got {self.adapt!r}")
        if self.inner_objective not in ("posterior", "mean"):
            raise ValueError(
                f"inner_objective must be posterior|mean, got {self.inner_objective!r}"
            )
        if self.inner_solver not in INNER_SOLVERS:
            raise ValueError(
                f"inner_solver must be one of {'|'.join(INNER_SOLVERS)}, got {self.inner_solver!r}"
            )
        if self.outer_loss not in OUTER_LOSSES:
            raise ValueError(
                f"outer_loss must be one of {'|'.join(OUTER_LOSSES)}, got {self.outer_loss!r}"
            )
        if self.meta_params not in ("all", "inner"):
            raise ValueError(f"meta_params must be all|inner, got {self.meta_params!r}")
        if self.val_metric not in ("mae", "nll"):
            raise ValueError(f"val_metric must be mae|nll, got {self.val_metric!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32|float64, got {self.dtype!r}")
        for f in ("factors", "embedding_dim", "meta_batch", "eval_every", "query"):
            if getattr(self, f) < 1:
                raise ValueError(f"{f} must be >= 1, got {getattr(self, f)}")
        for f in ("inner_steps", "steps", "patience"):
            if getattr(self, f) < 0:
                raise ValueError(f"{f} must be >= 0, got {getattr(self, f)}")
        if self.max_val_users is not None and self.max_val_users < 1:
            raise ValueError(f"max_val_users must be >= 1 or None, got {self.max_val_users}")
        if not 0 <= self.min_support <= self.max_support or self.max_support < 1:
            raise ValueError(
                f"need 0 <= min_support <= max_support and max_support >= 1, got "
                f"{self.min_support}..{self.max_support}"
            )
        if self.min_query is not None and not 1 <= self.min_query <= self.query:
            raise ValueError(
                f"need 1 <= min_query <= query, got min_query {self.min_query}, query {self.query}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "val_support", tuple(int(k) for k in self.val_support))

    @property
    def newton_steps(self) -> bool:
        """Whether the inner loop takes Gauss-Newton steps (see ``inner_solver``)."""
        return (
            self.inner_solver == "newton"
            and self.inner_objective == "posterior"
            and self.adapt == "user"
        )

    @property
    def query_floor(self) -> int:
        """The fewest query ratings of a training episode."""
        return self.query if self.min_query is None else self.min_query

    @property
    def phases(self) -> tuple[str, ...]:
        """The phases `MetaLearner.fit` runs, in order: warm_start, pretrain (if any), meta."""
        from metarec_core.methods.meta.algorithms import learner_class  # it imports this

        out = ("warm_start",) if self.warm_start else ()
        if self.pretrain and learner_class(self).pretrainer is not None:
            out += ("pretrain",)
        return (*out, "meta")

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values only (safe for `torch.load(weights_only=True)` and JSON)."""
        return dataclasses.asdict(self)


def preset(name: str) -> LearnerConfig:
    """The configuration of the meta-learner registered as `name` (its class's `preset()`)."""
    known = registry.available_methods(registry.META_LEARNER)
    if name not in known:
        raise ValueError(f"unknown learner {name!r}; expected one of {', '.join(known)}")
    return registry.method_class(name).preset()  # type: ignore[attr-defined]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA, else Apple MPS, else CPU. An explicit device must be available."""
    name = str(device).lower()
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_ok else torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; expected auto, cpu, cuda or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available here")
    if dev.type == "mps" and not mps_ok:
        raise ValueError(f"device {name!r} was asked for but Apple MPS is not available here")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {name!r}; expected auto, cpu, cuda or mps")
    return dev
