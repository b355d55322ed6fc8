"""Background jobs: life cycle, cancel, failure capture, thread safety, independence.

Most tests drive the job machinery with fake work functions and a fake learner gated by
semaphores, so every interleaving is deterministic (no sleeps, no timed assertions). The
real learner and evaluation are exercised at the end, skipped until their modules exist.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.jobs import (
    BackgroundJob,
    EvaluationJob,
    JobCancelled,
    JobContext,
    JobPool,
    JobSnapshot,
    TrainingJob,
    describe_error,
)
from metarec_core.methods.base import Capabilities
from metarec_core.methods.registry import display_name
from metarec_core.protocol.splits import split_users

WAIT = 300.0  # generous bound for a job to end (on a loaded machine); never a speed assertion


def tiny_data(n_users: int = 40, n_items: int = 25, per_user: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    users, items, ratings = [], [], []
    taste = rng.normal(size=n_users)
    quality = rng.normal(size=n_items)
    for u in range(n_users):
        chosen = rng.choice(n_items, size=per_user, replace=False)
        for i in chosen:
            r = np.clip(np.round(3 + taste[u] * quality[i] + rng.normal(scale=0.5)), 1, 5)
            users.append(u)
            items.append(int(i))
            ratings.append(r)
    return RatingsDataset(
        user=np.asarray(users, dtype=np.int64),
        item=np.asarray(items, dtype=np.int64),
        rating=np.asarray(ratings, dtype=np.float32),
        timestamp=None,
        user_ids=np.asarray([f"u{u}" for u in range(n_users)]),
        item_ids=np.asarray([f"i{i}" for i in range(n_items)]),
        scale=RatingScale(1.0, 5.0, 1.0),
        source="tiny",
    )


@pytest.fixture
def no_thread_crash(monkeypatch):
    """Record exceptions escaping any thread (a job must never let one out)."""
    escaped: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))
    yield escaped
    assert escaped == []


# ----------------------------------------------------------------------------- fakes
@dataclass(frozen=True)
class FakeProgress:
    """Same fields as learners.TrainProgress."""

    step: int
    total: int
    train_loss: float | None
    val_mae: float | None
    best_val_mae: float | None
    seconds: float
    phase: str = "meta"


@dataclass(frozen=True)
class FakeConfig:
    steps: int = 10
    eval_every: int = 2
    device: str = "cpu"
    seed: int = 0
    phases: tuple[str, ...] = ("meta",)
    fail_at: int | None = None
    nan_at: int | None = None
    honour_stop: bool = True
    early_stop_at: int | None = None


class FakeLearner:
    """Follows the MetaLearner.fit contract; each step waits for a permit from the test."""

    capabilities = Capabilities(device=True, meta_learned=True)

    def __init__(self, config: FakeConfig, gate: threading.Semaphore | None = None):
        self.config = config
        self.gate = gate
        self.device_ = "cpu"
        self.fitted_ = False
        self.fit_args = None

    def fit(self, data, train_users, val_users=None, *, callback=None, should_stop=None):
        self.fit_args = (data, train_users, val_users)
        cfg, best = self.config, None
        for step in range(1, cfg.steps + 1):
            if cfg.honour_stop and should_stop is not None and should_stop():
                break
            if self.gate is not None:
                assert self.gate.acquire(timeout=WAIT), "test never released the step"
            if step == cfg.fail_at:
                raise RuntimeError("boom in the model")
            loss = 1.0 / step
            if step == cfg.nan_at:
                raise FloatingPointError(f"non-finite meta-train loss (nan) at step {step}")
            val = None
            if step % cfg.eval_every == 0:
                val = 1.0 + 1.0 / step
                best = val if best is None else min(best, val)
            self.fitted_ = True
            if callback is not None:
                callback(FakeProgress(step, cfg.steps, loss, val, best, 0.0))
            if step == cfg.early_stop_at:
                break
        return self


def fake_job(config: FakeConfig, data=None, gate=None, **kw) -> tuple[TrainingJob, list]:
    made: list[FakeLearner] = []

    def factory(cfg):
        made.append(FakeLearner(cfg, gate))
        return made[-1]

    return TrainingJob(data or tiny_data(), config, learner_factory=factory, **kw), made


def wait_for_step(job: BackgroundJob, step: int) -> JobSnapshot:
    """Block (without sleeping blindly) until the job has reported `step`."""
    done = threading.Event()
    snap = job.snapshot()
    for _ in range(200_000):
        snap = job.snapshot()
        if snap.step >= step or snap.finished:
            done.set()
            break
        done.wait(0.001)
    assert snap.step >= step, f"job stopped at step {snap.step} ({snap.status}: {snap.error})"
    return snap


# ------------------------------------------------------------------- generic machinery
def test_work_function_runs_to_done_with_result_and_progress(no_thread_crash):
    seen: list[bool] = []

    def work(ctx: JobContext) -> str:
        ctx.set_device("cpu")
        for i in range(1, 6):
            seen.append(ctx.should_stop())
            ctx.progress(step=i, total=5, message=f"unit {i}")
        return "the result"

    job = BackgroundJob(work, kind="demo")
    assert job.snapshot().status == "queued" and not job.is_active
    snap = job.start().wait(WAIT)
    assert snap.status == "done"
    assert (snap.step, snap.total, snap.fraction) == (5, 5, 1.0)
    assert snap.kind == "demo" and snap.device == "cpu" and snap.message == "unit 5"
    assert snap.error is None and snap.details is None and snap.eta is None
    assert job.result == "the result" and not job.is_active and job.exception is None
    assert seen == [False] * 5
    assert snap.elapsed >= 0 and job.snapshot().elapsed == snap.elapsed  # frozen once over


def test_job_ids_are_unique_and_snapshots_immutable():
    a, b = BackgroundJob(lambda ctx: None), BackgroundJob(lambda ctx: None)
    assert a.id != b.id and len(a.id) == 32
    snap = a.snapshot()
    with pytest.raises(AttributeError):
        snap.status = "done"  # type: ignore[misc]
    assert isinstance(snap.train_loss, tuple) and isinstance(snap.val_mae, tuple)


def test_start_twice_and_wait_before_start_are_errors():
    job = BackgroundJob(lambda ctx: 1)
    with pytest.raises(RuntimeError, match="never started"):
        job.wait(0)
    job.start()
    with pytest.raises(RuntimeError, match="already started"):
        job.start()
    assert job.wait(WAIT).status == "done"


def test_cancel_before_start_never_runs_the_work():
    ran = []
    job = BackgroundJob(lambda ctx: ran.append(1))
    job.cancel()
    assert job.snapshot().status == "cancelled"
    job.start()
    assert job.wait(WAIT).status == "cancelled"
    assert ran == [] and job.result is None and not job.is_active


def test_eta_is_none_until_measurable_then_non_negative(no_thread_crash):
    gate = threading.Semaphore(0)
    reported = threading.Event()

    def work(ctx: JobContext) -> None:
        for i in range(1, 5):
            assert gate.acquire(timeout=WAIT)
            ctx.progress(step=i, total=4)
            reported.set()

    job = BackgroundJob(work).start()
    assert job.snapshot().eta is None  # nothing timed yet
    gate.release()
    wait_for_step(job, 1)
    assert job.snapshot().eta is None  # one report: no rate yet
    gate.release()
    snap = wait_for_step(job, 2)
    assert snap.status == "running" and snap.eta is not None and snap.eta >= 0
    gate.release(2)
    assert job.wait(WAIT).eta is None  # finished jobs have no ETA


def test_failure_is_captured_readably_and_process_survives(no_thread_crash):
    def work(ctx: JobContext) -> None:
        ctx.progress(step=1, total=3)
        raise KeyError("item 'x'")

    snap = BackgroundJob(work).start().wait(WAIT)
    assert snap.status == "failed"
    assert snap.error == "KeyError: \"item 'x'\""
    assert "Traceback" not in snap.error and "Traceback" in snap.details
    assert snap.message.startswith("failed:")
    # The process (and the job machinery) still works afterwards.
    assert BackgroundJob(lambda ctx: 42).start().wait(WAIT).status == "done"


def test_describe_error_keeps_user_messages_plain():
    assert describe_error(ValueError("bad  value\nhere")) == "bad value here"
    assert describe_error(FloatingPointError("nan loss")) == "training diverged: nan loss"
    assert describe_error(RuntimeError("x")) == "RuntimeError: x"
    assert describe_error(RuntimeError()) == "RuntimeError: no details"
    assert "out of memory" in describe_error(MemoryError())


def test_check_cancelled_in_work_function(no_thread_crash):
    gate = threading.Semaphore(0)

    def work(ctx: JobContext) -> None:
        for i in range(1, 1000):
            assert gate.acquire(timeout=WAIT)
            ctx.check_cancelled()
            ctx.progress(step=i, total=999)

    job = BackgroundJob(work).start()
    gate.release(3)
    wait_for_step(job, 3)
    job.cancel()
    gate.release(1000)
    snap = job.wait(WAIT)
    assert snap.status == "cancelled" and snap.step == 3 and job.result is None
    with pytest.raises(JobCancelled):
        JobContext(job).check_cancelled()


# --------------------------------------------------------------------- training job
def test_split_users_is_seeded_disjoint_and_complete():
    data = tiny_data(n_users=50)
    tr, va = split_users(data, seed=3)
    tr2, va2 = split_users(data, seed=3)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert len(va) == 5 and len(np.intersect1d(tr, va)) == 0
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(50))
    assert not np.array_equal(va, split_users(data, seed=4)[1])
    with pytest.raises(ValueError, match="at least 2 users"):
        split_users(tiny_data(n_users=1), seed=0)


def test_training_job_runs_to_done_with_histories(no_thread_crash):
    job, made = fake_job(FakeConfig(steps=6, eval_every=2), split_seed=5)
    snap0 = job.snapshot()
    assert snap0.status == "queued" and snap0.total == 6 and snap0.device == "cpu"
    snap = job.start().wait(WAIT)
    assert snap.status == "done", snap.error
    assert job.result is made[0] and job.result.fitted_
    assert snap.step == 6 and snap.fraction == 1.0
    assert snap.train_steps == (1, 2, 3, 4, 5, 6)
    assert snap.train_loss == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 6])
    assert [s for s, _ in snap.val_mae] == [2, 4, 6]
    assert snap.best_val_mae == pytest.approx(1 + 1 / 6)
    assert "best validation MAE 1.1667" in snap.message
    # The learner got the seeded split made by the job.
    _, train, val = made[0].fit_args
    exp_train, exp_val = split_users(job.data, 5)
    assert np.array_equal(train, exp_train) and np.array_equal(val, exp_val)


def test_training_job_early_stop_is_done_with_a_message(no_thread_crash):
    snap = fake_job(FakeConfig(steps=10, early_stop_at=4))[0].start().wait(WAIT)
    assert snap.status == "done" and snap.step == 4 and snap.total == 10
    assert snap.fraction == 1.0
    assert snap.message == "done; early stop at step 4 of 10; best validation MAE 1.2500"


def test_training_job_uses_given_users():
    data = tiny_data(n_users=20)
    job, made = fake_job(FakeConfig(steps=2), data, val_users=np.array([3, 7]))
    job.start().wait(WAIT)
    _, train, val = made[0].fit_args
    assert list(val) == [3, 7] and len(train) == 18 and 3 not in train and 7 not in train
    job, made = fake_job(FakeConfig(steps=2), data, train_users=np.arange(10))
    job.start().wait(WAIT)
    assert list(made[0].fit_args[1]) == list(range(10)) and made[0].fit_args[2] is None


@pytest.mark.parametrize("honour_stop", [True, False])
def test_cancel_takes_effect_within_one_meta_step(no_thread_crash, honour_stop):
    gate = threading.Semaphore(0)
    job, _ = fake_job(FakeConfig(steps=100, honour_stop=honour_stop), gate=gate)
    job.start()
    gate.release(3)
    wait_for_step(job, 3)
    job.cancel()
    gate.release(100)  # let the learner run freely: only the cancel may stop it
    snap = job.wait(WAIT)
    assert snap.status == "cancelled" and snap.message == "cancelled"
    # The step in flight when cancel() came may finish; no further step starts.
    assert snap.step <= 4
    assert job.result is None and not job.is_active


def test_exception_in_learner_fails_the_job(no_thread_crash):
    job = fake_job(FakeConfig(steps=5, fail_at=3))[0]
    snap = job.start().wait(WAIT)
    assert snap.status == "failed"
    assert snap.error == "RuntimeError: boom in the model"
    assert "Traceback" in snap.details and "boom in the model" in snap.details
    assert snap.step == 2  # progress up to the failure is kept
    assert isinstance(job.exception, RuntimeError)
    assert snap.train_steps == (1, 2)


def test_the_device_shown_is_the_declared_one(no_thread_crash):
    """A learner's device is shown when its capabilities declare one, never probed from its
    attributes: one without a declared device keeps the config's label."""

    class Undeclared(FakeLearner):
        capabilities = Capabilities(device=False)

        def __init__(self, config):
            super().__init__(config)
            self.device_ = "elsewhere"

    job = TrainingJob(tiny_data(), FakeConfig(steps=2), learner_factory=Undeclared)
    snap = job.start().wait(WAIT)
    assert snap.status == "done" and snap.device == "cpu"
    declared, _ = fake_job(FakeConfig(steps=2))
    assert declared.start().wait(WAIT).device == "cpu"  # FakeLearner's own device_

    class Moved(FakeLearner):
        def __init__(self, config):
            super().__init__(config)
            self.device_ = "elsewhere"

    moved = TrainingJob(tiny_data(), FakeConfig(steps=2), learner_factory=Moved)
    assert moved.start().wait(WAIT).device == "elsewhere"


