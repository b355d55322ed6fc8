"""The one list of methods: every name the CLI, the app's pickers, evaluate and checkpoints accept.

Each entry (`MethodSpec`) says what a method is called (its registry name, the technical term
used in flags and reports; a plain display name; one line on what it does), what kind it is,
whether it is in the default evaluation set, and where its class is (module and qualified
name, so that a job's worker process imports it too). Its abilities are declared on its class
(`Recommender.capabilities`), never here. A new method is its class plus one registration::

    registry.register(registry.MethodSpec.of(MyMethod, "Plain name", "What it does."))

It then shows in the CLI (`evaluate --methods`, and `train --algo` for a meta-learner),
the Train, Evaluate and What-if pages and the Glossary, and it is saved and loaded by
checkpoints, with no other edit. A meta-learner (``capabilities.meta_learned``) subclasses one
of `methods.meta.algorithms`' classes and declares its preset on its class (its name and the
`LearnerConfig` fields in ``defaults``).

Where the registration goes: a method of the project is an entry of `_BUILTIN` below (its
class in `methods/baselines/` or `methods/meta/algorithms.py`). A method in a module of one's
own registers itself at the module's import; name that module in ``METAREC_METHODS`` (e.g.
``METAREC_METHODS=my_methods python -m metarec_core train --algo ...``, or before
``streamlit run app.py``) and put its folder on PYTHONPATH: every process imports it on the
registry's first use. Its class must be defined at the top level of that module (not a page
script or ``__main__``): a job's worker process is sent the registered entries and imports
their classes by module and qualified name.

The meta-learners' training settings (labels and help of a `LearnerConfig`'s fields) and the
device choices are here too, for the CLI and the Train page alike.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from metarec_core import glossary
from metarec_core.methods.base import ItemRecommender, Recommender

if TYPE_CHECKING:
    from metarec_core.methods.base import Capabilities

BASELINE = "baseline"
META_LEARNER = "meta-learner"
KINDS = (BASELINE, META_LEARNER)
# Item cold-start methods (`ItemRecommender`, ``capabilities.cold == "items"``) have names of
# their own (``evaluate --cold items --methods ...``): `global_mean` for items is another entry
# than `global_mean` for users. Every lookup takes ``cold`` ("users" by default).
ITEM_BASELINE = "item-baseline"
ITEM_META_LEARNER = "item-meta-learner"
ITEM_KINDS = (ITEM_BASELINE, ITEM_META_LEARNER)
COLDS = ("users", "items")

# Where fit and adapt may run; "auto": CUDA, else Apple MPS, else CPU.
DEVICES = ("auto", "cpu", "cuda", "mps")
DEVICE_HELP = "auto: CUDA, else Apple MPS, else CPU."


@dataclass(frozen=True)
class ClassRef:
    """Where a method's class is: imported on first use (the meta-learners import torch), and
    plain strings, so that an entry travels to a job's worker process."""

    module: str
    qualname: str

    @classmethod
    def of(cls, target: type) -> ClassRef:
        """The reference of `target`; ValueError for a class no other process can import."""
        if target.__module__ == "__main__" or "<locals>" in target.__qualname__:
            raise ValueError(
                f"method class {target.__qualname__} must be defined at the top level of an "
                "importable module (not __main__, a page script or a function): a job's worker "
                "process imports it by name"
            )
        return cls(target.__module__, target.__qualname__)

    def __call__(self) -> type[Recommender]:
        try:
            obj = importlib.import_module(self.module)
            for part in self.qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as e:
            raise ValueError(
                f"cannot import the method class {self.module}.{self.qualname} ({e}); its module "
                "must be importable here (installed, or its folder on PYTHONPATH)"
            ) from None
        return obj  # type: ignore[return-value]


