"""Evaluate page: the core's cold-start evaluation as a background job, with curves and tables."""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import app_state as state
from metarec_core.evaluate import ROW_COLUMNS, EvalConfig, report_rows_csv
from metarec_core.jobs import EvaluationJob
from metarec_core.methods import BASELINES, META_LEARNERS, available_methods

PALETTE = [
    "#4c6ef5",
    "#e8590c",
    "#2f9e44",
    "#ae3ec9",
    "#f08c00",
    "#1098ad",
    "#868e96",
    "#e03131",
    "#5c940d",
    "#364fc7",
    "#c2255c",
]


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError:
        raise ValueError(f"{what} must be comma-separated whole numbers, got {text!r}") from None
    if not vals or min(vals) < 0:
        raise ValueError(f"{what} must be non-negative whole numbers, got {text!r}")
    return vals


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def curve_figure(report: dict, metric: str, ytitle: str) -> go.Figure:
    """One line per method over support size, with its 95% CI band when the report has one."""
    rows = [r for r in report["rows"] if r.get(metric) is not None]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig = go.Figure()
    melu = report["protocol"].get("name") == "melu"
    ks = sorted({r["support"] for r in rows}) if not melu else []
    # a log axis spreads 1..20 well but cannot place k=0 (the prior): then one slot per k
    categorical = melu or 0 in ks
    for j, m in enumerate(methods):
        mine = [r for r in rows if r["method"] == m]
        color = PALETTE[j % len(PALETTE)]
        xs = [str(r["support"]) if categorical else r["support"] for r in mine]
        ys = [r[metric] for r in mine]
        ci = [r.get(f"{metric}_ci95") for r in mine]
        if melu:
            err = None
            if all(c and None not in c for c in ci):
                err = dict(
                    type="data",
                    symmetric=False,
                    array=[c[1] - y for c, y in zip(ci, ys, strict=True)],
                    arrayminus=[y - c[0] for c, y in zip(ci, ys, strict=True)],
                )
            fig.add_bar(x=[m], y=ys, name=m, marker_color=color, error_y=err)
            continue
        if all(c and None not in c for c in ci):
            fig.add_scatter(
                x=xs + xs[::-1],
                y=[c[1] for c in ci] + [c[0] for c in ci][::-1],
                fill="toself",
                mode="lines",
                fillcolor=_rgba(color, 0.15),
                line=dict(width=0),
                hoverinfo="skip",
                showlegend=False,
                name=f"{m} 95% CI",
            )
        fig.add_scatter(x=xs, y=ys, name=m, mode="lines+markers", line=dict(color=color))
    fig.update_layout(
        xaxis_title="Support size k (ratings of the new user)"
        if not melu
        else "Method (MeLU protocol)",
        yaxis_title=ytitle,
        height=380,
        margin=dict(t=30, b=40, l=60, r=10),
        legend=dict(orientation="h", y=-0.2),
    )
    if categorical and not melu:
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=list(map(str, ks)))
    elif not melu:
        fig.update_xaxes(type="log", tickvals=ks)
    return fig


def show_report(report: dict) -> None:
    p = report["protocol"]
    if p.get("name") == "kshot":
        st.caption(
            f"k-shot protocol: {p['folds']} folds, {p['test_users']:,} test users "
            f"(with at least {p['min_ratings']} ratings; {p['left_out']:,} left out), query "
            f"{p['query']}, seed {p['seed']}. Bands: bootstrap 95% CI of the mean."
            + (
                f" {p['train_seeds_note'][:1].upper()}{p['train_seeds_note'][1:]}."
                if p.get("train_seeds_note")
                else ""
            )
        )
    else:
        st.caption(state.plain(f"MeLU protocol: {json.dumps(p)}"))
    c1, c2 = st.columns(2)
    c1.plotly_chart(
        curve_figure(report, "mae", "MAE (rating units, lower is better)"),
        key="eval_mae_chart",
        width="stretch",
    )
    c2.plotly_chart(
        curve_figure(report, "ndcg@5", "nDCG@5 (higher is better)"),
        key="eval_ndcg_chart",
        width="stretch",
    )
    table = pd.DataFrame(report["rows"])
    cols = [c for c in ROW_COLUMNS if c in table]
    st.subheader("Results", anchor=False)
    st.dataframe(
        table[cols],
        key="eval_table",
        hide_index=True,
        width="stretch",
        column_config={
            "method": st.column_config.TextColumn("Method"),
            "support": st.column_config.TextColumn("Support k"),
            "users": st.column_config.NumberColumn("Users"),
            "mae": st.column_config.NumberColumn("MAE", format="%.4f"),
            "rmse": st.column_config.NumberColumn("RMSE", format="%.4f"),
            "ndcg@3": st.column_config.NumberColumn("nDCG@3", format="%.4f"),
            "ndcg@5": st.column_config.NumberColumn("nDCG@5", format="%.4f"),
            "recall@10": st.column_config.NumberColumn("Recall@10", format="%.4f"),
            "seconds": st.column_config.NumberColumn(
                "Seconds", format="%.2f", help="fit + scoring time"
            ),
        },
    )
    if report.get("paired"):
        st.subheader("Paired differences", anchor=False)
        st.caption(
            "Per user MAE(method) − MAE(best other method) at the same k, with a paired bootstrap "
            "95% CI: negative = better; an interval excluding 0 is unlikely to be noise."
        )
        paired = pd.DataFrame(report["paired"])
        paired["ci_low"] = [c[0] for c in paired["ci95"]]
        paired["ci_high"] = [c[1] for c in paired["ci95"]]
        paired["significant"] = [
            lo is not None and hi is not None and (lo > 0 or hi < 0)
            for lo, hi in zip(paired["ci_low"], paired["ci_high"], strict=True)
        ]
        st.dataframe(
            paired[["method", "vs", "support", "mae_diff", "ci_low", "ci_high", "significant"]],
            key="eval_paired",
            hide_index=True,
            width="stretch",
            column_config={
                "method": st.column_config.TextColumn("Method"),
                "vs": st.column_config.TextColumn("Versus"),
                "support": st.column_config.TextColumn("Support k"),
                "mae_diff": st.column_config.NumberColumn("MAE difference", format="%+.4f"),
                "ci_low": st.column_config.NumberColumn("95% CI low", format="%+.4f"),
                "ci_high": st.column_config.NumberColumn("95% CI high", format="%+.4f"),
                "significant": st.column_config.CheckboxColumn("CI excludes 0"),
            },
        )
    d1, d2 = st.columns(2)
    d1.download_button(
        "Download report (JSON)",
        data=json.dumps(report, indent=2),
        file_name="report.json",
        mime="application/json",
        key="eval_download_json",
        on_click="ignore",
    )
    d2.download_button(
        "Download table (CSV)",
        data=report_rows_csv(report),
        file_name="report.csv",
        mime="text/csv",
        key="eval_download_csv",
        on_click="ignore",
    )


