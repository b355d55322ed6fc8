"""The server's CPU per action of one visitor at a time, on a real server (loopback only).

    python bench/page_cpu_ws.py --sessions 3

`bench/page_cpu.py` times the script thread in AppTest; this starts `streamlit run app.py`
(as bench/load_ws.py does) and lets `--sessions` websocket visitors (bench/load_ws.WsSession),
one after the other, open the app and switch to each page, noting the server process's CPU
(/proc, user + system, all its threads: the script run, Streamlit's serialisation, the event
loop, the websocket) from sending the action to 0.3 s after its `script_finished`. No training
is started, so no fragment polls in between. The first visitor of the fresh server also pays the
imports and the process-wide caches.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from load import Server, proc_stats  # noqa: E402
from load_ws import WsSession  # noqa: E402

PAGES = ("Train", "Cold-start playground", "Data", "Evaluate", "What-if", "Glossary",
         "Cold-start playground", "Home")  # fmt: skip
SETTLE_S = 0.3  # after script_finished: the last messages leave the server


async def visit(server: Server, index: int) -> list[tuple[str, float, float]]:
    """(action, server CPU s, server time s) of one visitor's page load and page switches."""
    log: list = []
    s = WsSession(index, server.url, time.monotonic(), log)
    out = []
    pid = server.proc.pid
    try:
        await s.open_socket()
        steps = [("load Home", s.send_rerun)]
        seen: set[str] = set()
        for p in PAGES:
            name = f"→ {p}" + (" (again)" if p in seen else "")
            seen.add(p)
            steps.append((name, lambda p=p: s.send_rerun(page_hash=s.pages[p])))
        for name, send in steps:
            await asyncio.sleep(SETTLE_S)
            cpu0 = proc_stats(pid)[1]
            n = len(log)
            await s.act(name, send)
            await asyncio.sleep(SETTLE_S)
            cpu = proc_stats(pid)[1] - cpu0
            wall = log[n].server_s if len(log) > n else float("nan")
            out.append((name, cpu, wall))
    finally:
        await s.close()
    return out


async def run(args: argparse.Namespace) -> None:
    workspaces = Path(tempfile.mkdtemp(prefix="metarec-pagecpu-ws-"))
    server = Server(30, {"METAREC_WORKSPACE_DIR": str(workspaces)})
    server.start()
    rows: dict[str, list[tuple[float, float]]] = {}
    try:
        for i in range(args.sessions):
            for name, cpu, wall in await visit(server, i):
                rows.setdefault(name, []).append((cpu, wall))
    finally:
        server.stop()
        shutil.rmtree(workspaces, ignore_errors=True)
    print("Server CPU s (server time s) per action, visitor 1 (cold server), 2, ...:")
    print("| action | " + " | ".join(f"visitor {i + 1}" for i in range(args.sessions)) + " |")
    print("|---|" + "---|" * args.sessions)
    for name, vals in rows.items():
        print(f"| {name} | " + " | ".join(f"{c:.2f} ({w:.2f})" for c, w in vals) + " |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=3)
    asyncio.run(run(ap.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