@dataclass(frozen=True)
class MethodSpec:
    """One registered method.

    `load()` returns its class; `factory(seed=..., device=...)` builds a fresh, unfitted one
    (default: the class itself; a meta-learner: its preset, by `make_learner`; `device` is
    passed only to classes that declare ``capabilities.device``). A factory must be a
    module-level function (it travels to worker processes).
    """

    name: str
    display: str
    description: str
    kind: str
    ref: ClassRef
    factory: Callable[..., Recommender] | None = None
    default: bool = False  # in the default evaluation set (CLI, evaluate, Evaluate page)

    def __post_init__(self) -> None:
        if self.kind not in KINDS + ITEM_KINDS:
            raise ValueError(
                f"method {self.name!r}: kind {self.kind!r}, expected one of {KINDS + ITEM_KINDS}"
            )

    @property
    def cold(self) -> str:
        """What arrives new for this method: "users" or "items"."""
        return "items" if self.kind in ITEM_KINDS else "users"

    @classmethod
    def of(
        cls, target: type[Recommender], display: str, description: str, *, default: bool = False
    ) -> MethodSpec:
        """The entry of the class `target`: its ``name``, and its kind from its declared
        ``capabilities.meta_learned`` and ``capabilities.cold``."""
        caps = target.capabilities
        if caps.cold == "items":
            kind = ITEM_META_LEARNER if caps.meta_learned else ITEM_BASELINE
        else:
            kind = META_LEARNER if caps.meta_learned else BASELINE
        return cls(target.name, display, description, kind, ClassRef.of(target), default=default)

    def load(self) -> type[Recommender] | type[ItemRecommender]:
        return self.ref()

    @property
    def capabilities(self) -> Capabilities:
        return self.load().capabilities


def _meta(name: str, attr: str, display: str, description: str) -> MethodSpec:
    """A meta-learner entry: its algorithm's class (methods/meta/algorithms.py)."""
    ref = ClassRef("metarec_core.methods.meta.algorithms", attr)
    return MethodSpec(name, display, description, META_LEARNER, ref)


_BASELINE_MODULES = {
    BASELINE: "metarec_core.methods.baselines",
    ITEM_BASELINE: "metarec_core.methods.baselines.items",
}


def _base(
    name: str, attr: str, display: str, description: str, default: bool, kind: str = BASELINE
) -> MethodSpec:
    """A baseline entry: its class `attr` in the module of its `kind` (users' or items')."""
    ref = ClassRef(_BASELINE_MODULES[kind], attr)
    return MethodSpec(name, display, description, kind, ref, default=default)


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


_item_base = functools.partial(_base, kind=ITEM_BASELINE)

# The item cold-start methods (`evaluate --cold items`), a namespace of their own.
_BUILTIN_ITEMS = (
    _item_base(
        "global_mean",
        "ItemGlobalMean",
        "Overall average",
        "Predicts the average of all training ratings for a new item: the floor to beat.",
        True,
    ),
    _item_base(
        "content",
        "ItemContent",
        "From the item's description",
        "Predicts a new item's ratings from its genres, title words and year (ridge "
        "regression) plus each user's rating habit; needs no rating of the item.",
        True,
    ),
    _item_base(
        "item_bias",
        "ItemBias",
        "Item average from its first ratings",
        "The new item's first ratings, corrected for how generously each rater rates, "
        "averaged and pulled towards the description's prediction.",
        True,
    ),
    _item_base(
        "mf_foldin",
        "ItemMFFoldIn",
        "MF fold-in for items",
        "Matrix factorisation of the training items; a new item's vector is fitted to its "
        "raters' taste vectors in one closed-form step, starting from its description.",
        True,
    ),
    _item_base(
        "item_bias_levels",
        "ItemBiasLevels",
        "Item average from its first ratings, rounded to stars",
        "item_bias with each prediction rounded to a star level (tuned to lower the average "
        "error).",
        False,
    ),
    _item_base(
        "mf_foldin_levels",
        "ItemMFFoldInLevels",
        "MF fold-in for items, rounded to stars",
        "MF fold-in for items with each prediction rounded to a star level (tuned to lower the "
        "average error).",
        False,
    ),
)


def _item_meta(name: str, attr: str, display: str, description: str) -> MethodSpec:
    """An item meta-learner entry: its class in methods/items_meta.py."""
    ref = ClassRef("metarec_core.methods.items_meta", attr)
    return MethodSpec(name, display, description, ITEM_META_LEARNER, ref)


