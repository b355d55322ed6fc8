"""Evaluate page: the core's cold-start evaluation as a background job, with curves and tables."""

from __future__ import annotations

import json
from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import app_state as state
from app_support import onboarding, widgets
from app_support.charts import add_curve, titled
from app_support.format import support_label
from metarec_core import glossary
from metarec_core.evaluation.report import (
    ROW_COLUMNS,
    BothKShotProtocol,
    EvaluationReport,
    ItemKShotProtocol,
    MeluProtocol,
    MethodRow,
    PairedDifference,
)
from metarec_core.evaluation.runner import EvalConfig, evaluable_methods
from metarec_core.jobs import EvaluationJob, poll_seconds
from metarec_core.methods.registry import (
    BASELINE,
    ITEM_BASELINE,
    ITEM_META_LEARNER,
    META_LEARNER,
    available_methods,
    display_name,
    spec,
)

state.require_router()

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


# "Who is new?": the evaluation's cold-start subject (EvalConfig.cold)
COLDS = {"users": "New users", "items": "New items", "both": "Both new"}


def method_label(cold: str) -> Callable[[str], str]:
    """The plain name of a method of the registry's `cold` table (other names unchanged;
    "both": the users' methods)."""
    if cold != "items":
        return display_name

    def label(name: str) -> str:
        try:
            return spec(name, cold=cold).display
        except ValueError:
            return name

    return label


def report_cold(report: EvaluationReport) -> str:
    if isinstance(report.protocol, ItemKShotProtocol):
        return "items"
    return "both" if isinstance(report.protocol, BothKShotProtocol) else "users"


def curve_figure(
    report: EvaluationReport,
    value: Callable[[MethodRow], float | None],
    ytitle: str,
    title: str = "",
    ci: Callable[[MethodRow], tuple[float | None, float | None] | None] = lambda r: None,
    label: Callable[[str], str] = display_name,
    x_title: str = "Ratings seen from the new user (k)",
) -> go.Figure | None:
    """One line per method over support size of the rows' `value`, with its 95% CI band
    (`ci`) when the report has one; None when no row has a value (e.g. only ranking methods:
    no error to draw)."""
    rows = [r for r in report.rows if value(r) is not None]
    if not rows:
        return None
    methods = list(dict.fromkeys(r.method for r in rows))
    fig = go.Figure()
    melu = isinstance(report.protocol, MeluProtocol)
    ks = sorted({r.support for r in rows if r.support is not None})
    # a log axis spreads 1..20 well but cannot place k=0 (the prior): then one slot per k
    categorical = melu or 0 in ks
    for j, m in enumerate(methods):
        mine = [r for r in rows if r.method == m]
        color = PALETTE[j % len(PALETTE)]
        xs = [support_label(r.support) if categorical else r.support for r in mine]
        ys = [value(r) for r in mine]
        ci_ = [ci(r) for r in mine]
        if melu:
            err = None
            if all(c and None not in c for c in ci_):
                err = dict(
                    type="data",
                    symmetric=False,
                    array=[c[1] - y for c, y in zip(ci_, ys, strict=True)],
                    arrayminus=[y - c[0] for c, y in zip(ci_, ys, strict=True)],
                )
            name = state.chart_text(label(m))
            fig.add_bar(x=[name], y=ys, name=name, marker_color=color, error_y=err)
            continue
        add_curve(
            fig,
            xs,
            ys,
            state.chart_text(label(m)),
            color,
            band=ci_ if all(c and None not in c for c in ci_) else None,
            band_name=f"{m} 95% CI",
        )
    # short axis titles: a long one is cut where it runs past the plot's height
    titled(
        fig,
        dict(text=title, x=0, xanchor="left"),
        x_title if not melu else "Method (MeLU set-up)",
        ytitle,
        height=400,
        margin=dict(t=50, b=40, l=60, r=10),
        legend=dict(orientation="h", y=-0.2),
    )
    if categorical and not melu:
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=list(map(str, ks)))
    elif not melu:
        # explicit ticks at the k evaluated: Plotly's own log ticks read "1 2 5 10 2 5 100 2"
        fig.update_xaxes(type="log", tickmode="array", tickvals=ks, ticktext=[str(k) for k in ks])
    return fig


def unique_pairs(paired: tuple[PairedDifference, ...]) -> list[PairedDifference]:
    """Each (method, vs, k) comparison once: the core compares every method with the best
    other, so the two best appear both ways (A − B and B − A); the row kept is the one whose
    `vs` is the better method (a difference ≥ 0 reads "how much worse than the best")."""
    seen: dict[tuple, PairedDifference] = {}
    for p in paired:
        key = (frozenset((p.method, p.vs)), p.support)
        other = seen.get(key)
        if other is None or (other.mae_diff or 0) < 0 <= (p.mae_diff or 0):
            seen[key] = p
    return list(seen.values())


