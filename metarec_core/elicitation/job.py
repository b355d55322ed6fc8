"""The onboarding evaluation as a background job (the Evaluate page's "Onboarding" mode)."""

from __future__ import annotations

from typing import Any

from metarec_core.data.dataset import RatingsDataset
from metarec_core.evaluation.elicitation import ElicitationReport, ElicitConfig
from metarec_core.jobs import BackgroundJob, JobCancelled, JobContext

__all__ = ["ElicitationJob"]


class ElicitationJob(BackgroundJob):
    """Run `evaluation.elicitation.run_elicitation` in the background; `result` is the
    `ElicitationReport`. It travels to a worker process like the evaluation job."""

    kind = "onboarding"

    def __init__(self, data: RatingsDataset, config: ElicitConfig) -> None:
        super().__init__()
        self.data = data
        self.config = config
        with self._lock:
            self._message = "waiting to start"

    def _portable(self) -> dict[str, Any] | None:
        return {"data": self.data, "config": self.config}

    def _work(self, ctx: JobContext) -> ElicitationReport:
        from metarec_core.evaluation.elicitation import run_elicitation
        from metarec_core.evaluation.runner import EvaluationCancelled

        def on_progress(fraction: float, message: str) -> None:
            ctx.progress(fraction=fraction, message=message)
            ctx.check_cancelled()

        try:
            return run_elicitation(
                self.data, self.config, progress=on_progress, should_stop=ctx.should_stop
            )
        except EvaluationCancelled:
            raise JobCancelled from None
