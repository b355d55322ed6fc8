"""Whole script runs whose new_session was sent but never their script_finished, from a trace.

python bench/streamlit_trace/unfinished_runs.py TRACE_FILE
"""

import re
import sys

started = {}  # (sess, run) -> t
finished = set()
for line in open(sys.argv[1], encoding="utf-8"):  # noqa: SIM115 - a short script
    p = line.split(" ", 3)
    if len(p) < 4:
        continue
    t, th, kind, rest = p
    if kind != "FLUSH":
        continue
    sess, msgs = rest.split(" ", 1)
    for m in re.finditer(r"(new_session|script_finished)\((\w*),\[([^\]]*)\],(\d*)\)", msgs):
        typ, run, frag, st = m.groups()
        if typ == "new_session" and not frag:
            started[(sess, run)] = float(t)
        elif typ == "script_finished":
            finished.add((sess, run))
for k, t in started.items():
    if k not in finished:
        print("whole run without script_finished:", k, t)
