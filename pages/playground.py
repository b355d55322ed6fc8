"""Cold-start playground: a brand-new user rates items one at a time; the model adapts live."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import app_state as state
from app_support import format as fmt
from app_support import onboarding, widgets
from app_support.charts import interval_figure, titled
from app_support.progress import run_stages
from metarec_core.interactive import personas
from metarec_core.interactive import session as pg
from metarec_core.interactive.demo import demo_persona
from metarec_core.interactive.explain import MAX_SUPPORT
from metarec_core.interactive.projection import Projection
from metarec_core.methods.registry import display_name

state.require_router()

PLAY_INTERVAL_S = 1.0
K_PLAYING = "mr_pg_playing"
K_MESSAGE = "mr_pg_message"
# The "Who is rating?" choice outlives the radio: Streamlit drops a widget's state on runs that
# do not draw it (another page), and the radio would come back as "Me" beside a persona.
K_MODE = "mr_pg_mode"
MODES = ("Me", "A held-out real user", "A taste persona", "Ask me")
COLORS = {"mf_foldin_levels": "#2f9e44", "user_bias_levels": "#f08c00", "popularity": "#868e96"}


# ----------------------------------------------------------------------------- session


def get_session(entry: state.ModelEntry, data) -> pg.PlaygroundSession:
    """This browser session's playground for the active model (built on first use).

    Only what the page shows at once is prepared here: the map of training users and the
    model's start. The baselines feed a persona's learning curve and are fitted when a persona
    is picked (`ensure_baselines`).
    """
    s = st.session_state.get(state.K_PLAYGROUND)
    if s is not None and s.model is entry.model and s.data is data:
        return s
    made: dict[str, pg.PlaygroundSession] = {}
    stages = []
    if not entry.projection_done:
        stages.append(
            ("Mapping training users (projection)", lambda: state.projection_for(entry, data))
        )

    def start() -> None:
        made["s"] = pg.PlaygroundSession(
            data,
            entry.model,
            model_name=entry.name,
            projection=state.projection_for(entry, data),
            val_users=entry.val_users,  # calibrates the intervals of a model without a distribution
        )

    stages.append(("Adapting the model to a user with no ratings", start))
    run_stages("Preparing the playground", stages)
    s = made["s"]
    st.session_state[state.K_PLAYGROUND] = s
    st.session_state[K_PLAYING] = False
    return s


def ensure_baselines(s: pg.PlaygroundSession, entry: state.ModelEntry, data) -> None:
    """Give `s` its baselines (fitted once per dataset and split for the whole server)."""
    names = state.beside(entry, pg.PLAYGROUND_BASELINES)  # an active baseline: not twice
    if tuple(s.baselines) == names:
        return
    args = (data, entry.train_users, entry.val_users)
    run_stages(
        "Preparing the learning curve",
        [
            (f"Fitting the baseline {name}", lambda n=name: pg.cached_baselines(*args, [n]))
            for name in pg.missing_baselines(*args, names)
        ],
    )
    s.set_baselines(pg.cached_baselines(*args, names))


def _say(kind: str, text: str) -> None:
    st.session_state[K_MESSAGE] = (kind, text)


def _session() -> pg.PlaygroundSession:
    return st.session_state[state.K_PLAYGROUND]


def _use_persona(make) -> None:
    """Start over as the persona `make()` builds (stops Play)."""
    st.session_state[K_PLAYING] = False
    _act(lambda: _session().set_persona(make()))


def _on_mode() -> None:
    st.session_state[K_MODE] = st.session_state["pg_mode"]
    if st.session_state["pg_mode"] in ("Me", "Ask me"):
        _use_persona(lambda: None)


def _act(fn, *args) -> None:
    """Run a session change; a ValueError becomes a message, never a traceback."""
    try:
        fn(*args)
    except ValueError as e:
        _say("warning", str(e))


# ----------------------------------------------------------------------------- charts
LEGEND_BELOW = dict(t=50, b=90, l=60, r=10)  # chart margins with room for a legend below


def adaptation_chart(view: pg.PlaygroundView) -> go.Figure:
    fig = go.Figure()
    tr = view.trace
    if tr is not None:
        steps = list(range(len(tr.support_loss)))
        if view.n_ratings:
            fig.add_scatter(
                x=steps,
                y=list(tr.support_loss),
                name="your ratings (support)",
                mode="lines+markers",
            )
        if tr.query_loss is not None:
            fig.add_scatter(
                x=steps, y=list(tr.query_loss), name="hidden ratings", mode="lines+markers"
            )
    return titled(
        fig,
        "Adaptation: loss per inner step",
        "Inner step (0 = meta-learned start)",
        "Mean squared error (rating²)",
        margin=LEGEND_BELOW,
        legend=dict(orientation="h", y=-0.35),
    )


def learning_chart(curve: list[pg.CurvePoint], metric: str, model_name: str) -> go.Figure:
    fig = go.Figure()
    names = list(getattr(curve[0], metric)) if curve else []
    for name in names:
        xs = [p.n for p in curve if name in getattr(p, metric)]
        ys = [getattr(p, metric)[name] for p in curve if name in getattr(p, metric)]
        is_model = name == model_name
        fig.add_scatter(
            x=xs,
            y=ys,
            name=state.chart_text(f"{name} (meta-learner)" if is_model else display_name(name)),
            mode="lines+markers",
            line=dict(
                width=3 if is_model else 1.5, color="#4c6ef5" if is_model else COLORS.get(name)
            ),
        )
    label = (
        "MAE on hidden ratings (rating units)"
        if metric == "mae"
        else f"nDCG@{pg.CURVE_NDCG_K} of hidden items"
    )
    title = (
        "Learning curve: error after each rating"
        if metric == "mae"
        else "Ranking quality after each rating"
    )
    return titled(
        fig,
        title,
        "Ratings given",
        label,
        margin=LEGEND_BELOW,
        legend=dict(orientation="h", y=-0.35),
    )


def projection_chart(proj: Projection, point: np.ndarray | None, data) -> go.Figure:
    fig = go.Figure()
    fig.add_scattergl(
        x=proj.points[:, 0],
        y=proj.points[:, 1],
        mode="markers",
        name="training users",
        marker=dict(size=5, color="#adb5bd", opacity=0.6),
        text=[state.chart_text(data.user_ids[u]) for u in proj.users],
        hovertemplate="user %{text}<extra></extra>",
    )
    if point is not None:
        fig.add_scatter(
            x=[point[0]],
            y=[point[1]],
            mode="markers",
            name="you",
            marker=dict(size=16, color="#e03131", symbol="star"),
        )
    e = proj.explained
    return titled(
        fig,
        "You among training users (PCA)",
        f"PC 1 ({100 * e[0]:.0f}% of variance)",
        f"PC 2 ({100 * e[1]:.0f}% of variance)",
        height=360,
        margin=LEGEND_BELOW,
        legend=dict(orientation="h", y=-0.3),
    )


# ----------------------------------------------------------------------------- page

st.title("Cold-start playground")
active = state.require_data()
data = active.data
entry = state.active_model()

if entry is None:
    # the background sample model only concerns the sample; another dataset needs its own
    job = state.jobs().get("sample") if active.is_sample else None
    if job is not None and job.status == "done" and not state.is_collected(job):
        st.rerun()  # it finished just now: the next run registers it
    if job is not None and job.is_active:

        @state.polling_fragment(1.0)
        def wait_for_sample() -> None:
            snap = job.snapshot()
            st.progress(
                snap.fraction, text=f"Training a quick model for the sample data… {snap.message}"
            )
            if snap.finished:
                st.rerun()

        wait_for_sample()
    else:
        if job is not None and job.status == "failed":
            st.error(state.plain(f"The quick model for the sample failed: {job.snapshot().error}"))
        if state.models_for_active_data():
            st.info(
                "No model is active: the ones trained on this dataset did worse than the plain "
                "baselines on their validation users. Choose one in the sidebar to use it "
                "anyway, or train again."
            )
        else:
            st.info("No model for this dataset yet: train one first.")
        st.page_link(
            "pages/train.py", label="Go to the Train page", icon=":material/model_training:"
        )
    st.stop()

session = get_session(entry, data)
# The home page's one-click demo (state.K_DEMO = n): the most active held-out user replays their
# first n ratings by itself, next to the baselines.
if (demo_n := st.session_state.pop(state.K_DEMO, None)) is not None:
    try:
        demo = demo_persona(data, entry.heldout_users, int(demo_n))
    except ValueError as e:
        _say("warning", f"The demo cannot run on this model: {e}")
    else:
        st.session_state["pg_mode"] = st.session_state[K_MODE] = MODES[1]
        _use_persona(lambda: demo)
        st.session_state[K_PLAYING] = True
st.caption(
    f"Model: {state.plain(entry.name)} ({state.plain(entry.source)}). A brand-new user starts "
    "with no ratings; after every rating the model adapts from its meta-learned start."
)

left, right = st.columns([1, 2], gap="large")

with left:
    st.subheader("Who is rating?", anchor=False)
    mode = widgets.mode_radio("Who is rating?", MODES, "pg_mode", K_MODE, _on_mode)
    if mode == "Ask me":  # the app picks the next item to rate (app_support/onboarding.py)
        onboarding.ask_me_panel(session, entry, data, _act)
    elif mode == "A held-out real user":
        user = state.heldout_user_picker(
            data,
            entry.heldout_users,
            label="Held-out user (never trained on)",
            key="pg_heldout_user",
        )
        if user is not None and st.button("Use this persona", key="pg_use_heldout"):
            ensure_baselines(session, entry, data)
            _use_persona(lambda: personas.heldout_persona(data, user, seed=0))
    elif mode == "A taste persona":
        genres = list(data.items.genre_names) if data.items is not None else []
        if not genres:
            st.warning("Taste personas need item genres: upload an items file on the Data page.")
        else:
            sugg = personas.suggest_tastes(data, 1)
            likes = st.multiselect(
                "Loves", genres, default=list(sugg[0][0]) if sugg else [], key="pg_likes"
            )
            dislikes = st.multiselect(
                "Dislikes", genres, default=list(sugg[0][1]) if sugg else [], key="pg_dislikes"
            )
            if st.button("Use this persona", key="pg_use_taste"):
                ensure_baselines(session, entry, data)
                _use_persona(
                    lambda: personas.taste_persona(
                        data, likes, dislikes, train_users=entry.train_users, seed=0
                    )
                )
    if session.persona is not None:
        st.info(state.plain(fmt.persona_description(session.persona)))

    st.subheader("Rate an item", anchor=False)
    query = st.text_input(
        "Search items by title", key="pg_search", placeholder="e.g. a word of a title"
    )
    genre_opts = ["All genres", *(data.items.genre_names if data.items is not None else ())]
    genre = st.selectbox("Genre", genre_opts, key="pg_genre")
    exclude = list(session.items)
    if session.persona is not None:
        exclude += session.persona.hidden_items.tolist()  # ground truth stays hidden
    found = pg.search_items(
        data, query, None if genre == "All genres" else genre, exclude=exclude, limit=50
    )
    if len(found) == 0:
        st.caption("No unrated item matches.")
    else:
        item = st.selectbox(
            "Item",
            [int(i) for i in found],
            format_func=lambda i: fmt.item_label(data, i),
            key="pg_item",
        )
        rating = widgets.rating_slider("Your rating", data.scale, "pg_rating")
        # A callback, so the rating lands before the next run draws the item list: the item
        # just rated then leaves the picker instead of staying selected.
        st.button(
            "Rate this item",
            key="pg_rate",
            type="primary",
            on_click=_act,
            args=(session.add_rating, item, rating),
        )

    if session.persona is not None:
        ensure_baselines(session, entry, data)  # e.g. a persona kept from before a code reload
        st.subheader("Let the persona rate", anchor=False)
    widgets.replay_controls(session.persona is not None, _session, _act, K_PLAYING, "pg")

playing = bool(st.session_state.get(K_PLAYING)) and session.persona is not None

with right:

    @state.polling_fragment(PLAY_INTERVAL_S if playing else None)
    def results() -> None:
        widgets.replay_step(session, _act, K_PLAYING)
        msg = st.session_state.pop(K_MESSAGE, None)
        if msg is not None:
            st.warning(state.plain(msg[1]))
        v = session.view
        head = f"{v.n_ratings} rating{'s' if v.n_ratings != 1 else ''} so far"
        if v.overlap is not None:
            kept = round(v.overlap * len(v.top_items))
            head += f" · {kept}/{len(v.top_items)} of the top {len(v.top_items)} kept since the last change"
        st.subheader("Recommendations", anchor=False)
        st.caption(head)
        recs = session.recommendations()
        rows = fmt.recommendation_rows(recs)
        band = v.band
        st.dataframe(
            pd.DataFrame(rows).drop(columns="item"),
            key="pg_top",
            hide_index=True,
            width="stretch",
            # short columns first: a table wider than its column scrolls, and the last one was
            # cut ("Since…"); now only the long genres can be
            column_order=(
                "rank", "movement", "predicted", *(("interval",) if band else ()), "title",
                "because", "genres",
            ),  # fmt: skip
            column_config={
                "rank": st.column_config.NumberColumn("Rank", width="small"),
                # bounded, so that what moved each item stays in view beside it
                "title": st.column_config.TextColumn("Title", width="medium"),
                "genres": st.column_config.TextColumn("Genres"),
                "predicted": st.column_config.NumberColumn(
                    "Predicted" if session.model.capabilities.predicts_ratings else "Score",
                    format="%.2f",
                    help="Expected rating on the dataset's scale (the model's mean prediction)",
                ),
                # wide enough for its header: the values ("new", "↑ 2") are narrower than it
                "movement": st.column_config.TextColumn(
                    "Since last", width=100, help=fmt.MOVEMENT_HELP
                ),
                "interval": st.column_config.TextColumn(
                    f"{round(100 * session.coverage)}% interval",
                    width=110,  # its header's width: the values ("3–5") are narrower
                    help=fmt.interval_help(band),
                ),
                "because": st.column_config.TextColumn(
                    "Because you rated", help=fmt.BECAUSE_HELP
                ),
            },
        )
        if recs and recs[0].because:
            # the table's reasons column may sit beyond its scroll; the top item's is always read
            st.caption(
                state.plain(
                    f"Why #1, {recs[0].title}: because you rated {fmt.reason_text(recs[0].because)}"
                ),
                help=fmt.BECAUSE_HELP,
            )
        if v.n_ratings > MAX_SUPPORT:
            st.caption(
                f"What moved each recommendation is measured up to {MAX_SUPPORT} ratings "
                "(re-adapting without each one): remove a rating to see it again."
            )
        if band is not None and recs:
            fig = interval_figure(
                [r.title for r in recs], [r.predicted for r in recs],
                [r.low for r in recs], [r.high for r in recs],
            )  # fmt: skip
            st.plotly_chart(
                titled(
                    fig,
                    f"How sure: predicted rating and its {round(100 * band.coverage)}% interval",
                    "Rating",
                    "",
                    height=80 + 28 * len(recs),
                    xaxis_range=[data.scale.low - 0.2, data.scale.high + 0.2],
                ),
                key="pg_band_chart",
                width="stretch",
            )
        c1, c2 = st.columns(2)
        c1.plotly_chart(adaptation_chart(v), key="pg_adapt_chart", width="stretch")
        if session.persona is not None and session.curve:
            c2.plotly_chart(
                learning_chart(session.curve, "mae", session.model_name),
                key="pg_curve_chart",
                width="stretch",
            )
        else:
            c2.info(
                "Pick a persona to see the learning curve: it needs hidden ratings to measure the error."
            )
        c3, c4 = st.columns(2)
        if session.projection is not None:
            c3.plotly_chart(
                projection_chart(session.projection, v.point, data),
                key="pg_proj_chart",
                width="stretch",
            )
        if session.persona is not None and session.curve:
            c4.plotly_chart(
                learning_chart(session.curve, "ndcg", session.model_name),
                key="pg_ndcg_chart",
                width="stretch",
            )
        if session.items:
            items, ratings = session.support()
            table = {
                "order": np.arange(1, len(items) + 1),
                "title": [fmt.item_label(data, int(i)) for i in items],
                "rating": ratings,
            }
            config = {
                "order": st.column_config.NumberColumn("#", width="small"),
                "title": st.column_config.TextColumn("Item"),
                "rating": st.column_config.NumberColumn("Rating", format="%g ★"),
            }
            if session.persona is None:
                st.subheader("Your ratings", anchor=False)
            elif all(session.from_persona):
                st.subheader("The persona's ratings", anchor=False)
                st.caption(state.plain(fmt.persona_name(session.persona)))
            else:
                st.subheader("Ratings so far", anchor=False)
                st.caption(
                    state.plain(
                        f"From the persona ({fmt.persona_name(session.persona)}) and from you."
                    )
                )
                table["by"] = ["persona" if p else "you" for p in session.from_persona]
                config["by"] = st.column_config.TextColumn("Rated by", width="small")
            st.dataframe(
                pd.DataFrame(table),
                key="pg_rated",
                hide_index=True,
                width="stretch",
                column_config=config,
            )
            r1, r2 = st.columns([3, 1])
            gone = r1.selectbox(
                "Remove a rating",
                [int(i) for i in items],
                format_func=lambda i: fmt.item_label(data, i),
                key="pg_remove_pick",
            )
            if r2.button("Remove", key="pg_remove"):
                _act(session.remove_rating, gone)
                st.rerun()  # redraw with the rating gone

    results()