def test_nan_loss_fails_the_job_with_readable_message(no_thread_crash):
    job = fake_job(FakeConfig(steps=5, nan_at=2))[0]
    snap = job.start().wait(WAIT)
    assert snap.status == "failed" and job.result is None
    assert snap.error == "training diverged: non-finite meta-train loss (nan) at step 2"


def test_learner_construction_failure_fails_the_job(no_thread_crash):
    def factory(cfg):
        raise ValueError("embedding_dim must be positive, got 0")

    job = TrainingJob(tiny_data(), FakeConfig(), learner_factory=factory)
    snap = job.start().wait(WAIT)
    assert snap.status == "failed" and snap.error == "embedding_dim must be positive, got 0"


def test_snapshots_are_consistent_while_running(no_thread_crash):
    """Readers polling from two threads always see internally consistent state."""
    job, _ = fake_job(FakeConfig(steps=3000, eval_every=7))
    problems: list[str] = []

    def poll() -> None:
        last_step, last_len, order = 0, 0, ["queued", "running", "done"]
        last_status = 0
        while True:
            s = job.snapshot()
            if len(s.train_loss) != len(s.train_steps):
                problems.append("loss/steps length differ")
            if list(s.train_steps) != list(range(1, len(s.train_steps) + 1)):
                problems.append("train steps not 1..n")
            if s.step < last_step or len(s.train_loss) < last_len:
                problems.append("went backwards")
            if s.val_mae and s.val_mae[-1][0] > s.step:
                problems.append("val point ahead of step")
            if s.total and s.status == "running" and s.fraction != s.step / s.total:
                problems.append("fraction != step/total")
            idx = order.index(s.status)
            if idx < last_status:
                problems.append(f"status went back to {s.status}")
            last_step, last_len, last_status = s.step, len(s.train_loss), idx
            if s.finished:
                return

    readers = [threading.Thread(target=poll) for _ in range(2)]
    job.start()
    for r in readers:
        r.start()
    poll()
    for r in readers:
        r.join(WAIT)
    assert problems == []
    final = job.wait(WAIT)
    assert final.status == "done" and len(final.train_loss) == 3000 and final.step == 3000


