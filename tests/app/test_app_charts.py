"""AppTest: the Train and Evaluate charts (no empty axes, sensible spans, ticks, pairs once)."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
from helpers import new_app, texts, tiny_dataset

from metarec_core.evaluation.report import EvaluationReport
from metarec_core.evaluation.runner import EvalConfig, run_evaluation
from metarec_core.jobs import JobSnapshot
from metarec_core.methods.registry import display_name

pytestmark = pytest.mark.usefixtures("small_sample")


def figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def title_of(fig: dict) -> str:
    t = fig["layout"].get("title", {})
    return t.get("text", "") if isinstance(t, dict) else str(t)


class StubTraining:
    """A training job frozen at one snapshot (the page only reads it)."""

    def __init__(self, data, **snap):
        # every field, so that a field added to JobSnapshot later is None rather than missing
        base = {f.name: None for f in fields(JobSnapshot)}
        base |= dict(
            job_id="stub",
            kind="train",
            status="running",
            step=0,
            total=300,
            fraction=0.0,
            elapsed=1.0,
            eta=None,
            message="",
            device="cpu",
            train_loss=(),
            train_steps=(),
            val_mae=(),
            best_val_mae=None,
            error=None,
            details=None,
        )
        self._snap = JobSnapshot(**{**base, **snap})
        self.data, self.status, self.result, self.config = data, self._snap.status, None, None

    @property
    def is_active(self) -> bool:
        return self.status == "running"

    def snapshot(self) -> JobSnapshot:
        return self._snap

    def cancel(self) -> None:
        pass


@pytest.fixture
def fake_jobs(monkeypatch):
    """The session's job registry replaced by a plain dict the test fills."""
    import app_state

    jobs: dict = {}
    monkeypatch.setattr(app_state, "jobs", lambda: jobs)
    return jobs


def train_page_with(jobs: dict, **snap):
    at = new_app()
    jobs["train"] = StubTraining(at.session_state["mr_data"].data, **snap)
    at.switch_page("pages/train.py").run()
    assert not at.exception
    return at


def test_train_shows_captions_not_empty_axes_before_the_first_step(fake_jobs):
    at = train_page_with(fake_jobs)
    assert figures(at) == []  # no empty charts with made-up -1..4 axes
    said = texts(at)
    assert "training error appears here after the first training step" in said
    assert "error appears here after the first check" in said


def test_train_curves_keep_their_titles_clear_and_a_sensible_span(fake_jobs):
    at = train_page_with(
        fake_jobs,
        step=30,
        fraction=0.1,
        train_steps=tuple(range(1, 31)),
        train_loss=tuple(1.5 - 0.01 * i for i in range(30)),
        val_mae=((10, 0.6941), (20, 0.6912), (30, 0.6950)),
        best_val_mae=0.6912,
    )
    figs = {title_of(f): f for f in figures(at)}
    assert set(figs) == {"Training error", "Error on the check users"}
    for f in figs.values():
        lay = f["layout"]
        # a y-axis title longer than the plot is tall ran up into the chart's title
        plot_height = lay["height"] - lay["margin"]["t"] - lay["margin"]["b"]
        assert len(lay["yaxis"]["title"]["text"]) * 7.5 < plot_height
        assert lay["title"]["x"] == 0 and lay["title"]["xanchor"] == "left"
    lo, hi = figs["Error on the check users"]["layout"]["yaxis"]["range"]
    assert hi - lo >= 0.05  # 0.691-0.695 is not drawn as a big change
    assert lo < 0.6912 and hi > 0.6950
    assert "range" not in figs["Training error"]["layout"]["yaxis"]  # a real change: autoscale


def test_train_form_speaks_plainly_with_the_term_in_the_help():
    at = new_app()
    at.switch_page("pages/train.py").run()
    steps = at.number_input(key="train_inner_steps")
    assert steps.label == "Adaptation steps" and "inner step" in steps.help
    assert at.selectbox(key="train_preset").format_func("metasgd") == display_name("metasgd")
    assert at.number_input(key="train_meta_batch").label == "Users per training step"


@pytest.fixture(scope="module")
def report() -> EvaluationReport:
    """A small real report: three rating baselines and popularity, k = 1, 3, 5."""
    cfg = EvalConfig(
        methods=("item_mean", "user_bias", "mf_foldin", "popularity"),
        support=(1, 3, 5),
        folds=2,
        n_boot=200,
    )
    return run_evaluation(tiny_dataset(), cfg)


def evaluate_page(report: EvaluationReport):
    at = new_app()
    at.session_state["mr_eval_report"] = report
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    return at


def test_paired_differences_list_each_pair_once_with_a_forest_plot(report):
    pairs = {(frozenset((p.method, p.vs)), p.support) for p in report.paired}
    assert len(pairs) < len(report.paired)  # the core lists the best two both ways
    at = evaluate_page(report)
    table = next(df.value for df in at.dataframe if "vs" in df.value.columns)
    shown = [(frozenset((m, v)), int(k)) for m, v, k in table[["method", "vs", "support"]].values]
    assert len(shown) == len(set(shown)) == len(pairs)
    assert (table["mae_diff"] >= 0).all()  # each read as "worse than the best by"
    forest = next(f for f in figures(at) if "Head-to-head" in title_of(f))
    trace = forest["data"][0]
    assert len(trace["y"]) == len(pairs)
    assert trace["error_x"]["array"] and trace["error_x"]["arrayminus"]
    assert any(s.get("x0") == 0 for s in forest["layout"]["shapes"])  # the line at 0


def test_evaluate_curves_have_explicit_log_ticks_and_plain_names(report):
    at = evaluate_page(report)
    curves = [f for f in figures(at) if f["layout"]["xaxis"].get("type") == "log"]
    assert len(curves) == 2
    for f in curves:
        lay = f["layout"]
        plot_height = lay["height"] - lay["margin"]["t"] - lay["margin"]["b"]
        assert len(lay["yaxis"]["title"]["text"]) * 7.5 < plot_height  # not cut at the top
        x = f["layout"]["xaxis"]
        assert x["tickvals"] == [1, 3, 5] and x["ticktext"] == ["1", "3", "5"]
        names = {t["name"] for t in f["data"] if t.get("showlegend", True)}
        assert display_name("mf_foldin") in names and "mf_foldin" not in names


def test_evaluate_draws_no_empty_error_chart_for_ranking_only_methods():
    cfg = EvalConfig(methods=("popularity",), support=(1, 3), folds=2, n_boot=100)
    at = evaluate_page(run_evaluation(tiny_dataset(), cfg))
    assert len(figures(at)) == 1  # the top-5 chart only
    assert "No method here predicts ratings" in texts(at)
