"""Does a lower CPU priority for the job worker help the server's scripts? (METAREC_JOB_NICE)

    python bench/job_nice.py --nice 0 10 --busy 2

For each nice value: a long training runs in a worker process (`JobPool(workers="process")`,
300 x 200 synthetic ratings, the metasgd preset without pre-training) while this process, the
stand-in for the app's server, times a fixed CPU-bound piece of Python (about what one script
run costs) `--reps` times; `--busy` processes at nice `--busy-nice` spin beside them, as the
load test's headless browsers (nice 10) or other users of a shared machine (nice 0) do. Prints the task's p50 / p95 / max in ms and the training's meta-steps per
second over the same window, with no job at all as the reference. Loopback only, bounded (the
training is cancelled after each measurement).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metarec_core.data.dataset import from_arrays  # noqa: E402
from metarec_core.data.synthetic import generate  # noqa: E402
from metarec_core.jobs import JobPool, TrainingJob  # noqa: E402
from metarec_core.methods.meta import preset  # noqa: E402
from metarec_core.runtime import JOB_NICE_ENV  # noqa: E402

WAIT_S = 300.0


def task() -> None:
    """A fixed piece of pure Python (tens of ms), holding the interpreter like a script run."""
    sum(i * i for i in range(200_000))


def measure(reps: int) -> np.ndarray:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        task()
        times.append(time.perf_counter() - t)
        time.sleep(0.05)  # a visitor's think time between clicks
    return np.asarray(times) * 1000


def spinners(n: int, nice: int) -> list[subprocess.Popen]:
    code = f"import os; os.nice({nice})\nwhile True: pass"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nice", type=int, nargs="+", default=[0, 10])
    ap.add_argument("--busy", type=int, default=2, help="spinning processes (other load)")
    ap.add_argument("--busy-nice", type=int, default=10, help="their nice value")
    ap.add_argument("--reps", type=int, default=40)
    args = ap.parse_args(argv)
    ratings, _ = generate(n_users=300, n_items=200, n_ratings=9_000, seed=100)
    data = from_arrays(ratings["user"], ratings["item"], ratings["rating"], source="bench")
    cfg = replace(preset("metasgd"), steps=1_000_000, eval_every=100_000, pretrain=False)
    cfg = replace(cfg, device="cpu")
    spin = spinners(args.busy, args.busy_nice)
    try:
        ref = measure(args.reps)
        print(f"no job: task p50 {np.median(ref):.0f} / p95 {np.percentile(ref, 95):.0f} ms")
        for nice in args.nice:
            os.environ[JOB_NICE_ENV] = str(nice)  # read by the worker's job thread
            pool = JobPool(1, workers="process")
            job = TrainingJob(data, cfg).start(pool)
            deadline = time.monotonic() + WAIT_S
            while job.snapshot().step < 1 and time.monotonic() < deadline:
                job.wait(0.2)  # until it meta-trains (the worker started, the model built)
            s0, t0 = job.snapshot().step, time.monotonic()
            ms = measure(args.reps)
            rate = (job.snapshot().step - s0) / (time.monotonic() - t0)
            job.cancel()
            job.wait(WAIT_S)
            pool.close()
            print(
                f"job at nice {nice}: task p50 {np.median(ms):.0f} / p95 "
                f"{np.percentile(ms, 95):.0f} / max {ms.max():.0f} ms; "
                f"training {rate:.1f} meta-steps/s",
                flush=True,
            )
    finally:
        for p in spin:
            p.kill()
            p.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
