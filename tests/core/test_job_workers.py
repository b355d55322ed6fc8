"""Jobs in worker processes (`JobPool(workers="process")`, metarec_core/job_worker.py).

Every wait is on an event or a job's end with a generous bound (`WAIT`); the only timed
assertion is the cancel deadline, measured from `cancel()` to the job's end.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from helpers import texts, wait_until
from test_jobs import WAIT, real_config, tiny_data

from metarec_core import job_worker, jobs
from metarec_core.jobs import BackgroundJob, EvaluationJob, JobPool, TrainingJob
from metarec_core.runtime import JOB_WORKERS_ENV, job_workers

pytest.importorskip("metarec_core.methods.meta")
# a training that runs until cancelled (straight to meta-steps: no pre-training phase)
LONG = {"steps": 100_000, "eval_every": 10_000, "pretrain": False}
CANCEL_DEADLINE = 5.0  # seconds from cancel() to the job's end (the grace before a kill is 2 s)


@pytest.fixture(scope="module")
def pool():
    """One process pool for the module: its worker is started once, then reused."""
    p = JobPool(1, workers="process")
    yield p
    p.close()


class Relayed:
    """Records the progress a job's relay thread applies (what the server learns)."""

    def __init__(self, job: BackgroundJob, until: tuple[str, int] | None = None) -> None:
        self.phases: list[str] = []
        self.steps: list[int] = []
        self.reached = threading.Event()
        apply = job._update

        def update(**change) -> None:
            apply(**change)
            phase = change.get("phase")
            if phase is not None and (not self.phases or self.phases[-1] != phase.name):
                self.phases.append(phase.name)
            if change.get("step") is not None:
                self.steps.append(change["step"])
            if (
                until is not None
                and phase is not None
                and phase.name == until[0]
                and phase.step >= until[1]
            ):
                self.reached.set()

        job._update = update  # the instance's, on the server side only


def scores(learner) -> np.ndarray:
    items = np.array([0, 1, 2])
    return learner.adapt(items, np.array([5.0, 1.0, 3.0], dtype=np.float32)).scores


def test_the_mode_is_configurable_and_checked(monkeypatch):
    monkeypatch.delenv(JOB_WORKERS_ENV, raising=False)
    assert job_workers() == "process"  # the app's default
    monkeypatch.setenv(JOB_WORKERS_ENV, "thread")
    assert job_workers() == "thread" and JobPool(1).workers == "thread"
    assert job_workers("process") == "process"
    monkeypatch.setenv(JOB_WORKERS_ENV, "fork")
    with pytest.raises(ValueError, match="METAREC_JOB_WORKERS must be 'thread' or 'process'"):
        JobPool(1)


def test_a_training_in_a_worker_reports_its_phases_and_equals_the_thread_one(pool):
    data = tiny_data(n_users=40, n_items=25, per_user=16)
    cfg = real_config(pretrain=True)
    here = TrainingJob(data, cfg, split_seed=1)
    there = TrainingJob(data, cfg, split_seed=1)
    seen_here, seen_there = Relayed(here), Relayed(there)
    a = here.start(JobPool(1, workers="thread")).wait(WAIT)
    b = there.start(pool).wait(WAIT)
    assert a.status == b.status == "done", (a.error, b.error)
    assert pool.worker_pids(), "no worker process ran the job"
    assert seen_there.phases == seen_here.phases == ["pretrain", "meta", "check"]
    assert seen_there.steps == seen_here.steps and b.step == 4 and b.fraction == 1.0
    assert b.device == "cpu" and b.message == a.message and "best validation MAE" in b.message
    assert b.train_steps == a.train_steps and b.train_loss == pytest.approx(a.train_loss, abs=1e-6)
    assert [s for s, _ in b.val_mae] == [s for s, _ in a.val_mae] == [2, 4]
    assert [m for _, m in b.val_mae] == pytest.approx([m for _, m in a.val_mae], abs=1e-6)
    assert b.check == a.check and b.check is there.baseline_check
    learner = there.result
    assert type(learner) is type(here.result) and learner.fitted_
    assert learner.best_val_mae_ == pytest.approx(here.result.best_val_mae_, abs=1e-6)
    np.testing.assert_allclose(scores(learner), scores(here.result), atol=1e-6)


def test_an_evaluation_in_a_worker_equals_the_thread_one(pool):
    evaluate = pytest.importorskip("metarec_core.evaluation.runner")
    data = tiny_data(n_users=40, n_items=25, per_user=16)
    cfg = evaluate.EvalConfig(methods=("global_mean", "item_mean"), support=(1, 3), folds=2)
    a = EvaluationJob(data, cfg).start(JobPool(1, workers="thread"))
    b = EvaluationJob(data, cfg).start(pool)
    assert a.wait(WAIT).status == "done" and b.wait(WAIT).status == "done"
    assert b.snapshot().fraction == 1.0

    def timeless(rep):
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in rep["rows"]]

    assert type(b.result) is type(a.result)
    assert timeless(b.result.to_dict()) == timeless(a.result.to_dict())


def test_cancel_is_acknowledged_at_once_and_ends_the_job_in_its_worker(pool):
    data = tiny_data(n_users=40, n_items=25, per_user=16)
    job = TrainingJob(data, real_config(**LONG))
    relayed = Relayed(job, until=("meta", 3))
    job.start(pool)
    assert relayed.reached.wait(WAIT), "the training never reached step 3"
    pid = pool.worker_pids()
    t0 = time.monotonic()
    job.cancel()
    assert job.snapshot().cancelling  # acknowledged before the worker has answered
    snap = job.wait(WAIT)
    took = time.monotonic() - t0
    assert snap.status == "cancelled" and job.result is None and snap.error is None
    assert took < CANCEL_DEADLINE
    assert pool.worker_pids() == pid  # it stopped by itself: the worker is kept for the next job


