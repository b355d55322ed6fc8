"""Worker processes for background jobs (a `jobs.JobPool` with ``workers="process"``).

Why a process: a training thread in the app's server holds the interpreter lock between its
torch ops, and the page scripts of every session ran on what it left over (py-spy under
bench/load.py at 16 sessions: about a quarter of the server's samples for the scripts). A job in a
worker process has an interpreter of its own; the server keeps one relay thread per running job,
asleep on the worker's socket but for the batched progress it applies.

A worker is ``python -m metarec_core.job_worker FD``, started with `subprocess` (fork and exec at
once: nothing of the server's threads is forked, and unlike multiprocessing's spawn nothing
re-runs the server's ``__main__``, which Streamlit replaces by the page script it is running). It
is long-lived: the pool starts one when a job needs it and keeps it for the next job. Messages
are tuples pickled here with the standard pickler (tensors travel by value, never as
shared-memory handles) over a socket pair:

- server -> worker: ``("run", job_id, job class, constructor kwargs, registered methods)``
  (`registry.registered()`: the worker adopts them, so that a method registered in the server
  is found there too; their classes are imported there by module and qualified name),
  ``("cancel", job_id)``;
- worker -> server: ``("ready", pid)``, ``("update", [changes])`` (a job's `_update` calls,
  batched every `FLUSH_S`), ``("end", job_id, status, outcome)``.

One job at a time per worker. A worker exits when the server's end of its socket closes (the
server stopped, or dropped the worker): it never outlives the app.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from metarec_core.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    BackgroundJob,
    JobCancelled,
    RemoteFailure,
    WorkerError,
    describe_error,
)
from metarec_core.methods import registry

# How often a worker sends a running job's progress: each batch is one wake-up of the server's
# relay thread (the interpreter lock the page scripts need), however many steps it holds.
FLUSH_S = 0.2
# A worker that has not stopped its job this long after the cancel is killed (and replaced at
# the next job): a cancel takes effect within about this time in every phase, whatever the code.
CANCEL_GRACE_S = 2.0
# How often the relay thread looks at the cancel flag while the worker is silent.
POLL_S = 0.1
_ROOT = str(Path(__file__).resolve().parents[1])  # the folder holding metarec_core


def _dumps(msg: tuple) -> bytes:
    return pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)


class WorkerProcess:
    """The server's handle on one worker process (used by one relay thread at a time)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        path = os.environ.get("PYTHONPATH", "")
        env = {**os.environ, "PYTHONPATH": _ROOT + (os.pathsep + path if path else "")}
        with theirs:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "metarec_core.job_worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        self.conn = Connection(ours.detach())
        self.ready = False  # its "ready" arrived: torch imported, jobs start at once
        self._dropped = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return not self._dropped and self.proc.poll() is None

    def send(self, msg: tuple) -> None:
        self.conn.send_bytes(_dumps(msg))

    def recv(self, timeout: float) -> tuple | None:
        """The next message, or None after `timeout` s; EOFError/OSError if the worker is gone."""
        if not self.conn.poll(timeout):
            return None
        return pickle.loads(self.conn.recv_bytes())  # our own child's output: trusted

    def ended(self) -> str:
        """Why the worker stopped, for people (waits up to 2 s for its exit status)."""
        try:
            code = self.proc.wait(2)
        except subprocess.TimeoutExpired:
            return "the job's worker process stopped answering"
        if code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exit code {code}"
        return f"the job's worker process stopped unexpectedly ({how}); the job did not finish"

    def kill(self) -> None:
        """Stop it now (a job that ignores its cancel, or a pool closing)."""
        self._dropped = True
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self.conn.close()

    def close(self) -> None:
        """Let it go: closing our end of the socket makes an idle worker exit."""
        self._dropped = True
        self.conn.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()


