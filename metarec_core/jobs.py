"""Background jobs: meta-training and evaluation, polled by the UI or the CLI.

A job owns one thread, one lock and one cancel event; nothing is shared between jobs. The
worker reports progress through a `JobContext`; readers call `snapshot()`, which copies the
state under the lock into a frozen `JobSnapshot`. No streamlit here: pages poll `snapshot()`
from a fragment, the CLI polls it for its progress bar.

`start()` hands the job to a `JobPool`, by default the process-wide one (`default_pool()`): at
most `max_running` jobs run at once (``METAREC_MAX_JOBS``, default half the usable cores, at
least 1), the others wait in first-in-first-out order and their snapshots say their place in
line. Each job still gets its own (daemon) thread, started when the pool admits it. Where the
work runs is the pool's `workers` mode (``METAREC_JOB_WORKERS``, `runtime.job_workers`):
``"process"`` (the default; the app's server) runs it in a long-lived worker process
(`metarec_core.job_worker`) and the job's thread relays its progress, cancel and result, so that
the server's page scripts never share an interpreter lock with a training; ``"thread"`` (the
test suite) runs it in the job's thread. Either way the thread or worker runs with one torch
thread and ``METAREC_JOB_NICE`` (`runtime.prepare_job_thread`), and the snapshots are the same.

Life cycle: ``queued`` (created, or started and waiting for a free place in the pool) ->
``running`` -> one of ``done``, ``cancelled``, ``failed``. An exception in the worker (a NaN loss included) ends the
job as ``failed`` with a one-line message for people and the traceback in ``details``; it never
propagates out of the thread.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from metarec_core.data.dataset import RatingsDataset
from metarec_core.methods.tuning import Tuned
from metarec_core.protocol.splits import split_users
from metarec_core.runtime import PROCESS, job_workers, prepare_job_thread

if TYPE_CHECKING:
    from metarec_core.evaluation.check import ModelCheck
    from metarec_core.evaluation.runner import EvalConfig
    from metarec_core.job_worker import WorkerProcess
    from metarec_core.methods.base import Recommender
    from metarec_core.methods.meta import LearnerConfig, TrainProgress
    from metarec_core.methods.registry import FitConfig

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, CANCELLED, FAILED = "queued", "running", "done", "cancelled", "failed"
FINAL_STATUSES = frozenset({DONE, CANCELLED, FAILED})


class JobCancelled(Exception):
    """Raised inside a worker to stop at once because `cancel()` was called."""


class WorkerError(RuntimeError):
    """A job's worker process stopped before the job ended (killed, out of memory, crashed)."""


class RemoteFailure(Exception):
    """A job failed in its worker process: its one-line `error`, `details` (the traceback
    there) and `exception` (the worker's exception object, or a WorkerError with its text)."""

    def __init__(self, error: str, details: str | None, exception: BaseException) -> None:
        super().__init__(error)
        self.error, self.details, self.exception = error, details, exception


