"""AppTest: the app frame and the Data page (sample, good and bad uploads)."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import pytest
from helpers import (
    GENRES,
    items_csv,
    new_app,
    ratings_csv,
    texts,
)

from app_support.charts import log_ticks, titled

# the app on a tiny sample folder, Streamlit caches cleared around each test (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("small_sample")


def plotly_layouts(at) -> list[dict]:
    return [json.loads(c.proto.spec)["layout"] for c in at.get("plotly_chart")]


def data_page():
    """A fresh app (a new session) on the Data page."""
    at = new_app()
    at.switch_page("pages/data.py").run()
    return at


def test_first_load_shows_the_sample_with_charts():
    at = data_page()
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
    at = data_page()
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
    at = data_page()
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


OTHER = dict(n_users=30, n_items=40, per_user=15, seed=1)  # not the sample's content


def upload_mode(at):
    at.switch_page("pages/data.py").run()
    at.radio(key="data_source").set_value("Upload a file").run()
    return at


def test_items_file_uploaded_after_the_ratings_is_attached_and_said():
    at = upload_mode(new_app())
    at.file_uploader(key="upload_ratings").set_value(
        ("mine.csv", ratings_csv(**OTHER), "text/csv")
    ).run()
    assert at.session_state["mr_data"].data.items is None
    assert "No items file" in texts(at)
    at.file_uploader(key="upload_items").set_value(
        ("films.csv", items_csv(**OTHER), "text/csv")
    ).run()
    assert not at.exception and not at.error
    active = at.session_state["mr_data"]
    assert active.label == "mine.csv" and not active.is_sample
    items = active.data.items
    assert items is not None and set(items.genre_names) == set(GENRES)
    assert all(t.startswith("Film ") for t in items.titles)
    named = active.data.n_items - items.missing
    assert f"films.csv: {named:,} items with titles and 4 genres" in texts(at).replace("\\", "")


def test_items_file_first_then_ratings_also_attaches():
    at = upload_mode(new_app())
    at.file_uploader(key="upload_items").set_value(
        ("films.csv", items_csv(**OTHER), "text/csv")
    ).run()
    assert at.session_state["mr_data"].is_sample  # nothing to attach it to yet
    assert "Now upload the ratings file" in texts(at)
    at.file_uploader(key="upload_ratings").set_value(
        ("mine.csv", ratings_csv(**OTHER), "text/csv")
    ).run()
    assert at.session_state["mr_data"].data.items is not None
    assert "items with titles and 4 genres" in texts(at)


def test_a_bad_items_file_is_refused_and_the_upload_stays():
    at = upload_mode(new_app())
    at.file_uploader(key="upload_ratings").set_value(
        ("mine.csv", ratings_csv(**OTHER), "text/csv")
    ).run()
    at.file_uploader(key="upload_items").set_value(("films.csv", b"", "text/csv")).run()
    assert not at.exception and len(at.error) == 1
    assert "films.csv" in at.error[0].value.replace("\\", "")
    active = at.session_state["mr_data"]
    assert active.label == "mine.csv" and active.data.items is None


def test_the_active_upload_is_shown_after_leaving_the_page_with_a_replace_button():
    at = upload_mode(new_app())
    at.file_uploader(key="upload_ratings").set_value(
        ("mine.csv", ratings_csv(**OTHER), "text/csv")
    ).run()
    at.file_uploader(key="upload_items").set_value(
        ("films.csv", items_csv(**OTHER), "text/csv")
    ).run()
    at.switch_page("pages/train.py").run()
    at.switch_page("pages/data.py").run()
    assert not at.exception
    shown = texts(at).replace("\\", "")
    assert "Upload a ratings file" not in shown
    assert "Loaded mine.csv: 450 ratings of 30 users and 40 items" in shown
    assert "films.csv: " in shown and "with titles and 4 genres" in shown
    assert not at.get("file_uploader")  # the empty boxes are not offered as if nothing were loaded
    at.button(key="data_replace").click().run()
    assert len(at.get("file_uploader")) == 2
    # an items file alone goes with the active upload's ratings
    at.file_uploader(key="upload_items").set_value(
        ("other_items.csv", items_csv(**OTHER), "text/csv")
    ).run()
    assert at.session_state["mr_data"].label == "mine.csv"
    assert "other_items.csv: " in texts(at).replace("\\", "")
    # a new ratings file replaces the upload
    at.file_uploader(key="upload_ratings").set_value(
        ("next.csv", ratings_csv(n_users=25, n_items=40, per_user=15, seed=2), "text/csv")
    ).run()
    assert at.session_state["mr_data"].label == "next.csv"
    assert at.session_state["mr_data"].data.n_users == 25


def test_metric_values_fit_and_log_axes_have_explicit_ticks():
    at = new_app()
    at.switch_page("pages/data.py").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rating scale"] == "1–5"  # no "(step 1)" to be cut off
    assert all(len(v) <= 8 for v in metrics.values()), metrics
    assert "in steps of 1" in texts(at)
    for lay in plotly_layouts(at):
        for axis in ("xaxis", "yaxis"):
            if lay[axis].get("type") == "log":  # Plotly's own log ticks read "1 2 5 10 2 5 100"
                vals, text = lay[axis]["tickvals"], lay[axis]["ticktext"]
                assert len(vals) == len(text) >= 2
                assert all(float(t.replace(",", "")) == v for t, v in zip(text, vals, strict=True))


def test_titled_sets_the_pages_chart_layout():
    fig = titled(go.Figure(), "T", "X", "Y", xaxis_type="category")
    lay = fig.layout
    assert (lay.title.text, lay.xaxis.title.text, lay.yaxis.title.text) == ("T", "X", "Y")
    assert lay.height == 320 and lay.xaxis.type == "category"
    assert (lay.margin.t, lay.margin.b, lay.margin.l, lay.margin.r) == (50, 40, 50, 10)
    lay = titled(go.Figure(), "T", "X", "Y", height=400, margin=dict(t=1, b=2, l=3, r=4)).layout
    assert lay.height == 400 and (lay.margin.t, lay.margin.r) == (1, 4)


def test_log_ticks_are_labelled_in_full():
    assert log_ticks(1, 700)[1] == ["1", "2", "5", "10", "20", "50", "100", "200", "500"]
    assert log_ticks(1, 100_000)[1] == ["1", "10", "100", "1,000", "10,000", "100,000"]
    assert log_ticks(24, 44)[0] == [30, 40]


def test_an_upload_made_active_elsewhere_is_shown_and_takes_an_items_file():
    """E.g. a dataset restored by the app rather than uploaded on this page in this run."""
    import app_state
    from metarec_core.data.io import load_ratings

    at = new_app()
    data = load_ratings(ratings_csv(**OTHER), name="restored.csv")
    at.session_state["mr_data"] = app_state.ActiveData(data, "restored.csv", is_sample=False)
    at.switch_page("pages/data.py").run()
    assert not at.exception
    assert "Loaded restored.csv: 450 ratings of 30 users" in texts(at).replace("\\", "")
    at.button(key="data_replace").click().run()
    at.file_uploader(key="upload_items").set_value(
        ("films.csv", items_csv(**OTHER), "text/csv")
    ).run()
    active = at.session_state["mr_data"]
    assert active.label == "restored.csv" and active.data.items is not None
    assert active.data.fingerprint() == data.fingerprint()  # the same ratings: models still fit
