"""AppTest: a reload (a new session with the same `?ws=` token) finds the workspace again: the
dataset, the models, the evaluation report and a running training; another token finds nothing."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import (
    APP,
    TINY_FORM,
    clear_streamlit_caches,
    ratings_csv,
    texts,
    wait_until,
)

import app_state
from metarec_core import jobs as core_jobs
from metarec_core.workspace import new_token, valid_token

# the app on a tiny sample folder, Streamlit caches cleared around each test (tests/conftest.py);
# workspaces in the test's own folder (the autouse `workspace_dir`)
pytestmark = pytest.mark.usefixtures("small_sample")

MINE = ratings_csv(n_users=30, n_items=40, per_user=15, seed=5)


def open_app(token: object = None, timeout: float = 30):
    """A new browser session, opened on the address `?ws=token` (a reload of that page)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=timeout)
    if token is not None:
        at.query_params["ws"] = token
    at.run()
    assert not at.exception
    return at


def upload_mine(at) -> None:
    at.switch_page("pages/data.py").run()
    at.radio(key="data_source").set_value("Upload a file").run()
    at.file_uploader(key="upload_ratings").set_value(("mine.csv", MINE, "text/csv")).run()
    assert not at.exception and at.session_state["mr_data"].label == "mine.csv"


def fill_train_form(at, **form) -> None:
    at.switch_page("pages/train.py").run()
    for key, value in {**TINY_FORM, **form}.items():
        widget = at.text_input(key=key) if key == "train_hidden" else at.number_input(key=key)
        widget.set_value(value)
    at.checkbox(key="train_pretrain").uncheck()


def evaluate(at) -> dict:
    at.switch_page("pages/evaluate.py").run()
    at.multiselect(key="eval_methods").set_value(["item_mean", "user_bias"])
    at.text_input(key="eval_support").set_value("1,3")
    at.number_input(key="eval_folds").set_value(2)
    at.button(key="eval_start").click().run()
    wait_until(at, lambda x: any("Evaluation done" in s.value for s in x.success))
    return at.session_state["mr_eval_report"]


def shows_nothing_of(at, token: str) -> None:
    assert at.query_params["ws"] != token and valid_token(at.query_params["ws"])
    assert at.session_state["mr_data"].is_sample
    assert set(at.session_state["mr_models"]) == {"sample model"}
    assert "mine.csv" not in texts(at)
    at.switch_page("pages/evaluate.py").run()
    assert "mr_eval_report" not in at.session_state and not at.success
    at.switch_page("pages/train.py").run()
    assert not at.success and "train_cancel" not in [b.key for b in at.button]


def predictions(entry) -> np.ndarray:
    """The model's scores for two made-up new users."""
    return entry.model.score_many(
        [(np.array([0, 1]), np.array([5.0, 1.0])), (np.array([2]), np.array([3.0]))]
    )


def test_a_reload_brings_back_the_dataset_the_model_and_the_report():
    a = open_app()
    token = a.query_params["ws"]
    assert valid_token(token)
    upload_mine(a)
    fill_train_form(a)
    a.button(key="train_start").click().run()
    wait_until(a, lambda x: any("Training done" in s.value for s in x.success))
    report = evaluate(a)
    assert a.query_params["ws"] == token  # every page keeps the token in the address
    data = a.session_state["mr_data"].data
    model = a.session_state["mr_models"]["metasgd"]

    for reloaded in ("same server", "restarted server"):
        if reloaded == "restarted server":
            clear_streamlit_caches()  # nothing in memory: all from the workspace's files
        b = open_app(token)
        assert b.query_params["ws"] == token
        active = b.session_state["mr_data"]
        assert active.label == "mine.csv" and not active.is_sample
        assert active.data.fingerprint() == data.fingerprint()
        assert "mine.csv" in "\n".join(t.value for t in b.sidebar.text)
        assert b.session_state["mr_active_model"] == "metasgd"
        back = b.session_state["mr_models"]["metasgd"]
        np.testing.assert_array_equal(back.heldout_users, model.heldout_users)
        np.testing.assert_allclose(predictions(back), predictions(model), rtol=1e-5)
        assert back.source == model.source
        b.switch_page("pages/evaluate.py").run()
        assert not b.exception
        assert b.session_state["mr_eval_report"] == report
        assert any("Evaluation done: 4 rows" in s.value for s in b.success)
        assert any("kept on this server for 24 hours" in c.value for c in b.sidebar.caption)

    # another workspace, a guessed token and a malformed one see none of it
    for other in (None, new_token(), "../" * 14 + "x", token[:-1], token + "A"):
        shows_nothing_of(open_app(other), token)