def test_two_jobs_run_at_once_independently(no_thread_crash):
    gate_a, gate_b = threading.Semaphore(0), threading.Semaphore(0)
    a, _ = fake_job(FakeConfig(steps=50, eval_every=5), gate=gate_a)
    b, _ = fake_job(FakeConfig(steps=8, eval_every=4), gate=gate_b)
    pool = JobPool(2)  # two places: both run at once (the default pool may have one)
    a.start(pool)
    b.start(pool)
    gate_a.release(2)
    gate_b.release(3)
    wait_for_step(a, 2)
    wait_for_step(b, 3)
    assert a.is_active and b.is_active
    assert (a.snapshot().step, b.snapshot().step) == (2, 3)  # both blocked mid-run
    a.cancel()
    gate_a.release(50)
    assert a.wait(WAIT).status == "cancelled"
    assert b.is_active and b.snapshot().status == "running"  # unaffected by a's cancel
    gate_b.release(10)
    sb = b.wait(WAIT)
    assert sb.status == "done" and sb.step == 8 and [s for s, _ in sb.val_mae] == [4, 8]
    sa = a.snapshot()
    assert sa.job_id != sb.job_id and sa.step <= 3 and sa.total == 50


def test_training_threads_are_daemons():
    gate = threading.Semaphore(0)
    job, _ = fake_job(FakeConfig(steps=2), gate=gate)
    job.start()
    assert job._thread is not None and job._thread.daemon
    gate.release(2)
    assert job.wait(WAIT).status == "done"


