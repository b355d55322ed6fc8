"""Load test without browsers: N sessions speaking Streamlit's websocket protocol, loopback only.

    python bench/load_ws.py --sessions 1 8 16 --out bench/out/load_ws

bench/load.py drives N headless Chromium tabs; on a 2-core server those tabs render on the
server's own cores, so its click-to-page latencies are mostly the harness. This client measures
what the server does for N concurrent sessions: each session opens `/_stcore/stream` as the
browser does and exchanges the same protobuf messages (BackMsg out, ForwardMsg in, from
`streamlit.proto`), with no rendering at all. Like the browser it keeps the page's `run_every`
fragment timers (the Train page's and the sidebar's polling: `auto_rerun` / `stop_auto_rerun`),
the query string the app sets, and the message cache (`cached_message_hashes`, `ref_hash`).

For each N, a fresh server (`streamlit run app.py` on a free 127.0.0.1 port, a temporary
workspace folder) and N sessions that each:

1. open the app (the first script run, on Home; with `--warmup` one untimed visit has opened it
   first, so that the timed page loads are of a server past its first visitor's imports),
2. switch to the Train page and start a `--steps`-step training of the sample data (the form's
   number inputs and its "Start training" submit button, found in the deltas by their keys),
   noting the place in line the page shows,
3. switch to the playground and add `--ratings` ratings ("Rate this item"), each checked in the
   deltas: the caption "N ratings so far" must go up by one (a rating that did nothing, or one
   lost because a finished training changed the active model, is not counted as fast),
4. switch back to the Train page and wait (its fragment polls, as a browser's would) until the
   training is done, noting each place in line shown,
5. with `--upload`: switch to Data, choose "Upload a file" and upload its own 300 x 200 ratings
   file (BackMsg file_urls_request, an HTTP PUT to the upload URL with the XSRF cookie and header,
   then the file_uploader's widget state), checked by "Loaded <file>: 9,000 ratings".

Each action is timed from its BackMsg sent to the ForwardMsg `script_finished` of the whole
script run it caused (`server_s`) and to the run's first delta (`first_delta_s`). The server's
RSS/CPU (and its job workers') come from /proc as in bench/load.py. Bounded: every wait has a
timeout, each N a deadline (`--deadline`), the sessions are closed at the end and the server is
stopped. Writes load_ws.json (every action) and load_ws.md (the tables) into `--out`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from load import (  # noqa: E402
    RUN_DONE,
    Server,
    add_common_args,
    after_close,
    decoded,
    each_n,
    fmt,
    latency_rows,
    machine_line,
    make_files,
    run_sessions,
    session_counts,
    session_errors,
    spread,
)
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402
from streamlit.proto.WidgetStates_pb2 import WidgetState  # noqa: E402
from streamlit.runtime.state.common import user_key_from_element_id  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

ACTION_TIMEOUT_S = 120.0  # one action on a saturated 2-core machine; never a pass mark
PLACE_RE = re.compile(r"waiting: (\d+)(?:st|nd|rd|th) in line")
COUNT_RE = re.compile(r"^(\d+) ratings? so far")
MODEL_RE = re.compile(r"^Model: (.+)\. A brand-new user")
KINDS = ("page load", "page switch", "start training", "rating", "upload")
XSRF_COOKIE = "_streamlit_xsrf"
CUT_OFF = "cut off: its run ended without script_finished; timed to the next whole run"
MD_ESCAPE = re.compile(r"\\([^\w\s]|_)")  # a backslash before punctuation, as markdown


# ------------------------------------------------------------------------- what a run shows
def element_texts(element: Any) -> list[str]:
    """The visible strings of one Element proto: markdown/alert/text bodies, labels, progress
    texts (what the checks below look for)."""
    kind = element.WhichOneof("type")
    if kind is None:
        return []
    proto = getattr(element, kind)
    return [
        MD_ESCAPE.sub(r"\1", s)  # user strings are escaped: ratings\\_00\\.csv
        for name in ("body", "label", "text")
        if isinstance(s := getattr(proto, name, None), str) and s
    ]


def widget_of(element: Any) -> tuple[str, str, Any] | None:
    """(user key, element type, widget proto) of a keyed widget element; None otherwise."""
    kind = element.WhichOneof("type")
    proto = getattr(element, kind) if kind else None
    wid = getattr(proto, "id", "") if proto is not None else ""
    if not isinstance(wid, str) or not wid:
        return None
    key = user_key_from_element_id(wid)
    return (key, kind, proto) if key else None


@dataclass
class RunSeen:
    """One script run as the session received it."""

    fragment: bool  # a fragment run (the page's polling), not a whole script run
    page_hash: str = ""
    run_id: str = ""  # metadata.run.script_run_id: the messages of a run carry it
    status: int | None = None
    texts: list[str] = field(default_factory=list)
    first_delta_at: float | None = None
    finished_at: float | None = None

    def find(self, pattern: re.Pattern) -> list[re.Match]:
        return [m for t in self.texts if (m := pattern.search(t))]


# --------------------------------------------------------------------------------- session
@dataclass
class Action:
    session: int
    kind: str
    server_s: float  # BackMsg sent -> script_finished of the whole run it caused
    first_delta_s: float | None  # BackMsg sent -> that run's first delta
    ok: bool
    t: float  # seconds since the sessions started
    note: str = ""
    # the runs the wait saw, in order: W (whole) or F (fragment), the script_finished status
    # (0 done, 2 ended early for a rerun, 3 fragment done, - none seen), and @page for a run
    # of another page than the one the session ended on
    runs: str = ""


@dataclass
class SessionResult:
    index: int
    training: str = "not started"
    places_seen: list[int] = field(default_factory=list)
    train_seconds: float | None = None  # start -> the Train page shows it done
    ratings_ok: int = 0
    ratings_failed: int = 0  # not shown as one more (counted apart, not as fast)
    uploaded: bool = False
    error: str = ""


class WsSession:
    """One visitor: a websocket to the server, the state a browser keeps, its actions timed."""

    def __init__(self, index: int, url: str, t0: float, log: list[Action]) -> None:
        self.index, self.url, self.t0, self.log = index, url, t0, log
        self.ws: Any = None
        self.session_id = ""
        self.query_string = ""
        self.page_hash = ""
        self.pages: dict[str, str] = {}  # page title -> page_script_hash
        self.widgets: dict[str, tuple[str, str, Any]] = {}  # key -> (id, type, proto)
        self.values: dict[str, WidgetState] = {}  # widget id -> the value this visitor set
        self.cache: dict[str, ForwardMsg] = {}  # hash -> message (the browser's message cache)
        self.timers: dict[str, tuple[float, asyncio.Task]] = {}  # fragment id -> auto rerun
        self.runs: list[RunSeen] = []
        self.running = False
        self.changed = asyncio.Event()  # set on every message; waiters re-check their state
        self.file_urls: dict[str, Any] = {}
        self.xsrf = ""
        self.result = SessionResult(index)
        self._reader: asyncio.Task | None = None

    # ------------------------------------------------------------------ the connection
    async def open_socket(self) -> None:
        with urllib.request.urlopen(self.url + "/_stcore/health", timeout=30) as r:
            cookies = r.headers.get_all("Set-Cookie") or []
        for c in cookies:
            name, _, rest = c.partition("=")
            if name.strip() == XSRF_COOKIE:
                self.xsrf = rest.split(";", 1)[0]
        ws_url = self.url.replace("http://", "ws://") + "/_stcore/stream"
        # subprotocols: "streamlit", then the XSRF token, as the browser sends them
        protocols = ["streamlit", self.xsrf] if self.xsrf else ["streamlit"]
        headers = {"Cookie": f"{XSRF_COOKIE}={self.xsrf}"} if self.xsrf else {}
        self.ws = await connect(
            ws_url, subprotocols=protocols, additional_headers=headers, max_size=None
        )
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        for _, task in self.timers.values():
            task.cancel()
        self.timers.clear()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 10)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def _read(self) -> None:
        async for payload in self.ws:
            msg = decoded(payload, ForwardMsg)
            if msg is not None:
                self.handle(msg, time.monotonic())
                self.changed.set()

    def handle(self, msg: ForwardMsg, now: float) -> None:
        """Apply one ForwardMsg the way the browser's App does (what this client needs of it)."""
        kind = msg.WhichOneof("type")
        if kind == "ref_hash":
            cached = self.cache.get(msg.ref_hash)
            if cached is None:
                return  # never seen: the browser would fetch it; nothing here depends on it
            metadata = msg.metadata
            msg = ForwardMsg()
            msg.CopyFrom(cached)
            msg.metadata.CopyFrom(metadata)
            kind = msg.WhichOneof("type")
        elif msg.metadata.cacheable and msg.hash:
            self.cache[msg.hash] = msg
        if kind == "new_session":
            ns = msg.new_session
            if ns.HasField("initialize"):
                self.session_id = ns.initialize.session_id
            fragment = bool(msg.metadata.run.fragment_ids)
            if not fragment:  # a whole run: the browser drops its fragment timers
                self.stop_timers(list(self.timers))
                self.page_hash = ns.page_script_hash
            for page in ns.app_pages:
                self.pages[page.page_name] = page.page_script_hash
            self.runs.append(RunSeen(fragment, ns.page_script_hash, msg.metadata.run.script_run_id))
        elif kind == "navigation":
            for page in msg.navigation.app_pages:
                self.pages[page.page_name] = page.page_script_hash
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "session_status_changed":
            self.running = msg.session_status_changed.script_is_running
        elif kind == "auto_rerun":
            self.start_timer(msg.auto_rerun.fragment_id, msg.auto_rerun.interval)
        elif kind == "stop_auto_rerun":
            self.stop_timers(list(msg.stop_auto_rerun.fragment_ids))
        elif kind == "file_urls_response":
            self.file_urls[msg.file_urls_response.response_id] = msg.file_urls_response
        elif kind == "delta" and (run := self.run_of(msg)) is not None:
            if run.first_delta_at is None:
                run.first_delta_at = now
            if msg.delta.WhichOneof("type") == "new_element":
                el = msg.delta.new_element
                run.texts += element_texts(el)
                if (w := widget_of(el)) is not None:
                    self.widgets[w[0]] = (w[2].id, w[1], w[2])
        elif kind == "script_finished" and (run := self.run_of(msg)) is not None:
            run.status, run.finished_at = msg.script_finished, now

    def run_of(self, msg: ForwardMsg) -> RunSeen | None:
        """The run a delta or script_finished belongs to (by its run id; else the latest)."""
        run_id = msg.metadata.run.script_run_id
        for run in reversed(self.runs):
            if not run_id or run.run_id == run_id:
                return run
        return None

    # ------------------------------------------------------------------ sending
    def start_timer(self, fragment_id: str, interval: float) -> None:
        if not fragment_id or self.timers.get(fragment_id, (None,))[0] == interval:
            return
        self.stop_timers([fragment_id])

        async def tick() -> None:
            while True:
                await asyncio.sleep(interval)
                await self.send_rerun(fragment_id=fragment_id, auto=True)

        self.timers[fragment_id] = (interval, asyncio.create_task(tick()))

    def stop_timers(self, fragment_ids: list[str]) -> None:
        for fid in fragment_ids:
            if fid in self.timers:
                self.timers.pop(fid)[1].cancel()

    async def send_rerun(
        self,
        triggers: list[WidgetState] = (),
        *,
        fragment_id: str = "",
        auto: bool = False,
        page_hash: str | None = None,
    ) -> float:
        """Send a rerun_script BackMsg (the widget values set so far, plus `triggers`); the
        time it was sent."""
        back = BackMsg()
        cs = back.rerun_script
        cs.query_string = "" if page_hash is not None else self.query_string
        cs.page_script_hash = page_hash if page_hash is not None else self.page_hash
        if fragment_id:
            cs.fragment_id = fragment_id
        cs.is_auto_rerun = auto
        cs.widget_states.widgets.extend([*self.values.values(), *triggers])
        cs.cached_message_hashes.extend(self.cache)
        cs.context_info.timezone = "UTC"
        cs.context_info.locale = "en-US"
        cs.context_info.url = self.url
        sent = time.monotonic()
        with contextlib.suppress(Exception):  # closed: the action's wait times out
            await self.ws.send(back.SerializeToString())
        return sent

    # ------------------------------------------------------------------ waiting
    async def until(self, ready, timeout: float = ACTION_TIMEOUT_S) -> bool:
        """Until `ready()` is true after some message (False on timeout)."""
        deadline = time.monotonic() + timeout
        while not ready():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))
        return True

    def whole_run_done(self, after: int) -> RunSeen | None:
        """The first whole script run started after run number `after` that finished (not one
        ended early for a rerun: the next one is)."""
        for run in self.runs[after:]:
            if not run.fragment and run.status in RUN_DONE:
                return run
        return None

    async def act(self, kind: str, send, check=None) -> RunSeen | None:
        """`send()` (returns when the BackMsg went out), then wait for the whole run it caused;
        `check(run)` returns a note when the run did not show what it should."""
        await self.until(lambda: not self.running, 30)  # as the browser harness waits for idle
        before = len(self.runs)
        sent = await send()
        ok = await self.until(lambda: self.whole_run_done(before) is not None)
        run = self.whole_run_done(before)
        note = "" if ok else "no script run finished"
        own = next((r for r in self.runs[before:] if not r.fragment), None)
        if run is not None and own is not run and own is not None and own.status is None:
            # The run the BackMsg started sent no script_finished (nor its last deltas) and
            # fragment runs followed; the page is whole again only at a later whole run.
            note = CUT_OFF
        elif run is not None and check is not None:
            note = check(run) or ""
        end = run.finished_at if run is not None else time.monotonic()
        first = run.first_delta_at if run is not None else None
        self.log.append(
            Action(
                self.index,
                kind,
                end - sent,
                None if first is None else first - sent,
                run is not None and not note,
                sent - self.t0,
                note,
                " ".join(
                    f"{'F' if r.fragment else 'W'}{'-' if r.status is None else r.status}"
                    f"{'' if r.page_hash == self.page_hash else '@' + r.page_hash[:6]}"
                    for r in self.runs[before:]
                ),
            )
        )
        return run if run is not None and not note else None

    # ------------------------------------------------------------------ the visitor's steps
    def trigger(self, key: str) -> WidgetState:
        return WidgetState(id=self.widgets[key][0], trigger_value=True)

    def set_int(self, key: str, value: int) -> None:
        wid = self.widgets[key][0]
        self.values[wid] = WidgetState(id=wid, int_value=value)

    async def open(self) -> None:
        await self.open_socket()
        if await self.act("page load", self.send_rerun) is None:
            raise RuntimeError("the first page load did not finish")

    async def goto(self, title: str) -> RunSeen | None:
        target = self.pages[title]

        def check(run: RunSeen) -> str:
            return "" if run.page_hash == target else f"ran page {run.page_hash}, not {title}"

        self.stop_timers(list(self.timers))  # the browser's onPageChange
        return await self.act("page switch", lambda: self.send_rerun(page_hash=target), check)

    def note_places(self, run: RunSeen) -> None:
        for m in run.find(PLACE_RE):
            place = int(m.group(1))
            if not self.result.places_seen or self.result.places_seen[-1] != place:
                self.result.places_seen.append(place)

    async def start_training(self, steps: int) -> None:
        if await self.goto("Train") is None:
            raise RuntimeError("could not open the Train page")
        self.set_int("train_steps", steps)
        self.set_int("train_eval_every", min(steps, 10_000))

        def check(run: RunSeen) -> str:
            shown = " ".join(run.texts)
            if any(w in shown for w in ("in line", "Cancel training", "Training done")):
                return ""
            return "the Train page shows no training after Start"

        run = await self.act(
            "start training", lambda: self.send_rerun([self.trigger("train_start")]), check
        )
        if run is None:
            raise RuntimeError("start training: no training shown")
        self.train_started = time.monotonic()
        self.result.training = "started"
        self.note_places(run)

    def last_count(self) -> tuple[int | None, str | None]:
        """The rating count and the model the playground showed last."""
        count = model = None
        for run in self.runs:
            if c := run.find(COUNT_RE):
                count = int(c[-1].group(1))
            if m := run.find(MODEL_RE):
                model = m[-1].group(1)
        return count, model

    async def rate(self, n: int) -> None:
        if await self.goto("Cold-start playground") is None:
            raise RuntimeError("could not open the playground")
        tries = 0
        while self.result.ratings_ok < n and tries < n + 3:
            tries += 1
            if "pg_rate" not in self.widgets:
                raise RuntimeError("the playground shows no Rate button (no active model?)")
            count0, model0 = self.last_count()

            def check(run: RunSeen, count0=count0, model0=model0) -> str:
                counts, models = run.find(COUNT_RE), run.find(MODEL_RE)
                if not counts:
                    return "no rating count shown"
                model = models[-1].group(1) if models else None
                if model != model0:
                    return f"the active model changed ({model0} -> {model}): rating lost"
                got = int(counts[-1].group(1))
                return "" if got == (count0 or 0) + 1 else f"count {count0} -> {got}"

            run = await self.act(
                "rating", lambda: self.send_rerun([self.trigger("pg_rate")]), check
            )
            if run is not None:
                self.result.ratings_ok += 1
            else:
                self.result.ratings_failed += 1

    async def watch_training(self, deadline: float) -> None:
        """On the Train page, whose fragment polls by itself, until the training is done."""
        if await self.goto("Train") is None:
            raise RuntimeError("could not open the Train page")
        seen = 0  # the runs before this one are finished and looked at
        while time.monotonic() < deadline:
            while self._settled(seen):
                run = self.runs[seen]
                seen += 1
                self.note_places(run)
                shown = " ".join(run.texts)
                if "Training done in" in shown:
                    self.result.training = "done"
                    self.result.train_seconds = run.finished_at - self.train_started
                    return
                for word in ("failed", "cancelled"):
                    if f"Training {word}" in shown:
                        self.result.training = word
                        return
            left = deadline - time.monotonic()
            await self.until(lambda s=seen: self._settled(s), max(0.1, min(5.0, left)))
        self.result.training += " (deadline)"

    def _settled(self, index: int) -> bool:
        """Whether run `index` has ended: finished, or followed by another (a run that another
        request interrupted may send no script_finished)."""
        return index < len(self.runs) and (
            self.runs[index].finished_at is not None or index < len(self.runs) - 1
        )

    async def upload(self, path: Path) -> None:
        if await self.goto("Data") is None:
            raise RuntimeError("could not open the Data page")
        wid = self.widgets["data_source"][0]
        self.values[wid] = WidgetState(
            id=wid, string_value="Upload a file"
        )  # radios send the option
        if (
            await self.act("page switch", self.send_rerun) is None
            or "upload_ratings" not in self.widgets
        ):
            raise RuntimeError("no ratings file box after choosing Upload a file")
        data = path.read_bytes()
        request_id = uuid.uuid4().hex

        async def send() -> float:
            back = BackMsg()
            back.file_urls_request.request_id = request_id
            back.file_urls_request.file_names.append(path.name)
            back.file_urls_request.session_id = self.session_id
            sent = time.monotonic()
            await self.ws.send(back.SerializeToString())
            if not await self.until(lambda: request_id in self.file_urls, 60):
                raise RuntimeError("no file_urls_response")
            urls = self.file_urls[request_id].file_urls[0]
            await asyncio.to_thread(self._put, urls.upload_url, path.name, data)
            wid = self.widgets["upload_ratings"][0]
            state = WidgetState(id=wid)
            info = state.file_uploader_state_value.uploaded_file_info.add()
            info.file_id, info.name, info.size = urls.file_id, path.name, len(data)
            info.file_urls.CopyFrom(urls)
            self.values[wid] = state
            await self.send_rerun()
            return sent

        def check(run: RunSeen) -> str:
            want = f"Loaded {path.name}: 9,000 ratings"
            return "" if any(want in t for t in run.texts) else f"no “{want}”"

        self.result.uploaded = await self.act("upload", send, check) is not None

    def _put(self, upload_url: str, name: str, data: bytes) -> None:
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                f"Content-Type: text/csv\r\n\r\n"
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        url = upload_url if upload_url.startswith("http") else self.url + upload_url
        req = urllib.request.Request(url, data=body, method="PUT")
        req.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
        if self.xsrf:
            req.add_header("X-Xsrftoken", self.xsrf)
            req.add_header("Cookie", f"{XSRF_COOKIE}={self.xsrf}")
        with urllib.request.urlopen(req, timeout=ACTION_TIMEOUT_S) as r:
            r.read()

    async def flow(self, args: argparse.Namespace, data: Path, deadline: float) -> None:
        await self.open()
        await self.start_training(args.steps)
        await self.rate(args.ratings)
        await self.watch_training(deadline)
        if args.upload:
            await self.upload(data)


