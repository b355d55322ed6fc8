"""Process-wide runtime settings shared by the CLI and the app."""

from __future__ import annotations

import os

THREADS_ENV = "METAREC_TORCH_THREADS"


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
