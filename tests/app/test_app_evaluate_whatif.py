"""AppTest: the Evaluate page (tiny evaluation job -> report) and the What-if page."""

from __future__ import annotations

import json
import re
import threading

import pytest
from helpers import new_app, wait_until

from app_support import format as fmt
from metarec_core.methods.registry import display_name

# the app on a tiny sample folder, Streamlit caches cleared around each test (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("small_sample")


def evaluate_page(methods=("item_mean", "user_bias", "popularity"), support="1,3", folds=2):
    at = new_app()
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    at.multiselect(key="eval_methods").set_value(list(methods))
    at.text_input(key="eval_support").set_value(support)
    at.number_input(key="eval_folds").set_value(folds)
    return at


def test_evaluation_job_produces_a_report_with_curves_and_downloads():
    at = evaluate_page()
    at.button(key="eval_start").click().run()
    wait_until(at, lambda a: any("Evaluation done" in s.value for s in a.success))
    assert not at.exception and not at.error
    report = at.session_state["mr_eval_report"]
    assert {(r.method, r.support) for r in report.rows} == {
        (m, k) for m in ("item_mean", "user_bias", "popularity") for k in (1, 3)
    }
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 3  # MAE and nDCG curves, then the paired differences' forest plot
    charts = charts[:2]
    for fig in charts:
        assert fig["layout"]["xaxis"]["title"]["text"] and fig["layout"]["yaxis"]["title"]["text"]
    mae_fig = charts[0]
    lines = [t for t in mae_fig["data"] if t.get("mode") == "lines+markers"]
    bands = [t for t in mae_fig["data"] if t.get("fill") == "toself"]
    # popularity ranks only: MAE lines for the two rating predictors, each with its CI band
    assert sorted(t["name"] for t in lines) == sorted(map(display_name, ["item_mean", "user_bias"]))
    assert len(bands) == 2
    table = at.dataframe[0].value
    assert len(table) == 6
    assert set(table["method"]) == set(map(display_name, ["item_mean", "user_bias", "popularity"]))
    assert len(at.dataframe) == 2  # the paired differences
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download report (JSON)", "Download table (CSV)"]


def test_several_training_runs_per_fold_are_averaged_and_said_so():
    at = evaluate_page(methods=("item_mean", "mf_foldin"), support="1")
    at.number_input(key="eval_train_seeds").set_value(2)
    at.button(key="eval_start").click().run()
    wait_until(at, lambda a: any("Evaluation done" in s.value for s in a.success))
    assert not at.exception and not at.error
    report = at.session_state["mr_eval_report"]
    assert report.protocol.train_seeds == 2
    assert any("fitted 2 times per fold" in c.value for c in at.caption)


def test_support_zero_scores_the_prior_on_a_category_axis():
    at = evaluate_page(methods=("item_mean", "user_bias"), support="0,1,3")
    at.button(key="eval_start").click().run()
    wait_until(at, lambda a: any("Evaluation done" in s.value for s in a.success))
    assert not at.exception and not at.error
    rows = at.session_state["mr_eval_report"].rows
    by = {(r.method, r.support): r.mae for r in rows}
    # with no rating user_bias has nothing to fold in: it is the item-mean prior
    assert by[("user_bias", 0)] == pytest.approx(by[("item_mean", 0)], abs=0.02)
    assert all(by[("user_bias", k)] is not None for k in (0, 1, 3))
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    # a log axis would drop k=0 silently
    assert fig["layout"]["xaxis"]["type"] == "category"
    assert fig["layout"]["xaxis"]["categoryarray"] == ["0", "1", "3"]
    line = next(t for t in fig["data"] if t.get("name") == display_name("user_bias"))
    assert line["x"] == ["0", "1", "3"]


@pytest.mark.parametrize("text", ["1,x", "-1,3"])
def test_bad_support_sizes_are_a_clear_error(text):
    at = evaluate_page(support=text)
    at.button(key="eval_start").click().run()
    assert not at.exception
    assert "support sizes" in at.error[0].value
    assert "mr_eval_report" not in at.session_state
    assert not at.get("progress")  # no job was started