def forest_figure(
    pairs: list[PairedDifference], label: Callable[[str], str] = display_name
) -> go.Figure:
    """The paired MAE differences with their 95% CIs, one row per comparison, 0 marked."""
    labels = [
        state.chart_text(f"{label(p.method)} vs {label(p.vs)}, k={support_label(p.support)}")
        for p in pairs
    ]
    diffs = [p.mae_diff for p in pairs]
    lo = [p.ci95[0] for p in pairs]
    hi = [p.ci95[1] for p in pairs]
    ok = [None not in (d, a, b) for d, a, b in zip(diffs, lo, hi, strict=True)]
    clear = [o and p.excludes_zero for o, p in zip(ok, pairs, strict=True)]
    fig = go.Figure(
        go.Scatter(
            x=diffs,
            y=labels,
            mode="markers",
            marker=dict(size=10, color=["#e03131" if c else "#495057" for c in clear]),
            error_x=dict(
                type="data",
                symmetric=False,
                array=[b - d if o else 0 for d, b, o in zip(diffs, hi, ok, strict=True)],
                arrayminus=[d - a if o else 0 for d, a, o in zip(diffs, lo, ok, strict=True)],
                thickness=2,
            ),
            hovertemplate="%{y}: %{x:+.4f}<extra></extra>",
            showlegend=False,
        )
    )
    fig.add_vline(x=0, line_dash="dash", line_color="#868e96")
    fig.update_layout(
        title=dict(text="Head-to-head differences in average error", x=0, xanchor="left"),
        xaxis_title="Difference in average error (MAE), 95% CI: below 0, the first is better",
        yaxis=dict(autorange="reversed"),
        height=max(220, 60 + 32 * len(pairs)),
        margin=dict(t=50, b=50, l=10, r=10),
    )
    return fig


def _metric_column(label: str, help_text: str) -> st.column_config.NumberColumn:
    """A results-table column of a metric, to four decimals."""
    return st.column_config.NumberColumn(label, format="%.4f", help=help_text)