# ------------------------------------------------------------------------------------ runs
async def run_n(n: int, args: argparse.Namespace, files: list[Path]) -> dict:
    workspaces = Path(tempfile.mkdtemp(prefix="metarec-load-ws-"))
    env = {"METAREC_WORKSPACE_DIR": str(workspaces)}
    if args.max_jobs is not None:
        env["METAREC_MAX_JOBS"] = str(args.max_jobs)
    server = Server(args.ttl, env)
    server.start()
    out: dict = {"sessions": n}
    sessions: list[WsSession] = []
    log: list[Action] = []
    try:
        rss0, cpu0, _ = server.stats()
        out["rss_before_mib"] = rss0
        out["warmup_s"] = None
        if args.warmup:  # one visit first: the imports and shared caches of a fresh server
            warm_log: list[Action] = []
            w = WsSession(-1, server.url, time.monotonic(), warm_log)
            try:
                await w.open()
            finally:
                await w.close()
            out["warmup_s"] = warm_log[0].server_s if warm_log else None
            _, cpu0, _ = server.stats()
        wcpu0 = server.worker_stats()[1]
        client_cpu0 = time.process_time()  # this process: the N clients' own share of the cores
        sampler = asyncio.create_task(server.sample(0))
        t0 = time.monotonic()
        deadline = t0 + args.deadline
        sessions = [WsSession(i, server.url, t0, log) for i in range(n)]

        async def flow(s: WsSession) -> None:
            try:
                await asyncio.wait_for(
                    s.flow(args, files[s.index], deadline), max(1.0, deadline - time.monotonic())
                )
            except TimeoutError:
                s.result.error = f"the deadline ({args.deadline:.0f} s) passed"

        await run_sessions(sessions, flow, first_line=False)
        out["flow_seconds"] = time.monotonic() - t0
        _, cpu1, _ = server.stats()
        wcpu1 = server.worker_stats()[1]
        out["server_cpu_s_per_s"] = (cpu1 - cpu0) / out["flow_seconds"]
        out["workers_cpu_s_per_s"] = (wcpu1 - wcpu0) / out["flow_seconds"]
        out["clients_cpu_s_per_s"] = (time.process_time() - client_cpu0) / out["flow_seconds"]

        async def close() -> None:
            for s in sessions:
                await s.close()

        out.update(await after_close(server, close))
        server.stop_sampling()
        await sampler
        out["rss_peak_mib"] = server.peak_rss
        out["workers_rss_peak_mib"] = server.peak_workers_rss
        text = server.log_text()
        out["server_errors"] = text.count("Traceback (most recent call last)")
        (args.out / f"server-ws-{n}.log").write_text(text)
    finally:
        for s in sessions:
            await s.close()
        server.stop()
        shutil.rmtree(workspaces, ignore_errors=True)
    results = [s.result for s in sessions]
    out.update(session_counts(results, log))
    out["ratings_failed"] = sum(r.ratings_failed for r in results)
    out["cut_off"] = sum(a.note == CUT_OFF for a in log)
    train = [r.train_seconds for r in results if r.train_seconds is not None]
    out["train_max_s"] = max(train, default=None)
    out["server"], out["first_delta"] = {}, {}
    for kind in KINDS:
        acts = [a for a in log if a.kind == kind and a.ok]
        out["server"][kind] = spread([a.server_s for a in acts])
        out["server"][kind]["failed"] = sum(a.kind == kind and not a.ok for a in log)
        out["first_delta"][kind] = spread([a.first_delta_s for a in acts if a.first_delta_s])
    return out


