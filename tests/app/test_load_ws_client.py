"""bench/load_ws.py reads the server's ForwardMsgs as the browser does: the widgets by their keys,
the texts a check looks for (escaped as the app escapes user strings), cached messages sent
again as a `ref_hash`, and which script run an action's wait ends on. No server here."""

from __future__ import annotations

import sys
from pathlib import Path

from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import load_ws  # noqa: E402

RATE_ID = "$$ID-0123456789abcdef-pg_rate"


def new_session(page: str, fragment: str = "") -> ForwardMsg:
    msg = ForwardMsg()
    msg.new_session.page_script_hash = page
    msg.new_session.initialize.session_id = "sid"
    if fragment:
        msg.metadata.run.fragment_ids.append(fragment)
    return msg


def caption(text: str, cacheable_hash: str = "") -> ForwardMsg:
    msg = ForwardMsg()
    msg.delta.new_element.markdown.body = text
    if cacheable_hash:
        msg.hash, msg.metadata.cacheable = cacheable_hash, True
    return msg


def rate_button() -> ForwardMsg:
    msg = ForwardMsg()
    msg.delta.new_element.button.id = RATE_ID
    msg.delta.new_element.button.label = "Rate this item"
    return msg


def finished(status: int) -> ForwardMsg:
    msg = ForwardMsg()
    msg.script_finished = status
    return msg


def test_a_recorded_playground_run_gives_its_widgets_texts_and_end() -> None:
    s = load_ws.WsSession(0, "http://127.0.0.1:1", 0.0, [])
    stream = [
        new_session("page-a"),
        caption(r"Loaded ratings\_00\.csv\: 9,000 ratings"),
        finished(ForwardMsg.FINISHED_EARLY_FOR_RERUN),  # st.rerun(): the wait goes on
        new_session("page-a"),
        rate_button(),
        caption("Model: metasgd (trained in this session). A brand-new user starts with…"),
        caption("2 ratings so far · 9/10 of the top 10 kept", cacheable_hash="h1"),
        finished(ForwardMsg.FINISHED_SUCCESSFULLY),
        new_session("page-a", fragment="frag"),  # the page's polling: never an action's end
        finished(ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY),
    ]
    for t, msg in enumerate(stream):
        s.handle(msg, float(t))
    assert s.session_id == "sid" and s.page_hash == "page-a"
    assert s.widgets["pg_rate"][:2] == (RATE_ID, "button")
    assert "Loaded ratings_00.csv: 9,000 ratings" in s.runs[0].texts
    end = s.whole_run_done(0)
    assert end is s.runs[1] and end.finished_at == 7.0 and end.first_delta_at == 4.0
    assert s.last_count() == (2, "metasgd (trained in this session)")
    assert s.whole_run_done(2) is None

    # the next run sends the cached caption as a reference to it
    ref = ForwardMsg()
    ref.ref_hash = "h1"
    s.handle(new_session("page-a"), 10.0)
    s.handle(ref, 11.0)
    assert s.runs[-1].find(load_ws.COUNT_RE)[0].group(1) == "2"