@dataclass(frozen=True)
class PhaseProgress:
    """Where a job with several phases is: phase `index` of `count`, `step` of `total` in it."""

    name: str  # e.g. "pretrain"
    label: str  # for people, e.g. "Pre-training"
    index: int  # 1-based
    count: int
    step: int
    total: int
    unit: str = "step"  # "step": step/total; "percent": step is a percentage

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total > 0 else 0.0

    def describe(self) -> str:
        """E.g. "Pre-training (phase 2 of 3): step 40/300"."""
        where = f" (phase {self.index} of {self.count})" if self.count > 1 else ""
        done = f"{self.step}%" if self.unit == "percent" else f"step {self.step}/{self.total}"
        return f"{self.label}{where}: {done}"


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent, immutable copy of a job's state at one moment.

    `eta` is None until at least one unit of progress has been timed. `train_loss` holds one
    value per reported training step, at the steps in `train_steps`; `val_mae` holds
    (step, MAE) pairs. `error` is one readable line (no traceback); `details` keeps the
    traceback for logs and an expander.

    `phase` is set by jobs with several phases (a training: warm start, pre-training,
    meta-training); then `fraction` and `eta` are those of the current phase. `cancelling`:
    `cancel()` was called and the worker has not stopped yet. `check`: what a finished
    training's model was checked against (`evaluation.check.ModelCheck`), or None.
    """

    job_id: str
    kind: str
    status: str
    step: int
    total: int
    fraction: float
    elapsed: float
    eta: float | None
    message: str
    device: str | None
    train_loss: tuple[float, ...]
    train_steps: tuple[int, ...]
    val_mae: tuple[tuple[int, float], ...]
    best_val_mae: float | None
    error: str | None
    details: str | None
    phase: PhaseProgress | None = None
    cancelling: bool = False
    check: Any = None
    # Place in the pool's waiting line (1 = next to run) while the job waits; None otherwise.
    queue_position: int | None = None
    # How many jobs the job's pool runs at once (0 before the job is started).
    pool_size: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def active(self) -> bool:
        return self.status in (QUEUED, RUNNING)

    @property
    def status_line(self) -> str:
        """One short line for people: the place in line while waiting ("waiting: 2nd in line,
        …"), else the status with the percentage done."""
        if self.status == QUEUED and self.queue_position is not None:
            n = self.pool_size
            return (
                f"waiting: {ordinal(self.queue_position)} in line "
                f"(this server runs {n} job{'s' if n != 1 else ''} at a time)"
            )
        if self.status == RUNNING:
            return f"running: {100 * self.fraction:.0f}%"
        return self.status


# How often a page polls a job. Each poll is a script run holding the interpreter lock that the
# job's thread needs between its torch ops, so with many sessions the polls themselves slow the
# running job (bench/load.py): a waiting job has nothing new to show but its place in line.
RUNNING_POLL_S = 1.0
WAITING_POLL_S = 3.0
SIDEBAR_POLL_S = 2.0


def poll_seconds(snap: JobSnapshot | None) -> float | None:
    """How often a page should refresh `snap`'s job: None once it ended (no polling)."""
    if snap is None or snap.finished:
        return None
    return WAITING_POLL_S if snap.status == QUEUED else RUNNING_POLL_S


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, …, 11th, 12th, 13th, …, 21st, 22nd."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def describe_error(exc: BaseException) -> str:
    """One readable line for a worker's exception (the type name only where it adds meaning)."""
    text = " ".join(str(exc).split()) or "no details"
    if isinstance(exc, FloatingPointError):
        return f"training diverged: {text}"
    if isinstance(exc, WorkerError):  # already a sentence for people
        return text
    if isinstance(exc, MemoryError):
        return "ran out of memory; try a smaller model, meta-batch or dataset"
    if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError, without importing torch
        return f"the device ran out of memory; try a smaller model or meta-batch ({text})"
    # ValueError and its subclasses (DataError, CheckpointError) already carry user-facing text.
    if isinstance(exc, ValueError):
        return text
    return f"{type(exc).__name__}: {text}"


class JobContext:
    """What a worker function sees: progress reporting and the stop flag."""

    def __init__(self, job: BackgroundJob) -> None:
        self._job = job

    def should_stop(self) -> bool:
        """True once `cancel()` was called (poll this between units of work)."""
        return self._job._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise `JobCancelled` if `cancel()` was called."""
        if self._job._cancel.is_set():
            raise JobCancelled

    def progress(
        self,
        *,
        step: int | None = None,
        total: int | None = None,
        fraction: float | None = None,
        message: str | None = None,
    ) -> None:
        """Report progress; `fraction` defaults to step/total when both are known."""
        self._job._update(step=step, total=total, fraction=fraction, message=message)

    def set_device(self, device: str) -> None:
        self._job._update(device=str(device))

    def log_train_loss(self, step: int, loss: float) -> None:
        self._job._update(train_point=(int(step), float(loss)))

    def log_val_mae(self, step: int, mae: float, best: float | None = None) -> None:
        self._job._update(val_point=(int(step), float(mae)), best=best)


class BackgroundJob:
    """A callable run once in a daemon thread, with progress, cancellation and failure capture.

    `work(ctx)` does the work, reporting through `ctx` and polling `ctx.should_stop()`; its
    return value becomes `result` when the job ends `done`. Subclasses override `_work`.
    """

    kind = "job"

    def __init__(self, work: Callable[[JobContext], Any] | None = None, *, kind: str | None = None):
        self.id = uuid.uuid4().hex
        if kind is not None:
            self.kind = kind
        self._fn = work
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._ctx = JobContext(self)
        # Everything below is guarded by _lock.
        self._pool: JobPool | None = None  # set by start()
        self._launched = False  # True once the pool has started the thread
        self._status = QUEUED
        self._step = 0
        self._total = 0
        self._fraction = 0.0
        self._message = ""
        self._device: str | None = None
        self._loss: list[float] = []
        self._loss_steps: list[int] = []
        self._val: list[tuple[int, float]] = []
        self._best: float | None = None
        self._error: str | None = None
        self._details: str | None = None
        self._t_start: float | None = None
        self._t_end: float | None = None
        # Time and fraction at the first progress report: the ETA rate is measured from there,
        # so set-up before the first step (building the model, moving it to a device) is excluded.
        self._t_first: float | None = None
        self._f_first = 0.0
        self._t_last: float | None = None
        self._result: Any = None
        self._exception: BaseException | None = None
        self._phase: PhaseProgress | None = None
        self._check: Any = None
        # In a worker process: where every `_update` is also sent, to the server's copy of the job.
        self._on_update: Callable[[dict[str, Any]], None] | None = None

    # ----------------------------------------------------------------- control (any thread)
    def start(self, pool: JobPool | None = None) -> BackgroundJob:
        """Hand the job (once) to `pool` (default: the process-wide `default_pool()`), which
        starts its worker thread now or, when all its places are taken, once it is the job's
        turn. A job cancelled before it started stays cancelled."""
        pool = default_pool() if pool is None else pool
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"{self.kind} job {self.id[:8]} was already started")
            self._thread = threading.Thread(
                target=self._main, name=f"metarec-{self.kind}-{self.id[:8]}", daemon=True
            )
            if self._status == CANCELLED:
                return self
            self._pool = pool
        pool.submit(self)
        return self

    def cancel(self) -> None:
        """Ask the worker to stop; it stops at its next check (within one meta-step). A job
        still waiting in its pool's line leaves the line and ends ``cancelled`` at once."""
        self._cancel.set()
        with self._lock:
            pool = self._pool
        if pool is not None:
            pool.discard(self)  # drops the pool's reference: its memory can be returned
        with self._lock:
            if not self._launched and self._status == QUEUED:
                self._status = CANCELLED
                self._message = "cancelled before it started"
                self._finished.set()

    @property
    def is_active(self) -> bool:
        """True from `start()` until the job reaches a final status."""
        with self._lock:
            return self._thread is not None and self._status not in FINAL_STATUSES

    @property
    def status(self) -> str:
        with self._lock:
            return self._status

    @property
    def result(self) -> Any:
        """The worker's return value once the job is ``done``; None otherwise."""
        with self._lock:
            return self._result if self._status == DONE else None

    @property
    def exception(self) -> BaseException | None:
        """The exception that made the job fail (None unless ``failed``)."""
        with self._lock:
            return self._exception

    def wait(self, timeout: float | None = None) -> JobSnapshot:
        """Block until the job ends (or `timeout` seconds pass); return a snapshot."""
        with self._lock:
            never_started = self._thread is None and self._status not in FINAL_STATUSES
        if never_started:
            raise RuntimeError(f"{self.kind} job {self.id[:8]} was never started")
        self._finished.wait(timeout)
        return self.snapshot()

    def snapshot(self) -> JobSnapshot:
        """A consistent copy of the state (safe to call from any thread at any time)."""
        with self._lock:
            pool = self._pool
        # Asked before taking the job's lock (the pool takes a job's lock under its own, never
        # the other way round); a job admitted in between is no longer QUEUED and gets None.
        position = None if pool is None else pool.position(self)
        now = time.monotonic()
        with self._lock:
            if self._t_start is None:
                elapsed = 0.0
            else:
                elapsed = (self._t_end if self._t_end is not None else now) - self._t_start
            return JobSnapshot(
                job_id=self.id,
                kind=self.kind,
                status=self._status,
                step=self._step,
                total=self._total,
                fraction=self._fraction,
                elapsed=elapsed,
                eta=self._eta(now),
                message=self._message,
                device=self._device,
                train_loss=tuple(self._loss),
                train_steps=tuple(self._loss_steps),
                val_mae=tuple(self._val),
                best_val_mae=self._best,
                error=self._error,
                details=self._details,
                phase=self._phase,
                cancelling=self._cancel.is_set() and self._status not in FINAL_STATUSES,
                check=self._check,
                queue_position=position if self._status == QUEUED else None,
                pool_size=0 if pool is None else pool.max_running,
            )

    # ------------------------------------------------------------------- worker side
    def _work(self, ctx: JobContext) -> Any:
        if self._fn is None:
            raise NotImplementedError("pass a work function or override _work")
        return self._fn(ctx)

    def _portable(self) -> dict[str, Any] | None:
        """Constructor arguments that rebuild this job in a worker process, or None: it runs
        in a thread whatever the pool's mode (a work function of its own need not pickle)."""
        return None

    def _pack_result(self, result: Any) -> Any:
        """`result` as sent back from a worker process (picklable); see `_unpack_result`."""
        return result

    def _unpack_result(self, packed: Any) -> Any:
        """The result in the server, from `_pack_result`'s output in the worker."""
        return packed

    def _run(self) -> Any:
        """Do the work: in a worker process when the pool runs jobs there and the job can
        travel, else here in the job's thread."""
        with self._lock:
            pool = self._pool
        spec = self._portable() if pool is not None and pool.workers == PROCESS else None
        if spec is None:
            prepare_job_thread()
            return self._work(self._ctx)
        return pool._run_remote(self, spec)

    def _launch(self) -> bool:
        """Start the worker thread (called by the pool, once); False if it was cancelled."""
        with self._lock:
            if self._launched or self._status != QUEUED or self._thread is None:
                return False
            self._launched = True
        try:
            self._thread.start()
        except RuntimeError as exc:  # "can't start new thread": the job fails, the pool goes on
            with self._lock:
                self._status, self._error = FAILED, describe_error(exc)
                self._message = f"failed: {self._error}"
            self._finished.set()
            return False
        return True

    def _main(self) -> None:
        with self._lock:
            self._status = RUNNING
            self._t_start = time.monotonic()
        outcome, result, error, details, exception = FAILED, None, None, None, None
        try:
            if self._cancel.is_set():
                raise JobCancelled
            result = self._run()
            outcome = CANCELLED if self._cancel.is_set() else DONE
        except JobCancelled:
            outcome = CANCELLED
        except RemoteFailure as failure:  # described and logged by the worker's own copy
            exception, error, details = failure.exception, failure.error, failure.details
            log.info("%s job %s failed in its worker process: %s", self.kind, self.id[:8], error)
        except BaseException as exc:  # a worker must never take the process down
            exception = exc
            error = describe_error(exc)
            details = traceback.format_exc()
            # Not warning/error: with no logging configured, Python would print the traceback
            # on stderr, and the CLI and UI show `error` instead (`details` keeps the traceback).
            log.info("%s job %s failed: %s", self.kind, self.id[:8], error)
            log.debug("%s", details)
        finally:
            with self._lock:
                self._t_end = time.monotonic()
                self._status = outcome
                self._error, self._details, self._exception = error, details, exception
                if outcome == DONE:
                    self._result = result
                    self._fraction = 1.0
                    self._message = self._message or "done"
                elif outcome == CANCELLED:
                    self._message = "cancelled"
                else:
                    self._message = f"failed: {error}"
                pool = self._pool
            # The place is freed (and the next job started) before waiters wake up.
            if pool is not None:
                pool.release(self)
            self._finished.set()

    def _update(
        self,
        *,
        step: int | None = None,
        total: int | None = None,
        fraction: float | None = None,
        message: str | None = None,
        device: str | None = None,
        train_point: tuple[int, float] | None = None,
        val_point: tuple[int, float] | None = None,
        best: float | None = None,
        phase: PhaseProgress | None = None,
    ) -> None:
        now = time.monotonic()
        with self._lock:
            if phase is not None:
                if self._phase is None or phase.index != self._phase.index:
                    self._t_first = None  # a new phase: its ETA from its own rate
                self._phase = phase
            if total is not None:
                self._total = int(total)
            if step is not None:
                self._step = int(step)
            if fraction is None and step is not None and self._total > 0:
                fraction = self._step / self._total
            if fraction is not None:
                self._fraction = min(1.0, max(0.0, float(fraction)))
                if self._t_first is None:
                    self._t_first, self._f_first = now, self._fraction
                self._t_last = now
            if message is not None:
                self._message = message
            if device is not None:
                self._device = device
            if train_point is not None:
                self._loss_steps.append(train_point[0])
                self._loss.append(train_point[1])
            if val_point is not None:
                self._val.append(val_point)
                if best is None and math.isfinite(val_point[1]):
                    best = val_point[1] if self._best is None else min(self._best, val_point[1])
            if best is not None:
                self._best = float(best)
        if self._on_update is not None:
            sent = dict(step=step, total=total, fraction=fraction, message=message, device=device)
            sent |= dict(train_point=train_point, val_point=val_point, best=best, phase=phase)
            self._on_update({k: v for k, v in sent.items() if v is not None})

    def _eta(self, now: float) -> float | None:
        """Seconds left at the mean rate since the first report (the time since the last
        report included, so a long unit without reports raises it rather than running it down
        to 0 s); None until it is measurable."""
        if self._status != RUNNING or self._t_first is None or self._t_last is None:
            return None
        done = self._fraction - self._f_first
        if done <= 0 or self._t_last <= self._t_first:
            return None
        return (1.0 - self._fraction) * (now - self._t_first) / done


# -------------------------------------------------------------------------------- the pool
MAX_JOBS_ENV = "METAREC_MAX_JOBS"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def default_max_jobs() -> int:
    """``METAREC_MAX_JOBS`` if set, else half the usable cores, at least 1.

    Why half: each job uses one torch thread and, between ops, the interpreter lock that the
    server's page scripts need too. On a 2-core server one job at a time leaves a core for
    uploads, ratings and page loads; a second concurrent job would halve both jobs' speed
    (no gain in throughput) and take that core away.
    """
    raw = os.environ.get(MAX_JOBS_ENV, "").strip()
    if not raw:
        return max(1, usable_cores() // 2)
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(
            f"{MAX_JOBS_ENV} must be a whole number of at least 1, got {raw!r}"
        ) from None
    if n < 1:
        raise ValueError(f"{MAX_JOBS_ENV} must be at least 1, got {n}")
    return n


class JobPool:
    """Runs at most `max_running` jobs at once; the others wait in first-in-first-out order.

    A job is admitted (its thread started) when it is submitted and a place is free, or when a
    running job ends and it is first in line. Cancelling a waiting job removes it from the line
    at once. The pool keeps no reference to a job once it has ended or left the line.

    `workers`: where the work runs. ``"thread"``: in the job's thread, in this process.
    ``"process"``: in a long-lived worker process (`metarec_core.job_worker`), at most one per
    place, started when a job first needs it and kept for the next; the job's thread only relays
    its progress, so page scripts never wait for the interpreter lock behind a training. A job
    that cannot travel (a work function, learner factory or runner of its own) runs in its
    thread either way. Default: ``METAREC_JOB_WORKERS`` (`runtime.job_workers`).
    """

    def __init__(self, max_running: int, workers: str | None = None) -> None:
        if int(max_running) < 1:
            raise ValueError(f"a job pool needs at least one place, got {max_running}")
        self.workers = job_workers(workers)
        self._lock = threading.Lock()
        self._max = int(max_running)
        self._running: set[BackgroundJob] = set()
        self._waiting: deque[BackgroundJob] = deque()
        self._idle: list[WorkerProcess] = []  # worker processes with no job, newest last
        self._busy: set[WorkerProcess] = set()

    @property
    def max_running(self) -> int:
        with self._lock:
            return self._max

    @max_running.setter
    def max_running(self, n: int) -> None:
        """Change the number of places; a larger one admits waiting jobs at once (a smaller one
        lets the running jobs finish)."""
        if int(n) < 1:
            raise ValueError(f"a job pool needs at least one place, got {n}")
        with self._lock:
            self._max = int(n)
            self._admit()

    def counts(self) -> tuple[int, int]:
        """(running, waiting) at this moment."""
        with self._lock:
            return len(self._running), len(self._waiting)

    def submit(self, job: BackgroundJob) -> None:
        """Put `job` at the end of the line and start it if a place is free."""
        with self._lock:
            self._waiting.append(job)
            self._admit()

    def position(self, job: BackgroundJob) -> int | None:
        """`job`'s place in line (1 = next to start), or None if it is not waiting."""
        with self._lock:
            for i, waiting in enumerate(self._waiting, start=1):
                if waiting is job:
                    return i
        return None

    def discard(self, job: BackgroundJob) -> bool:
        """Remove `job` from the line (True if it was waiting)."""
        with self._lock:
            try:
                self._waiting.remove(job)
            except ValueError:
                return False
            return True

    def release(self, job: BackgroundJob) -> None:
        """Called by a job's thread as it ends: free its place and start the next job."""
        with self._lock:
            self._running.discard(job)
            self._admit()

    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes (idle or busy)."""
        with self._lock:
            return sorted(w.pid for w in (*self._idle, *self._busy) if w.alive)

    def close(self) -> None:
        """Stop the worker processes: idle ones leave, busy ones are killed (their jobs end
        ``cancelled`` if cancelled, else ``failed``). The pool starts new ones if used again."""
        with self._lock:
            idle, busy, self._idle = self._idle, set(self._busy), []
        for w in idle:
            w.close()
        for w in busy:
            w.kill()

    def _run_remote(self, job: BackgroundJob, spec: dict[str, Any]) -> Any:
        """Run `job` in a worker process (called from its thread); a dead worker is replaced
        by a new one at the next job."""
        from metarec_core.job_worker import WorkerProcess, run_in_worker

        with self._lock:
            while self._idle and not self._idle[-1].alive:
                self._idle.pop().close()
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            worker = WorkerProcess()
        with self._lock:
            self._busy.add(worker)
        try:
            return run_in_worker(worker, job, spec)
        finally:
            with self._lock:
                self._busy.discard(worker)
                keep = worker.alive and len(self._idle) + len(self._busy) < self._max
                if keep:
                    self._idle.append(worker)
            if not keep:
                worker.close()

    def _admit(self) -> None:
        # Under self._lock. Lock order: the pool's lock, then a job's (never the reverse).
        while self._waiting and len(self._running) < self._max:
            job = self._waiting.popleft()
            self._running.add(job)
            if not job._launch():  # cancelled meanwhile: its place goes to the next
                self._running.discard(job)


_default_pool: JobPool | None = None
_default_pool_lock = threading.Lock()


def default_pool() -> JobPool:
    """The process-wide pool every job started without a pool goes to (made on first use with
    `default_max_jobs()` places and ``METAREC_JOB_WORKERS``'s mode; tests may change its
    `max_running`)."""
    global _default_pool
    with _default_pool_lock:
        if _default_pool is None:
            _default_pool = JobPool(default_max_jobs())
        return _default_pool


# ------------------------------------------------------------------------------ training
def _is_fit(config: LearnerConfig | FitConfig) -> bool:
    """Whether `config` fits a method without meta-learning settings (a `FitConfig`)."""
    from metarec_core.methods.registry import FitConfig

    return isinstance(config, FitConfig)


def _default_learner_factory(config: LearnerConfig | FitConfig) -> Recommender:
    """The unfitted method of `config`: a meta-learner's class (found through the registry), or
    any registered method for a `FitConfig`."""
    if _is_fit(config):
        return config.build()  # type: ignore[union-attr]
    from metarec_core.methods import meta as learners

    return learners.learner_class(config)(config)


# The factory a worker process uses. Tests replace `_default_learner_factory` (tests/helpers.py
# HeldTrainings): a job made with the replacement stays in its thread, where the replacement is.
_WORKER_FACTORY = _default_learner_factory


class TrainingJob(BackgroundJob):
    """Meta-train a learner (a `LearnerConfig`), or fit any other registered method (a
    `registry.FitConfig`), in the background.

    Without `train_users`, users are split seeded by `split_seed` (90% train, 10% validation);
    given `train_users` only, validation is skipped unless `val_users` is also given; given
    `val_users` only, every other user trains. `result` is the fitted method once ``done``.
    `learner_factory(config)` builds the (unfitted) method; tests pass a fake one. A
    `FitConfig`'s method (one without meta-learning settings, as its capabilities declare) is
    fitted through the ``should_stop`` and ``progress`` hooks every method's `fit` takes, in
    one phase "fit". After a training (not a `FitConfig`'s fit) with validation users, a model
    that predicts ratings gets the model check (`evaluation.check`), phase "check", unless
    `check` is False; its result is `baseline_check`.
    """

    kind = "training"

    def __init__(
        self,
        data: RatingsDataset,
        config: LearnerConfig | FitConfig,
        *,
        train_users: np.ndarray | None = None,
        val_users: np.ndarray | None = None,
        split_seed: int = 0,
        learner_factory: Callable[[Any], Any] | None = None,
        check: bool = True,
    ) -> None:
        super().__init__()
        self.data = data
        self.config = config
        self.check = check
        if train_users is None and val_users is None:
            train_users, val_users = split_users(data, split_seed)
        elif train_users is None:
            val_users = np.asarray(val_users, dtype=np.int64)
            train_users = np.setdiff1d(np.arange(data.n_users), val_users)
        self.train_users = np.asarray(train_users, dtype=np.int64)
        self.val_users = None if val_users is None else np.asarray(val_users, dtype=np.int64)
        self._factory = learner_factory or _default_learner_factory
        # a FitConfig's fit reports fractions, not steps
        total = 0 if _is_fit(config) else int(config.steps)  # type: ignore[union-attr]
        with self._lock:
            self._total = total
            self._device = _device_name(config.device)
            self._message = "waiting to start"

    def _work(self, ctx: JobContext) -> Any:
        ctx.progress(message="building the model")
        learner = self._factory(self.config)
        if _is_fit(self.config):
            return self._fit(ctx, learner)
        checked = self.check and _checkable(learner) and self.val_users is not None
        phases = tuple(self.config.phases)  # type: ignore[union-attr]  # not a FitConfig
        if isinstance(learner, Tuned):  # its fit runs methods/tuning.py's search first
            phases = ("search", *phases)
        if checked:
            phases += ("check",)
        labels = _phase_labels()

        def on_progress(p: TrainProgress) -> None:
            device = _learner_device(learner)
            if device is not None:
                ctx.set_device(device)
            name = p.phase
            index = phases.index(name) + 1 if name in phases else len(phases)
            phase = PhaseProgress(
                name,
                labels.get(name, name),
                index,
                len(phases),
                int(p.step),
                int(p.total),
                unit="percent" if name in ("warm_start", "search") else "step",
            )
            if name != "meta":  # not meta-steps: the phase and a message, no curves
                what = _PHASE_MESSAGES.get(name, PRETRAIN_MESSAGE)
                detail = f"{p.step}%" if name in ("warm_start", "search") else _train_message(p)
                self._update(fraction=phase.fraction, message=f"{what}: {detail}", phase=phase)
                ctx.check_cancelled()
                return
            self._update(phase=phase)
            ctx.progress(step=p.step, total=p.total, message=_train_message(p))
            if p.train_loss is not None:
                ctx.log_train_loss(p.step, p.train_loss)
            if p.val_mae is not None:
                ctx.log_val_mae(p.step, p.val_mae, p.best_val_mae)
            # Belt and braces: a learner that checks should_stop less often still stops here.
            ctx.check_cancelled()

        ctx.progress(message="training")
        learner.fit(
            self.data,
            self.train_users,
            self.val_users,
            callback=on_progress,
            should_stop=ctx.should_stop,
        )
        device = _learner_device(learner)
        if device is not None:
            ctx.set_device(device)
        check = None
        if checked and not ctx.should_stop():
            # A diverged training still ends "done": say whether the model beats the plain
            # baselines on the same validation users, so that the app does not adopt a bad one.
            def checking(fraction: float, message: str) -> None:
                pct = int(round(100 * fraction))
                phase = PhaseProgress(
                    "check", labels.get("check", "check"), len(phases), len(phases), pct, 100,
                    unit="percent",
                )  # fmt: skip
                self._update(fraction=fraction, message=f"{CHECK_MESSAGE}: {message}", phase=phase)
                ctx.check_cancelled()

            checking(0.0, "fitting them")
            check = _model_check(
                learner, self.data, self.train_users, self.val_users, self.config,
                should_stop=ctx.should_stop, progress=checking,
            )  # fmt: skip
            with self._lock:
                self._check = check
        if not ctx.should_stop():
            snap = self.snapshot()
            parts = ["done"]
            if 0 < snap.step < snap.total:
                parts.append(f"early stop at step {snap.step} of {snap.total}")
            if snap.best_val_mae is not None:
                parts.append(f"best validation MAE {snap.best_val_mae:.4f}")
            if check is not None and check.worse:
                from metarec_core.methods.registry import display_name

                parts.append(check.describe(display_name))
            ctx.progress(message="; ".join(parts))
        return learner

    def _fit(self, ctx: JobContext, method: Recommender) -> Recommender:
        """Fit a method without meta-learning settings, reporting through its fit hooks."""
        phase = PhaseProgress("fit", "Fitting", 1, 1, 0, 100, unit="percent")

        def progress(fraction: float, message: str) -> None:
            pct = int(round(100 * fraction))
            step = dataclasses.replace(phase, step=pct)
            self._update(fraction=fraction, message=f"fitting: {message}", phase=step)
            ctx.check_cancelled()

        progress(0.0, "started")
        method.fit(
            self.data,
            self.train_users,
            self.val_users,
            should_stop=ctx.should_stop,
            progress=progress,
        )
        ctx.check_cancelled()  # a quick fit may ignore should_stop: a cancel still ends it
        self._update(fraction=1.0, phase=dataclasses.replace(phase, step=100))
        ctx.progress(message="done")
        return method

    def _portable(self) -> dict[str, Any] | None:
        if self._factory is not _WORKER_FACTORY:
            return None
        return {
            "data": self.data,
            "config": self.config,
            "train_users": self.train_users,
            "val_users": self.val_users,
            "check": self.check,
        }

    def _pack_result(self, result: Any) -> tuple[type, bytes]:
        """The fitted learner as its class and its `to_state()` (`torch.save` bytes): what a
        checkpoint holds, rebuilt by the class's `from_state`."""
        import io

        import torch

        buf = io.BytesIO()
        torch.save(result.to_state(), buf)
        return type(result), buf.getvalue()

    def _unpack_result(self, packed: tuple[type, bytes]) -> Any:
        """The learner rebuilt from its state, on the device its config asks for (as a
        training in this process would have put it)."""
        import io

        import torch

        cls, blob = packed
        state = torch.load(io.BytesIO(blob), weights_only=True)
        return cls.from_state(state, device=self.config.device)

    @property
    def baseline_check(self) -> ModelCheck | None:
        """The finished model's `evaluation.check.ModelCheck` (None: not made, or not done)."""
        with self._lock:
            return self._check if self._status == DONE else None


PRETRAIN_MESSAGE = "pre-training without the meta objective"
WARM_START_MESSAGE = "warm start by matrix factorisation (ALS)"
CHECK_MESSAGE = "comparing with the plain baselines on the validation users"
SEARCH_MESSAGE = "trying settings for this dataset on the validation users"
_PHASE_MESSAGES = {"warm_start": WARM_START_MESSAGE, "search": SEARCH_MESSAGE}


def _checkable(learner: Any) -> bool:
    """Whether the model check applies to `learner`: a method that predicts ratings."""
    from metarec_core.methods.base import Recommender

    return isinstance(learner, Recommender) and learner.capabilities.predicts_ratings


def _learner_device(learner: Recommender) -> str | None:
    """The device a learner runs on, if it declares one (``capabilities.device``); the
    learner must have built its model (every device method sets ``device_`` then)."""
    if not learner.capabilities.device:
        return None
    return str(learner.device_)  # type: ignore[attr-defined]


def _model_check(
    learner: Recommender,
    data: RatingsDataset,
    train_users: np.ndarray,
    val_users: np.ndarray,
    config: Any,
    **hooks: Any,
) -> ModelCheck | None:
    """`evaluation.check.run_model_check` of a trained learner, its draws seeded by the
    config's seed and on at most its ``max_val_users`` (the learner's validation users)."""
    from metarec_core.evaluation.check import CheckConfig, run_model_check

    cfg = CheckConfig(seed=int(config.seed), max_users=config.max_val_users)
    return run_model_check(learner, data, train_users, val_users, config=cfg, **hooks)


def _phase_labels() -> dict[str, str]:
    """`learners.PHASE_LABELS` (empty without the learners module: names are shown)."""
    try:
        from metarec_core.methods.meta import PHASE_LABELS
    except ImportError:
        return {}
    return {**PHASE_LABELS, "search": "Search for this dataset's settings"}


def _train_message(p: TrainProgress) -> str:
    parts = [f"step {p.step}/{p.total}"]
    if p.train_loss is not None:
        parts.append(f"loss {p.train_loss:.4f}")
    if p.val_mae is not None:
        parts.append(f"val MAE {p.val_mae:.4f}")
    return ", ".join(parts)


def _device_name(device: Any) -> str | None:
    """The device a config will run on ("auto" resolved when the learners module is there)."""
    if device is None:
        return None
    try:
        from metarec_core.methods.meta import resolve_device

        return str(resolve_device(str(device)))
    except Exception:  # only a label; the worker reports the real device
        return str(device)


# ---------------------------------------------------------------------------- evaluation
class EvaluationJob(BackgroundJob):
    """Run `evaluate.run_evaluation` in the background; `result` is the report dict.

    `runner` defaults to `run_evaluation`; it is called as
    ``runner(data, config, progress=callable(fraction, message), should_stop=callable)``.
    """

    kind = "evaluation"

    def __init__(
        self,
        data: RatingsDataset,
        eval_config: EvalConfig,
        *,
        runner: Callable[..., dict] | None = None,
    ) -> None:
        super().__init__()
        self.data = data
        self.config = eval_config
        self._runner = runner
        with self._lock:
            self._message = "waiting to start"
            self._device = _device_name(getattr(eval_config, "device", None))

    def _portable(self) -> dict[str, Any] | None:
        return None if self._runner is not None else {"data": self.data, "eval_config": self.config}

    def _work(self, ctx: JobContext) -> dict:
        runner = self._runner
        if runner is None:
            from metarec_core.evaluation.runner import run_evaluation

            runner = run_evaluation
        try:
            from metarec_core.evaluation.runner import EvaluationCancelled as cancelled
        except ImportError:  # a custom runner without the evaluate module: it raises JobCancelled
            cancelled = JobCancelled

        def on_progress(fraction: float, message: str) -> None:
            ctx.progress(fraction=fraction, message=message)
            ctx.check_cancelled()

        try:
            return runner(self.data, self.config, progress=on_progress, should_stop=ctx.should_stop)
        except cancelled:
            raise JobCancelled from None