def test_evaluation_can_be_cancelled():
    at = evaluate_page(methods=("metasgd", "user_bias"), support="1")
    at.button(key="eval_start").click().run()
    wait_until(at, lambda a: "eval_cancel" in [b.key for b in a.button])
    at.button(key="eval_cancel").click().run()
    wait_until(at, lambda a: any("cancelled" in w.value for w in a.warning), tries=300)
    assert "mr_eval_report" not in at.session_state


def test_page_and_sidebar_show_the_same_progress_inside_a_fit(monkeypatch):
    from metarec_core.evaluation import runner as evaluate

    inside, release = threading.Event(), threading.Event()
    real_fit = evaluate._fit

    def held_fit(method, data, fold, should_stop, progress=None):
        """Each fit reports 60% of itself, then waits (the first) for the test."""
        if progress is not None:
            progress(0.6, "ALS round 7/12")
        if not inside.is_set():
            inside.set()
            assert release.wait(300), "the test never released the fit"
        return real_fit(method, data, fold, should_stop, progress)

    monkeypatch.setattr(evaluate, "_fit", held_fit)
    at = evaluate_page(methods=("mf_foldin", "item_mean"))
    at.button(key="eval_start").click().run()
    try:
        assert inside.wait(300), "the evaluation never reached its first fit"
        at.run()
        assert not at.exception
        [bar] = [el.proto.text for el in at.get("progress")]
        shown = bar.replace("\\", "")  # the message is shown literally (markdown-escaped)
        page = re.match(r"(\d+)% · fold 1/2: fitting mf_foldin: ALS round 7/12 · ", shown)
        assert page, bar
        side = [c.value for c in at.sidebar.caption if c.value.startswith("Evaluation")]
        assert side == [f"Evaluation running in the background: {page.group(1)}%"]
        # 60% of mf_foldin's fit: 18 of the 70 units (2 folds x (mf_foldin 30 + item_mean 1
        # + 2 scorings each)); before any fit ended
        assert page.group(1) == "26"
        assert "ETA 0 s" not in bar
    finally:
        release.set()
    wait_until(at, lambda a: any("Evaluation done" in s.value for s in a.success), tries=600)


def test_whatif_compares_two_models_on_the_playground_user():
    at = new_app()
    at.switch_page("pages/playground.py").run()
    at.radio(key="pg_mode").set_value("A held-out real user").run()
    at.button(key="pg_use_heldout").click().run()
    for _ in range(6):
        at.button(key="pg_next").click().run()
    at.switch_page("pages/whatif.py").run()
    assert not at.exception
    assert at.radio(key="wi_source").value == "The playground's ratings"
    assert at.multiselect(key="wi_models").value == [
        "sample model",
        "mf_foldin_levels",
        "user_bias_levels",
    ]
    at.multiselect(key="wi_models").set_value(["sample model", "mf_foldin_levels"])
    at.button(key="wi_compare").click().run()
    assert not at.exception and not at.error
    result, what, data = at.session_state["mr_whatif"]
    assert result.names == ("sample model", "mf_foldin_levels") and "6" in what
    side = at.dataframe[0].value
    assert list(side.columns) == ["rank", "m0", "m1"] and len(side) == 10
    stab = at.dataframe[1].value
    assert stab["model"].tolist() == ["sample model", "mf_foldin_levels"]
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(figs) == 3 and figs[1]["layout"]["xaxis"]["title"]["text"] == "Ratings given"
    # per rating 1..6: the share of the top-10 kept from the list before it
    assert figs[1]["data"][0]["x"] == [1, 2, 3, 4, 5, 6]
    assert figs[1]["data"][0]["y"] == result.kept["sample model"]
    assert figs[1]["layout"]["xaxis"]["dtick"] == 1  # whole ratings, no tick at 1.5
    # why, and how sure: each model's top-10 with its interval and what moved it
    for name, source in [
        ("sample model", "calibrated distribution"),
        ("mf_foldin_levels", "conformal"),
    ]:
        at.selectbox(key="wi_why_model").set_value(name).run()
        assert not at.exception
        why = at.dataframe[2].value
        assert why["title"].tolist() == [fmt.item_title(data, int(i)) for i in result.top[name]]
        assert result.bands[name].source == source
        assert all("–" in t for t in why["interval"])
        rated = [fmt.item_title(data, int(i)) for i in at.session_state["mr_playground"].items]
        named = [b for b in why["because"] if b]
        assert named and all(any(b.startswith(t) for t in rated) for b in named)
        band = json.loads(at.get("plotly_chart")[2].proto.spec)
        assert "interval" in band["layout"]["title"]["text"]


