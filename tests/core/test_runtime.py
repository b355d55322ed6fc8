"""The torch thread limit shared by the CLI and the app (checked in fresh processes)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = (
    "import torch; from metarec_core.runtime import limit_torch_threads; "
    "n = limit_torch_threads(); print(n, torch.get_num_threads())"
)


def _probe(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "METAREC_TORCH_THREADS"}
    if env_value is not None:
        env["METAREC_TORCH_THREADS"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_one_thread_by_default():
    assert _probe(None) == "1 1"


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs at least 2 CPUs to set 2 threads")
def test_environment_variable_sets_the_thread_count():
    assert _probe("2") == "2 2"


def test_numpy_blas_gets_the_same_limit():
    # the baselines' ALS (numpy batched solves) slowed 4x with OpenBLAS's own threads under load
    probe = (
        "import numpy, threadpoolctl; from metarec_core.runtime import limit_torch_threads; "
        "limit_torch_threads(); "
        "print(sorted({p['num_threads'] for p in threadpoolctl.threadpool_info() "
        "if p['user_api'] == 'blas'}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "METAREC_TORCH_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[1]"