# ------------------------------------------------------------------- evaluation job
def test_evaluation_job_with_fake_runner(no_thread_crash):
    calls = []

    def runner(data, cfg, *, progress, should_stop):
        calls.append(cfg)
        for i in range(1, 5):
            assert not should_stop()
            progress(i / 4, f"fold {i}/4")
        return {"rows": [{"method": "x", "mae": 0.8}]}

    job = EvaluationJob(tiny_data(), {"methods": ("x",)}, runner=runner)
    snap = job.start().wait(WAIT)
    assert snap.status == "done" and snap.fraction == 1.0 and snap.message == "fold 4/4"
    assert job.result == {"rows": [{"method": "x", "mae": 0.8}]}
    assert calls == [{"methods": ("x",)}]


def test_evaluation_job_cancel_and_failure(no_thread_crash):
    gate = threading.Semaphore(0)

    def runner(data, cfg, *, progress, should_stop):
        for i in range(1, 101):
            assert gate.acquire(timeout=WAIT)
            progress(i / 100, f"unit {i}")
        return {}

    job = EvaluationJob(tiny_data(), None, runner=runner).start()
    gate.release(2)
    for _ in range(200_000):
        if job.snapshot().fraction >= 0.02:
            break
        threading.Event().wait(0.001)
    job.cancel()
    gate.release(200)
    snap = job.wait(WAIT)
    assert snap.status == "cancelled" and snap.fraction <= 0.03 and job.result is None

    def bad_runner(data, cfg, *, progress, should_stop):
        raise ValueError("unknown method 'nope'")

    snap = EvaluationJob(tiny_data(), None, runner=bad_runner).start().wait(WAIT)
    assert snap.status == "failed" and snap.error == "unknown method 'nope'"


