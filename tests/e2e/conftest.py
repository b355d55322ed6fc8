"""Browser end-to-end fixtures: a real `streamlit run app.py` server and Debian's headless Chromium.

Playwright's own browser download does not work on our machines, so the tests drive the system
Chromium with the flags of bench/chromium.py (`make chromium` installs it in CI). `--screenshots DIR` saves a full-page PNG of every
page the tests visit (`make screenshots` writes docs/screenshots/).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from google.protobuf.message import DecodeError
from playwright.sync_api import Page, WebSocket, expect
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench.chromium import APP_LOADED, CHROMIUM, SCRIPT_IDLE, launch_args

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
HEALTH_TIMEOUT_S = 90  # first start imports torch on a busy 2-core machine
VIEWPORT = {"width": 1400, "height": 900}
# Every `expect` waits up to 20 s (Playwright's default is 5 s): on a busy 2-core machine a rerun
# can take longer than that to render; the assertions themselves are unchanged.
expect.set_options(timeout=20_000)
# What the page shows, for the message when a wait for a script run times out.
APP_STATE_JS = """() => {
    const app = document.querySelector("[data-testid='stApp']");
    return {script: app && app.getAttribute('data-test-script-state'),
            connection: app && app.getAttribute('data-test-connection-state'),
            url: location.href};
}"""
# script_finished statuses of a whole run (not a fragment's, not one cut short by a rerun)
RUN_DONE = (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--screenshots",
        action="store",
        dest="screenshots_dir",
        default=None,
        metavar="DIR",
        help="save a full-page PNG of each page the browser tests visit into DIR",
    )


def _server_log(log, start: int = 0) -> str:
    """The server's output from byte `start` on."""
    log.flush()
    log.seek(start)
    text = log.read()
    log.seek(0, os.SEEK_END)
    return text


def _tail(text: str, n: int = 6000) -> str:
    return text if len(text) <= n else "…" + text[-n:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The app's start-up sample for most tests: a tiny one, with a few quick training steps (it has no
# checkpoint), so a session's first page costs next to nothing on a 2-core machine.
TINY_SAMPLE_ENV = {"METAREC_SAMPLE_DIR": str(DATA / "sample"), "METAREC_QUICK_STEPS": "10"}


def _start_server(log, env_extra: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """Start `streamlit run app.py` and wait until /_stcore/health answers ok."""
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--global.developmentMode",
        "false",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **env_extra}
    # A TemporaryFile, not a PIPE: a full pipe would block the server.
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, url
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.3)  # polling loop, not synchronisation
    _stop(proc)
    raise RuntimeError(
        f"streamlit did not become healthy on {url} within {HEALTH_TIMEOUT_S}s "
        f"(exit code {proc.returncode}). Server log:\n{_tail(_server_log(log))}"
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} not found: the browser tests use Debian's chromium "
            "(`make chromium` installs it; CI does this automatically)"
        )


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """pytest-playwright hook: launch the system Chromium instead of a downloaded one."""
    _require_chromium()
    return {**browser_type_launch_args, **launch_args()}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": VIEWPORT}


@contextmanager
def _serve(env_extra: dict[str, str]) -> Iterator[tuple[str, object]]:
    """A running `streamlit run app.py` on a free loopback port: yields (url, log file)."""
    _require_chromium()
    if not (ROOT / "app.py").exists():
        pytest.fail(f"{ROOT / 'app.py'} does not exist")
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as log,
        tempfile.TemporaryDirectory(prefix="metarec-e2e-workspaces-") as workspaces,
    ):
        # the app's workspaces live and die with this server
        env_extra = {"METAREC_WORKSPACE_DIR": workspaces, **env_extra}
        proc = None
        error = ""
        for _ in range(3):  # a port picked as free can be taken before streamlit binds it
            try:
                proc, url = _start_server(log, env_extra)
                break
            except RuntimeError as exc:
                error = str(exc)
        if proc is None:
            pytest.fail(error, pytrace=False)
        try:
            yield url, log
        finally:
            _stop(proc)


@pytest.fixture(scope="module")
def app_server() -> Iterator[tuple[str, object]]:
    """The app with a tiny start-up sample (tests upload their own data)."""
    with _serve(TINY_SAMPLE_ENV) as server:
        yield server


@pytest.fixture(scope="module")
def sample_server() -> Iterator[tuple[str, object]]:
    """The app as `make run` starts it: the shipped sample data and its pre-trained model."""
    env = {k: v for k, v in os.environ.items() if k.startswith("METAREC_SAMPLE")}
    if env:
        pytest.skip(f"the environment overrides the sample ({', '.join(env)})")
    with _serve({}) as server:
        yield server


def wait_for_app_loaded(page: Page, timeout: float = 60_000) -> None:
    """Wait until the app is connected, its script has finished and no skeleton is left."""
    page.locator("[data-testid='stAppViewContainer']").wait_for(state="attached", timeout=timeout)
    page.locator(APP_LOADED).wait_for(state="attached", timeout=timeout)
    page.locator(SCRIPT_IDLE).wait_for(state="attached", timeout=timeout)
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=timeout)


