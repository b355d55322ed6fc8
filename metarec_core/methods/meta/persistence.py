"""Saving and loading a meta-learner: `to_state` (tensors and plain values, loadable with
``torch.load(weights_only=True)``) and `from_state`."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import torch

from metarec_core.data.dataset import RatingScale
from metarec_core.methods.meta.config import LearnerConfig, resolve_device
from metarec_core.methods.meta.progress import TrainProgress

if TYPE_CHECKING:
    from metarec_core.methods.meta.trainer import MetaLearner

# `to_state()`'s format; version 1 is also what learners.MetaLearner.export_state wrote
STATE_FORMAT = "metarec-learner"
STATE_VERSION = 1


class PersistenceMixin:
    """`MetaLearner`'s `to_state` / `from_state`."""

    def to_state(self) -> dict[str, Any]:
        """Weights, config and history as tensors and plain values (`weights_only` loadable)."""
        self._check_fitted()
        genres = getattr(self.model_.item_enc, "genre_weights", None)
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "n_items": self.n_items_,
            "scale": [self.scale_.low, self.scale_.high, self.scale_.step],
            "genres": None if genres is None else (genres > 0).cpu(),
            "model": {k: v.detach().cpu() for k, v in self.model_.state_dict().items()},
            "inner": {k: v.detach().cpu() for k, v in self.inner_.state_dict().items()},
            "history": [dataclasses.asdict(p) for p in getattr(self, "history_", [])],
            "best_step": int(getattr(self, "best_step_", 0)),
            "best_val_mae": getattr(self, "best_val_mae_", None),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str = "cpu") -> MetaLearner:
        """Rebuild a fitted learner from `to_state()` (on `device`, CPU by default), as the
        class of its configuration's algorithm (`learner_class`), which must be `cls` or one
        of its subclasses. Reads the states of every version so far (version 1)."""
        from metarec_core.methods.meta.algorithms import learner_class  # it imports this

        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError("not a MetaLearner state (missing or wrong 'format')")
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"unsupported MetaLearner state version {state.get('version')!r} "
                f"(this code reads version {STATE_VERSION})"
            )
        cfg_dict = dict(state["config"])
        known = {f.name for f in dataclasses.fields(LearnerConfig)}
        unknown = set(cfg_dict) - known
        if unknown:
            raise ValueError(f"unknown config fields in state: {sorted(unknown)}")
        cfg_dict["device"] = str(device)
        # states from before the Newton inner solver were trained with, and adapt by, the
        # diagonal step
        cfg_dict.setdefault("inner_solver", "diagonal")
        cfg = LearnerConfig(**cfg_dict)
        target = learner_class(cfg)
        if not issubclass(target, cls):
            raise ValueError(f"the state is a {target.__name__}, not a {cls.__name__}")
        learner = target(cfg)
        low, high, step = state["scale"]
        genres = state.get("genres")
        learner._build(
            int(state["n_items"]),
            None if genres is None else torch.as_tensor(genres).float(),
            RatingScale(float(low), float(high), float(step)),
            resolve_device(device),
        )
        learner.model_.load_state_dict(state["model"])
        learner.inner_.load_state_dict(state["inner"])
        learner.history_ = [TrainProgress(**h) for h in state.get("history", [])]
        learner.best_step_ = int(state.get("best_step", 0))
        learner.best_val_mae_ = state.get("best_val_mae")
        learner.fitted_ = True
        return learner