_BUILTIN_ITEMS += (
    _item_meta(
        "item_metasgd",
        "ItemMetaSGD",
        "Meta-SGD for new items",
        "Meta-learns how a new item's vector moves from a start guessed from its description "
        "with each of its first ratings (Meta-SGD with the item as the task).",
    ),
    _item_meta(
        "item_finetune",
        "ItemFinetune",
        "Fine-tuned network for new items (no meta-learning)",
        "The same network for new items trained by plain regression, then adapted to a new "
        "item's first ratings: shows what meta-learning adds.",
    ),
)

_METHODS: dict[str, MethodSpec] = {s.name: s for s in _BUILTIN}
# A learner tuned for the data (methods/tuning.py: a short search of its settings on the
# validation users before its training). Built in, but not one of the algorithms' presets
# (`META_LEARNERS`, `algorithms.ALGORITHM_CLASSES`), which tuning.py imports.
_TUNED = MethodSpec(
    "metasgd_tuned",
    "Meta-SGD tuned for the data",
    "Meta-SGD after a few short trial trainings that choose its factors, regularisation and "
    "learning rate on the validation users.",
    META_LEARNER,
    ClassRef("metarec_core.methods.tuning", "TunedMetaSGD"),
)
_METHODS[_TUNED.name] = _TUNED
_BUILTIN_NAMES = frozenset(_METHODS)
_ITEM_METHODS: dict[str, MethodSpec] = {s.name: s for s in _BUILTIN_ITEMS}
_BUILTIN_ITEM_NAMES = frozenset(_ITEM_METHODS)


def _check_cold(cold: str) -> None:
    if cold not in COLDS:
        raise ValueError(f"unknown cold-start subject {cold!r}; expected one of {COLDS}")


# Modules of one's own that register methods (comma-separated import names, e.g.
# ``METAREC_METHODS=my_methods``): imported on the registry's first use in each process (the
# CLI, the app's server, a job's worker), so that their `register` calls run there too.
METHODS_ENV = "METAREC_METHODS"
_imported_env = False


def _methods() -> dict[str, MethodSpec]:
    """The entries, once the modules named in ``METAREC_METHODS`` are imported."""
    global _imported_env
    if not _imported_env:
        _imported_env = True
        for module in filter(None, (m.strip() for m in os.environ.get(METHODS_ENV, "").split(","))):
            try:
                importlib.import_module(module)
            except ImportError as e:
                raise ValueError(
                    f"{METHODS_ENV} names the module {module!r}, which cannot be imported ({e}); "
                    "put its folder on PYTHONPATH"
                ) from None
    return _METHODS


# The built-in names by kind (tests and benchmarks pin these; code that should also see
# registered methods calls `available_methods(kind)`).
BASELINES = tuple(s.name for s in _BUILTIN if s.kind == BASELINE)
META_LEARNERS = tuple(s.name for s in _BUILTIN if s.kind == META_LEARNER)
ITEM_BASELINES = tuple(s.name for s in _BUILTIN_ITEMS if s.kind == ITEM_BASELINE)
ITEM_META_LEARNERS = tuple(s.name for s in _BUILTIN_ITEMS if s.kind == ITEM_META_LEARNER)


def builtin_classes(kind: str) -> dict[str, type[Recommender] | type[ItemRecommender]]:
    """The built-in methods of one kind by name (their packages' maps of classes)."""
    return {s.name: s.load() for s in _BUILTIN + _BUILTIN_ITEMS if s.kind == kind}


def _table(cold: str) -> dict[str, MethodSpec]:
    _check_cold(cold)
    _methods()
    return _ITEM_METHODS if cold == "items" else _METHODS


def register(spec: MethodSpec) -> None:
    """Add a method to the registry (its name must be new among the methods for the same
    cold-start subject, users or items)."""
    table = _table(spec.cold)
    if spec.name in table:
        raise ValueError(f"method {spec.name!r} is registered already")
    table[spec.name] = spec