def show_report(report: EvaluationReport) -> None:
    p = report.protocol
    cold = report_cold(report)
    label, unit = method_label(cold), "item" if cold == "items" else "user"
    if isinstance(p, MeluProtocol):
        st.caption(state.plain(f"MeLU protocol: {json.dumps(p.to_dict())}"))
    elif isinstance(p, ItemKShotProtocol):
        note = p.train_seeds_note
        st.caption(
            f"New items, after their first k ratings (k-shot protocol: {p.folds} folds over "
            f"items; k = 0: the item's description alone), {p.test_items:,} test items with at "
            f"least {p.min_ratings} ratings ({p.left_out:,} left out), {p.query} hidden raters "
            f"each, seed {p.seed}. Shaded bands: the 95% range of each average (bootstrap CI)."
            + (f" {note[:1].upper()}{note[1:]}." if note else ""),
            help=glossary.help_text("new item"),
        )
    elif isinstance(p, BothKShotProtocol):
        note = p.train_seeds_note
        st.caption(
            f"New users on new items, after the user's first k ratings of known items (k-shot "
            f"protocol: {p.folds} folds over users and over items), {p.test_users:,} test users "
            f"({p.left_out:,} left out); each is scored on up to {p.query} of their ratings of "
            f"the fold's {p.new_items:,} new items, which the methods know by their "
            f"description only; seed {p.seed}. Shaded bands: the 95% range of each average "
            "(bootstrap CI)." + (f" {note[:1].upper()}{note[1:]}." if note else ""),
            help=glossary.help_text("new item"),
        )
    else:
        note = p.train_seeds_note
        st.caption(
            f"After k ratings (k-shot protocol: {p.folds} folds), {p.test_users:,} test "
            f"users with at least {p.min_ratings} ratings ({p.left_out:,} left out), "
            f"{p.query} hidden ratings each, seed {p.seed}. Shaded bands: the 95% range "
            "of each average (bootstrap CI)." + (f" {note[:1].upper()}{note[1:]}." if note else "")
        )
    c1, c2 = st.columns(2)
    for col, value, ci, title, ytitle, key, empty, term in (
        (
            c1,
            lambda r: r.mae,
            lambda r: r.mae_ci95,
            "Average error: lower is better",
            "Average error (MAE)",
            "eval_mae_chart",
            "No method here predicts ratings: no error to draw.",
            "MAE",
        ),
        (
            c2,
            lambda r: r.ndcg_5,
            lambda r: None,
            "Quality of the top 5: higher is better",
            "Top-5 quality (nDCG@5)",
            "eval_ndcg_chart",
            "No method here ranks items: no top-5 quality to draw.",
            "nDCG@5",
        ),
    ):
        x_title = "Ratings seen " + (
            "of the new item (k)" if cold == "items" else "from the new user (k)"
        )
        fig = curve_figure(report, value, ytitle, title, ci, label, x_title)
        if fig is None:
            col.caption(empty)
        else:
            col.plotly_chart(fig, key=key, width="stretch")
            col.caption(glossary.lookup(term).meaning, help=glossary.help_text(term))
    table = pd.DataFrame([r.to_dict() for r in report.rows], columns=ROW_COLUMNS)
    table["method"] = table["method"].map(label)
    st.subheader("Results", anchor=False)
    st.dataframe(
        table,
        key="eval_table",
        hide_index=True,
        width="stretch",
        column_config={
            "method": st.column_config.TextColumn("Method"),
            "support": st.column_config.TextColumn(
                "Ratings seen (k)", help=glossary.help_text("k-shot")
            ),
            "users": st.column_config.NumberColumn(f"{unit.title()}s"),
            "mae": _metric_column("MAE", glossary.help_text("MAE")),
            "rmse": _metric_column("RMSE", glossary.help_text("RMSE")),
            "ndcg@3": _metric_column("nDCG@3", "Like nDCG@5, for the first 3 recommendations."),
            "ndcg@5": _metric_column("nDCG@5", glossary.help_text("nDCG@5")),
            "recall@10": _metric_column("Recall@10", glossary.help_text("recall@10")),
            "seconds": st.column_config.NumberColumn(
                "Seconds", format="%.2f", help="fit + scoring time"
            ),
        },
    )
    if report.paired:
        pairs = unique_pairs(report.paired)
        st.subheader("Head-to-head", anchor=False)
        st.caption(
            f"Each method against the best other one at the same k, {unit} by {unit} on the same "
            "hidden ratings: the difference in average error with its 95% range. Below 0 the "
            "first is better; a range that does not cross 0 (red) is unlikely to be noise.",
            help=glossary.help_text("paired difference") + " " + glossary.help_text("95% CI"),
        )
        st.plotly_chart(forest_figure(pairs, label), key="eval_forest_chart", width="stretch")
        paired = pd.DataFrame(
            {
                "method": [label(p.method) for p in pairs],
                "vs": [label(p.vs) for p in pairs],
                "support": [support_label(p.support) for p in pairs],
                "mae_diff": [p.mae_diff for p in pairs],
                "ci_low": [p.ci95[0] for p in pairs],
                "ci_high": [p.ci95[1] for p in pairs],
                "significant": [p.excludes_zero for p in pairs],
            }
        )
        with st.expander("The differences as a table"):
            st.dataframe(
                paired[["method", "vs", "support", "mae_diff", "ci_low", "ci_high", "significant"]],
                key="eval_paired",
                hide_index=True,
                width="stretch",
                column_config={
                    "method": st.column_config.TextColumn("Method"),
                    "vs": st.column_config.TextColumn("Versus"),
                    "support": st.column_config.TextColumn("Ratings seen (k)"),
                    "mae_diff": st.column_config.NumberColumn("Difference", format="%+.4f"),
                    "ci_low": st.column_config.NumberColumn("95% range low", format="%+.4f"),
                    "ci_high": st.column_config.NumberColumn("95% range high", format="%+.4f"),
                    "significant": st.column_config.CheckboxColumn("Excludes 0"),
                },
            )
    downloads = (
        ("Download report (JSON)", report.to_json(), "json", "application/json"),
        ("Download table (CSV)", report.to_csv(), "csv", "text/csv"),
    )
    for col, (label, data, ext, mime) in zip(st.columns(2), downloads, strict=True):
        col.download_button(
            label,
            data=data,
            file_name=f"report.{ext}",
            mime=mime,
            key=f"eval_download_{ext}",
            on_click="ignore",
        )


st.title("Evaluate")
active = state.require_data()
# Onboarding: which items to ask a new user first (app_support/onboarding.py draws it)
if (
    st.radio(
        "What to evaluate",
        ["Methods", "Onboarding"],
        key="eval_mode",
        horizontal=True,
        help=glossary.help_text(
            "elicitation", "Methods: the models after k ratings. Onboarding: what to ask first."
        ),
    )
    == "Onboarding"
):
    onboarding.evaluate_mode(active)
    st.stop()
