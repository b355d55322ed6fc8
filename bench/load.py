"""Load test: N concurrent browser sessions against one `streamlit run app.py`, loopback only.

    python bench/load.py --sessions 1 8 16 --out bench/out/load

For each N, a fresh server is started on a free 127.0.0.1 port (the shipped sample and its
model, the default job pool) and N headless Chromium tabs (one browser, one context per session)
each do what a visitor would:

1. open the app (page load),
2. upload its own ratings file (300 users x 200 items, 9,000 ratings, from
   `metarec_core.data.synthetic`, one seed per session) and wait for "Loaded …",
3. start a training on it (the metasgd preset with `--steps` meta-steps) and watch the Train
   page until it is done, noting the place in line it showed while it waited,
4. rate `--ratings` items in the cold-start playground with the trained model,
5. start a long training (100,000 steps) and close the tab with it running or waiting.

Every action's latency is timed from the click (or upload) to the end of the server's script
run it caused (the `script_finished` message on the session's websocket, as in
tests/e2e/conftest.py), plus the check that the page shows the expected result. The server's
RSS, CPU time and thread count are read from /proc (psutil is not needed) every 0.5 s: before
the sessions, at the peak during them, 10 s after the tabs closed (jobs cancelled: the CPU the
server used in those 10 s), and after the disconnected-session TTL (`--ttl`, passed to the
server as server.disconnectedSessionTTL) once one more visit has let Streamlit drop the expired
sessions (memory returned).

Bounded: every wait has a timeout, each N has a deadline (`--deadline` s) after which the
sessions still busy are closed, and the script stops its server and browser by itself. Writes
load.json (every action) and load.md (the tables) into `--out`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from google.protobuf.message import DecodeError  # noqa: E402
from playwright.async_api import Page, async_playwright, expect  # noqa: E402
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

from bench.chromium import APP_LOADED, CHROMIUM, SCRIPT_IDLE, launch_args  # noqa: E402
from metarec_core.data.synthetic import _csv_bytes, generate  # noqa: E402
from metarec_core.runtime import DEFAULT_JOB_WORKERS  # noqa: E402

RUN_DONE = (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR)
ACTION_TIMEOUT_S = 120.0  # one action on a saturated 2-core machine; never a pass mark
HEALTH_TIMEOUT_S = 120.0
LONG_STEPS = 100_000
PLACE_RE = re.compile(r"waiting: (\d+)(?:st|nd|rd|th) in line")
KINDS = ("page load", "upload", "page switch", "start training", "rating")


# ---------------------------------------------------------------------------------- server
def nice_clients(server_pid: int, nice: int) -> None:
    """Lower the priority of this script's other descendants (Playwright's driver, Chromium)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
    todo = list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        if pid == server_pid:
            continue
        todo += children.get(pid, [])
        with contextlib.suppress(OSError):
            if os.getpriority(os.PRIO_PROCESS, pid) < nice:
                os.setpriority(os.PRIO_PROCESS, pid, nice)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_pids(pid: int) -> list[int]:
    """The direct children of `pid` (the server's job worker processes)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def proc_stats(pid: int) -> tuple[float, float, int]:
    """(RSS MiB, CPU seconds, threads) of process `pid`, from /proc."""
    rss, threads = 0.0, 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, cpu, threads


class Server:
    """`streamlit run app.py` on a free loopback port, its RSS sampled every 0.5 s."""

    def __init__(self, ttl: int, env: dict[str, str]) -> None:
        self.ttl, self.env = ttl, env
        # closed in stop(): the log outlives start(), so no `with` here
        self.log = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.peak_rss = 0.0
        self.peak_workers_rss = 0.0  # the job worker processes together
        self._sampling = False

    def start(self) -> None:
        port = free_port()
        cmd = [
            sys.executable, "-m", "streamlit", "run", "app.py",
            "--server.headless", "true",
            "--server.address", "127.0.0.1",
            "--server.port", str(port),
            "--server.disconnectedSessionTTL", str(self.ttl),
            "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none",
            "--server.runOnSave", "false",
            "--global.developmentMode", "false",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        # A file, not a pipe: a full pipe would block the server.
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, env=env
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.3)  # polling the server's start, not synchronisation
        self.stop()
        raise RuntimeError(f"the server did not start on {self.url}:\n{self.log_text()[-4000:]}")

    def stats(self) -> tuple[float, float, int]:
        assert self.proc is not None
        return proc_stats(self.proc.pid)

    def worker_stats(self) -> tuple[float, float]:
        """(RSS MiB, CPU seconds) of the server's worker processes together (0 in thread mode)."""
        assert self.proc is not None
        rss = cpu = 0.0
        for pid in child_pids(self.proc.pid):
            with contextlib.suppress(OSError):
                r, c, _ = proc_stats(pid)
                rss, cpu = rss + r, cpu + c
        return rss, cpu

    async def sample(self, client_nice: int) -> None:
        """Track the peak RSS until `stop_sampling()`; keep the browsers at `client_nice`."""
        self._sampling = True
        while self._sampling:
            with contextlib.suppress(OSError):
                self.peak_rss = max(self.peak_rss, self.stats()[0])
                self.peak_workers_rss = max(self.peak_workers_rss, self.worker_stats()[0])
            if client_nice and self.proc is not None:
                nice_clients(self.proc.pid, client_nice)  # renderers start as pages open
            await asyncio.sleep(0.5)

    def stop_sampling(self) -> None:
        self._sampling = False

    def log_text(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


# --------------------------------------------------------------------------------- session
def decoded(payload: str | bytes, message: type) -> Any:
    """A websocket frame as the protobuf `message` (BackMsg, ForwardMsg); None if it is not."""
    if not isinstance(payload, bytes):
        return None
    try:
        return message.FromString(payload)
    except DecodeError:
        return None


@dataclass
class Action:
    session: int
    kind: str
    seconds: float
    ok: bool
    t: float  # seconds since the sessions started
    run_s: float | None = None  # until the script run ended (the rest: the page showing it)
    # The server's part: from the browser sending the rerun request (websocket frame) to the
    # script_finished frame arriving; the rest is the browser reacting to the click and drawing.
    server_s: float | None = None
    note: str = ""


@dataclass
class SessionResult:
    index: int
    uploaded: bool = False
    training: str = "not started"  # its final status as the page showed it
    places_seen: list[int] = field(default_factory=list)
    train_seconds: float | None = None  # start click -> "Training done"
    ratings_ok: int = 0
    left_job: bool = False  # a long training was running or waiting when the tab closed
    last_seen: str = ""  # the end of the Train page's text when it was last looked at
    error: str = ""


class Session:
    """One browser tab; counts the server's finished script runs on its websocket."""

    def __init__(self, index: int, page: Page, url: str, t0: float, log: list[Action]) -> None:
        self.index, self.page, self.url, self.t0, self.log = index, page, url, t0, log
        self.runs_done = 0
        self.finished_at: list[float] = []  # when each counted script_finished arrived
        self.requested_at: list[float] = []  # when each whole-script rerun request was sent
        self.result = SessionResult(index)
        page.on("websocket", self._on_websocket)

    def _on_websocket(self, ws) -> None:
        ws.on("framereceived", self._on_frame)
        ws.on("framesent", self._on_sent)

    def _on_sent(self, payload: str | bytes) -> None:
        msg = decoded(payload, BackMsg)
        # fragment reruns (the pages' polling) end as fragment runs, not counted here
        if (
            msg is not None
            and msg.WhichOneof("type") == "rerun_script"
            and not msg.rerun_script.fragment_id
        ):
            self.requested_at.append(time.monotonic())

    def server_part(self, start: float, before: int) -> float | None:
        """Seconds from the first rerun request sent after `start` to the end of the script run
        that ended the wait (the `before`-th counted one); None if not seen."""
        if len(self.finished_at) <= before:
            return None
        end = self.finished_at[before]
        sent = [t for t in self.requested_at if start <= t <= end]
        return end - sent[0] if sent else None

    def _on_frame(self, payload: str | bytes) -> None:
        msg = decoded(payload, ForwardMsg)
        if (
            msg is not None
            and msg.WhichOneof("type") == "script_finished"
            and msg.script_finished in RUN_DONE
        ):
            self.finished_at.append(time.monotonic())
            self.runs_done += 1

    def record(
        self,
        kind: str,
        start: float,
        ok: bool,
        note: str = "",
        run_s: float | None = None,
        before: int | None = None,
    ) -> float:
        seconds = time.monotonic() - start
        server_s = None if before is None else self.server_part(start, before)
        self.log.append(
            Action(self.index, kind, seconds, ok, start - self.t0, run_s, server_s, note)
        )
        return seconds

    async def wait_runs(self, before: int, timeout: float = ACTION_TIMEOUT_S) -> bool:
        """Until a whole script run has finished since `before` (False on timeout)."""
        deadline = time.monotonic() + timeout
        while self.runs_done <= before:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def idle(self, timeout: float = ACTION_TIMEOUT_S) -> None:
        await self.page.locator(APP_LOADED).wait_for(state="attached", timeout=timeout * 1000)
        await self.page.locator(SCRIPT_IDLE).wait_for(state="attached", timeout=timeout * 1000)

    async def act(self, kind: str, action, check=None) -> bool:
        """Do `action()`, time it until its script run ends, then `check()` what it shows."""
        before, start = self.runs_done, time.monotonic()
        await action()
        ok = await self.wait_runs(before)
        run_s = time.monotonic() - start
        note = "" if ok else "no script run finished"
        if ok and check is not None:
            try:
                await check()
            except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                ok, note = False, f"{type(e).__name__}: {str(e).splitlines()[0]}"
        self.record(kind, start, ok, note, run_s, before)
        with contextlib.suppress(Exception):
            await self.idle()
        return ok

    async def text(self) -> str:
        return await self.page.locator("[data-testid='stMain']").inner_text(timeout=30_000)

    async def see(self, pattern: str | re.Pattern, timeout: float = ACTION_TIMEOUT_S) -> None:
        loc = self.page.get_by_text(pattern if isinstance(pattern, re.Pattern) else pattern)
        await loc.first.wait_for(state="visible", timeout=timeout * 1000)

    # ------------------------------------------------------------------ the visitor's steps
    async def open(self) -> bool:
        start = time.monotonic()
        await self.page.goto(self.url, timeout=ACTION_TIMEOUT_S * 1000)
        ok = await self.wait_runs(0)
        run_s = time.monotonic() - start
        with contextlib.suppress(Exception):
            await self.idle()
        self.record("page load", start, ok, run_s=run_s, before=0)
        return ok

    async def goto(self, title: str) -> bool:
        """Switch page with the sidebar link; the link turns current once the server ran the
        new page (as in the e2e tests). A click that lands while the page redraws itself (a
        finished job's rerun) can be lost: it is clicked again, at most twice, and the time
        counts from the first click."""
        link = self.page.get_by_test_id("stSidebarNav").get_by_role("link", name=title)
        start, tries, ok = time.monotonic(), 0, False
        run_s, first = None, self.runs_done
        while not ok and tries < 3 and time.monotonic() - start < ACTION_TIMEOUT_S:
            tries += 1
            before = self.runs_done
            await link.click()
            ran = await self.wait_runs(before)
            run_s = run_s if run_s is not None else time.monotonic() - start
            try:
                await expect(link).to_have_attribute("aria-current", "page", timeout=15_000)
                ok = ran
            except AssertionError:
                pass
        note = "" if tries == 1 else f"clicked {tries} times"
        self.record("page switch", start, ok, note, run_s, first)
        with contextlib.suppress(Exception):
            await self.idle()
        return ok

    async def upload(self, path: Path) -> bool:
        page = self.page
        radio = page.get_by_test_id("stRadio").get_by_text("Upload a file", exact=True)
        await self.act("page switch", radio.click)
        widget = page.get_by_test_id("stFileUploader").filter(
            has=page.get_by_test_id("stWidgetLabel").get_by_text("Ratings file", exact=True)
        )
        await widget.wait_for(state="visible", timeout=ACTION_TIMEOUT_S * 1000)
        box = widget.locator("input[type=file]")
        ok = await self.act(
            "upload",
            lambda: box.set_input_files(path),
            lambda: self.see(re.compile(rf"Loaded {re.escape(path.name)}: 9,000 ratings")),
        )
        self.result.uploaded = ok
        return ok

    async def fill(self, label: str, value: int) -> None:
        box = self.page.get_by_test_id("stNumberInput").filter(
            has=self.page.get_by_test_id("stWidgetLabel").get_by_text(label, exact=True)
        )
        field = box.locator("input")
        await field.fill(str(value))
        await field.press("Tab")  # inside the form: no script run

    async def start_training(self, steps: int) -> bool:
        await self.fill("Training steps (max)", steps)
        await self.fill("Check every (steps)", min(steps, 10_000))
        button = self.page.get_by_role("button", name="Start training", exact=True)
        return await self.act("start training", button.click)

    async def watch_training(self, deadline: float) -> None:
        """Poll the Train page (it refreshes itself) until the training ends or `deadline`."""
        start = time.monotonic()
        res = self.result
        res.training = "started"
        while time.monotonic() < deadline:
            try:
                shown = await self.text()
            except Exception:  # noqa: BLE001 - the page is redrawing: look again
                shown = ""
            for place in map(int, PLACE_RE.findall(shown)):
                if not res.places_seen or res.places_seen[-1] != place:
                    res.places_seen.append(place)  # each change of place, in order
            res.last_seen = " ".join(shown.split())[-400:]
            if "Training done in" in shown:
                res.training, res.train_seconds = "done", time.monotonic() - start
                return
            for word in ("failed", "cancelled"):
                if f"Training {word}" in shown:
                    res.training = word
                    return
            if "running:" in shown or "step " in shown:
                res.training = "running"
            await asyncio.sleep(1.0)
        res.training += " (deadline)"

    async def rate(self, n: int) -> None:
        button = self.page.get_by_role("button", name="Rate this item", exact=True)
        await button.wait_for(state="visible", timeout=ACTION_TIMEOUT_S * 1000)
        for k in range(1, n + 1):
            pattern = re.compile(rf"^{k} ratings? so far")
            if await self.act("rating", button.click, lambda p=pattern: self.see(p)):
                self.result.ratings_ok += 1

    async def flow(self, data: Path, steps: int, ratings: int, deadline: float) -> None:
        if not await self.open():
            raise RuntimeError("the first page load did not finish")
        await self.goto("Data")  # the app opens on Home
        await self.upload(data)
        await self.goto("Train")
        if not await self.start_training(steps):
            raise RuntimeError("start training: no script run finished")
        await self.watch_training(deadline)
        if self.result.training == "done":
            await self.goto("Cold-start playground")
            await self.see(re.compile(r"^0 ratings so far"))
            await self.rate(ratings)

    async def leave_a_long_job(self) -> None:
        """Start a long training (it runs or waits when the tab closes)."""
        await self.goto("Train")
        if await self.start_training(LONG_STEPS):
            await self.see("Cancel training", timeout=30)
            self.result.left_job = True


# ------------------------------------------------------------------------------------ runs
def make_files(n: int, folder: Path) -> list[Path]:
    """One 300x200 synthetic ratings file per session (seeds 100.., so each is its own data)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"ratings_{i:02d}.csv"
        if not path.exists():
            ratings, _ = generate(n_users=300, n_items=200, n_ratings=9_000, seed=100 + i)
            path.write_bytes(_csv_bytes(ratings))
        paths.append(path)
    return paths


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def spread(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "max": max(values, default=None),
    }


def latency_rows(runs: list[dict], key: str, kinds: tuple[str, ...] = KINDS) -> list[str]:
    """One table row per N: p50 / p95 / max (n) of each kind of action in `run[key]`."""
    rows = ["| N | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for r in runs:
        cells = []
        for kind in kinds:
            lat = r[key][kind]
            bad = f", {lat['failed']} failed" if lat.get("failed") else ""
            cells.append(
                f"{fmt(lat['p50'])} / {fmt(lat['p95'])} / {fmt(lat['max'])} (n={lat['n']}{bad})"
            )
        rows.append(f"| {r['sessions']} | " + " | ".join(cells) + " |")
    return rows


async def run_sessions(
    sessions: Sequence[Any], flow: Callable[[Any], Awaitable[None]], *, first_line: bool
) -> None:
    """Run `flow(s)` for every session at once, each 0.2 s after the one before (visitors do
    not click in the same ms). An exception ends its own session only: it is kept as that
    result's error, its message cut to 200 characters (to its first line if `first_line`:
    Playwright's messages go on with a call log)."""

    async def one(s: Any) -> None:
        await asyncio.sleep(0.2 * s.index)
        try:
            await flow(s)
        except Exception as e:  # noqa: BLE001 - one session's failure is a result
            text = (str(e).splitlines() or [""])[0] if first_line else str(e)
            s.result.error = f"{type(e).__name__}: {text[:200]}"

    await asyncio.gather(*(one(s) for s in sessions))


async def after_close(
    server: Server, close: Callable[[], Awaitable[None]], settle: float = 10.0
) -> dict[str, float]:
    """Close the sessions with `close`, wait `settle` seconds, and measure what the server
    keeps then: its RSS and threads, its job workers' RSS, and the CPU both used (s per s)
    over those seconds (ideally none: nobody is connected)."""
    _, cpu0, _ = server.stats()
    workers_cpu0 = server.worker_stats()[1]
    await close()
    await asyncio.sleep(settle)
    rss, cpu, threads = server.stats()
    workers_rss, workers_cpu = server.worker_stats()
    return {
        "rss_after_close_mib": rss,
        "cpu_after_close_s_per_s": (cpu - cpu0) / settle,
        "threads_after_close": threads,
        "workers_rss_after_close_mib": workers_rss,
        "workers_cpu_after_close_s_per_s": (workers_cpu - workers_cpu0) / settle,
    }


def session_counts(results: list[Any], log: list[Any]) -> dict[str, Any]:
    """What a run reports of its sessions (this file's and load_ws.py's `SessionResult`s and
    `Action`s): every result and action, and the counts read from them."""
    return {
        "results": [asdict(r) for r in results],
        "actions": [asdict(a) for a in log],
        "uploads_answered": sum(r.uploaded for r in results),
        "trainings_done": sum(r.training == "done" for r in results),
        "queued_with_place": sum(bool(r.places_seen) for r in results),
        "max_place": max((max(r.places_seen) for r in results if r.places_seen), default=0),
        "unaccounted_jobs": sum(r.training != "done" and not r.places_seen for r in results),
        "ratings_ok": sum(r.ratings_ok for r in results),
        "errors": [f"session {r.index}: {r.error}" for r in results if r.error],
    }


async def run_n(n: int, args: argparse.Namespace, files: list[Path]) -> dict:
    env = {} if args.max_jobs is None else {"METAREC_MAX_JOBS": str(args.max_jobs)}
    server = Server(args.ttl, env)
    server.start()
    out: dict = {"sessions": n}
    try:
        rss0, _, threads0 = server.stats()
        out["rss_before_mib"], out["threads_before"] = rss0, threads0
        sampler = asyncio.create_task(server.sample(args.client_nice))
        log: list[Action] = []
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(**launch_args())
            contexts = [await browser.new_context() for _ in range(n)]
            for c in contexts:  # Playwright's 30 s is too short on a saturated machine
                c.set_default_timeout(ACTION_TIMEOUT_S * 1000)
            t0 = time.monotonic()
            deadline = t0 + args.deadline
            sessions = [
                Session(i, await c.new_page(), server.url, t0, log) for i, c in enumerate(contexts)
            ]

            async def flow(s: Session) -> None:
                await s.flow(files[s.index], args.steps, args.ratings, deadline)
                await s.leave_a_long_job()

            await run_sessions(sessions, flow, first_line=True)
            out["flow_seconds"] = time.monotonic() - t0

            async def close() -> None:
                for c in contexts:
                    await c.close()

            out.update(await after_close(server, close))
            # Streamlit drops expired sessions when the session storage is next used: one
            # more visit after the TTL (a new visitor) does that.
            await asyncio.sleep(args.ttl + 2)
            probe = await browser.new_context()
            p = Session(-1, await probe.new_page(), server.url, t0, [])
            await p.open()
            await probe.close()
            await asyncio.sleep(5)
            rss2, _, threads2 = server.stats()
            out["rss_after_ttl_mib"], out["threads_after_ttl"] = rss2, threads2
            await browser.close()
        server.stop_sampling()
        await sampler
        out["rss_peak_mib"] = server.peak_rss
        out["workers_rss_peak_mib"] = server.peak_workers_rss
        results = [s.result for s in sessions]
        out.update(session_counts(results, log))
        out["long_jobs_left"] = sum(r.left_job for r in results)
        train = [r.train_seconds for r in results if r.train_seconds is not None]
        out["train_p50_s"], out["train_max_s"] = pct(train, 50), max(train, default=None)
        out["latency"], out["server_part"] = {}, {}
        for kind in KINDS:
            acts = [a for a in log if a.kind == kind]
            out["latency"][kind] = spread([a.seconds for a in acts])
            out["latency"][kind]["failed"] = sum(not a.ok for a in acts)
            out["server_part"][kind] = spread([a.server_s for a in acts if a.server_s is not None])
        text = server.log_text()
        out["server_errors"] = text.count("Traceback (most recent call last)")
        (args.out / f"server-{n}.log").write_text(text)
    finally:
        server.stop()
    return out


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "–" if x is None else format(x, spec)


def markdown(runs: list[dict], command: str, machine: str) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        machine,
        "",
        "| N | uploads answered | trainings done | waited with their place shown (max place) "
        "| jobs neither done nor placed | ratings ok | slowest training, start → done |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        n = r["sessions"]
        lines.append(
            f"| {n} | {r['uploads_answered']}/{n} | {r['trainings_done']}/{n} "
            f"| {r['queued_with_place']} ({r['max_place']}) | {r['unaccounted_jobs']} "
            f"| {r['ratings_ok']} | {fmt(r['train_max_s'], '.0f')} s |"
        )
    lines += [
        "",
        "Latency in seconds, p50 / p95 / max (from the click to the end of the script run it "
        "caused, and the page showing its result):",
        "",
        *latency_rows(runs, "latency"),
        "",
        "The server's part of the same actions, p50 / p95 / max in seconds: from the browser "
        "sending the rerun request on its websocket to the script_finished message arriving "
        "(the rest of the latency above is the browser reacting to the click and drawing):",
        "",
        *latency_rows(runs, "server_part"),
    ]
    lines += [
        "",
        "Server (the `streamlit run` process): RSS in MiB; CPU in the 10 s after the tabs closed "
        "(each left a long training running or waiting); threads. Its job worker processes "
        "(process mode): RSS and CPU in the same 10 s (about 1 s/s: the long training runs on, "
        "kept with its workspace).",
        "",
        "| N | RSS before | RSS peak | RSS 10 s after close | RSS after the TTL | CPU after close "
        "| threads before / after close / after TTL | tracebacks in its log "
        "| job workers' RSS peak / after close | job workers' CPU after close |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['sessions']} | {r['rss_before_mib']:.0f} | {r['rss_peak_mib']:.0f} "
            f"| {r['rss_after_close_mib']:.0f} | {r['rss_after_ttl_mib']:.0f} "
            f"| {r['cpu_after_close_s_per_s']:.2f} s/s "
            f"| {r['threads_before']} / {r['threads_after_close']} / {r['threads_after_ttl']} "
            f"| {r['server_errors']} "
            f"| {r['workers_rss_peak_mib']:.0f} / {r['workers_rss_after_close_mib']:.0f} "
            f"| {r['workers_cpu_after_close_s_per_s']:.2f} s/s |"
        )
    return "\n".join(lines + session_errors(runs)) + "\n"


def session_errors(runs: list[dict]) -> list[str]:
    """The Markdown lines listing every session's errors of `runs` (none: no lines)."""
    errors = [e for r in runs for e in r["errors"]]
    return ["", "Session errors:", "", *[f"- {e}" for e in errors]] if errors else []


def machine_line(
    clients: str = "the browsers run on the same cores as the server at the nice value given "
    "by --client-nice.",
) -> str:
    load = os.getloadavg()
    return (
        f"Machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} (1/5/15 min) when the run ended; job pool places: "
        f"{os.environ.get('METAREC_MAX_JOBS', 'default')}; job workers: "
        f"{os.environ.get('METAREC_JOB_WORKERS') or DEFAULT_JOB_WORKERS + ' (the default)'}; "
        + clients
    )


def add_common_args(ap: argparse.ArgumentParser, *, deadline: float, out: Path) -> None:
    """The options both load benchmarks take (this one and load_ws.py), with their defaults."""
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, 8, 16])
    ap.add_argument("--steps", type=int, default=5, help="meta-steps of each session's training")
    ap.add_argument("--ratings", type=int, default=3, help="playground ratings per session")
    ap.add_argument("--deadline", type=float, default=deadline, help="seconds per N for the flows")
    ap.add_argument("--ttl", type=int, default=30, help="server.disconnectedSessionTTL (s)")
    ap.add_argument("--max-jobs", type=int, default=None, help="METAREC_MAX_JOBS for the server")
    ap.add_argument("--out", type=Path, default=out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(ap, deadline=900, out=ROOT / "bench" / "out" / "load")
    ap.add_argument(
        "--client-nice",
        type=int,
        default=10,
        help="nice value of the browsers (they share the server's cores here, unlike real "
        "visitors' browsers; 0 = same priority as the server)",
    )
    args = ap.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} not found (make chromium installs it)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    files = make_files(max(args.sessions), args.out / "data")
    command = "python bench/load.py " + " ".join(sys.argv[1:] if argv is None else argv)
    each_n(
        args.sessions,
        lambda n: run_n(n, args, files),
        lambda r: (
            f"uploads {r['uploads_answered']}/{r['sessions']}, trainings done "
            f"{r['trainings_done']}/{r['sessions']}, rating p95 {fmt(r['latency']['rating']['p95'])} s"
        ),
        lambda runs: markdown(runs, command.strip(), machine_line()),
        args.out / "load",
    )
    return 0


def each_n(sessions: list[int], measure, summary, render, stem: Path) -> None:
    """`measure(n)` (a coroutine) for each N in turn; after each, a line `summary(run)` on
    stderr and `stem`.json (every run) and `stem`.md (`render(runs)`) written, so that an
    interrupted run keeps what it measured; the tables printed at the end."""
    runs: list[dict] = []
    table = ""
    for n in sessions:
        print(f"N = {n} …", file=sys.stderr, flush=True)
        run = asyncio.run(measure(n))
        runs.append(run)
        print(f"N = {n}: {run['flow_seconds']:.0f} s, {summary(run)}", file=sys.stderr, flush=True)
        table = render(runs)
        stem.with_suffix(".json").write_text(json.dumps(runs, indent=1))
        stem.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    raise SystemExit(main())