def test_evaluation_cancelled_exception_maps_to_cancelled(no_thread_crash):
    evaluate = pytest.importorskip("metarec_core.evaluation.runner")

    def runner(data, cfg, *, progress, should_stop):
        raise evaluate.EvaluationCancelled("stopped")

    snap = EvaluationJob(tiny_data(), None, runner=runner).start().wait(WAIT)
    assert snap.status == "cancelled" and snap.error is None


# ---------------------------------------------------------------- real learner / evaluation
def real_config(**overrides):
    learners = pytest.importorskip("metarec_core.methods.meta")
    base = {"steps": 4, "eval_every": 2, "meta_batch": 8, "device": "cpu", "warm_start": False}
    return learners.make_learner("fomaml", seed=0, **{**base, **overrides}).config


def test_real_training_job_runs_to_done(no_thread_crash):
    data = tiny_data(n_users=40, n_items=25, per_user=16)
    job = TrainingJob(data, real_config(), split_seed=1).start()
    snap = job.wait(WAIT)
    assert snap.status == "done", snap.error
    assert snap.device == "cpu" and snap.step == 4 and snap.fraction == 1.0
    assert snap.train_steps == (1, 2, 3, 4) and all(np.isfinite(snap.train_loss))
    assert [s for s, _ in snap.val_mae] == [2, 4] and snap.best_val_mae is not None
    learner = job.result
    assert learner.fitted_ and len(learner.history_) == 4
    scores = learner.adapt(np.array([0, 1]), np.array([5.0, 1.0], dtype=np.float32)).scores
    assert scores.shape == (25,) and np.isfinite(scores).all()


@pytest.mark.parametrize("phase", ["meta", "pretrain"])
def test_real_training_job_cancel(no_thread_crash, phase):
    learners = pytest.importorskip("metarec_core.methods.meta")
    data = tiny_data(n_users=40, n_items=25, per_user=16)
    steps_seen: list[tuple[str, int]] = []
    cfg = real_config(steps=10_000, eval_every=1000, pretrain=phase == "pretrain")

    class CancelAtStep3(learners.learner_class(cfg)):
        """The real learner; its progress callback cancels the job at step 3 of `phase`."""

        def fit(self, *a, callback, **k):
            def cb(p):
                steps_seen.append((p.phase, p.step))
                if (p.phase, p.step) == (phase, 3):
                    job.cancel()
                callback(p)

            return super().fit(*a, callback=cb, **k)

    job = TrainingJob(data, cfg, learner_factory=CancelAtStep3)
    snap = job.start().wait(WAIT)
    assert snap.status == "cancelled" and job.result is None
    # no step of either phase ran after the cancel
    assert steps_seen == [(phase, 1), (phase, 2), (phase, 3)]
    if phase == "meta":
        assert snap.step == 3
    else:  # pretraining steps are reported as a message, not as meta-steps
        assert snap.step == 0 and snap.train_steps == ()