st.title("Evaluate")
active = state.require_data()
st.caption(
    "User-cold evaluation: users are split into folds; a test fold's users are never seen in "
    "training. Each test user's first k ratings are the support, the last ones the query. "
    "Meta-learners are trained once per fold and training run (minutes on a CPU); baselines take "
    "seconds."
)

job = state.jobs().get("eval")
running = job is not None and job.is_active

with st.form("eval_form"):
    methods = st.multiselect(
        "Methods",
        available_methods(),
        default=["item_mean", "user_bias", "mf_foldin", "user_bias_levels", "popularity"],
        key="eval_methods",
        help=f"Baselines: {', '.join(BASELINES)}. Meta-learners: {', '.join(META_LEARNERS)}.",
    )
    c = st.columns(6)
    support = c[0].text_input(
        "Support sizes k",
        "1,3,5,10,20",
        key="eval_support",
        help="Comma-separated. 0 scores each model's prior, before the user's first rating: "
        "the gap from k=0 to k=1 is what one rating is worth.",
    )
    query = c[1].number_input(
        "Query ratings", 1, 100, 10, key="eval_query", help="Hidden ratings per test user"
    )
    folds = c[2].number_input("Folds", 2, 10, 5, key="eval_folds")
    seed = c[3].number_input("Seed", 0, 2**31 - 1, 0, key="eval_seed")
    protocol = c[4].selectbox(
        "Protocol",
        ["kshot", "melu"],
        key="eval_protocol",
        help="melu: users with 13-100 ratings, support = all but 10",
    )
    train_seeds = c[5].number_input(
        "Training runs",
        1,
        10,
        1,
        key="eval_train_seeds",
        help="Fit every method this many times per fold (seeds seed, seed + 1, ...) and "
        "average each user's metrics over the runs: comparisons then depend less on one "
        "training run's luck. Time grows in proportion.",
    )
    submitted = st.form_submit_button(
        "Run evaluation", type="primary", disabled=running, key="eval_start"
    )

if submitted and not running:
    try:
        cfg = EvalConfig(
            methods=tuple(methods),
            support=_ints(support, "support sizes"),
            query=int(query),
            folds=int(folds),
            seed=int(seed),
            protocol=protocol,
            train_seeds=int(train_seeds),
        )
    except ValueError as e:
        st.error(state.plain(f"Cannot start: {e}"))
    else:
        state.jobs()["eval"] = EvaluationJob(active.data, cfg).start()
        st.session_state.pop(state.K_EVAL_REPORT, None)
        st.rerun()

job = state.jobs().get("eval")
running = job is not None and job.is_active


@st.fragment(run_every=1.0 if running else None)
def progress() -> None:
    job = state.jobs().get("eval")
    if job is None:
        return
    snap = job.snapshot()
    if not state.is_active_data(job.data):
        what = "runs" if snap.active else "ran"
        st.info(
            state.plain(
                f"This evaluation {what} on {state.data_label(job.data)}, not on the active "
                "dataset; its report is shown when that dataset is active again."
            )
        )
    if snap.queue_position is not None:  # waiting for the server's job pool
        st.info(snap.status_line, icon=":material/hourglass_top:")
    if snap.active:
        eta = "estimating…" if snap.eta is None else f"{snap.eta:.0f} s"
        st.progress(
            snap.fraction,
            text=f"{state.plain(snap.message)} · {snap.elapsed:.0f} s elapsed · ETA {eta}",
        )
        st.button("Cancel evaluation", key="eval_cancel", on_click=job.cancel)
    elif snap.status == "cancelled":
        st.warning("Evaluation cancelled.")
    elif snap.status == "failed":
        st.error(state.plain(f"Evaluation failed: {snap.error}"))
    if running and snap.finished:
        st.rerun()  # full rerun: show the report, stop polling


progress()

if job is not None and job.status == "done" and state.is_active_data(job.data):
    st.session_state[state.K_EVAL_REPORT] = job.result
report = st.session_state.get(state.K_EVAL_REPORT)
if report is not None:
    st.success(f"Evaluation done: {len(report['rows'])} rows.")
    show_report(report)