def test_whatif_on_a_heldout_user():
    at = new_app()
    at.switch_page("pages/whatif.py").run()
    at.radio(key="wi_source").set_value("A held-out real user").run()
    assert not at.exception
    user = at.selectbox(key="wi_user").value
    assert user is not None
    at.multiselect(key="wi_models").set_value(["sample model", "user_bias_levels"])
    at.button(key="wi_compare").click().run()
    assert not at.exception and not at.error
    result, what, _ = at.session_state["mr_whatif"]
    assert result.names == ("sample model", "user_bias_levels")
    assert at.dataframe[0].value.shape == (10, 3)


def test_whatif_needs_two_models():
    at = new_app()
    at.switch_page("pages/whatif.py").run()
    at.multiselect(key="wi_models").set_value(["mf_foldin_levels"])
    at.run()
    assert at.button(key="wi_compare").disabled


@pytest.fixture
def no_fitted_baselines():
    from metarec_core.interactive import session as pg

    pg.clear_baseline_cache()
    yield pg
    pg.clear_baseline_cache()


def compare_on_a_heldout_user(models):
    at = new_app()
    at.switch_page("pages/whatif.py").run()
    assert not at.exception
    at.radio(key="wi_source").set_value("A held-out real user").run()
    at.multiselect(key="wi_models").set_value(models)
    return at


def test_whatif_fits_only_the_baselines_it_compares(no_fitted_baselines):
    pg = no_fitted_baselines
    at = compare_on_a_heldout_user(["sample model", "popularity"])
    entry = at.session_state["mr_models"]["sample model"]
    split = (at.session_state["mr_data"].data, entry.train_users, entry.val_users)
    # the baselines are offered by name; opening the page fitted none (it fitted all three)
    offered = set(at.multiselect(key="wi_models").options)
    assert {display_name("mf_foldin_levels"), display_name("popularity")} <= offered
    assert pg.missing_baselines(*split) == list(pg.PLAYGROUND_BASELINES)
    at.button(key="wi_compare").click().run()
    assert not at.exception and not at.error
    assert pg.missing_baselines(*split) == ["mf_foldin_levels", "user_bias_levels"]
    box = at.status[0]
    assert box.label.startswith("Comparing: done in") and box.state == "complete"
    steps = " ".join(m.value for m in box.markdown)
    assert "Fitting the baseline popularity" in steps and "mf_foldin" not in steps


def test_whatif_says_a_model_that_ignores_the_ratings_never_adapts():
    at = compare_on_a_heldout_user(["sample model", "popularity"])
    at.button(key="wi_compare").click().run()
    assert not at.exception and not at.error
    result, _, _ = at.session_state["mr_whatif"]
    assert result.names == ("sample model", "popularity")
    table = at.dataframe[1].value
    said = dict(zip(table["model"], table["stable_after"], strict=True))
    # popularity's list never moves: it read "0" ratings until stable, the best score
    assert said["popularity"].startswith("never adapts")
    assert not said["sample model"].startswith("never adapts")


def test_whatif_heatmap_diagonal_runs_from_the_top_left():
    at = compare_on_a_heldout_user(["sample model", "popularity"])
    at.button(key="wi_compare").click().run()
    heat = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert heat["data"][0]["type"] == "heatmap"
    assert heat["data"][0]["x"] == heat["data"][0]["y"] == ["sample model", "popularity"]
    # the first model's row on top, so each model meets itself down the top-left diagonal
    assert heat["layout"]["yaxis"]["autorange"] == "reversed"
