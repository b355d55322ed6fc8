"""The one list of methods: every name the CLI, the app's pickers, evaluate and checkpoints accept.

Each entry (`MethodSpec`) says what a method is called (its registry name, the technical term
used in flags and reports; a plain display name; one line on what it does), what kind it is,
whether it is in the default evaluation set, and where its code is. Its abilities are declared
on its class (`Recommender.capabilities`), never here. A new method is its class plus one
`register(MethodSpec(...))`; it then shows in `evaluate --methods`, the Train and Evaluate
pages, the what-if page and the Glossary with no other edit.

The meta-learners' training settings (labels and help of a `LearnerConfig`'s fields) and the
device choices are here too, for the CLI and the Train page alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from metarec_core import glossary
from metarec_core.methods.base import Recommender

if TYPE_CHECKING:
    from metarec_core.methods.base import Capabilities

BASELINE = "baseline"
META_LEARNER = "meta-learner"
KINDS = (BASELINE, META_LEARNER)

# Where fit and adapt may run; "auto": CUDA, else Apple MPS, else CPU.
DEVICES = ("auto", "cpu", "cuda", "mps")
DEVICE_HELP = "auto: CUDA, else Apple MPS, else CPU."


@dataclass(frozen=True)
class MethodSpec:
    """One registered method.

    `load` returns its class (imported on first use: the meta-learners import torch);
    `factory(seed=..., device=...)` builds a fresh, unfitted one (default: the class itself;
    `device` is passed only to classes that declare ``capabilities.device``).
    """

    name: str
    display: str
    description: str
    kind: str
    load: Callable[[], type[Recommender]]
    factory: Callable[..., Recommender] | None = None
    default: bool = False  # in the default evaluation set (CLI, evaluate, Evaluate page)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"method {self.name!r}: kind {self.kind!r}, expected one of {KINDS}")

    @property
    def capabilities(self) -> Capabilities:
        return self.load().capabilities


def _baseline(attr: str) -> Callable[[], type[Recommender]]:
    def load() -> type[Recommender]:
        from metarec_core.methods import baselines

        return getattr(baselines, attr)

    return load


def _meta_class(attr: str) -> Callable[[], type[Recommender]]:
    def load() -> type[Recommender]:
        from metarec_core.methods.meta import algorithms

        return getattr(algorithms, attr)

    return load


def _make_learner(name: str, **kw: Any) -> Recommender:
    from metarec_core.methods.meta import make_learner

    return make_learner(name, **kw)


def _meta(name: str, attr: str, display: str, description: str) -> MethodSpec:
    """A meta-learner entry: its algorithm's class (methods/meta/algorithms.py), built from the
    preset of the same name by `make_learner`."""
    return MethodSpec(
        name, display, description, META_LEARNER, _meta_class(attr), partial(_make_learner, name)
    )


def _base(name: str, attr: str, display: str, description: str, default: bool) -> MethodSpec:
    return MethodSpec(name, display, description, BASELINE, _baseline(attr), default=default)


# Plain names first (what the pages show), then a one-line plain description; the registry
# name stays the technical term (CLI flags, reports, tooltips). Order: as the pickers list them.
_BUILTIN = (
    _base(
        "global_mean",
        "GlobalMean",
        "Overall average",
        "Predicts the average of all training ratings for every item: the floor to beat.",
        True,
    ),
    _base(
        "item_mean",
        "ItemMean",
        "Item average",
        "Predicts each item's (damped) average rating; ignores who is asking.",
        True,
    ),
    _base(
        "user_bias",
        "UserBias",
        "Item average + user offset",
        "The item average shifted by how generously this user rates, learned from their ratings.",
        True,
    ),
    _base(
        "mf_foldin",
        "MFFoldIn",
        "MF fold-in",
        "Matrix factorisation of the training users; a new user's taste vector is fitted to "
        "their ratings in one closed-form step (fold-in).",
        True,
    ),
    _base(
        "user_bias_levels",
        "UserBiasLevels",
        "Item average + user offset, rounded to stars",
        "Item average + user offset, with each prediction rounded to a star level (tuned to "
        "lower the average error).",
        False,
    ),
    _base(
        "mf_foldin_levels",
        "MFFoldInLevels",
        "MF fold-in, rounded to stars",
        "MF fold-in with each prediction rounded to a star level (tuned to lower the average "
        "error).",
        False,
    ),
    _base(
        "popularity",
        "Popularity",
        "Most popular",
        "Recommends the items most rated by training users; ranks only, predicts no rating.",
        True,
    ),
    _meta(
        "maml",
        "MAML",
        "MAML",
        "Meta-learns a starting point from which a few gradient steps on a new user's ratings "
        "fit them (second-order MAML).",
    ),
    _meta(
        "fomaml",
        "FOMAML",
        "First-order MAML",
        "MAML without the second-order terms: faster to train, usually about as good.",
    ),
    _meta(
        "reptile",
        "Reptile",
        "Reptile",
        "Meta-learns a starting point by moving it towards each training user's adapted model.",
    ),
    _meta(
        "metasgd",
        "MetaSGD",
        "Meta-SGD",
        "MAML that also learns how big a step to take for each parameter.",
    ),
    _meta(
        "melu",
        "MeLU",
        "MeLU",
        "MeLU's set-up (Lee et al., 2019): only the decision layers adapt, with tiny steps.",
    ),
    _meta(
        "finetune",
        "Finetune",
        "Fine-tuned network (no meta-learning)",
        "The same network trained by plain regression, then adapted to a new user: shows what "
        "meta-learning adds.",
    ),
)

_METHODS: dict[str, MethodSpec] = {s.name: s for s in _BUILTIN}

# The built-in names by kind (tests and benchmarks pin these; code that should also see
# registered methods calls `available_methods(kind)`).
BASELINES = tuple(s.name for s in _BUILTIN if s.kind == BASELINE)
META_LEARNERS = tuple(s.name for s in _BUILTIN if s.kind == META_LEARNER)


def register(spec: MethodSpec) -> None:
    """Add a method to the registry (its name must be new)."""
    if spec.name in _METHODS:
        raise ValueError(f"method {spec.name!r} is registered already")
    _METHODS[spec.name] = spec


def unregister(name: str) -> None:
    """Remove a method added by `register` (a built-in one cannot be removed)."""
    if any(s.name == name for s in _BUILTIN):
        raise ValueError(f"method {name!r} is built in")
    _METHODS.pop(name, None)


def spec(name: str) -> MethodSpec:
    """The entry of `name`; ValueError naming the known methods for any other name."""
    try:
        return _METHODS[name]
    except KeyError:
        raise ValueError(
            f"unknown method {name!r}; expected one of {', '.join(available_methods())}"
        ) from None


def available_methods(kind: str | None = None) -> list[str]:
    """Registered method names (of one kind, if given), baselines first."""
    return [
        s.name
        for k in KINDS
        for s in _METHODS.values()
        if s.kind == k and (kind is None or kind == k)
    ]


def default_methods() -> tuple[str, ...]:
    """The default evaluation set (CLI `evaluate`, `EvalConfig`, the Evaluate page)."""
    return tuple(n for n in available_methods() if _METHODS[n].default)


def method_class(name: str) -> type[Recommender]:
    """The class of a registered method (its declared capabilities, `from_state`)."""
    return spec(name).load()


def display_name(name: str) -> str:
    """The plain name of a registered method; any other name (a trained model's, a checkpoint
    file's) is returned unchanged."""
    return _METHODS[name].display if name in _METHODS else name


def describe(name: str) -> str:
    """One plain line on what a registered method does; "" for any other name."""
    return _METHODS[name].description if name in _METHODS else ""


def make_method(name: str, *, seed: int = 0, device: str = "auto") -> Recommender:
    """A fresh, unfitted method by name; `device` goes to methods that declare one."""
    entry = spec(name)
    cls = entry.load()
    build = entry.factory or cls
    if cls.capabilities.device:
        return build(seed=seed, device=device)
    return build(seed=seed)


# ------------------------------------------------------------------ meta-learner settings
def _tip(plain: str, term: str) -> str:
    """A help tooltip: what the control does in plain words, then the glossary's term."""
    return glossary.help_text(term, plain)


# A meta-learner's settings (`LearnerConfig` field -> label in plain words, help with the
# technical term): the Train page's form. Choosing a method (a preset) fills them in.
PRESET_HELP = "Choosing a method fills in the form with its settings. Technical term: algorithm "
SETTINGS: dict[str, tuple[str, str]] = {
    "factors": (
        "Taste vector size",
        "How many numbers describe a user's taste. Technical term: user state p_u (and item "
        "factors q_i), the factors of matrix factorisation.",
    ),
    "embedding_dim": (
        "Item vector size",
        "How many numbers describe an item and its genres for the hidden layers. Technical "
        "term: item and genre embedding size.",
    ),
    "hidden": (
        "Hidden layers",
        "Sizes of the network's hidden layers, comma-separated (e.g. 64,64); empty = plain "
        "biased matrix factorisation. Technical term: decision layers.",
    ),
    "dropout": (
        "Dropout",
        "Share of the hidden layers' units switched off at random while training (outer loop "
        "only), against over-fitting.",
    ),
    "adapt": (
        "What adapts to a new user",
        "Which weights the adaptation steps change for each user: the taste vector, the hidden "
        "layers, or all. Technical term: adapted parameters.",
    ),
    "inner_steps": (
        "Adaptation steps",
        _tip("How many steps fit the model to a new user's ratings.", "inner step"),
    ),
    "inner_lr": (
        "Adaptation step size",
        _tip("How far each adaptation step moves (Meta-SGD learns it).", "inner learning rate"),
    ),
    "outer_lr": (
        "Training step size",
        _tip("Adam's learning rate for the shared starting point.", "outer learning rate"),
    ),
    "meta_batch": (
        "Users per training step",
        _tip("Training users each step learns from.", "meta-batch"),
    ),
    "steps": (
        "Training steps (max)",
        _tip(
            "Stopping early, when the check users' error stops improving, usually ends sooner.",
            "meta-step",
        ),
    ),
    "eval_every": (
        "Check every (steps)",
        _tip("Training steps between two measurements on the check users.", "validation users"),
    ),
    "patience": (
        "Patience (checks)",
        _tip("Checks without improvement before training stops.", "early stopping"),
    ),
    "seed": (
        "Seed",
        "Seeds the model, the episodes and the train/validation user split.",
    ),
    "pretrain": (
        "Warm start: plain training first",
        "Fit the same network by plain regression first (stopped early on the check users), "
        "then meta-train from there. On for the MAML family, off for MeLU (which trains from "
        "scratch); ignored by the fine-tuned network. Technical term: start from the finetune "
        "solution.",
    ),
}


def preset_help() -> str:
    """The help of the Train page's method picker (it lists the meta-learners' presets)."""
    return PRESET_HELP + "preset (" + ", ".join(available_methods(META_LEARNER)) + ")."
