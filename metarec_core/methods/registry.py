"""Method registry: every name accepted by `evaluate --methods` and the app's pickers."""

from __future__ import annotations

from collections.abc import Callable

from metarec_core.methods.base import Recommender

BASELINES = (
    "global_mean",
    "item_mean",
    "user_bias",
    "mf_foldin",
    "user_bias_levels",
    "mf_foldin_levels",
    "popularity",
)
META_LEARNERS = ("maml", "fomaml", "reptile", "metasgd", "melu", "finetune")

# Plain names first (what the pages show), then a one-line plain description; the registry
# name stays the technical term (CLI flags, reports, tooltips).
_NAMES: dict[str, tuple[str, str]] = {
    "global_mean": (
        "Overall average",
        "Predicts the average of all training ratings for every item: the floor to beat.",
    ),
    "item_mean": (
        "Item average",
        "Predicts each item's (damped) average rating; ignores who is asking.",
    ),
    "user_bias": (
        "Item average + user offset",
        "The item average shifted by how generously this user rates, learned from their ratings.",
    ),
    "mf_foldin": (
        "MF fold-in",
        "Matrix factorisation of the training users; a new user's taste vector is fitted to "
        "their ratings in one closed-form step (fold-in).",
    ),
    "user_bias_levels": (
        "Item average + user offset, rounded to stars",
        "Item average + user offset, with each prediction rounded to a star level (tuned to "
        "lower the average error).",
    ),
    "mf_foldin_levels": (
        "MF fold-in, rounded to stars",
        "MF fold-in with each prediction rounded to a star level (tuned to lower the average "
        "error).",
    ),
    "popularity": (
        "Most popular",
        "Recommends the items most rated by training users; ranks only, predicts no rating.",
    ),
    "maml": (
        "MAML",
        "Meta-learns a starting point from which a few gradient steps on a new user's ratings "
        "fit them (second-order MAML).",
    ),
    "fomaml": (
        "First-order MAML",
        "MAML without the second-order terms: faster to train, usually about as good.",
    ),
    "reptile": (
        "Reptile",
        "Meta-learns a starting point by moving it towards each training user's adapted model.",
    ),
    "metasgd": (
        "Meta-SGD",
        "MAML that also learns how big a step to take for each parameter.",
    ),
    "melu": (
        "MeLU",
        "MeLU's set-up (Lee et al., 2019): only the decision layers adapt, with tiny steps.",
    ),
    "finetune": (
        "Fine-tuned network (no meta-learning)",
        "The same network trained by plain regression, then adapted to a new user: shows what "
        "meta-learning adds.",
    ),
}


def _factory(name: str) -> Callable[..., Recommender]:
    if name in BASELINES:
        from metarec_core.methods import baselines

        return baselines.BASELINE_CLASSES[name]
    if name in META_LEARNERS:
        from metarec_core.methods.meta import learners

        return lambda **kw: learners.make_learner(name, **kw)
    raise ValueError(f"unknown method {name!r}; expected one of {', '.join(available_methods())}")


def available_methods() -> list[str]:
    return [*BASELINES, *META_LEARNERS]


def display_name(name: str) -> str:
    """The plain name of a registered method; any other name (a trained model's, a checkpoint
    file's) is returned unchanged."""
    return _NAMES[name][0] if name in _NAMES else name


def describe(name: str) -> str:
    """One plain line on what a registered method does; "" for any other name."""
    return _NAMES[name][1] if name in _NAMES else ""


def make_method(name: str, *, seed: int = 0, device: str = "auto") -> Recommender:
    """A fresh, unfitted method by name. Baselines ignore `device`."""
    factory = _factory(name)
    if name in BASELINES:
        return factory(seed=seed)
    return factory(seed=seed, device=device)