class StreamlitApp:
    """One browser session (tab) of the app, with the waits and checks every test needs."""

    def __init__(self, page: Page, url: str, screenshot_dir: Path | None) -> None:
        self.page = page
        self.url = url
        self.screenshot_dir = screenshot_dir
        self.runs_done = 0  # script_finished messages of whole runs the server sent this tab
        self.frames_unread = 0

    def _watch(self, ws: WebSocket) -> None:
        ws.on("framereceived", self._on_frame)

    def _on_frame(self, payload: str | bytes) -> None:
        # Counted from the server's messages: a quick run can start and finish within one
        # render of the page, so its data-test-script-state never shows "running" (seen).
        if not isinstance(payload, bytes):
            return
        try:
            msg = ForwardMsg.FromString(payload)
        except DecodeError:  # not a ForwardMsg: nothing to count
            self.frames_unread += 1
            return
        if msg.WhichOneof("type") == "script_finished" and msg.script_finished in RUN_DONE:
            self.runs_done += 1

    def open(self) -> StreamlitApp:
        self.page.on("websocket", self._watch)
        self.page.goto(self.url)
        self._wait_for_runs(0, 60_000, "the first page load")
        self.wait()
        return self

    def _wait_for_runs(self, before: int, timeout: float, what: str) -> None:
        """Until more than `before` whole script runs have finished (events are delivered
        while Playwright waits)."""
        deadline = time.monotonic() + timeout / 1000
        while self.runs_done <= before:
            if time.monotonic() > deadline:
                seen = self.page.evaluate(APP_STATE_JS)
                raise AssertionError(
                    f"no script run finished within {timeout / 1000:.0f} s of {what} (runs "
                    f"before: {before}, now: {self.runs_done}; unreadable frames: "
                    f"{self.frames_unread}; the page: {seen})"
                )
            self.page.wait_for_timeout(50)

    @contextmanager
    def rerun(self, timeout: float = 60_000) -> Iterator[None]:
        """Wrap an action that makes the script run again: on exit, wait for that run to
        finish. Fragment runs (a page's polling) are not counted."""
        before = self.runs_done
        yield
        self._wait_for_runs(before, timeout, "the action")
        self.wait(timeout)

    def wait(self, timeout: float = 60_000) -> None:
        wait_for_app_loaded(self.page, timeout)

    def goto(self, title: str, timeout: float = 60_000) -> None:
        """Switch page with the sidebar link (keeps the session, unlike loading a URL)."""
        link = self.page.get_by_test_id("stSidebarNav").get_by_role("link", name=title)
        expect(link).to_be_visible(timeout=timeout)
        link.click()
        # The link turns current once the server runs the new page; only then is "script not
        # running" about the new page rather than the old one.
        expect(link).to_have_attribute("aria-current", "page", timeout=timeout)
        self.wait(timeout)

    def assert_no_exception(self) -> None:
        """No Streamlit exception box, no traceback shown to the user."""
        expect(self.page.get_by_test_id("stException")).to_have_count(0)
        expect(self.page.get_by_text("Traceback (most recent call last)")).to_have_count(0)

    def screenshot(self, name: str) -> None:
        """Save a full-page PNG as DIR/name when --screenshots DIR is given."""
        if self.screenshot_dir is None:
            return
        page = self.page
        page.mouse.move(0, 0)  # no hover highlight in the picture
        # Streamlit scrolls inside its main container, not the document, so a plain full_page
        # screenshot would cut the page at the viewport: grow the viewport to the content.
        height = page.evaluate(
            """() => {
                const els = [document.querySelector('[data-testid="stMain"]'),
                             document.querySelector('[data-testid="stAppViewContainer"]'),
                             document.querySelector('[data-testid="stSidebarContent"]'),
                             document.documentElement];
                return Math.max(...els.filter(Boolean).map(e => e.scrollHeight));
            }"""
        )
        size = page.viewport_size or VIEWPORT
        page.set_viewport_size({"width": size["width"], "height": min(max(height, 900), 8000)})
        try:
            self.wait()
            self.screenshot_dir.mkdir(parents=True, exist_ok=True)
            page.screenshot(
                path=str(self.screenshot_dir / name), full_page=True, animations="disabled"
            )
        finally:
            page.set_viewport_size(size)


@pytest.fixture(scope="session")
def screenshot_dir(pytestconfig: pytest.Config) -> Path | None:
    # getoption's default: the option is only registered when this conftest is loaded at start-up
    # (`pytest tests/e2e ...`), not when pytest finds it later while collecting `tests`.
    directory = pytestconfig.getoption("screenshots_dir", default=None)
    return Path(directory) if directory else None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # Keep each phase's report on the item, so the `app` fixture knows whether the test failed.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# What the server logs when the app's script raises (even when the UI hides the details).
SERVER_ERRORS = (
    "Traceback (most recent call last)",
    "Uncaught app execution",
    "Uncaught app exception",
)


def _session(request, page, server, screenshot_dir) -> Iterator[StreamlitApp]:
    url, log = server
    start = log.seek(0, os.SEEK_END)
    yield StreamlitApp(page, url, screenshot_dir).open()
    text = _server_log(log, start)
    call = getattr(request.node, "rep_call", None)
    if call is not None and call.failed:
        print(f"---- streamlit server log during this test ----\n{_tail(text)}")
    elif any(e in text for e in SERVER_ERRORS):
        pytest.fail(f"the server logged an error during this test:\n{_tail(text)}", pytrace=False)


@pytest.fixture
def app(
    request: pytest.FixtureRequest,
    page: Page,
    app_server: tuple[str, object],
    screenshot_dir: Path | None,
) -> Iterator[StreamlitApp]:
    """A fresh browser session on the app (tiny start-up sample), first page loaded. Afterwards
    the server's log of the test is printed if it failed, and an error in it fails a passing test."""
    yield from _session(request, page, app_server, screenshot_dir)


@pytest.fixture
def sample_app(
    request: pytest.FixtureRequest,
    page: Page,
    sample_server: tuple[str, object],
    screenshot_dir: Path | None,
) -> Iterator[StreamlitApp]:
    """Like `app`, on the app as `make run` serves it (shipped sample and model)."""
    yield from _session(request, page, sample_server, screenshot_dir)
