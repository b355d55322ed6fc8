"""The pages' polling fragments get a new fragment id on every whole run (app_state.polling_fragment).

Why: Streamlit 1.67 drops a finished run's last messages when a poll from the previous run's
timer arrives in between (docs/load.md, "cut off" runs); it ignores a poll for a fragment id the
current run does not have, so a new id per whole run turns such a stale poll away.
"""

from __future__ import annotations

from streamlit.runtime.fragment import _make_fragment_identity
from streamlit.testing.v1 import AppTest

SCRIPT = """
import streamlit as st
import app_state as state

state.begin_whole_run()

@state.polling_fragment(60)
def poll():
    st.caption("polled")

poll()
st.session_state.setdefault("polls", []).append(poll.__wrapped__)
"""


def fragment_id(func) -> str:
    return _make_fragment_identity(func, delta_path="", additional_hash_info="").fragment_id


def test_a_polling_fragment_has_a_new_id_on_every_whole_run():
    at = AppTest.from_string(SCRIPT).run()
    at.run()
    at.run()
    assert not at.exception
    assert [c.value for c in at.caption] == ["polled"]
    ids = [fragment_id(f) for f in at.session_state["polls"]]
    assert len(ids) == 3 and len(set(ids)) == 3


def test_the_app_and_its_pages_poll_only_through_it():
    # every run_every fragment of the UI goes through polling_fragment (a plain st.fragment with
    # run_every would bring the dropped messages back)
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sources = [root / "app.py", *sorted((root / "pages").glob("*.py"))]
    plain = [p.name for p in sources if "st.fragment(run_every" in p.read_text()]
    assert plain == []
    assert sum("polling_fragment(" in p.read_text() for p in sources) >= 4