def test_a_job_that_ignores_its_cancel_is_stopped_by_killing_its_worker(pool, monkeypatch):
    monkeypatch.setattr(job_worker, "CANCEL_GRACE_S", 0.0)  # no grace: the kill path at once
    data = tiny_data(n_users=40, n_items=25, per_user=16)
    job = TrainingJob(data, real_config(**LONG))
    relayed = Relayed(job, until=("meta", 1))
    job.start(pool)
    assert relayed.reached.wait(WAIT)
    old = pool.worker_pids()
    job.cancel()
    snap = job.wait(WAIT)
    assert snap.status == "cancelled" and snap.error is None
    assert not set(old) & set(pool.worker_pids())  # that worker is gone
    monkeypatch.undo()
    again = TrainingJob(data, real_config()).start(pool).wait(WAIT)
    assert again.status == "done", again.error  # a new worker took the next job


def test_a_killed_worker_fails_its_job_readably_and_the_pool_recovers(pool):
    data = tiny_data(n_users=40, n_items=25, per_user=16)
    job = TrainingJob(data, real_config(**LONG))
    relayed = Relayed(job, until=("meta", 1))
    job.start(pool)
    assert relayed.reached.wait(WAIT)
    (pid,) = pool.worker_pids()
    os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would
    snap = job.wait(WAIT)
    assert snap.status == "failed" and job.result is None
    assert snap.error == (
        "the job's worker process stopped unexpectedly (killed by SIGKILL); the job did not finish"
    )
    assert isinstance(job.exception, jobs.WorkerError)
    nxt = TrainingJob(data, real_config())
    assert nxt.start(pool).wait(WAIT).status == "done", nxt.snapshot().error
    assert pid not in pool.worker_pids()


def test_a_failure_in_the_worker_arrives_as_a_clear_message(pool):
    data = tiny_data(n_users=40, n_items=25, per_user=16)
    cfg = real_config(steps=50, outer_lr=1e30, item_lr=1e30, grad_clip=0.0)
    job = TrainingJob(data, cfg)
    snap = job.start(pool).wait(WAIT)
    assert snap.status == "failed"
    assert snap.error.startswith("training diverged: ") and "Traceback" not in snap.error
    assert "FloatingPointError" in snap.details  # the worker's traceback, for logs
    assert isinstance(job.exception, FloatingPointError)
    evaluate = pytest.importorskip("metarec_core.evaluation.runner")
    ev = EvaluationJob(data, evaluate.EvalConfig(methods=("global_mean",), support=(50,)))
    snap = ev.start(pool).wait(WAIT)
    assert snap.status == "failed" and snap.error.startswith("no test user has the 60 ratings")
    assert isinstance(ev.exception, ValueError)


def test_jobs_with_their_own_functions_stay_in_their_threads():
    p = JobPool(1, workers="process")
    ran_in = []
    job = BackgroundJob(lambda ctx: ran_in.append(threading.current_thread().name) or 7)
    assert job.start(p).wait(WAIT).status == "done" and job.result == 7
    learners = pytest.importorskip("metarec_core.methods.meta")
    data = tiny_data(n_users=40, n_items=25, per_user=16)
    own = TrainingJob(data, real_config(), learner_factory=lambda c: learners.learner_class(c)(c))
    assert own.start(p).wait(WAIT).status == "done"
    assert ran_in[0].startswith("metarec-job-") and p.worker_pids() == []  # no worker started


# ------------------------------------------------------------------------- the app, AppTest
@pytest.fixture
def process_pool(monkeypatch):
    """The app's default pool runs jobs in a worker process, as a server does by default."""
    p = JobPool(1, workers="process")
    monkeypatch.setattr(jobs, "_default_pool", p)
    yield p
    p.close()


@pytest.mark.usefixtures("small_sample")
def test_the_app_trains_in_a_worker_and_shows_its_failures(process_pool):
    from helpers import new_app, train_page

    at = train_page()
    at.checkbox(key="train_pretrain").uncheck()
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error
    # done: a success, or a warning when the model check (run in the worker too) finds a
    # baseline better than the few-step model
    done = lambda a: any("Training done" in m.value for m in [*a.success, *a.warning])  # noqa: E731
    wait_until(at, done, tries=3000)
    check = at.session_state["mr_models"]["metasgd"].extra["job"].baseline_check
    assert check is not None and check.ks == (1, 3, 5, 10)  # relayed from the worker
    model = at.session_state["mr_models"]["metasgd"].model
    assert model.fitted_
    assert (at.session_state["mr_active_model"] == "metasgd") == (not check.worse)
    assert process_pool.worker_pids()  # trained there, not in the app's process
    # an evaluation that cannot run on this data fails in the worker: the page says why
    at = new_app()
    at.switch_page("pages/evaluate.py").run()
    at.text_input(key="eval_support").set_value("50")
    at.number_input(key="eval_query").set_value(100)
    at.button(key="eval_start").click().run()
    wait_until(at, lambda a: len(a.error) > 0, tries=3000)
    shown = texts(at).replace("\\", "")  # the page escapes markdown in the message
    assert "Evaluation failed: no test user has the 150 ratings needed" in shown, shown
    assert "Traceback" not in shown and not at.exception
