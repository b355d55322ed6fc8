"""Process-wide runtime settings shared by the CLI and the app."""

from __future__ import annotations

import contextlib
import os
import threading

THREADS_ENV = "METAREC_TORCH_THREADS"
JOB_NICE_ENV = "METAREC_JOB_NICE"
JOB_WORKERS_ENV = "METAREC_JOB_WORKERS"
THREAD, PROCESS = "thread", "process"
# Jobs run in worker processes unless told otherwise: the app's server stays interactive while
# they train (bench/load.py, docs/load.md). The test suite sets "thread" (tests/conftest.py): its
# AppTest tests replace trainings in this process.
DEFAULT_JOB_WORKERS = PROCESS
# Off by default: measured on the shared 2-core machine (load average 13, other processes at nice
# 0), a job thread at nice +10 got so little CPU that a 5-step training had not finished after
# 850 s while every other session waited behind it in the pool (bench/load.py, docs/load.md).
DEFAULT_JOB_NICE = 0


def limit_torch_threads() -> int:
    """One intra-op torch thread by default (``METAREC_TORCH_THREADS=N`` overrides; 0 = torch's own),
    and as many BLAS threads for numpy.

    The model's ops are small, so fanning each out over every core buys little, and when anything
    else runs (another job, the app's other sessions, a second process) the threads spin against
    each other. Measured on the 2-core dev box with one other process busy: default ML-100K
    training took 881.7 s with torch's default 2 threads and 31.9 s with 1; one new-user `adapt`
    on the sample took 310 ms with 2 threads and 5.7 ms with 1.
    """
    import torch

    n = int(os.environ.get(THREADS_ENV, "1"))
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if n > 0:
        _limit_blas_threads(n)
    return n


def deterministic_cpu_kernels() -> None:
    """Make torch use its deterministic kernels, process-wide, from now on (warn-only where an
    op has none).

    With more than one intra-op thread, the backward of indexing a table (``bias[items]``: an
    accumulating ``index_put_``) sums in an order that depends on thread timing on the CPU, so
    two trainings with the same seed drifted apart (sample data, 2 threads: different weights
    after 30 meta-steps; ML-100K: validation MAEs 0.7442 and 0.7517). The deterministic kernel
    costs nothing measurable at 1 thread (13.3 vs 13.5 CPU s for 200 meta-steps on the sample)
    and gives the 1-thread result with 2. Left on: a switch back while another thread trains would
    make that training depend on timing again.
    """
    import torch

    if not torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(True, warn_only=True)


def _limit_blas_threads(n: int) -> None:
    """The same limit for numpy's BLAS (OpenBLAS/MKL), for the same reason: the baselines' ALS
    is many small batched solves. Measured on the 2-core dev box under the other helpers' load:
    the playground's mf_foldin_levels fit on an ML-latest-small-shaped dataset took 27.0 s with
    OpenBLAS's 2 threads and 6.1 s with 1."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # ships with scikit-learn; without it BLAS keeps its default
        return
    threadpool_limits(limits=n, user_api="blas")


def job_workers(asked: str | None = None) -> str:
    """Where background jobs run: `asked`, else ``METAREC_JOB_WORKERS``, else
    `DEFAULT_JOB_WORKERS`; "thread" (in the job's thread, in this process) or "process" (in a
    worker process: `metarec_core.job_worker`)."""
    where = asked
    if where is None:
        where = os.environ.get(JOB_WORKERS_ENV, "").strip().lower() or DEFAULT_JOB_WORKERS
    if where not in (THREAD, PROCESS):
        name = JOB_WORKERS_ENV if asked is None else "workers"
        raise ValueError(f"{name} must be {THREAD!r} or {PROCESS!r}, got {where!r}")
    return where


def job_nice() -> int:
    """How much lower than the process a job's thread runs (``METAREC_JOB_NICE``, 0 to 19;
    default 0: the same priority)."""
    raw = os.environ.get(JOB_NICE_ENV, "").strip()
    try:
        return max(0, min(19, int(raw))) if raw else DEFAULT_JOB_NICE
    except ValueError:
        return DEFAULT_JOB_NICE


def prepare_job_thread() -> None:
    """Set up the calling thread to run a background job (first thing in every job's thread).

    The torch thread limit applies (`limit_torch_threads`), so one job uses at most one core.
    With ``METAREC_JOB_NICE=N`` the thread's nice value is raised N above the process's own
    (Linux sets it per thread; elsewhere, or where it is refused, nothing changes), so that the
    scheduler prefers the server's page scripts to training; useful on a server of its own,
    harmful where other processes keep the cores busy (the job starves: see DEFAULT_JOB_NICE).
    """
    limit_torch_threads()
    step = job_nice()
    if step == 0 or not hasattr(os, "setpriority"):
        return
    with contextlib.suppress(OSError, AttributeError):  # only a preference; never fail a job
        tid = threading.get_native_id()
        # The process's own value (its main thread's), not the creating thread's: a job's
        # thread can be started from another job's thread, which is already lowered.
        target = min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + step)
        if os.getpriority(os.PRIO_PROCESS, tid) < target:
            os.setpriority(os.PRIO_PROCESS, tid, target)