class Gate:
    """Trainings hold after their first meta-step until `open` is set (so a test sees one
    running, whatever the machine's speed); `held` is set once one holds. They still stop
    when cancelled."""

    def __init__(self, monkeypatch) -> None:
        self.open, self.held = threading.Event(), threading.Event()
        real = core_jobs._default_learner_factory

        def factory(config):
            learner = real(config)
            fit = learner.fit

            def gated_fit(*args, callback, should_stop, **kw):
                def on_progress(p) -> None:
                    callback(p)
                    if getattr(p, "phase", "meta") == "meta" and p.step >= 1:
                        self.held.set()
                        while not self.open.wait(0.05) and not should_stop():
                            pass

                return fit(*args, callback=on_progress, should_stop=should_stop, **kw)

            learner.fit = gated_fit
            return learner

        monkeypatch.setattr(core_jobs, "_default_learner_factory", factory)


def test_a_running_training_is_found_again_after_a_reload_and_its_model_arrives(monkeypatch):
    gate = Gate(monkeypatch)
    a = open_app()
    token = a.query_params["ws"]
    upload_mine(a)
    fill_train_form(a, train_steps=6, train_eval_every=3)
    a.button(key="train_start").click().run()
    assert gate.held.wait(120), "the training never reached its first meta-step"
    job = app_state.workspace_store().get(token).jobs["train"]
    del a  # the tab is closed

    b = open_app(token)
    b.switch_page("pages/train.py").run()
    assert not b.exception
    assert "train_cancel" in [x.key for x in b.button]  # the same training, still running
    assert app_state.workspace_store().get(token).jobs["train"] is job and job.is_active
    (bar,) = b.main.get("progress")
    assert bar.proto.value > 0  # its progress so far, not a new start
    assert any("Training running in the background" in c.value for c in b.sidebar.caption)
    shows_nothing_of(open_app(), token)  # a new visitor has no training

    gate.open.set()
    wait_until(b, lambda x: any("Training done" in s.value for s in x.success))
    assert b.session_state["mr_active_model"] == "metasgd"
    # its model was saved: one more reload lists it, once
    c = open_app(token)
    assert [n for n in c.session_state["mr_models"] if n.startswith("metasgd")] == ["metasgd"]


def test_a_full_workspace_says_what_is_not_kept(monkeypatch):
    monkeypatch.setenv("METAREC_WORKSPACE_MAX_MB", "0.001")  # 1 kB: not even the dataset fits
    a = open_app()
    token = a.query_params["ws"]
    upload_mine(a)
    assert a.session_state["mr_data"].label == "mine.csv"  # still usable in this tab
    warnings = [w.value.replace("\\", "") for w in a.sidebar.warning]
    assert any(
        w.startswith("Not saved on the server: the dataset mine.csv (")
        and "over its cap of 1 kB" in w
        and "a reload or another tab will not have it" in w
        for w in warnings
    ), warnings
    assert any("up to 1 kB" in c.value for c in a.sidebar.caption)
    b = open_app(token)
    assert b.session_state["mr_data"].is_sample
    assert app_state.workspace_store().settings.max_bytes == 1000


def test_a_stored_report_this_version_cannot_read_is_left_out(workspace_dir):
    a = open_app()
    token = a.query_params["ws"]
    upload_mine(a)
    evaluate(a)
    a.run()  # the finished job's report is saved
    [stored] = list(workspace_dir.rglob("reports/*.json"))
    stored.write_text('{"protocol": {"name": "kshot"}, "rows": "damaged"}')
    clear_streamlit_caches()  # a restarted server: the report can only come from the file
    b = open_app(token)
    b.switch_page("pages/evaluate.py").run()
    assert b.session_state["mr_data"].label == "mine.csv"  # the rest of the workspace is back
    assert not b.exception and not b.success
    assert "mr_eval_report" not in b.session_state
