"""AppTest: the app frame and the Data page (sample, good and bad uploads)."""

from __future__ import annotations

import json

import pytest
from app_support import (
    new_app,
    ratings_csv,
    texts,
)

# the app on a tiny sample folder, Streamlit caches cleared around each test (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("small_sample")


def plotly_layouts(at) -> list[dict]:
    return [json.loads(c.proto.spec)["layout"] for c in at.get("plotly_chart")]


def test_first_load_shows_the_sample_with_charts():
    at = new_app()
    assert not at.exception
    assert at.session_state["mr_data"].is_sample
    assert "80 users" in "\n".join(t.value for t in at.sidebar.text)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Users"] == "80" and metrics["Items"] == "60" and metrics["Ratings"] == "2,000"
    layouts = plotly_layouts(at)
    assert len(layouts) == 3
    for lay in layouts:  # every chart has both axis titles
        assert lay["xaxis"]["title"]["text"] and lay["yaxis"]["title"]["text"]
    assert "log" in layouts[1]["yaxis"]["title"]["text"] and layouts[2]["yaxis"]["type"] == "log"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", "empty"),
        (b"user,item,rating\n", "no data rows"),
        (b"user,item,rating\nu1,i1,abc\nu2,i2,4\n", "rating"),
        (b"\x00\xff\x00garbage\x89PNG" * 20, "bad.csv"),
    ],
)
def test_bad_upload_shows_a_clear_error(payload, expected):
    at = new_app()
    at.radio(key="data_source").set_value("Upload a file").run()
    at.file_uploader(key="upload_ratings").set_value(("bad.csv", payload, "text/csv")).run()
    assert not at.exception
    assert len(at.error) == 1
    msg = at.error[0].value.replace("\\", "")
    assert "bad.csv" in msg or expected == "bad.csv"
    assert expected.lower() in msg.lower()
    assert "Traceback" not in msg
    # the sample stays active
    assert at.session_state["mr_data"].is_sample


def test_good_upload_becomes_active_with_warnings():
    raw = ratings_csv(n_users=30, n_items=40, per_user=15, seed=1)
    dup = raw.splitlines()[1]  # one duplicate (user, item) pair: kept last, counted
    at = new_app()
    at.radio(key="data_source").set_value("Upload a file").run()
    at.file_uploader(key="upload_ratings").set_value(
        ("mine.csv", raw + dup + b"\n", "text/csv")
    ).run()
    assert not at.exception and not at.error
    active = at.session_state["mr_data"]
    assert not active.is_sample and active.label == "mine.csv" and active.data.n_users == 30
    assert any("duplicate" in w.value for w in at.warning)
    assert "mine" in texts(at) and "30 users" in "\n".join(t.value for t in at.sidebar.text)
    assert len(at.get("plotly_chart")) == 3
    # back to the sample
    at.radio(key="data_source").set_value("Sample data").run()
    assert at.session_state["mr_data"].is_sample
