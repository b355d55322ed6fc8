"""AppTest: two browser sessions (two workspaces) never see each other's uploads, models or jobs;
a closed session's jobs run on until its workspace expires."""

from __future__ import annotations

import pytest
from helpers import (
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
    a.switch_page("pages/data.py").run()
    a.radio(key="data_source").set_value("Upload a file").run()
    a.file_uploader(key="upload_ratings").set_value(
        ("private.csv", ratings_csv(n_users=30, n_items=40, per_user=15, seed=5), "text/csv")
    ).run()
    assert a.session_state["mr_data"].label == "private.csv"
    b.run()
    assert b.session_state["mr_data"].is_sample
    assert "private" not in "\n".join(t.value for t in b.sidebar.text)
    # A trains a model on it and uploads a checkpoint; B sees neither
    a.switch_page("pages/train.py").run()
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
    b.switch_page("pages/train.py").run()
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
    a.switch_page("pages/data.py").run()
    a.radio(key="data_source").set_value("Sample data").run()
    a.switch_page("pages/playground.py").run()
    b.switch_page("pages/playground.py").run()
    a.button(key="pg_rate").click().run()
    b.run()
    assert len(a.session_state["mr_playground"].items) == 1
    assert b.session_state["mr_playground"].items == []


def training_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("metarec-training")]


def start_endless_training(at) -> set:
    """Start a training that runs until cancelled; returns its worker thread(s)."""
    at.switch_page("pages/train.py").run()
    for key, value in {"train_factors": 4, "train_embedding": 4, "train_meta_batch": 8}.items():
        at.number_input(key=key).set_value(value)
    at.number_input(key="train_steps").set_value(100_000)
    at.number_input(key="train_eval_every").set_value(10_000)
    before = set(training_threads())
    at.button(key="train_start").click().run()
    wait_until(at, lambda x: "train_cancel" in [b.key for b in x.button])
    mine = set(training_threads()) - before
    assert len(mine) == 1
    return mine


def test_a_closed_session_leaves_its_jobs_running_until_the_workspace_expires(monkeypatch):
    import time

    import app_state
    from metarec_core.jobs import default_pool

    # both trainings run at once (the server's pool may have one place: the second would wait)
    monkeypatch.setattr(default_pool(), "max_running", 2)
    at = new_app()
    token = at.query_params["ws"]
    other = new_app()
    mine = start_endless_training(at)
    theirs = start_endless_training(other)
    del at  # the tab is closed (or reloaded): its workspace's training goes on
    store = app_state.workspace_store()
    assert all(t.is_alive() for t in mine)
    # the workspace is idle past its TTL: the sweep cancels its jobs, not the other's
    store.get(other.query_params["ws"]).touch(time.time() + store.settings.ttl_seconds)
    assert store.sweep(now=time.time() + store.settings.ttl_seconds + 1, force=True) == 1
    assert store.get(token) is None
    wait_until(other, lambda x: not any(t.is_alive() for t in mine), tries=100)
    assert all(t.is_alive() for t in theirs)
    other.button(key="train_cancel").click().run()
    wait_until(other, lambda x: not any(t.is_alive() for t in theirs), tries=100)


def test_stopping_the_server_cancels_every_job():
    import streamlit as st

    at = new_app()
    mine = start_endless_training(at)
    # what the server does with its global resources when it stops: release the workspaces
    st.cache_resource.clear()
    wait_until(at, lambda x: not any(t.is_alive() for t in mine), tries=100)