def unregister(name: str, cold: str = "users") -> None:
    """Remove a method added by `register` (a built-in one cannot be removed)."""
    builtin = _BUILTIN_ITEM_NAMES if cold == "items" else _BUILTIN_NAMES
    if name in builtin:
        raise ValueError(f"method {name!r} is built in")
    _table(cold).pop(name, None)


def registered() -> list[MethodSpec]:
    """The entries added by `register` (what a job's worker process is sent, `adopt`)."""
    users = [s for s in _methods().values() if s.name not in _BUILTIN_NAMES]
    items = [s for s in _ITEM_METHODS.values() if s.name not in _BUILTIN_ITEM_NAMES]
    return users + items


def adopt(specs: Iterable[MethodSpec]) -> None:
    """Make `specs` the registered entries (a worker process: the server's, for each job)."""
    for s in registered():
        _table(s.cold).pop(s.name)
    for s in specs:
        register(s)


def spec(name: str, cold: str = "users") -> MethodSpec:
    """The entry of `name`; ValueError naming the known methods for any other name."""
    try:
        return _table(cold)[name]
    except KeyError:
        known = ", ".join(available_methods(cold=cold))
        what = "method" if cold == "users" else "new-item method"
        raise ValueError(f"unknown {what} {name!r}; expected one of {known}") from None


def available_methods(kind: str | None = None, cold: str = "users") -> list[str]:
    """Registered method names (of one kind, if given), baselines first; ``cold="items"``:
    the item cold-start methods."""
    table = _table(cold)
    kinds = ITEM_KINDS if cold == "items" else KINDS
    return [
        s.name for k in kinds for s in table.values() if s.kind == k and (kind is None or kind == k)
    ]


def default_methods(cold: str = "users") -> tuple[str, ...]:
    """The default evaluation set (CLI `evaluate`, `EvalConfig`, the Evaluate page)."""
    table = _table(cold)
    return tuple(n for n in available_methods(cold=cold) if table[n].default)


def method_class(name: str, cold: str = "users") -> type[Recommender] | type[ItemRecommender]:
    """The class of a registered method (its declared capabilities, `from_state`)."""
    return spec(name, cold).load()


def display_name(name: str) -> str:
    """The plain name of a registered method; any other name (a trained model's, a checkpoint
    file's) is returned unchanged."""
    return _methods()[name].display if name in _methods() else name


def describe(name: str) -> str:
    """One plain line on what a registered method does; "" for any other name."""
    return _methods()[name].description if name in _methods() else ""


def make_method(
    name: str, *, seed: int = 0, device: str = "auto", cold: str = "users"
) -> Recommender | ItemRecommender:
    """A fresh, unfitted method by name (a meta-learner: its preset); `device` goes to methods
    that declare one; ``cold="items"``: an item cold-start method."""
    entry = spec(name, cold)
    cls = entry.load()
    if entry.factory is None and cls.capabilities.meta_learned and cold == "users":
        from metarec_core.methods.meta import make_learner

        return make_learner(name, seed=seed, device=device)
    build = entry.factory or cls
    if cls.capabilities.device:
        return build(seed=seed, device=device)
    return build(seed=seed)


@dataclass(frozen=True)
class FitConfig:
    """What fits a method without meta-learning settings in a `jobs.TrainingJob` (the Train
    page's form for it): its registry name, seed and device (used if it declares one)."""

    name: str
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if not method_class(self.name).capabilities.device:  # unknown name: a clear error
            object.__setattr__(self, "device", "cpu")  # it runs where numpy does

    def build(self) -> Recommender:
        """The fresh, unfitted method."""
        return make_method(self.name, seed=self.seed, device=self.device)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "seed": self.seed, "device": self.device}


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
    """The help of the Train page's method picker (the meta-learners' presets, then the
    methods without meta-learning settings)."""
    return (
        PRESET_HELP
        + "preset ("
        + ", ".join(available_methods(META_LEARNER))
        + "). The other methods have no training settings but their seed."
    )
