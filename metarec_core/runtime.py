"""Process-wide runtime settings shared by the CLI and the app."""

from __future__ import annotations

import os

THREADS_ENV = "METAREC_TORCH_THREADS"


def limit_torch_threads() -> int:
    """One intra-op torch thread by default (``METAREC_TORCH_THREADS=N`` overrides; 0 = torch's own).

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
    return n
