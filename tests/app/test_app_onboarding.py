"""AppTest: the Evaluate page's Onboarding mode and the playground's "Ask me" mode."""

from __future__ import annotations

import json
import re

import pytest
from helpers import new_app, texts, wait_until

# the app on a tiny sample folder with a tiny model, caches cleared (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("small_sample")


def test_onboarding_mode_runs_the_strategies_and_draws_curves_with_bands():
    at = new_app()
    at.switch_page("pages/evaluate.py").run()
    at.radio(key="eval_mode").set_value("Onboarding").run()
    assert not at.exception
    at.multiselect(key="onb_strategies").set_value(["random", "popularity", "shrinkage"])
    at.multiselect(key="onb_methods").set_value(["user_bias"])
    at.number_input(key="onb_questions").set_value(3)
    at.number_input(key="onb_folds").set_value(2)
    at.button(key="onb_start").click().run()
    wait_until(at, lambda a: any("Onboarding evaluation done" in s.value for s in a.success))
    assert not at.exception and not at.error
    report = at.session_state["mr_onb_report"]
    assert report.config.questions == 3 and report.config.unknown == ("cost",)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 2  # MAE and nDCG@5 over the number of questions
    mae = charts[0]
    lines = [t for t in mae["data"] if t.get("mode") == "lines+markers"]
    bands = [t for t in mae["data"] if t.get("fill") == "toself"]
    assert len(lines) == 3 and len(bands) == 3
    assert lines[0]["x"] == [0, 1, 2, 3]
    table = at.dataframe[0].value
    assert len(table) == 3 and "MAE@3" in table.columns and "− random @3" in table.columns
    # the methods mode is still there
    at.radio(key="eval_mode").set_value("Methods").run()
    assert not at.exception and at.button(key="eval_start")


def _question(at) -> str:
    found = [m.value for m in at.markdown if m.value.startswith("**Question")]
    assert found, texts(at)
    return found[0]


def test_ask_me_proposes_then_rate_or_not_seen_gives_the_next_question():
    at = new_app()
    at.switch_page("pages/playground.py").run()
    at.radio(key="pg_mode").set_value("Ask me").run()
    assert not at.exception
    first = _question(at)
    assert first.startswith("**Question 1:**")
    assert any("Why this one" in c.value and "%" in c.value for c in at.caption)
    session = at.session_state["mr_playground"]
    at.select_slider(key="pg_ask_rating").set_value(5.0)
    at.button(key="pg_ask_rate").click().run()
    assert not at.exception
    second = _question(at)
    assert second.startswith("**Question 2:**") and second[15:] != first[15:]
    assert len(session.items) == 1 and session.ratings == [5.0]  # the model adapted to it
    assert any(re.search(r"chosen in \d+ ms", c.value) for c in at.caption)
    at.button(key="pg_ask_skip").click().run()  # haven't seen it
    third = _question(at)
    assert third.startswith("**Question 3:**") and third[15:] != second[15:]
    assert len(session.items) == 1  # not seen: no rating
    iv = at.session_state["mr_pg_interview"]
    assert iv.answers.n_asked == 2 and iv.answers.n_answered == 1
    # another strategy: a fresh interview that never asks the item already rated
    at.selectbox(key="pg_ask_strategy").set_value("popularity").run()
    assert not at.exception and _question(at).startswith("**Question 1:**")
    assert at.session_state["mr_pg_interview"].current.item not in session.items
