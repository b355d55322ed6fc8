"""AppTest: two browser sessions never see each other's uploads, models or jobs."""

from __future__ import annotations

import pytest
from app_support import (
    new_app,
    ratings_csv,
    tiny_model_bytes,
    wait_until,
)

# the app on a tiny sample folder, Streamlit caches cleared around each test (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("small_sample")


def test_uploads_models_and_jobs_stay_in_their_session():
    a, b = new_app(), new_app()
    # A uploads its own data
    a.switch_page("views/data.py").run()
    a.radio(key="data_source").set_value("Upload a file").run()
    a.file_uploader(key="upload_ratings").set_value(
        ("private.csv", ratings_csv(n_users=30, n_items=40, per_user=15, seed=5), "text/csv")
    ).run()
    assert a.session_state["mr_data"].label == "private.csv"
    b.run()
    assert b.session_state["mr_data"].is_sample
    assert "private" not in "\n".join(t.value for t in b.sidebar.text)
    # A trains a model on it and uploads a checkpoint; B sees neither
    a.switch_page("views/train.py").run()
    for key, value in {
        "train_factors": 4,
        "train_embedding": 4,
        "train_meta_batch": 8,
        "train_steps": 2,
    }.items():
        a.number_input(key=key).set_value(value)
    a.text_input(key="train_hidden").set_value("8")
    a.button(key="train_start").click().run()
    wait_until(a, lambda x: any("Training done" in s.value for s in x.success))
    b.switch_page("views/train.py").run()
    assert "metasgd" in a.session_state["mr_models"]
    assert set(b.session_state["mr_models"]) == {"sample model"}
    assert not any("Training" in s.value for s in b.success)
    assert "train_cancel" not in [x.key for x in b.button]
    b.file_uploader(key="upload_checkpoint").set_value(
        ("b.pt", tiny_model_bytes(), "application/octet-stream")
    ).run()
    a.run()
    assert "b.pt" in b.session_state["mr_models"] and "b.pt" not in a.session_state["mr_models"]
    # each session's playground is its own
    a.switch_page("views/data.py").run()
    a.radio(key="data_source").set_value("Sample data").run()
    a.switch_page("views/playground.py").run()
    b.switch_page("views/playground.py").run()
    a.button(key="pg_rate").click().run()
    b.run()
    assert len(a.session_state["mr_playground"].items) == 1
    assert b.session_state["mr_playground"].items == []


def training_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("metarec-training")]


def test_ending_a_session_cancels_its_jobs():
    import streamlit as st

    at = new_app()
    at.switch_page("views/train.py").run()
    for key, value in {"train_factors": 4, "train_embedding": 4, "train_meta_batch": 8}.items():
        at.number_input(key=key).set_value(value)
    at.number_input(key="train_steps").set_value(100_000)
    at.number_input(key="train_eval_every").set_value(10_000)
    before = set(training_threads())
    at.button(key="train_start").click().run()
    wait_until(at, lambda x: "train_cancel" in [b.key for b in x.button])
    mine = set(training_threads()) - before
    assert len(mine) == 1
    # what Streamlit does when a session disconnects: release its session-scoped resources
    st.cache_resource.clear()
    wait_until(at, lambda x: not any(t.is_alive() for t in mine), tries=100)
