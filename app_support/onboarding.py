"""Onboarding in the app: the Evaluate page's "Onboarding" mode (the strategies' offline
evaluation as a background job, its curves) and the playground's "Ask me" panel.

The logic is the core's (`metarec_core.elicitation`, `metarec_core.evaluation.elicitation`);
this module only draws it, so the pages stay thin.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import app_state as state
from app_support import format as fmt
from app_support import widgets
from app_support.charts import add_curve, titled
from metarec_core import glossary
from metarec_core.elicitation import ElicitContext, Interview, available_strategies
from metarec_core.elicitation import strategy_class as _strategy_class
from metarec_core.elicitation.job import ElicitationJob
from metarec_core.evaluation.elicitation import (
    BASELINE_STRATEGIES,
    DEFAULT_STRATEGIES,
    ElicitationReport,
    ElicitConfig,
)
from metarec_core.methods.registry import available_methods, display_name, method_class

K_REPORT = "mr_onb_report"
K_INTERVIEW = "mr_pg_interview"
JOB_SLOT = "onboarding"
PALETTE = ("#4c6ef5", "#e8590c", "#2f9e44", "#ae3ec9", "#f08c00", "#1098ad", "#868e96", "#e03131")
UNKNOWN_LABELS = {
    "cost": "costs a question (default)",
    "skip": "is never asked (only rated items)",
    "both": "measure both",
}


def strategy_label(name: str) -> str:
    return _strategy_class(name).display


def _rating_methods() -> list[str]:
    return [m for m in available_methods() if method_class(m).capabilities.predicts_ratings]


# ----------------------------------------------------------------------------- Evaluate page
def evaluate_mode(active: state.ActiveData) -> None:
    """The Onboarding mode: which strategy to ask a new user first, measured offline."""
    st.caption(
        "What should the app ask a newcomer to rate first? Each strategy interviews every test "
        "user (never seen in training), up to the number of questions: the user answers with "
        'their real rating of an item they rated, else "haven\'t seen it". After each '
        "question the model adapts and is scored on the user's hidden ratings.",
        help=glossary.help_text("elicitation"),
    )
    job = state.jobs().get(JOB_SLOT)
    running = job is not None and job.is_active
    with st.form("onb_form"):
        strategies = st.multiselect(
            "Strategies",
            list(available_strategies()),
            default=list(DEFAULT_STRATEGIES),
            key="onb_strategies",
            format_func=strategy_label,
            help=" ".join(
                f"{strategy_label(s)} ({s}): {_strategy_class(s).description}"
                for s in available_strategies()
            ),
        )
        methods = st.multiselect(
            "Models",
            _rating_methods(),
            default=["mf_foldin"],
            key="onb_methods",
            format_func=display_name,
            help="Each is fitted once per fold; every strategy interviews with it.",
        )
        c = st.columns(4)
        questions = c[0].number_input("Questions", 1, 50, 10, key="onb_questions")
        unknown = c[1].selectbox(
            "An item the user has not rated…",
            list(UNKNOWN_LABELS),
            key="onb_unknown",
            format_func=UNKNOWN_LABELS.get,
            help="Costs a question: the strategy may ask any item and an unknown one spends a "
            "question, as with a real newcomer. Never asked: only the user's rated items are "
            "proposed (the usual offline simulation, which flatters obscure choices).",
        )
        folds = c[2].number_input("Folds", 2, 10, 5, key="onb_folds")
        seed = c[3].number_input("Seed", 0, 2**31 - 1, 0, key="onb_seed")
        submitted = st.form_submit_button(
            "Run onboarding evaluation", type="primary", disabled=running, key="onb_start"
        )
    if submitted and not running:
        widgets.start_job(
            JOB_SLOT,
            lambda: ElicitConfig(
                strategies=tuple(strategies),
                methods=tuple(methods),
                questions=int(questions),
                unknown=("cost", "skip") if unknown == "both" else (unknown,),
                folds=int(folds),
                seed=int(seed),
            ),
            lambda cfg: ElicitationJob(active.data, cfg),
            K_REPORT,
        )
    _progress()
    job = state.jobs().get(JOB_SLOT)
    if job is not None and job.status == "done" and state.is_active_data(job.data):
        st.session_state[K_REPORT] = job.result
    report = st.session_state.get(K_REPORT)
    if report is not None:
        st.success(f"Onboarding evaluation done: {report.test_users:,} test users.")
        show_report(report)


def _progress() -> None:
    job, running, every = state.job_pace(JOB_SLOT)

    @state.polling_fragment(every)
    def progress() -> None:
        job = state.jobs().get(JOB_SLOT)
        if job is None:
            return
        snap = job.snapshot()
        if snap.active:
            st.progress(
                snap.fraction, text=f"{100 * snap.fraction:.0f}% · {state.plain(snap.message)}"
            )
            st.button("Cancel", key="onb_cancel", on_click=job.cancel, disabled=snap.cancelling)
        elif snap.status == "cancelled":
            st.warning("Onboarding evaluation cancelled.")
        elif snap.status == "failed":
            st.error(state.plain(f"Onboarding evaluation failed: {snap.error}"))
        if running and snap.finished:
            st.rerun()

    progress()


def curves_figure(report: ElicitationReport, method: str, unknown: str, metric: str) -> go.Figure:
    """One line per strategy over the number of questions; MAE with its 95% CI band."""
    fig = go.Figure()
    for j, s in enumerate(report.config.strategies):
        pts = sorted(
            (p for p in report.points if (p.method, p.unknown, p.strategy) == (method, unknown, s)),
            key=lambda p: p.questions,
        )
        xs = [p.questions for p in pts]
        ys = [getattr(p, metric) for p in pts]
        color = PALETTE[j % len(PALETTE)]
        band = [p.mae_ci95 for p in pts]
        add_curve(
            fig,
            xs,
            ys,
            state.chart_text(strategy_label(s)),
            color,
            band=band if metric == "mae" and all(None not in b for b in band) else None,
            band_name=f"{s} 95% CI",
            band_alpha=0.12,
        )
    ytitle = {"mae": "Average error (MAE)", "ndcg_5": "Top-5 quality (nDCG@5)"}[metric]
    titled(
        fig,
        dict(text=f"{ytitle} after each question", x=0, xanchor="left"),
        "Questions asked",
        ytitle,
        height=380,
        margin=dict(t=50, b=40, l=60, r=10),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def curves_table(report: ElicitationReport, method: str, unknown: str) -> pd.DataFrame:
    """Per strategy: MAE after 1, 3, 5, 10, 20 questions (those asked), MAE − random and −
    popularity at those points with 95% CIs, and the share of questions answered."""
    at = [q for q in (1, 3, 5, 10, 20) if q <= report.config.questions]
    rows = []
    for s in report.config.strategies:
        row: dict[str, object] = {"strategy": strategy_label(s)}
        for q in at:
            p = report.point(method, unknown, s, q)
            row[f"MAE@{q}"] = None if p is None else p.mae
        for vs in BASELINE_STRATEGIES:
            for q in at:
                d = report.diff(method, unknown, s, vs, q)
                row[f"− {vs} @{q}"] = _diff_text(d)
        last = report.point(method, unknown, s, at[-1])
        row["answered"] = None if last is None else 100 * last.answered
        rows.append(row)
    return pd.DataFrame(rows)


def _diff_text(d) -> str:
    if d is None or d.diff is None or None in d.ci95:
        return ""
    mark = " ✓" if d.better else (" ✗" if d.worse else "")
    return f"{d.diff:+.3f} [{d.ci95[0]:+.3f}, {d.ci95[1]:+.3f}]{mark}"


def show_report(report: ElicitationReport) -> None:
    cfg = report.config
    st.caption(
        f"{report.test_users:,} test users with at least {cfg.questions + cfg.query} ratings "
        f"({report.left_out:,} left out), {cfg.query} hidden ratings each, {report.folds_run} "
        f"folds, seed {cfg.seed}. Shaded bands: the 95% range of each average (bootstrap CI)."
    )
    keys = [(m, u) for m in cfg.methods for u in cfg.unknown]
    pick = st.selectbox(
        "Model and counting",
        keys,
        key="onb_show",
        format_func=lambda k: f"{display_name(k[0])}: an unrated item {UNKNOWN_LABELS[k[1]]}",
    )
    method, unknown = pick if pick in keys else keys[0]
    c1, c2 = st.columns(2)
    c1.plotly_chart(curves_figure(report, method, unknown, "mae"), key="onb_mae_chart")
    c2.plotly_chart(curves_figure(report, method, unknown, "ndcg_5"), key="onb_ndcg_chart")
    st.subheader("After 1, 3, 5, 10, 20 questions", anchor=False)
    st.caption(
        "Each strategy's average error, and its difference from asking at random and from "
        "asking the most rated items, user by user, with the 95% range: ✓ better (the range "
        "excludes 0), ✗ worse. Answered: the share of questions the users could answer."
    )
    st.dataframe(
        curves_table(report, method, unknown),
        key="onb_table",
        hide_index=True,
        column_config={"answered": st.column_config.NumberColumn("Answered", format="%.0f%%")},
    )
    st.download_button(
        "Download report (JSON)",
        data=report.to_json(),
        file_name="onboarding.json",
        mime="application/json",
        key="onb_download",
        on_click="ignore",
    )


# ----------------------------------------------------------------------------- playground
# the lowest error from 5 questions on held-out ML-1M (docs/results.md, "The personal chance of
# knowing an item"); `shrinkage` before
ASK_DEFAULT = "shrinkage_known"


def _interview(entry: state.ModelEntry, data, name: str) -> Interview:
    """This session's interview for the active model and strategy `name` (new on a change)."""
    iv = st.session_state.get(K_INTERVIEW)
    if iv is not None and iv.strategy.ctx.method is entry.model and iv.strategy.name == name:
        return iv
    ctx = None
    if iv is not None and iv.strategy.ctx.method is entry.model:
        ctx = iv.strategy.ctx  # the same model: keep its statistics
    if ctx is None:
        ctx = ElicitContext.build(data, entry.model, entry.train_users, seed=0)
    with st.spinner("Preparing the questions"):  # a strategy's statistics: once per model
        iv = Interview.start(name, ctx)
    st.session_state[K_INTERVIEW] = iv
    return iv