def test_real_training_divergence_fails_readably(no_thread_crash):
    data = tiny_data(n_users=40, n_items=25, per_user=16)
    cfg = real_config(steps=50, outer_lr=1e30, item_lr=1e30, grad_clip=0.0, warm_start=False)
    snap = TrainingJob(data, cfg).start().wait(WAIT)
    assert snap.status == "failed"
    assert snap.error.startswith("training diverged: ") and "Traceback" not in snap.error
    assert "FloatingPointError" in snap.details


def test_real_evaluation_job(no_thread_crash):
    evaluate = pytest.importorskip("metarec_core.evaluation.runner")
    data = tiny_data(n_users=40, n_items=25, per_user=16)
    cfg = evaluate.EvalConfig(methods=("global_mean", "item_mean"), support=(1, 3), folds=2)
    job = EvaluationJob(data, cfg).start()
    snap = job.wait(WAIT)
    assert snap.status == "done", snap.error
    assert snap.fraction == 1.0
    report = job.result.to_dict()
    assert {r["method"] for r in report["rows"]} == {"global_mean", "item_mean"}
    again = evaluate.run_evaluation(data, cfg).to_dict()

    def timeless(rep):
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in rep["rows"]]

    assert timeless(report) == timeless(again)  # same config, same numbers as a direct run


def test_real_evaluation_job_cancel(no_thread_crash):
    evaluate = pytest.importorskip("metarec_core.evaluation.runner")
    data = tiny_data(n_users=40, n_items=25, per_user=16)
    cfg = evaluate.EvalConfig(methods=("global_mean", "item_mean"), support=(1, 3), folds=2)
    job = EvaluationJob(data, cfg)
    job.cancel()  # cancelled before start: never runs
    job.start()
    assert job.wait(WAIT).status == "cancelled"
    calls = []

    def runner(data, cfg, *, progress, should_stop):
        def cancel_on_first(fraction, message):
            calls.append(fraction)
            job2.cancel()
            progress(fraction, message)

        return evaluate.run_evaluation(data, cfg, progress=cancel_on_first, should_stop=should_stop)

    job2 = EvaluationJob(data, cfg, runner=runner)
    snap = job2.start().wait(WAIT)
    assert snap.status == "cancelled" and len(calls) == 1 and job2.result is None


# --------------------------------------------------------------- ETA, cancelling, phases
class FakeClock:
    """Stands in for the `time` module inside metarec_core.jobs: the test sets the time."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


def test_eta_does_not_run_down_to_zero_while_work_remains(no_thread_crash, monkeypatch):
    import metarec_core.jobs as jobs_module

    clock = FakeClock()
    monkeypatch.setattr(jobs_module, "time", clock)
    gate = threading.Semaphore(0)
    release = threading.Event()

    def work(ctx: JobContext) -> None:
        for f in (0.1, 0.2):
            assert gate.acquire(timeout=WAIT)
            ctx.progress(fraction=f, message=f"{f}")
        assert release.wait(WAIT)  # a long unit of work without reports

    job = BackgroundJob(work).start()
    clock.now = 10.0
    gate.release()
    wait_for = wait_for_message(job, "0.1")
    clock.now = 20.0
    gate.release()
    wait_for = wait_for_message(job, "0.2")
    assert wait_for.eta == pytest.approx(0.8 * 10 / 0.1)  # 10 s per 0.1 at the last report
    clock.now = 1000.0  # long past that estimate, 80% still to do
    eta = job.snapshot().eta
    assert eta is not None and eta == pytest.approx(0.8 * 990 / 0.1)  # the mean rate since
    release.set()
    assert job.wait(WAIT).status == "done"


def wait_for_message(job: BackgroundJob, message: str) -> JobSnapshot:
    """Block (without sleeping blindly) until the job's message is `message`."""
    done = threading.Event()
    for _ in range(200_000):
        snap = job.snapshot()
        if snap.message == message or snap.finished:
            break
        done.wait(0.001)
    assert snap.message == message, f"job never said {message!r} ({snap.status}: {snap.error})"
    return snap


