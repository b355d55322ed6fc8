"""CPU time of one session's whole script runs, per page (no server, no browser, no other session).

    python bench/page_cpu.py --sessions 3 --profile 2 --top 25

Wall-clock load tests on a shared machine are noisy; the CPU a script run takes is not (much).
This drives the app with Streamlit's AppTest as a fresh browser session would: open the app
(Home), then switch to Train, the playground, Data, Evaluate, What-if, Glossary, the playground
again and Home again, and notes each run's CPU time (the script thread's `time.thread_time`:
what the server's interpreter spends on that session's run; Streamlit's own serialisation of
the deltas and the websocket are not in it). The first session of the process also pays the
imports and the process-wide caches (the cold server's first visitor); later sessions show
what every further visitor costs. `--profile S` prints cProfile's top functions (cumulative)
for each run of session S.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = (
    ("home", None),
    ("train", "pages/train.py"),
    ("playground", "pages/playground.py"),
    ("data", "pages/data.py"),
    ("evaluate", "pages/evaluate.py"),
    ("whatif", "pages/whatif.py"),
    ("glossary", "pages/glossary.py"),
    ("playground again", "pages/playground.py"),
    ("home again", "pages/home.py"),
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=3)
    p.add_argument("--profile", type=int, default=0, help="session (1-based) to profile; 0 none")
    p.add_argument("--top", type=int, default=20)
    args = p.parse_args(argv)
    os.environ.setdefault("METAREC_WORKSPACE_DIR", tempfile.mkdtemp(prefix="metarec-pagecpu-"))

    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest
    from streamlit.testing.v1.local_script_runner import LocalScriptRunner

    # As a warm server (and tests/conftest.py): app.py's st.navigation routes every page.
    init = PagesManager.__init__

    def routed_init(self, *a, **kw) -> None:
        init(self, *a, **kw)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = routed_init  # type: ignore[method-assign]

    seen: list[tuple[float, cProfile.Profile | None]] = []
    profiling = {"on": False}
    run_thread = LocalScriptRunner._run_script_thread

    def timed(self) -> None:  # the script thread: its own CPU, optionally profiled
        prof = cProfile.Profile() if profiling["on"] else None
        t0 = time.thread_time()
        if prof is not None:
            prof.enable()
        try:
            run_thread(self)
        finally:
            if prof is not None:
                prof.disable()
            seen.append((time.thread_time() - t0, prof))

    LocalScriptRunner._run_script_thread = timed  # type: ignore[method-assign]

    table: dict[str, list[float]] = {name: [] for name, _ in STEPS}
    for s in range(1, args.sessions + 1):
        profiling["on"] = s == args.profile
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        for name, page in STEPS:
            seen.clear()
            if page is not None:
                at.switch_page(page)
            at.run()
            if at.exception:
                print(f"session {s} {name}: {at.exception[0].message}", file=sys.stderr)
            cpu = sum(c for c, _ in seen)
            table[name].append(cpu)
            for _, prof in seen:
                if prof is not None:
                    out = io.StringIO()
                    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(args.top)
                    print(f"\n===== session {s}: {name} ({cpu:.3f} s CPU)")
                    print("\n".join(out.getvalue().splitlines()[6:]))
    print("\nCPU seconds per whole script run (script thread), per session:")
    print("| page | " + " | ".join(f"session {s}" for s in range(1, args.sessions + 1)) + " |")
    print("|---|" + "---|" * args.sessions)
    for name, cpus in table.items():
        print(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cpus) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