cold = st.radio(
    "Who is new?",
    list(COLDS),
    format_func=COLDS.get,
    horizontal=True,
    key="eval_cold",
    help="New users: a test user's first k ratings are seen. New items: a test item's first k "
    "ratings are seen (k = 0: its description alone). Both new: new users' first k ratings of "
    "known items are seen, and they are scored on new items, known by their description only. "
    + glossary.help_text("cold start")
    + " "
    + glossary.help_text("new item"),
)
items, both = cold == "items", cold == "both"
unit = "item" if items else "user"
suffix = {"users": "", "items": "_items", "both": "_both"}[cold]  # each its own widgets' keys
subject = "users and items" if both else cold
st.caption(
    f"How well does each method do for brand-new {subject}? {unit.title()}s are split into "
    f"groups (folds); a test group's {cold if not both else 'users'} are never seen in training"
    + (", nor are the fold's new items' ratings. " if both else ". ")
    + f"Each method sees a test {unit}'s first k ratings and is scored on other, hidden ones"
    + (" (of new items). " if both else ". ")
    + "Meta-learners are trained once per fold and training run (minutes on a CPU); the other "
    "methods take seconds.",
    help=glossary.help_text("support set") + " " + glossary.help_text("query set"),
)

job = state.jobs().get("eval")
running = job is not None and job.is_active
kinds = (ITEM_BASELINE, ITEM_META_LEARNER) if items else (BASELINE, META_LEARNER)
offered, defaults = evaluable_methods(cold)
table = "items" if items else "users"
of_kind = [[m for m in available_methods(k, cold=table) if m in offered] for k in kinds]

with st.form("eval_form"):
    methods = st.multiselect(
        "Methods",
        offered,
        default=list(defaults),
        key=f"eval_methods{suffix}",
        format_func=method_label(cold),
        help=f"Baselines: {', '.join(of_kind[0])}. Meta-learners: {', '.join(of_kind[1])}. "
        + (
            "Ranking-only methods are left out: a new item has no ratings to count. "
            if both
            else ""
        )
        + "The Glossary page says what each does.",
    )
    c = st.columns(6)
    support = c[0].text_input(
        "Ratings seen (k)",
        "0,1,3,5,10,20" if items else "1,3,5,10,20",
        key=f"eval_support{suffix}",
        help=glossary.help_text(
            "k-shot",
            "How many ratings of each test user the methods see, comma-separated. 0 scores each "
            "model's guess before the user's first rating: the gap from k=0 to k=1 is what one "
            "rating is worth. Also called support sizes.",
        ),
    )
    query = c[1].number_input(
        "Hidden ratings",
        1,
        100,
        10,
        key="eval_query",
        help=glossary.help_text("query set", f"Ratings per test {unit} kept hidden to score."),
    )
    folds = c[2].number_input("Folds", 2, 10, 5, key="eval_folds")
    seed = c[3].number_input("Seed", 0, 2**31 - 1, 0, key="eval_seed")
    protocol = c[4].selectbox(
        "Set-up",
        ["kshot"] if items or both else ["kshot", "melu"],
        key=f"eval_protocol{suffix}",
        disabled=items or both,
        format_func={"kshot": "After k ratings", "melu": "MeLU paper's split"}.get,
        help="After k ratings (protocol kshot): every test user is scored after each k. MeLU "
        "paper's split (protocol melu): users with 13-100 ratings, all but 10 ratings seen.",
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
    widgets.start_job(
        "eval",
        lambda: EvalConfig(
            methods=tuple(methods),
            support=_ints(support, "support sizes"),
            query=int(query),
            folds=int(folds),
            seed=int(seed),
            protocol=protocol,
            train_seeds=int(train_seeds),
            cold=cold,
        ),
        lambda cfg: EvaluationJob(active.data, cfg),
        state.K_EVAL_REPORT,
    )

job, running, every = state.job_pace("eval")


@state.polling_fragment(every)
def progress() -> None:
    job = state.jobs().get("eval")
    if job is None:
        return
    snap = job.snapshot()
    if running and not snap.finished and poll_seconds(snap) != every:
        st.rerun()  # it left the line: poll at the new pace
    if not state.is_active_data(job.data):
        what = "runs" if snap.active else "ran"
        widgets.elsewhere_note(job, f"evaluation {what}", "its report is shown")
    if snap.queue_position is not None:  # waiting for the server's job pool
        st.info(snap.status_line, icon=":material/hourglass_top:")
    if snap.active:
        if snap.eta is None:
            eta = "estimating…"
        elif snap.eta < 1:  # never "0 s" while the job runs
            eta = "under 1 s"
        else:
            eta = f"{snap.eta:.0f} s" if snap.eta < 120 else f"{snap.eta / 60:.1f} min"
        # the percentage is the sidebar's figure: both read the job's snapshot
        text = (
            f"{100 * snap.fraction:.0f}% · {state.plain(snap.message)} · "
            f"{snap.elapsed:.0f} s elapsed · ETA {eta}"
        )
        if snap.cancelling:
            st.progress(snap.fraction, text=f"Cancelling… ({text})")
            st.button("Cancelling…", key="eval_cancel", disabled=True)
        else:
            st.progress(snap.fraction, text=text)
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
    st.success(f"Evaluation done: {len(report.rows)} rows.")
    show_report(report)