def test_cancel_is_acknowledged_in_the_snapshot_at_once(no_thread_crash):
    gate = threading.Semaphore(0)
    job, _ = fake_job(FakeConfig(steps=100), gate=gate)
    job.start()
    gate.release(2)
    wait_for_step(job, 2)
    assert not job.snapshot().cancelling
    job.cancel()
    snap = job.snapshot()  # the worker is still inside step 3, waiting for the gate
    assert snap.status == "running" and snap.cancelling
    gate.release(100)
    snap = job.wait(WAIT)
    assert snap.status == "cancelled" and not snap.cancelling


def test_training_job_reports_each_phase_with_its_own_progress(no_thread_crash):
    learners = pytest.importorskip("metarec_core.methods.meta")
    data = tiny_data(n_users=40, n_items=25, per_user=16)
    seen: list[tuple[str, JobSnapshot]] = []
    cfg = real_config(steps=6, eval_every=3, warm_start=True, pretrain=True)

    class Watched(learners.learner_class(cfg)):
        """The real learner; the job's snapshot is taken after every report."""

        def fit(self, *a, callback, **k):
            def cb(p):
                callback(p)
                seen.append((p.phase, job.snapshot()))

            return super().fit(*a, callback=cb, **k)

    assert cfg.phases == ("warm_start", "pretrain", "meta")
    job = TrainingJob(data, cfg, learner_factory=Watched)
    end = job.start().wait(WAIT)
    assert end.status == "done"
    # then the comparison with the baselines, the last phase
    assert end.phase.describe() == "Comparing with the plain baselines (phase 4 of 4): 100%"
    by_phase = {name: [s for p, s in seen if p == name] for name in cfg.phases}
    assert [p for p, _ in seen] == sorted((p for p, _ in seen), key=cfg.phases.index)
    warm = by_phase["warm_start"]
    assert (
        warm
        and warm[-1].phase.describe() == "Warm start (matrix factorisation) (phase 1 of 4): 100%"
    )
    pre = by_phase["pretrain"]
    assert [s.phase.describe() for s in pre[:2]] == [
        "Pre-training (phase 2 of 4): step 1/6",
        "Pre-training (phase 2 of 4): step 2/6",
    ]
    # no meta-step yet: no curves, and the bar is the phase's own
    assert all(s.step == 0 and s.train_loss == () for s in warm + pre)
    assert pre[1].fraction == pytest.approx(2 / 6)
    meta = by_phase["meta"]
    assert meta[0].phase.describe() == "Meta-training (phase 3 of 4): step 1/6"
    assert meta[0].fraction == pytest.approx(1 / 6) and meta[0].train_steps == (1,)


def test_a_diverged_training_is_done_but_flagged_worse_than_the_baselines(no_thread_crash):
    pytest.importorskip("metarec_core.methods.meta")
    from helpers import TINY_LEARNER, tiny_dataset

    data = tiny_dataset()
    # what the Train page allows: outer lr 1.0, inner lr 10 (here it ends done, not NaN)
    tiny = {**TINY_LEARNER, "warm_start": True, "pretrain": False, "algorithm": "metasgd"}
    cfg = real_config(**tiny, outer_lr=1.0, inner_lr=10.0)
    job = TrainingJob(data, cfg).start()
    snap = job.wait(WAIT)
    assert snap.status == "done", snap.error
    check = snap.check
    assert check is not None and check is job.baseline_check and check.worse
    name = check.winner
    assert name in check.baselines and check.worse_than(name)
    assert check.mean_mae(name) < check.mean_mae("model")
    assert check.users == len(job.val_users) and check.ks == (1, 3, 5, 10)
    assert f"{display_name(name)} is better than this model at k = " in snap.message
    # a model that is the best fold-in baseline itself is never flagged (whatever the noise)
    from metarec_core.methods.baselines import MFFoldInLevels

    class FoldIn(MFFoldInLevels):
        def fit(self, *a, callback=None, **k):
            return super().fit(*a, **k)

    sane = TrainingJob(data, real_config(**tiny), learner_factory=lambda c: FoldIn(seed=0))
    snap = sane.start().wait(WAIT)
    assert snap.status == "done" and snap.check is not None and not snap.check.worse
    assert [d.diff for d in snap.check.diffs if d.baseline == "mf_foldin_levels"] == [0] * 4
    assert "better than this model" not in snap.message