def markdown(runs: list[dict], command: str, machine: str, kinds: tuple[str, ...]) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        machine,
        "",
        "| N | trainings done | waited with their place shown (max place) "
        "| jobs neither done nor placed | ratings shown (failed) | actions cut off "
        "| uploads answered | slowest training, start → done |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        n = r["sessions"]
        up = f"{r['uploads_answered']}/{n}" if "upload" in kinds else "–"
        lines.append(
            f"| {n} | {r['trainings_done']}/{n} "
            f"| {r['queued_with_place']} ({r['max_place'] or '–'}) "
            f"| {r['unaccounted_jobs']} | {r['ratings_ok']} ({r['ratings_failed']}) "
            f"| {r['cut_off']} | {up} "
            f"| {fmt(r['train_max_s'], '.0f')} s |"
        )
    lines += [
        "",
        "Server time in seconds, p50 / p95 / max: BackMsg sent → `script_finished` of the whole "
        "run it caused (actions that showed what they should; failed ones counted apart):",
        "",
        *latency_rows(runs, "server", kinds),
        "",
        "BackMsg sent → the run's first delta, p50 / p95 / max:",
        "",
        *latency_rows(runs, "first_delta", kinds),
        "",
        "| N | server RSS before / peak / 10 s after close (MiB) | server CPU during the flows "
        "| job workers' CPU during the flows | the clients' CPU | server CPU after close "
        "| job workers' RSS peak / after close (MiB) | tracebacks in the server log |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['sessions']} | {r['rss_before_mib']:.0f} / {r['rss_peak_mib']:.0f} / "
            f"{r['rss_after_close_mib']:.0f} | {r['server_cpu_s_per_s']:.2f} s/s "
            f"| {r['workers_cpu_s_per_s']:.2f} s/s | {r['clients_cpu_s_per_s']:.2f} s/s "
            f"| {r['cpu_after_close_s_per_s']:.2f} s/s "
            f"| {r['workers_rss_peak_mib']:.0f} / {r['workers_rss_after_close_mib']:.0f} "
            f"| {r['server_errors']} |"
        )
    warm = [r for r in runs if r.get("warmup_s") is not None]
    if warm:
        lines += [
            "",
            "Warm-up (`--warmup`): one untimed visit opened the app before the sessions (the "
            "fresh server's imports and shared caches); its page load took "
            + ", ".join(f"{r['warmup_s']:.2f} s (N = {r['sessions']})" for r in warm)
            + ".",
        ]
    return "\n".join(lines + session_errors(runs)) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(ap, deadline=300, out=ROOT / "bench" / "out" / "load_ws")
    ap.add_argument("--upload", action="store_true", help="end with an upload (Data page)")
    ap.add_argument(
        "--warmup",
        action="store_true",
        help="one untimed visit before the N sessions (a server past its first visitor)",
    )
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    files = make_files(max(args.sessions), args.out / "data")
    kinds = KINDS if args.upload else KINDS[:-1]
    command = "python bench/load_ws.py " + " ".join(sys.argv[1:] if argv is None else argv)
    clients = "no browsers: the sessions are websocket clients in one Python process."
    each_n(
        args.sessions,
        lambda n: run_n(n, args, files),
        lambda r: (
            f"trainings done {r['trainings_done']}/{r['sessions']}, ratings shown "
            f"{r['ratings_ok']}, rating p95 {fmt(r['server']['rating']['p95'])} s"
        ),
        lambda runs: markdown(runs, command.strip(), machine_line(clients), kinds),
        args.out / "load_ws",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
