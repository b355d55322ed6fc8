"""How a meta-learner's fit reports and stops: `TrainProgress`, the phases' labels and weights,
and the `should_stop()` poll every phase makes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["PHASE_LABELS", "PHASE_WEIGHTS", "TrainProgress"]

# The phases of `MetaLearner.fit`, in order (see `LearnerConfig.phases`), for people.
PHASE_LABELS = {
    "warm_start": "Warm start (matrix factorisation)",
    "pretrain": "Pre-training",
    "meta": "Meta-training",
    "check": "Comparing with the plain baselines",  # after fit: `compare_with_baselines`
}
# Rough shares of a fit's time per phase (measured on MovieLens 100K and 1M with the presets;
# only used to pace a progress bar over the whole fit, never for results).
PHASE_WEIGHTS = {"warm_start": 0.2, "pretrain": 0.15, "meta": 0.65}


class _Stopped(Exception):
    """`should_stop()` said so between two units of work of a fit."""


def _check_stop(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise _Stopped


@dataclass(frozen=True)
class TrainProgress:
    """One unit of a fit, as reported to `fit(callback=...)`; meta-steps are kept in `history_`.

    ``phase``: "meta" (a meta-step), "pretrain" (a step of the finetune phase, pretrain=True)
    or "warm_start" (the ALS warm start, step/total = percent done; no losses).
    """

    step: int  # 1-based meta-step just done
    total: int  # maximum number of steps
    train_loss: float | None  # meta-batch query loss (the outer objective) of this step
    val_mae: float | None  # validation MAE when validation ran at this step
    best_val_mae: float | None  # validation MAE of the best (kept) weights so far
    seconds: float  # since fit() started
    phase: str = "meta"


class _FitReporter:
    """Passes each `TrainProgress` of a fit on to its callback, and the fraction of the whole
    fit (phases weighted by `PHASE_WEIGHTS`) with a message to its progress hook."""

    def __init__(
        self,
        phases: Sequence[str],
        callback: Callable[[TrainProgress], None] | None,
        progress: Callable[[float, str], None] | None,
    ) -> None:
        self.callback, self.progress = callback, progress
        total = sum(PHASE_WEIGHTS[p] for p in phases)
        self.span: dict[str, tuple[float, float]] = {}
        start = 0.0
        for p in phases:
            self.span[p] = (start / total, PHASE_WEIGHTS[p] / total)
            start += PHASE_WEIGHTS[p]

    def __call__(self, p: TrainProgress) -> None:
        if self.callback is not None:
            self.callback(p)
        if self.progress is not None:
            start, width = self.span.get(p.phase, (0.0, 1.0))
            done = p.step / p.total if p.total > 0 else 1.0
            label = PHASE_LABELS.get(p.phase, p.phase).lower()
            what = f"{p.step}%" if p.phase == "warm_start" else f"step {p.step}/{p.total}"
            self.progress(min(1.0, start + width * done), f"{label}: {what}")
