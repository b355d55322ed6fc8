"""AppTest: switching datasets while jobs run, model names, and user text shown literally."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import (
    check_only_against,
    clear_streamlit_caches,
    new_app,
    ratings_csv,
    texts,
    tiny_model_bytes,
    train_page,
    write_sample_dir,
)

import app_state

OTHER = ratings_csv(n_users=30, n_items=40, per_user=15, seed=5)


@pytest.fixture(autouse=True)
def clean_caches():
    clear_streamlit_caches()
    yield
    clear_streamlit_caches()


def upload_other(at, name: str = "other.csv") -> None:
    at.switch_page("pages/data.py").run()
    at.radio(key="data_source").set_value("Upload a file").run()
    at.file_uploader(key="upload_ratings").set_value((name, OTHER, "text/csv")).run()
    assert not at.exception
    assert at.session_state["mr_data"].label == name


def wait_for_threads(prefix: str, timeout: float = 120.0) -> None:
    """Until no thread named `prefix…` is alive (the jobs' workers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(t.name.startswith(prefix) and t.is_alive() for t in threading.enumerate()):
            return
        time.sleep(0.1)  # polling a background thread, not synchronisation by sleep
    raise AssertionError(f"{prefix} threads still running after {timeout} s")


@pytest.mark.usefixtures("small_sample")
def test_training_is_kept_for_its_data_when_another_is_made_active(held, monkeypatch):
    check_only_against(monkeypatch, "user_bias")  # a tiny training passes this model check
    trainings = held()  # still running while another dataset is made active
    at = train_page()
    at.checkbox(key="train_pretrain").uncheck()
    at.button(key="train_start").click().run()
    upload_other(at)
    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert "not on the active dataset" in texts(at).replace("\\", "")
    trainings.wait_finished()
    at.run()  # before the fix: reran itself without end (AppTest timed out) on "done"
    assert not at.exception
    assert "It is kept for that dataset" in texts(at)
    models = at.session_state["mr_models"]
    assert "metasgd" in models and at.session_state["mr_active_model"] != "metasgd"
    assert "metasgd" not in app_state_models_for(at, "other.csv")
    # back on the sample, the model trained on it is there
    at.switch_page("pages/data.py").run()
    at.radio(key="data_source").set_value("Sample data").run()
    assert "metasgd" in at.sidebar.selectbox(key="sidebar_model").options


def app_state_models_for(at, label: str) -> list[str]:
    data = at.session_state["mr_data"]
    assert data.label == label
    fp = data.data.fingerprint()
    return [n for n, m in at.session_state["mr_models"].items() if m.fingerprint == fp]


def test_the_sample_background_model_does_not_concern_an_upload(tmp_path, monkeypatch, held):
    check_only_against(monkeypatch, "user_bias")  # a tiny training passes this model check
    monkeypatch.setenv("METAREC_SAMPLE_DIR", str(write_sample_dir(tmp_path / "bare")))
    monkeypatch.setenv("METAREC_QUICK_STEPS", "4")
    trainings = held()  # the sample's quick model is still training during the upload
    at = new_app()  # the sample has no model.pt: a quick one trains in the background
    upload_other(at)
    at.switch_page("pages/playground.py").run()
    assert not at.exception
    shown = texts(at)
    assert "No model for this dataset yet" in shown and "quick model" not in shown
    assert len(trainings.jobs) == 1
    trainings.wait_finished()
    at.run()  # before the fix: reran itself without end once the sample model was done
    assert not at.exception and "No model for this dataset yet" in texts(at)
    at.switch_page("pages/data.py").run()
    at.radio(key="data_source").set_value("Sample data").run()
    assert at.session_state["mr_active_model"] == "sample model (quick)"


@pytest.mark.usefixtures("small_sample")
@pytest.mark.parametrize("name", ["popularity", "mf_foldin_levels", "user_bias"])
def test_a_checkpoint_named_like_a_baseline_gets_its_own_name(name):
    at = new_app()
    at.switch_page("pages/train.py").run()
    at.file_uploader(key="upload_checkpoint").set_value(
        (name, tiny_model_bytes(), "application/octet-stream")
    ).run()
    assert not at.exception
    assert at.session_state["mr_active_model"] == f"{name} #2"
    at.switch_page("pages/playground.py").run()
    assert not at.exception
    at.switch_page("pages/whatif.py").run()
    assert not at.exception
    options = at.multiselect(key="wi_models").options
    assert f"{name} #2" in options and len(options) == len(set(options))


@pytest.mark.usefixtures("small_sample")
def test_an_evaluation_of_other_data_says_so():
    at = new_app()
    at.switch_page("pages/evaluate.py").run()
    at.multiselect(key="eval_methods").set_value(["item_mean", "user_bias"])
    at.text_input(key="eval_support").set_value("1,3")
    at.number_input(key="eval_query").set_value(5)
    at.button(key="eval_start").click().run()
    upload_other(at)
    wait_for_threads("metarec-")
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    assert "This evaluation ran on sample" in texts(at).replace("\\", "")
    assert not at.success  # the sample's report is not shown for the upload
    at.switch_page("pages/data.py").run()
    at.radio(key="data_source").set_value("Sample data").run()
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    assert any("Evaluation done" in s.value for s in at.success)


@pytest.mark.parametrize(
    "text",
    [
        "www.evil.example https://evil.example/x.csv",
        "mail me: someone@evil.example",
        "[CLICK](https://evil.example) **BIG**",
    ],
)
def test_plain_breaks_markdown_and_bare_links(text):
    import re

    out = app_state.plain(text)
    assert out.replace("\\", "").replace("\u200b", "") == text  # reads the same
    unescaped = re.sub(r"\\(.)", "", out)  # what markdown could still interpret
    for c in "[]()*_":
        assert c not in unescaped
    assert "://" not in out.replace("\\", "") or "://\u200b" in out.replace("\\", "")
    assert "www." not in out.replace("\\", "")
    assert not re.search(r"@[A-Za-z0-9]", out.replace("\\", ""))


def test_chart_text_escapes_html_for_plotly():
    got = app_state.chart_text("<b>BOLD</b><a href='https:x'>CLICK</a> & co")
    assert "<" not in got and ">" not in got
    assert got == "&lt;b&gt;BOLD&lt;/b&gt;&lt;a href='https:x'&gt;CLICK&lt;/a&gt; &amp; co"


@pytest.mark.usefixtures("small_sample")
def test_sidebar_shows_a_checkpoint_name_literally():
    at = new_app()
    at.switch_page("pages/train.py").run()
    name = "[CLICKME](https://evil.example) **BIG**.pt"
    at.file_uploader(key="upload_checkpoint").set_value(
        (name, tiny_model_bytes(), "application/octet-stream")
    ).run()
    at.run()  # the sidebar is drawn before the page that registers the upload
    assert not at.exception
    captions = [c.value for c in at.sidebar.caption]
    assert app_state.plain(f"uploaded checkpoint {name}") in captions