def run_in_worker(worker: WorkerProcess, job: BackgroundJob, spec: dict[str, Any]) -> Any:
    """Run `job` (rebuilt from `spec` there) in `worker` and relay its progress into `job` until
    it ends; return its result. Raises JobCancelled, RemoteFailure (the job failed there) or
    WorkerError (the worker died). A cancel is passed on at once; a job still running
    `CANCEL_GRACE_S` later is stopped by killing its worker."""
    if not worker.ready:
        job._update(message="starting a worker process")
    try:
        worker.send(("run", job.id, type(job), spec, registry.registered()))
    except OSError:
        raise WorkerError(worker.ended()) from None
    cancel_sent: float | None = None
    while True:
        if cancel_sent is None and job._cancel.is_set():
            with contextlib.suppress(OSError):  # a dead worker shows at the next recv
                worker.send(("cancel", job.id))
            cancel_sent = time.monotonic()
        if cancel_sent is not None and time.monotonic() - cancel_sent > CANCEL_GRACE_S:
            worker.kill()
            raise JobCancelled
        try:
            msg = worker.recv(POLL_S)
        except (EOFError, OSError):
            if cancel_sent is not None:
                raise JobCancelled from None
            raise WorkerError(worker.ended()) from None
        if msg is None:
            continue
        if msg[0] == "ready":
            worker.ready = True
        elif msg[0] == "update":
            for change in msg[1]:
                job._update(**change)
        elif msg[0] == "end":
            _, _, status, outcome = msg
            if status == DONE:
                with job._lock:
                    job._check = outcome["check"]
                return job._unpack_result(outcome["result"])
            if status == CANCELLED:
                raise JobCancelled
            raise RemoteFailure(outcome["error"], outcome["details"], _exception(outcome))


def _exception(outcome: dict[str, Any]) -> BaseException:
    """The worker's exception object where it pickles both ways, else a WorkerError with its
    text (the page and the CLI show `error`; `exception` is for callers that tell kinds apart)."""
    blob = outcome.get("exception")
    if blob is not None:
        with contextlib.suppress(Exception):
            return pickle.loads(blob)
    return WorkerError(outcome["error"] or "the job failed in its worker process")


# ------------------------------------------------------------------------- the worker's side
class _Outbox:
    """A job's progress changes, sent in one message every `FLUSH_S` (and at the end)."""

    def __init__(self, send) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._changes: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metarec-outbox", daemon=True)
        self._thread.start()

    def add(self, change: dict[str, Any]) -> None:
        with self._lock:
            self._changes.append(change)

    def flush(self) -> None:
        with self._lock:
            changes, self._changes = self._changes, []
        if changes:
            self._send(("update", changes))

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_S):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()


def _run_job(job: BackgroundJob, send) -> None:
    """Run `job` here (in this thread, as the thread mode would) and send its end."""
    outbox = _Outbox(send)
    job._on_update = outbox.add
    try:
        job._main()
    finally:
        outbox.close()
    with job._lock:
        status, result, error, details = job._status, job._result, job._error, job._details
        exc, check = job._exception, job._check
    packed = None
    if status == DONE:
        try:
            packed = job._pack_result(result)
        except Exception as e:  # noqa: BLE001 - a result that cannot travel fails the job
            status, error, details, exc = FAILED, describe_error(e), traceback.format_exc(), e
    blob = None
    if exc is not None:
        with contextlib.suppress(Exception):
            blob = pickle.dumps(exc)
    outcome = {"result": packed, "check": check, "error": error, "details": details}
    send(("end", job.id, status, {**outcome, "exception": blob}))


def main(argv: list[str] | None = None) -> int:
    """The worker process: ``python -m metarec_core.job_worker FD`` (FD: its socket)."""
    args = sys.argv[1:] if argv is None else argv
    conn = Connection(int(args[0]))
    lock = threading.Lock()

    def send(msg: tuple) -> None:
        data = _dumps(msg)
        with lock, contextlib.suppress(OSError):  # the server went away: exit on the next recv
            conn.send_bytes(data)

    from metarec_core.runtime import limit_torch_threads

    limit_torch_threads()  # imports torch: "ready" means a job starts at once
    send(("ready", os.getpid()))
    jobs: dict[str, BackgroundJob] = {}
    while True:
        try:
            msg = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            os._exit(0)  # the server is gone (or dropped us): a running job goes with us
        if msg[0] == "run":
            _, job_id, cls, kwargs, methods = msg
            try:
                registry.adopt(methods)
                job = cls(**kwargs)
            except Exception as e:  # noqa: BLE001 - reported like a failure in the job
                outcome = {"result": None, "check": None, "exception": None}
                outcome |= {"error": describe_error(e), "details": traceback.format_exc()}
                send(("end", job_id, FAILED, outcome))
                continue
            job.id = job_id
            jobs = {job_id: job}  # one job at a time: the previous one has ended
            # A job thread as in the thread mode (its own nice value, one torch thread); this
            # thread keeps reading, so a cancel reaches the job at once.
            threading.Thread(
                target=_run_job, args=(job, send), name=f"metarec-{job.kind}", daemon=True
            ).start()
        elif msg[0] == "cancel" and msg[1] in jobs:
            jobs[msg[1]]._cancel.set()


if __name__ == "__main__":
    raise SystemExit(main())
