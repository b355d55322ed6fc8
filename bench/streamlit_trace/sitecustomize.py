"""Trace Streamlit's AppSession and ScriptRunner in a server (diagnostics only, never imported by the app).

    STUCK_TRACE=/tmp/trace.log PYTHONPATH=bench/streamlit_trace python bench/load_ws.py ...
    python bench/streamlit_trace/unfinished_runs.py /tmp/trace.log

With STUCK_TRACE set, every Python process started with this PYTHONPATH appends to that file one
line per rerun request (RR: fragment or not, the runner before and after, NEW when AppSession
started a new ScriptRunner), per runner event (EV, IGNORED when it came from a non-current
runner and AppSession dropped it), per script run start/end in the runner thread (RUN/RUNEND),
per ScriptRunner.request_stop (STOP, with its callers) and per flush of a session's messages to
its websocket (FLUSH: the run id of each new_session and script_finished). Written for the
"cut off" runs of docs/load.md. The job workers inherit PYTHONPATH, so they import Streamlit
too (their memory figures are then not comparable).
"""

import os
import threading
import time
import traceback

_LOG = os.environ.get("STUCK_TRACE")
if _LOG:
    _f = open(_LOG, "a", buffering=1)  # noqa: SIM115 - open for the process lifetime
    _lock = threading.Lock()

    def log(*parts):
        with _lock:
            _f.write(
                f"{time.monotonic():.3f} {threading.current_thread().name[:24]} "
                + " ".join(str(p) for p in parts)
                + "\n"
            )

    from streamlit.runtime import app_session as A
    from streamlit.runtime.scriptrunner import script_runner as S

    AS = A.AppSession
    orig_rr = AS.request_rerun

    def request_rerun(self, client_state):
        before = id(self._scriptrunner) if self._scriptrunner else 0
        fid = client_state.fragment_id if client_state else None
        auto = client_state.is_auto_rerun if client_state else None
        hasf = self.has_fragment(fid) if fid else None
        orig_rr(self, client_state)
        after = id(self._scriptrunner) if self._scriptrunner else 0
        log(
            "RR",
            self.id[:8],
            f"frag={fid!r}",
            f"auto={auto}",
            f"hasf={hasf}",
            f"page={(client_state.page_script_hash[:6] if client_state else '')}",
            f"runner {before:x}->{after:x}",
            "NEW" if before != after else "",
        )

    AS.request_rerun = request_rerun

    orig_h = AS._handle_scriptrunner_event_on_event_loop

    def handle(self, sender, event, *rest):
        # AppSession passes them positionally: forward_msg, exception, client_state,
        # page_script_hash, fragment_ids_this_run, pages, run_descriptor
        forward_msg, fragment_ids_this_run, run_descriptor = rest[0], rest[4], rest[6]
        cur = self._scriptrunner
        ign = sender is not cur
        name = event.name
        extra = ""
        if forward_msg is not None:
            t = forward_msg.WhichOneof("type")
            extra = t
            if t == "delta":
                extra += (
                    f":{forward_msg.delta.WhichOneof('type')}:{forward_msg.delta.fragment_id[:6]}"
                )
        if run_descriptor is not None:
            extra += f" run={run_descriptor.script_run_id[:8]}"
        if (
            name != "ENQUEUE_FORWARD_MSG"
            or ign
            or extra.startswith(("auto_rerun", "stop_auto", "page_info"))
        ):
            log(
                "EV",
                self.id[:8],
                f"{id(sender):x}",
                "IGNORED" if ign else "",
                name,
                f"frags={fragment_ids_this_run}",
                extra,
            )
        return orig_h(self, sender, event, *rest)

    AS._handle_scriptrunner_event_on_event_loop = handle

    SR = S.ScriptRunner
    orig_stop = SR.request_stop

    def request_stop(self):
        st = traceback.extract_stack(limit=4)
        log(
            "STOP",
            f"{id(self):x}",
            self._session_id[:8],
            " < ".join(f"{fr.name}:{fr.lineno}" for fr in st[:-1]),
        )
        return orig_stop(self)

    SR.request_stop = request_stop

    orig_run = SR._run_script

    def _run_script(self, rerun_data):
        log(
            "RUN",
            f"{id(self):x}",
            self._session_id[:8],
            f"fq={rerun_data.fragment_id_queue}",
            f"page={rerun_data.page_script_hash[:6]}",
        )
        try:
            return orig_run(self, rerun_data)
        finally:
            log("RUNEND", f"{id(self):x}", self._session_id[:8])

    SR._run_script = _run_script

    log("TRACE installed")

if _LOG:
    orig_flush = AS.flush_browser_queue

    def flush_browser_queue(self):
        msgs = orig_flush(self)
        kinds = []
        for m in msgs:
            t = m.WhichOneof("type")
            if t in ("new_session", "script_finished"):
                kinds.append(
                    f"{t}({m.metadata.run.script_run_id[:8]},{list(m.metadata.run.fragment_ids)[:1]},{m.script_finished if t == 'script_finished' else ''})"
                )
            elif t == "delta":
                kinds.append("d")
            else:
                kinds.append(t)
        if msgs:
            log("FLUSH", self.id[:8], " ".join(kinds)[:600])
        return msgs

    AS.flush_browser_queue = flush_browser_queue
