"""Method registry: every name accepted by `evaluate --methods` and the app's pickers."""

from __future__ import annotations

from collections.abc import Callable

from metarec_core.base import Recommender

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


def _factory(name: str) -> Callable[..., Recommender]:
    if name in BASELINES:
        from metarec_core import baselines

        return baselines.BASELINE_CLASSES[name]
    if name in META_LEARNERS:
        from metarec_core import learners

        return lambda **kw: learners.make_learner(name, **kw)
    raise ValueError(f"unknown method {name!r}; expected one of {', '.join(available_methods())}")


def available_methods() -> list[str]:
    return [*BASELINES, *META_LEARNERS]


def make_method(name: str, *, seed: int = 0, device: str = "auto") -> Recommender:
    """A fresh, unfitted method by name. Baselines ignore `device`."""
    factory = _factory(name)
    if name in BASELINES:
        return factory(seed=seed)
    return factory(seed=seed, device=device)
