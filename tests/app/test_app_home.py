"""AppTest: the home page (what the app is for, the idea as a picture, where to go) and its demo."""

from __future__ import annotations

import json

import pytest
from helpers import new_app, ratings_csv, texts

# the app on a tiny sample folder, Streamlit caches cleared around each test (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("small_sample")


def title(at) -> str:
    return at.title[0].value if at.title else ""


def test_the_first_screen_says_what_the_app_is_for():
    at = new_app()
    assert not at.exception
    assert title(at) == "MetaRec Studio"
    said = texts(at)
    assert "cold-start" in said and "brand-new user" in said and "Meta-learning" in said
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    names = [t.get("name", "") for t in spec["data"]]
    assert any("meta-learned start" in n for n in names)
    assert any("new user" in n for n in names) and any("training users" in n for n in names)
    keys = {b.key for b in at.button}
    assert {"home_demo", "home_playground", "home_upload", "home_evaluate"} <= keys


def upload(at, name: str = "mine.csv") -> None:
    at.switch_page("pages/data.py").run()
    at.radio(key="data_source").set_value("Upload a file").run()
    at.file_uploader(key="upload_ratings").set_value(
        (name, ratings_csv(n_users=30, n_items=40, per_user=15, seed=1), "text/csv")
    ).run()
    assert at.session_state["mr_data"].label == name


def test_try_the_playground_opens_it_on_the_sample():
    at = new_app()
    upload(at)
    at.switch_page("pages/home.py").run()
    at.button(key="home_playground").click().run()
    assert not at.exception
    assert title(at) == "Cold-start playground"
    assert at.session_state["mr_data"].is_sample
    assert "0 ratings so far" in texts(at)


def test_upload_your_data_opens_the_data_page_ready_to_upload():
    at = new_app()
    at.button(key="home_upload").click().run()
    assert not at.exception
    assert title(at) == "Data"
    assert at.radio(key="data_source").value == "Upload a file"
    assert len(at.get("file_uploader")) == 2
    assert not at.warning  # no "set via the Session State API" warning


def test_see_the_evaluation_opens_it():
    at = new_app()
    at.button(key="home_evaluate").click().run()
    assert not at.exception
    assert title(at) == "Evaluate"


def test_the_demo_plays_five_ratings_of_a_held_out_user_by_itself():
    at = new_app()
    upload(at)  # no model for the upload: the demo runs on the sample and its model
    at.switch_page("pages/home.py").run()
    at.button(key="home_demo").click().run()
    assert not at.exception
    assert title(at) == "Cold-start playground"
    assert at.session_state["mr_data"].is_sample
    assert at.session_state["pg_mode"] == "A held-out real user"
    session = at.session_state["mr_playground"]
    entry = at.session_state["mr_models"][session.model_name]
    assert session.persona is not None and session.persona.user in set(entry.heldout_users)
    assert at.session_state["mr_pg_playing"]
    # the browser stays on the page it was switched to; AppTest reruns the page it was last given
    at.switch_page("pages/playground.py")
    # each run of the polling fragment adds the next rating (AppTest has no timer: run by hand)
    for _ in range(12):
        if not at.session_state["mr_pg_playing"]:
            break
        at.run()
    assert not at.exception
    assert not at.session_state["mr_pg_playing"]  # it stopped by itself after the five
    assert len(session.items) == 5
    assert len(session.curve) == 6  # the error before any rating and after each of the five
    # next to the baselines (popularity only ranks: it has no rating error)
    assert set(session.curve[-1].mae) == {
        session.model_name,
        "mf_foldin_levels",
        "user_bias_levels",
    }
    assert "5 ratings so far" in texts(at)
    assert "mr_demo" not in at.session_state  # consumed: coming back does not replay it


def test_the_glossary_page_lists_plain_words_terms_and_methods():
    from metarec_core.glossary import GLOSSARY
    from metarec_core.methods.registry import available_methods, display_name

    at = new_app()
    at.switch_page("pages/glossary.py").run()
    assert not at.exception
    terms, methods = (df.value for df in at.dataframe)
    assert list(terms["term"]) == [e.term for e in GLOSSARY]
    assert set(methods["name"]) == {display_name(m) for m in available_methods()}
    assert "MF fold-in, rounded to stars" in set(methods["name"])


@pytest.mark.legacy_first_run
def test_a_first_visit_straight_to_a_page_is_routed_through_the_frame():
    # Until a session calls st.navigation, Streamlit runs a `pages/` file on its own (its legacy
    # multipage mode): a fresh server's first visitor of /data, and every AppTest run here.
    at = new_app()
    assert title(at) == "MetaRec Studio"
    at.switch_page("pages/data.py").run()
    assert not at.exception
    assert at.title[0].value == "Data"
    sidebar = "\n".join(t.value for t in at.sidebar.text)
    assert "users" in sidebar  # app.py's frame ran around the page