def ask_me_panel(session, entry: state.ModelEntry, data, on_error) -> None:
    """The "Ask me" mode: the next item to rate, why, and the two answers."""
    names = list(available_strategies())
    name = st.selectbox(
        "How to choose the questions",
        names,
        index=names.index(ASK_DEFAULT),
        key="pg_ask_strategy",
        format_func=strategy_label,
        help=_strategy_class(st.session_state.get("pg_ask_strategy", ASK_DEFAULT)).description,
    )
    iv = _interview(entry, data, name)
    rated = [i for i, r in zip(iv.answers.items, iv.answers.ratings, strict=True) if r is not None]
    if not set(rated) <= set(session.items):  # ratings reset or removed elsewhere on the page
        iv = Interview.start(name, iv.strategy.ctx)
        st.session_state[K_INTERVIEW] = iv
    iv.skip_items(session.items)
    q = iv.current
    if q is None:
        st.info("Every item has been asked.")
        return
    st.markdown(
        f"**Question {iv.answers.n_asked + 1}:** {state.plain(fmt.item_label(data, q.item))}"
    )
    st.caption(state.plain(f"Why this one: {q.reason}."))
    rating = widgets.rating_slider("Your rating", data.scale, "pg_ask_rating")
    c1, c2 = st.columns(2)
    c1.button(
        "Rate it",
        key="pg_ask_rate",
        type="primary",
        on_click=_answer,
        args=(session, iv, q.item, rating, on_error),
    )
    c2.button(
        "Haven't seen it",
        key="pg_ask_skip",
        on_click=_answer,
        args=(session, iv, q.item, None, on_error),
    )
    if len(iv.proposal_seconds) > 1:
        ms = 1000 * iv.proposal_seconds[-1]
        st.caption(
            f"{iv.answers.n_answered} rated, {iv.answers.n_asked - iv.answers.n_answered} not "
            f"seen · this question was chosen in {ms:.0f} ms"
        )


def _answer(session, iv: Interview, item: int, rating: float | None, on_error) -> None:
    """Record an answer: a rating also goes to the playground's ratings (the model adapts)."""
    if iv.current is None or iv.current.item != item:
        return  # a stale click (the question changed meanwhile)
    if rating is not None:
        on_error(session.add_rating, item, rating)
    iv.answer(rating)
