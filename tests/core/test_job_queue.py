"""The bounded job pool: at most N jobs run at once, the rest wait in line and say where they are.

The core tests drive the pool with work functions that block on events the test sets, so every
interleaving is decided by the test (no sleeps, no timed assertions). The AppTest shows a second
session's training waiting in line while the first one runs.
"""

from __future__ import annotations

import gc
import os
import threading
import weakref

import pytest

from metarec_core import jobs as jobs_module
from metarec_core.jobs import (
    MAX_JOBS_ENV,
    BackgroundJob,
    JobContext,
    JobPool,
    default_max_jobs,
    default_pool,
    ordinal,
)

WAIT = 60.0  # generous upper bound for an event; never a speed assertion


class Gated:
    """Work functions that record when they run and block until the test lets them finish."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.started: list[str] = []
        self.entered: dict[str, threading.Event] = {}
        self.go: dict[str, threading.Event] = {}

    def job(self, name: str) -> BackgroundJob:
        self.entered[name] = threading.Event()
        self.go[name] = threading.Event()

        def work(ctx: JobContext) -> str:
            with self.lock:
                self.running += 1
                self.peak = max(self.peak, self.running)
                self.started.append(name)
            self.entered[name].set()
            try:
                assert self.go[name].wait(WAIT), f"the test never let {name} finish"
            finally:
                with self.lock:
                    self.running -= 1
            return name

        return BackgroundJob(work, kind=f"demo-{name}")

    def start_in_line(self, names: str, pool: JobPool) -> list[BackgroundJob]:
        """A job per name (one letter each), started into `pool` in that order; returns once
        the first one runs."""
        jobs = [self.job(n) for n in names]
        for j in jobs:
            j.start(pool)
        self.wait_entered(names[0])
        return jobs

    def wait_entered(self, name: str) -> None:
        assert self.entered[name].wait(WAIT), f"{name} never started"

    def finish(self, name: str, job: BackgroundJob) -> None:
        self.go[name].set()
        assert job.wait(WAIT).status == "done"


def test_the_cap_is_never_exceeded_and_jobs_start_in_order():
    gated, pool = Gated(), JobPool(2)
    names = [f"j{i}" for i in range(7)]
    js = {n: gated.job(n) for n in names}
    for n in names:
        js[n].start(pool)
    gated.wait_entered("j0")
    gated.wait_entered("j1")
    assert pool.counts() == (2, 5)
    assert [js[n].snapshot().status for n in names] == ["running"] * 2 + ["queued"] * 5
    # Finish them in a scrambled order: the next in line starts each time a place frees.
    for i, n in enumerate(["j1", "j0", "j3", "j2", "j4", "j6", "j5"]):
        gated.finish(n, js[n])
        if i + 2 < len(names):
            gated.wait_entered(names[i + 2])
            assert pool.counts()[0] == 2
    # first in, first started (j0 and j1 start together: their threads may enter in either order)
    assert set(gated.started[:2]) == {"j0", "j1"} and gated.started[2:] == names[2:]
    assert gated.peak == 2  # never more than the pool's places at once
    assert pool.counts() == (0, 0)


def test_queued_jobs_know_their_place_in_line():
    gated, pool = Gated(), JobPool(1)
    a, b, c, d = gated.start_in_line("abcd", pool)
    snaps = [j.snapshot() for j in (a, b, c, d)]
    assert [s.queue_position for s in snaps] == [None, 1, 2, 3]
    assert [s.status for s in snaps] == ["running", "queued", "queued", "queued"]
    assert snaps[2].pool_size == 1
    assert snaps[2].status_line == "waiting: 2nd in line (this server runs 1 job at a time)"
    assert snaps[0].status_line == "running: 0%"
    gated.finish("a", a)
    gated.wait_entered("b")
    assert [j.snapshot().queue_position for j in (b, c, d)] == [None, 1, 2]
    assert JobPool(3).max_running == 3
    gated.finish("b", b)
    gated.finish("c", c)
    gated.finish("d", d)
    assert d.snapshot().status_line == "done" and d.result == "d"


def test_cancelling_a_queued_job_removes_it_from_the_line_at_once():
    gated, pool = Gated(), JobPool(1)
    a, b, c = gated.start_in_line("abc", pool)
    b.cancel()
    # Over at once, without waiting for the running job: no thread was ever started for it.
    snap = b.wait(0)
    assert snap.status == "cancelled" and snap.finished and snap.queue_position is None
    assert snap.message == "cancelled before it started" and not b.is_active
    assert c.snapshot().queue_position == 1 and pool.counts() == (1, 1)
    gated.finish("a", a)
    gated.finish("c", c)
    assert gated.started == ["a", "c"]  # b never ran
    assert pool.counts() == (0, 0)


def test_the_pool_keeps_no_reference_to_ended_or_cancelled_jobs():
    """What a closed session relies on: once its jobs are cancelled, nothing keeps them (and
    the data and models they hold) alive."""
    gated, pool = Gated(), JobPool(1)
    a, b = gated.start_in_line("ab", pool)
    refs = [weakref.ref(a), weakref.ref(b)]
    b.cancel()  # waiting: leaves the line
    a.cancel()  # running: its work ends when it next looks (here, when the test lets it)
    gated.go["a"].set()
    assert a.wait(WAIT).status == "cancelled"
    del a, b
    gc.collect()
    assert [r() for r in refs] == [None, None]
    assert pool.counts() == (0, 0)


def test_more_places_admit_waiting_jobs_at_once():
    gated, pool = Gated(), JobPool(1)
    a, b, c = gated.start_in_line("abc", pool)
    pool.max_running = 3
    gated.wait_entered("b")
    gated.wait_entered("c")
    assert gated.peak == 3 and pool.counts() == (3, 0)
    for n, j in zip("abc", (a, b, c), strict=True):
        gated.finish(n, j)
    with pytest.raises(ValueError, match="at least one place"):
        pool.max_running = 0
    with pytest.raises(ValueError, match="at least one place"):
        JobPool(0)


def test_a_failing_or_cancelled_running_job_frees_its_place():
    pool = JobPool(1)

    def boom(ctx: JobContext) -> None:
        raise RuntimeError("boom")

    assert BackgroundJob(boom).start(pool).wait(WAIT).status == "failed"
    gated = Gated()
    a, b = gated.start_in_line("ab", pool)
    a.cancel()
    gated.go["a"].set()
    assert a.wait(WAIT).status == "cancelled"
    gated.wait_entered("b")  # the next one got the place
    gated.finish("b", b)


def test_jobs_started_without_a_pool_share_the_process_wide_one():
    gated = Gated()
    job = gated.job("x").start()
    gated.wait_entered("x")
    snap = job.snapshot()
    assert snap.pool_size == default_pool().max_running
    assert default_pool() is default_pool()
    gated.finish("x", job)


def test_default_number_of_places(monkeypatch):
    monkeypatch.delenv(MAX_JOBS_ENV, raising=False)
    for cores, places in [(1, 1), (2, 1), (3, 1), (4, 2), (16, 8)]:
        monkeypatch.setattr(jobs_module, "usable_cores", lambda c=cores: c)
        assert default_max_jobs() == places
    monkeypatch.setenv(MAX_JOBS_ENV, "3")
    assert default_max_jobs() == 3
    for bad in ("0", "-1", "two", "1.5"):
        monkeypatch.setenv(MAX_JOBS_ENV, bad)
        with pytest.raises(ValueError, match=MAX_JOBS_ENV):
            default_max_jobs()


def test_ordinals():
    cases = {1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 10: "10th", 11: "11th", 12: "12th"}
    cases |= {13: "13th", 21: "21st", 22: "22nd", 23: "23rd", 101: "101st", 111: "111th"}
    assert {n: ordinal(n) for n in cases} == cases


@pytest.mark.parametrize("asked", [None, "5"])
def test_a_job_thread_runs_with_one_torch_thread_and_the_priority_asked(monkeypatch, asked):
    torch = pytest.importorskip("torch")
    monkeypatch.delenv("METAREC_TORCH_THREADS", raising=False)
    if asked is None:
        monkeypatch.delenv("METAREC_JOB_NICE", raising=False)
    else:
        monkeypatch.setenv("METAREC_JOB_NICE", asked)

    def work(ctx: JobContext) -> tuple[int, int | None]:
        nice = None
        if hasattr(os, "getpriority"):
            nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return torch.get_num_threads(), nice

    job = BackgroundJob(work).start(JobPool(1))
    assert job.wait(WAIT).status == "done"
    threads, nice = job.result
    assert threads == 1
    if nice is not None and os.uname().sysname == "Linux":  # per-thread nice values: Linux
        base = os.getpriority(os.PRIO_PROCESS, os.getpid())
        assert nice == min(19, base + (0 if asked is None else 5))
        # the test's own thread is untouched
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base


# ------------------------------------------------------------------------------------ AppTest
@pytest.fixture
def one_place():
    """The process-wide pool with one place (as on a 2-core server), idle at the start."""
    pool = default_pool()
    old = pool.max_running
    pool.max_running = 1
    done = threading.Event()
    for _ in range(int(WAIT * 10)):  # jobs of earlier tests were cancelled: let them end
        if pool.counts() == (0, 0):
            break
        done.wait(0.1)
    assert pool.counts() == (0, 0), "a job of an earlier test is still running"
    yield pool
    pool.max_running = old


@pytest.mark.usefixtures("small_sample")
def test_a_second_sessions_training_shows_its_place_in_line(one_place, monkeypatch):
    from helpers import check_only_against, texts, train_page, wait_until

    # a tiny training may lose to the MF fold-in's level version on 8 check users: this test
    # is about the queue, so its check compares with user_bias (see check_only_against)
    check_only_against(monkeypatch, "user_bias")

    first = train_page(train_steps=100_000, train_eval_every=10_000)
    first.checkbox(key="train_pretrain").uncheck()
    first.button(key="train_start").click().run()
    assert not first.exception
    wait_until(first, lambda at: one_place.counts() == (1, 0))

    second = train_page()
    second.checkbox(key="train_pretrain").uncheck()
    second.button(key="train_start").click().run()
    assert not second.exception
    line = "waiting: 1st in line (this server runs 1 job at a time)"
    assert line in [i.value for i in second.info]
    assert f"Training: {line}" in [c.value for c in second.sidebar.caption]
    assert "train_cancel" in [b.key for b in second.button]  # a waiting job can be cancelled
    # The first session is not told about the second one's wait.
    first.run()
    assert "in line" not in texts(first)

    first.button(key="train_cancel").click().run()
    wait_until(second, lambda at: len(at.success) > 0)
    assert "Training done" in second.success[0].value
    assert not second.exception