# ----------------------------------------------------- cancel deadlines in every phase
CANCEL_DEADLINE = 5.0  # seconds from cancel() to the job's end; the phases take far longer


@pytest.fixture(scope="module")
def big_data() -> RatingsDataset:
    return make_big_data()


def make_big_data() -> RatingsDataset:
    """500,000 ratings of 10,000 users: the ALS warm start alone takes many seconds."""
    rng = np.random.default_rng(0)
    n_users, n_items, per_user = 10_000, 3_000, 50
    start = rng.integers(n_items, size=n_users)
    # distinct items per user: start + 37 j (mod 3000), 37 coprime with 3000
    item = ((start[:, None] + 37 * np.arange(per_user)) % n_items).ravel()
    user = np.repeat(np.arange(n_users), per_user)
    taste, quality = rng.normal(size=n_users), rng.normal(size=n_items)
    noise = rng.normal(scale=0.5, size=len(user))
    rating = np.clip(np.round(3 + taste[user] * quality[item] + noise), 1, 5)
    return RatingsDataset(
        user=user.astype(np.int64),
        item=item.astype(np.int64),
        rating=rating.astype(np.float32),
        timestamp=None,
        user_ids=np.asarray([f"u{u}" for u in range(n_users)]),
        item_ids=np.asarray([f"i{i}" for i in range(n_items)]),
        scale=RatingScale(1.0, 5.0, 1.0),
        source="big",
    )


def cancel_when(job: BackgroundJob, reached: threading.Event) -> float:
    """Cancel once `reached` is set; the seconds from cancel() to the job's end."""
    assert reached.wait(WAIT), "the job never reached the phase"
    assert job.is_active
    import time

    t0 = time.monotonic()
    job.cancel()
    snap = job.wait(WAIT)
    took = time.monotonic() - t0
    assert snap.status == "cancelled" and job.result is None, snap.error
    return took


def spy(monkeypatch, owner, name: str, calls: int = 1) -> threading.Event:
    """An event set at the `calls`-th call of `owner.name` (the method itself still runs)."""
    reached = threading.Event()
    original = getattr(owner, name)
    count = [0]

    def wrapper(*a, **k):
        count[0] += 1
        if count[0] >= calls:
            reached.set()
        return original(*a, **k)

    monkeypatch.setattr(owner, name, wrapper)
    return reached


def _group_ridge():
    return pytest.importorskip("metarec_core.methods.baselines")._GroupRidge


def _meta_learner():
    return pytest.importorskip("metarec_core.methods.meta").MetaLearner


def _mf_foldin_evaluation(data: RatingsDataset) -> EvaluationJob:
    evaluate = pytest.importorskip("metarec_core.evaluation.runner")
    cfg = evaluate.EvalConfig(methods=("mf_foldin",), support=(1, 3), folds=2)
    return EvaluationJob(data, cfg)


@pytest.mark.parametrize(
    ("owner", "method", "calls", "make_job"),
    [
        pytest.param(
            _group_ridge,  # inside the ALS
            "solve",
            1,
            lambda d: TrainingJob(
                d, real_config(steps=300, warm_start=True, pretrain=True, factors=20)
            ),
            id="during_the_als_warm_start",
        ),
        pytest.param(
            # inside the first validation of the pre-training phase, over many validation
            # episodes (its third batch: the first one also pays torch's one-off warm-up)
            _meta_learner,
            "_query_z",
            3,
            lambda d: TrainingJob(
                d, real_config(steps=300, warm_start=False, pretrain=True, val_repeats=60)
            ),
            id="while_pretraining_validates",
        ),
        pytest.param(
            _group_ridge,  # mf_foldin's ALS, fold 1
            "solve",
            1,
            _mf_foldin_evaluation,
            id="inside_an_evaluation_fit",
        ),
    ],
)
def test_cancel_takes_effect_at_once(
    no_thread_crash, monkeypatch, big_data, owner, method, calls, make_job
):
    reached = spy(monkeypatch, owner(), method, calls=calls)
    job = make_job(big_data).start()
    assert cancel_when(job, reached) < CANCEL_DEADLINE
