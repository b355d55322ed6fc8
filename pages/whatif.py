"""What-if page: the same new user's ratings fed to several models, side by side."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import app_state as state
from app_support import format as fmt
from app_support import item_whatif
from app_support.charts import interval_figure, titled
from app_support.progress import run_stages
from metarec_core.interactive import personas
from metarec_core.interactive import session as pg
from metarec_core.interactive.explain import MAX_SUPPORT
from metarec_core.interactive.whatif import compare_models
from metarec_core.methods.registry import BASELINE, available_methods, display_name

state.require_router()

K_RESULT = "mr_whatif"
MARGIN = dict(t=50, b=40, l=60, r=10)  # of both charts

st.title("What-if: compare models on one new user")
active = state.require_data()
# the same question for a new item (the new-item page's item): app_support/item_whatif.py
if (
    st.radio("Who is new?", ["A new user", "A new item"], key="wi_subject", horizontal=True)
    == "A new item"
):
    item_whatif.show(active)
    st.stop()
data = active.data
entry = state.active_model()
if entry is None:
    st.info("No model for this dataset yet: train one on the Train page.")
    st.page_link("pages/train.py", label="Go to the Train page", icon=":material/model_training:")
    st.stop()
st.caption(
    "Feed the same ratings to several models and see where their top-10 lists differ, and how "
    "many ratings each needs before its list stops changing (a model whose list never changes "
    "is not adapting to the ratings). Baselines are fitted on the same training users as the "
    f"active model ({state.plain(entry.name)}), when a comparison first needs them."
)

# Baselines are listed by name and fitted only when a comparison uses them.
candidates: dict[str, object] = {n: m.model for n, m in state.models_for_active_data().items()}
candidates.update(dict.fromkeys(available_methods(BASELINE)))
# beside the active model, the level baselines (not the one it is, when it is a baseline)
default = [entry.name, *state.beside(entry, ("mf_foldin_levels", "user_bias_levels"))]
chosen = st.multiselect(
    "Models to compare",
    list(candidates),
    default=default,
    key="wi_models",
    format_func=display_name,
    help="Meta-learners of this session (train more, e.g. finetune, on the Train page) and baselines.",
)

session = st.session_state.get(state.K_PLAYGROUND)
sources = []
if session is not None and session.items:
    sources.append("The playground's ratings")
sources += ["A held-out real user", "A taste persona"]
source = st.radio("Ratings to feed", sources, key="wi_source", horizontal=True)

items = ratings = None
label = ""
if source == "The playground's ratings":
    items, ratings = session.support()
    label = (
        f"your {len(items)} playground ratings"
        if session.persona is None
        else f"the playground's {len(items)} ratings ({fmt.persona_name(session.persona)})"
    )
elif source == "A held-out real user":
    user = state.heldout_user_picker(
        data, entry.heldout_users, label="Held-out user", key="wi_user"
    )
    if user is not None:
        p = personas.heldout_persona(data, user, seed=0)
        items, ratings = p.reveal_items, p.reveal_ratings
        label = fmt.persona_name(p)
else:
    sugg = personas.suggest_tastes(data, 1)
    if not sugg:
        st.warning("Taste personas need item genres: upload an items file on the Data page.")
    else:
        genres = list(data.items.genre_names)
        likes = st.multiselect("Loves", genres, default=list(sugg[0][0]), key="wi_likes")
        dislikes = st.multiselect("Dislikes", genres, default=list(sugg[0][1]), key="wi_dislikes")
        try:
            p = personas.taste_persona(data, likes, dislikes, train_users=entry.train_users, seed=0)
        except ValueError as e:
            st.warning(state.plain(str(e)))
        else:
            items, ratings = p.reveal_items, p.reveal_ratings
            label = fmt.persona_name(p)

if items is not None and len(items):
    n_max = len(items)
    n = (
        st.slider(
            "Ratings to use (in order)",
            1,
            n_max,
            min(15, n_max),
            key="wi_n",
            help="The first n ratings; the stabilisation analysis looks at every prefix.",
        )
        if n_max > 1
        else 1
    )
    if st.button("Compare", key="wi_compare", type="primary", disabled=len(chosen) < 2):
        split = (data, entry.train_users, entry.val_users)
        wanted = [c for c in chosen if candidates[c] is None]
        stages: list = [
            (f"Fitting the baseline {b}", lambda b=b: pg.cached_baselines(*split, [b]))
            for b in pg.missing_baselines(*split, wanted)
        ]
        models: dict[str, object] = {}

        def compare() -> None:
            fitted = pg.cached_baselines(*split, wanted)
            picked = {c: fitted[c] if c in fitted else candidates[c] for c in chosen}
            models["result"] = compare_models(
                picked, items[:n], ratings[:n], n=10, data=data, val_users=entry.val_users
            )

        stages.append(("Adapting every model after each rating", compare))
        try:
            run_stages("Comparing", stages)
            result = models["result"]
        except ValueError as e:
            st.error(state.plain(str(e)))
        else:
            st.session_state[K_RESULT] = (result, f"{label}, first {n} ratings", data)
    if len(chosen) < 2:
        st.caption("Pick at least two models.")


stored = st.session_state.get(K_RESULT)
if stored is not None and stored[2] is data:
    c, what, _ = stored
    st.subheader("Top-10 side by side", anchor=False)
    st.caption(state.plain(f"Ratings fed: {what}."))
    width = max(len(c.top[n]) for n in c.names)
    table = {"rank": np.arange(1, width + 1)}
    cfg = {"rank": st.column_config.NumberColumn("Rank", width="small")}
    for j, name in enumerate(c.names):
        tops = list(c.top[name]) + [None] * (width - len(c.top[name]))
        marks = []
        for i in tops:
            if i is None:
                marks.append("")
                continue
            flag = " ★ only here" if i in set(c.only_in[name].tolist()) else ""
            marks.append(f"{fmt.item_title(data, int(i))}{flag}")
        table[f"m{j}"] = marks
        cfg[f"m{j}"] = st.column_config.TextColumn(name)
    st.dataframe(
        pd.DataFrame(table), key="wi_table", hide_index=True, width="stretch", column_config=cfg
    )
    st.caption(
        f"{len(c.in_all)} item(s) appear in every list; ★ marks items that only one model lists."
    )
    left, right = st.columns(2)
    heat = go.Figure(
        go.Heatmap(
            z=c.pairwise_overlap,
            x=[state.chart_text(n) for n in c.names],
            y=[state.chart_text(n) for n in c.names],
            zmin=0,
            zmax=1,
            colorscale="Blues",
            text=np.round(c.pairwise_overlap, 2),
            texttemplate="%{text}",
            colorbar=dict(title="overlap"),
        )
    )
    titled(
        heat, "Agreement: share of top-10 in common", "Model", "Model", height=360, margin=MARGIN
    )
    # models in the same order down as across: the diagonal (each with itself) runs from the
    # top-left corner to the bottom-right one, as in a table
    heat.update_yaxes(autorange="reversed")
    left.plotly_chart(heat, key="wi_heat", width="stretch")
    # the share kept from the list before, per rating: a settled list stays at 1 from some
    # rating on, and a list that ignores the ratings is at 1 throughout (the table says which);
    # an overlap with the final list would end at 1 for every model by construction
    stab = go.Figure()
    for name in c.names:
        ys = c.kept[name]
        stab.add_scatter(
            x=list(range(1, len(ys) + 1)), y=ys, name=state.chart_text(name), mode="lines+markers"
        )
    n_fed = max(len(c.kept[name]) for name in c.names)
    titled(
        stab,
        "How much each top-10 changes per rating",
        "Ratings given",
        "Share kept from the rating before",
        height=360,
        margin=MARGIN,
        # whole ratings only (a few ratings had ticks at 1.5, 2.5)
        xaxis=dict(tick0=1, dtick=max(1, -(-n_fed // 10))),
        yaxis_range=[-0.05, 1.05],
        legend=dict(orientation="h", y=-0.25),
    )
    right.plotly_chart(stab, key="wi_stab", width="stretch")
    st.dataframe(
        pd.DataFrame(
            {
                "model": list(c.names),
                "stable_after": [fmt.stability_text(c.stability[n]) for n in c.names],
                "only_here": [len(c.only_in[n]) for n in c.names],
            }
        ),
        key="wi_stability",
        hide_index=True,
        column_config={
            "model": st.column_config.TextColumn("Model"),
            "stable_after": st.column_config.TextColumn(
                "Top-10 stops changing",
                help="Fewest ratings after which every further rating leaves the top-10 items "
                "unchanged. 'Never adapts': the same 10 items as with no ratings at all, so the "
                "model is not using the ratings for its list.",
            ),
            "only_here": st.column_config.NumberColumn("Items no other model lists"),
        },
    )
    st.subheader("Why, and how sure", anchor=False)
    shown = st.selectbox("Model", list(c.names), key="wi_why_model", format_func=display_name)
    rows = fmt.comparison_rows(c, shown, data)
    band = c.bands.get(shown)
    st.dataframe(
        pd.DataFrame(rows),
        key="wi_why",
        hide_index=True,
        width="stretch",
        column_order=("rank", "predicted", *(("interval",) if band else ()), "title", "because"),
        column_config={
            "rank": st.column_config.NumberColumn("Rank", width="small"),
            "predicted": st.column_config.NumberColumn("Predicted", format="%.2f"),
            "interval": st.column_config.TextColumn(
                f"{round(100 * band.coverage)}% interval" if band else "Interval",
                width="small",
                help=fmt.interval_help(band),
            ),
            "title": st.column_config.TextColumn("Title"),
            "because": st.column_config.TextColumn(
                "Because of the rating of", help=fmt.BECAUSE_HELP
            ),
        },
    )
    if not c.explanations.get(shown):
        st.caption(
            f"What moved each item is measured with 1 to {MAX_SUPPORT} ratings fed "
            "(re-adapting without each one)."
        )
    if band is None:
        st.caption(
            "This model gives no interval: it ranks without predicting ratings, or it has no "
            "predictive distribution and no validation users to calibrate one on."
        )
    elif rows:
        fig = interval_figure(
            [r["title"] for r in rows],
            [r["predicted"] for r in rows],
            [float(band.low[0, i]) for i in c.top[shown]],
            [float(band.high[0, i]) for i in c.top[shown]],
        )
        titled(
            fig,
            f"{state.chart_text(shown)}: predicted rating and its "
            f"{round(100 * band.coverage)}% interval",
            "Rating",
            "",
            height=80 + 28 * len(rows),
            xaxis_range=[data.scale.low - 0.2, data.scale.high + 0.2],
        )
        st.plotly_chart(fig, key="wi_band_chart", width="stretch")
