"""A new item arrives: who would the models show it to, and how fast do its first ratings help?

Thin: every number comes from `metarec_core.interactive.item_session` (held-out item fold, replay
order, predictions, audiences, errors). The item models are fitted in a background job
(`ItemFitJob`) in this workspace's job slot "items"; the shipped sample's models are shared by
every session (`item_session.share_models`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import app_state as state
from app_support import format as fmt
from app_support import widgets
from app_support.charts import titled
from metarec_core import glossary
from metarec_core.interactive import item_session as isn
from metarec_core.interactive import personas
from metarec_core.interactive.audience import with_year
from metarec_core.jobs import poll_seconds

state.require_router()

PLAY_INTERVAL_S = 1.0
SLOT = "items"  # this workspace's job slot for the item models
SEED = 0  # the held-out item fold's seed
K_SESSION = state.K_ITEM_SESSION
K_PLAYING = "mr_item_playing"
K_MESSAGE = "mr_item_message"
# The "Which item?" choice outlives the radio (Streamlit drops a widget's state on runs that do
# not draw it, e.g. on another page).
K_MODE = "mr_item_mode"
MODES = ("A held-out real item", "Describe a new item")
RATER_CHOICES = 200  # users offered in the "rated by" picker (most active first)
MAP_COLOURS = (  # one per genre on the map of items (Plotly's "Alphabet": 26 distinct colours)
    "#AA0DFE", "#3283FE", "#85660D", "#782AB6", "#565656", "#1C8356", "#16FF32", "#F7E1A0",
    "#E2E2E2", "#1CBE4F", "#C4451C", "#DEA0FD", "#FE00FA", "#325A9B", "#FEAF16", "#F8A19F",
    "#90AD1C", "#F6222E", "#1CFFCE", "#2ED9FF", "#B10DA1", "#C075A6", "#FC1CBF", "#B00068",
    "#FBE426", "#FA0087",
)  # fmt: skip


_label = fmt.item_method_label


# ----------------------------------------------------------------------------- the models
# The baselines (seconds to a minute) and the learner (minutes) are fitted by two jobs, so the
# page is usable with the baselines while the learner fits (`item_session.playground_parts`).
K_MERGED = "mr_item_models"  # (ids of the parts, their merged ItemModels): one object per set


def _slot(index: int) -> str:
    return SLOT if index == 0 else f"{SLOT}_learner"


def _part(active: state.ActiveData, names: tuple[str, ...], slot: str) -> isn.ItemModels | None:
    """A part's fitted models: shared (the sample) or this workspace's job's."""
    data = active.data
    if active.is_sample and (shared := isn.shared_models(data, SEED, names)) is not None:
        return shared
    if active.is_sample and (saved := state.sample_item_models(data, SEED, names)) is not None:
        isn.share_models(saved)  # fitted once and shipped with the sample (`make sample-model`)
        return saved
    job = state.jobs().get(slot)
    if job is not None and job.matches(data, SEED, names) and job.status == "done" and job.result:
        if active.is_sample:
            isn.share_models(job.result)
        return job.result
    return None


def _start(data, names: tuple[str, ...], slot: str) -> None:
    old = state.jobs().get(slot)
    if old is not None and old.is_active:
        old.cancel()  # it fits another dataset's models: that one is no longer active
    state.jobs()[slot] = isn.ItemFitJob(data, seed=SEED, names=names).start()


def _job(data, names: tuple[str, ...], slot: str):
    """The job fitting a missing part: started on first need, kept when it failed or was
    cancelled (the page offers to start it again)."""
    job = state.jobs().get(slot)
    if job is None or not job.matches(data, SEED, names) or job.status == "done":
        _start(data, names, slot)  # first visit, another dataset, or a result gone from memory
    return state.jobs()[slot]


def _follow(pending: list[tuple[tuple[str, ...], str]], data) -> None:
    """Progress of the jobs fitting `pending` parts, polled; a full rerun when one ends."""
    jobs = [(names, slot, _job(data, names, slot)) for names, slot in pending]
    active = [j for _, _, j in jobs if j.is_active]
    every = min((poll_seconds(j.snapshot()) or 1.0) for j in active) if active else None

    @state.polling_fragment(every)
    def follow() -> None:
        for names, slot, job in jobs:
            snap = job.snapshot()
            what = ", ".join(_label(n) for n in names)
            if snap.status == "failed":
                st.error(state.plain(f"Fitting {what} failed: {snap.error}"))
            elif snap.status == "cancelled":
                st.warning(state.plain(f"Fitting {what} was cancelled."))
            if not snap.active:
                st.button(
                    "Fit again", key=f"ni_refit_{slot}", on_click=_start, args=(data, names, slot)
                )
                continue
            if snap.queue_position is not None:
                st.caption(state.plain(f"{what}: {snap.status_line}"))
            text = f"{100 * snap.fraction:.0f}% · {snap.message}"  # it names what it fits
            st.progress(snap.fraction, text=state.plain(text))
            st.button("Cancel", key=f"ni_cancel_{slot}", on_click=job.cancel)
        if any(not j.is_active for j in active):
            st.rerun()  # one ended: a full rerun uses its models (or says why not)

    follow()


def _models(active: state.ActiveData) -> isn.ItemModels:
    """The item models of the active data; the page stops here until the quick part is fitted."""
    data = active.data
    parts = isn.playground_parts()
    slots = [_slot(i) for i in range(len(parts))]
    got = [_part(active, names, slot) for names, slot in zip(parts, slots, strict=True)]
    pending = [(n, s) for n, s, g in zip(parts, slots, got, strict=True) if g is None]
    if got[0] is None:
        if active.is_sample and (why := st.session_state.get("mr_sample_item_models_error")):
            st.warning(state.plain(f"The sample's saved new-item models could not be read: {why}"))
        st.info(
            "Fitting the models for new items on this dataset, once: "
            + ", ".join(_label(n) for names in parts for n in names)
            + ". They never see a rating of the held-out items. The page opens when the plain "
            "methods are ready (seconds to a minute); the meta-learner takes minutes on a CPU "
            "and joins the comparison when it is done. You can use other pages meanwhile.",
            icon=":material/hourglass_top:",
        )
        _follow(pending, data)
        st.stop()
    if pending:
        with st.expander("Still fitting: the meta-learner joins the comparison when done", True):
            _follow(pending, data)
    present = [g for g in got if g is not None]
    key = tuple(id(g) for g in present)
    kept = st.session_state.get(K_MERGED)
    if kept is None or kept[0] != key:
        kept = (key, present[0] if len(present) == 1 else isn.merge_models(present))
        st.session_state[K_MERGED] = kept
    return kept[1]


# ----------------------------------------------------------------------------- the session


def _session() -> isn.ItemSession:
    return st.session_state[K_SESSION]


def _say(text: str) -> None:
    st.session_state[K_MESSAGE] = text


def _act(fn, *args) -> None:
    """Run a session change; a ValueError becomes a message, never a traceback."""
    try:
        fn(*args)
    except ValueError as e:
        _say(str(e))


def _use(make) -> None:
    """Start over with the item `make()` builds (stops Play)."""
    st.session_state[K_PLAYING] = False
    try:
        st.session_state[K_SESSION] = make()
    except ValueError as e:
        _say(str(e))


def _on_mode() -> None:
    st.session_state[K_MODE] = st.session_state["ni_mode"]


def _on_rate() -> None:
    user, rating = st.session_state.get("ni_rater"), st.session_state.get("ni_rating")
    if user is None:
        _say("Choose who rates the item first.")
        return
    _act(lambda: _session().add_rating(int(user), float(rating)))


def _on_persona() -> None:
    likes = st.session_state.get("ni_likes") or []
    dislikes = st.session_state.get("ni_dislikes") or []
    _act(lambda: _session().add_persona_rating(likes, dislikes))


def _source_text(source: isn.RatingSource) -> str:
    if source.kind == "persona":
        return "persona: " + fmt.taste_name(source.likes, source.dislikes)
    return {"replay": "replay", "hand": "you"}[source.kind]


def _item_text(data, item: int) -> str:
    return f"{fmt.item_label(data, item)} · {int(data.counts_per_item()[item])} ratings"


# ----------------------------------------------------------------------------- charts


def error_chart(curve: list[isn.ItemCurvePoint], names: tuple[str, ...]) -> go.Figure:
    fig = go.Figure()
    for name in names:
        fig.add_scatter(
            x=[p.n for p in curve],
            y=[p.errors[name].mae for p in curve],
            name=state.chart_text(_label(name)),
            mode="lines+markers",
            line=dict(width=3 if isn.is_learner(name) else 1.5),
        )
    fig.update_xaxes(tickmode="linear", tick0=0, dtick=max(1, len(curve) // 10))  # whole ratings
    return titled(
        fig,
        "Error on the hidden raters after each rating",
        "Ratings the item has received",
        "Average error (MAE, stars)",
        margin=dict(t=50, b=90, l=60, r=10),
        legend=dict(orientation="h", y=-0.35),
    )


def distribution_chart(s: isn.ItemSession, names: tuple[str, ...]) -> go.Figure:
    """Each model's predicted ratings of every user, as shares per rating."""
    fig = go.Figure()
    for name in names:
        d = s.distribution(name)
        fig.add_bar(
            x=[f"{c:g}" for c in d.centres],
            y=(100 * d.shares).tolist(),
            name=state.chart_text(f"{_label(name)} (mean {d.mean:.2f})"),
            hovertemplate="%{x} ★: %{y:.1f}% of users<extra></extra>",
        )
    return titled(
        fig,
        f"Predicted rating of every user ({s.data.n_users:,})",
        "Predicted rating (stars, rounded)",
        "Share of users (%)",
        margin=dict(t=50, b=90, l=60, r=10),
        legend=dict(orientation="h", y=-0.35),
        barmode="group",
    )


def map_chart(item_map, path: np.ndarray, data, title: str) -> go.Figure:
    """The training items on a 2-D map coloured by genre, and the new item's path on it (one
    point per rating, a star where it is now)."""
    fig = go.Figure()
    genres = np.asarray(item_map.genres, dtype=object)
    for j, g in enumerate(dict.fromkeys(item_map.genres)):
        on = genres == g
        fig.add_scattergl(
            x=item_map.points[on, 0].tolist(),
            y=item_map.points[on, 1].tolist(),
            mode="markers",
            name=state.chart_text(g or "no genre"),
            marker=dict(size=5, color=MAP_COLOURS[j % len(MAP_COLOURS)], opacity=0.55),
            text=[state.chart_text(fmt.item_label(data, int(i))) for i in item_map.items[on]],
            hovertemplate="%{text}<extra></extra>",
        )
    if len(path):
        fig.add_scatter(
            x=path[:, 0].tolist(),
            y=path[:, 1].tolist(),
            mode="lines+markers",
            name="the new item, rating by rating",
            line=dict(color="#212529", width=1.5, dash="dot"),
            marker=dict(size=6, color="#212529"),
        )
        fig.add_scatter(
            x=path[-1:, 0].tolist(),
            y=path[-1:, 1].tolist(),
            mode="markers",
            name="the new item now",
            marker=dict(size=18, color="#e03131", symbol="star", line=dict(width=1, color="#fff")),
        )
    e = item_map.projection.explained
    return titled(
        fig,
        title,
        f"PC 1 ({100 * e[0]:.0f}% of variance)",
        f"PC 2 ({100 * e[1]:.0f}% of variance)",
        height=420,
        margin=dict(t=50, b=40, l=60, r=10),
    )


# ----------------------------------------------------------------------------- page

st.title("A new item arrives")
active = state.require_data()
data = active.data
st.caption(
    "A film released today has a title and genres but no ratings. Before its first rating the "
    "models guess from its description who will like it; then its first ratings arrive one by "
    "one and the guesses sharpen. Real held-out items were never seen by the models: their "
    f"last {isn.ITEM_QUERY} ratings stay hidden to measure each model's error.",
    help=glossary.help_text("new item") + " " + glossary.help_text("audience"),
)
models = _models(active)

session: isn.ItemSession | None = st.session_state.get(K_SESSION)
if session is not None and session.data is not data:
    session = None  # another dataset
elif session is not None and session.models is not models:
    try:
        session.use_models(models)  # the learner joined the baselines: same item, same ratings
        st.session_state.pop("ni_audience_model", None)  # its audience is shown first now
    except ValueError:
        session = None  # models of another held-out fold
candidates = isn.heldout_items(data, models.fold)
if session is None:
    if len(candidates) == 0:
        st.warning(
            f"No held-out item has enough ratings to replay (it needs {isn.MIN_REVEAL} plus "
            f"{isn.ITEM_QUERY} hidden); describe a new item instead."
        )
        st.session_state[K_MODE] = MODES[1]
    first = int(candidates[0]) if len(candidates) else None
    _use(
        (lambda: isn.ItemSession.held_out(data, models, first))
        if first is not None
        else (lambda: isn.ItemSession.described(data, models, "A new item", ()))
    )
    session = st.session_state[K_SESSION]

left, right = st.columns([1, 2], gap="large")
genres = list(data.items.genre_names) if data.items is not None else []

with left:
    st.subheader("Which item?", anchor=False)
    mode = widgets.mode_radio("Which item?", MODES, "ni_mode", K_MODE, _on_mode)
    if mode == MODES[0]:
        if len(candidates):
            item = st.selectbox(
                "Held-out item (never seen by the models)",
                [int(i) for i in candidates[:100]],
                format_func=lambda i: _item_text(data, i),
                key="ni_heldout_item",
                help=glossary.help_text(
                    "held-out item", "Most rated first; its real ratings replay one by one."
                ),
            )
            if st.button("Use this item", key="ni_use_heldout"):
                _use(lambda: isn.ItemSession.held_out(data, models, item))
        else:
            st.caption("No held-out item has enough ratings.")
    else:
        title = st.text_input("Title", key="ni_title", placeholder="e.g. Space Opera (2026)")
        picked = st.multiselect(
            "Genres",
            genres,
            key="ni_genres",
            help="From this dataset's genre list. A year in brackets in the title counts too.",
        )
        year = st.number_input(
            "Release year",
            min_value=1800,
            max_value=2100,
            value=None,
            step=1,
            key="ni_year",
            placeholder="optional",
            help="Counts as the title's year (a year in brackets in the title wins).",
        )
        if not genres:
            st.caption("This dataset has no genres: the models only have the title's words.")
        if st.button("Use this item", key="ni_use_described"):
            named = with_year(title or "", None if year is None else int(year))
            _use(lambda: isn.ItemSession.described(data, models, named, picked))

    session = _session()
    st.markdown("**The item**")
    what = ", ".join(session.genres) or "no genres"
    st.text(f"{session.title or '(no title)'}\n{what}")
    if session.task is not None:
        st.caption(
            f"Held-out real item: {session.task.n_available} ratings to replay, "
            f"{len(session.hidden_users)} hidden."
        )

    st.subheader("Ratings arrive", anchor=False)
    widgets.replay_controls(
        session.task is not None,
        _session,
        _act,
        K_PLAYING,
        "ni",
        next_help="The item's next real rating, in a fixed (seeded) order.",
    )

    with st.expander("A user of your choice rates it", expanded=session.task is None):
        counts = data.counts_per_user()
        order = np.lexsort((np.arange(data.n_users), -counts))
        raters = [int(u) for u in order if session.can_rate(int(u))][:RATER_CHOICES]
        st.selectbox(
            "User",
            raters,
            format_func=lambda u: f"user {data.user_ids[u]} · {counts[u]} ratings",
            key="ni_rater",
            help="The most active users first; not the item's hidden raters.",
        )
        widgets.rating_slider("Their rating", data.scale, "ni_rating")
        st.button("Add this rating", key="ni_rate", on_click=_on_rate)

    with st.expander("A taste persona rates it", expanded=session.task is None):
        st.caption(
            "A persona is a taste, e.g. loves Sci-Fi: each click, the real user whose ratings "
            "match it best (and who has not rated the item) rates it as the persona would: "
            "their usual rating, a star or so higher when the item has a loved genre, lower "
            "for a disliked one."
        )
        if genres:
            sugg = personas.suggest_tastes(data, 1)
            pair = sugg[0] if sugg else ((genres[0],), ())
            st.multiselect("Loves", genres, default=list(pair[0]), key="ni_likes")
            st.multiselect("Dislikes", genres, default=list(pair[1]), key="ni_dislikes")
            st.button("Add the persona's rating", key="ni_persona", on_click=_on_persona)
        else:
            st.caption("This dataset has no genres: taste personas need them.")

playing = bool(st.session_state.get(K_PLAYING)) and session.task is not None

with right:

    @state.polling_fragment(PLAY_INTERVAL_S if playing else None)
    def results() -> None:
        s = _session()
        widgets.replay_step(s, _act, K_PLAYING)
        msg = st.session_state.pop(K_MESSAGE, None)
        if msg is not None:
            st.warning(state.plain(msg))
        v = s.view
        names = models.names
        # the meta-learner's audience first (the first baseline's while it is being fitted)
        learner = next((n for n in names if isn.is_learner(n)), names[0])
        st.subheader("Who to show it to", anchor=False)
        shown = st.selectbox(
            "Audience by",
            names,
            index=names.index(learner),
            format_func=_label,
            key="ni_audience_model",
            help=glossary.help_text("audience", "The model whose guesses rank the users below."),
        )
        head = f"{v.n_ratings} rating{'s' if v.n_ratings != 1 else ''} so far"
        if v.n_ratings == 0:
            head += " · from the description alone"
        if v.overlap[shown] is not None:
            n = len(v.audiences[shown])
            head += (
                f" · {round(v.overlap[shown] * n)}/{n} still in the top {n} since the last rating"
            )
        st.caption(head)
        audience = s.audience(shown)
        table = pd.DataFrame(
            {
                "rank": [m.rank for m in audience],
                "movement": [fmt.movement_label(m.movement) for m in audience],
                "user": [m.user_id for m in audience],
                "predicted": [m.predicted for m in audience],
                "tastes": [", ".join(m.tastes) for m in audience],
            }
        )
        config = {
            "rank": st.column_config.NumberColumn("Rank", width="small"),
            "movement": st.column_config.TextColumn(
                "Since last", width=100, help=fmt.MOVEMENT_HELP
            ),
            "user": st.column_config.TextColumn("User"),
            "predicted": st.column_config.NumberColumn(
                "Predicted", format="%.2f", help="The rating the model expects from this user"
            ),
            "tastes": st.column_config.TextColumn(
                "Likes", help="Their favourite genres, from their ratings of other items"
            ),
        }
        if s.task is not None:
            table["hidden"] = [
                "" if m.hidden_rating is None else f"{m.hidden_rating:g} ★" for m in audience
            ]
            config["hidden"] = st.column_config.TextColumn(
                "Hidden rating",
                help="For the item's hidden raters: their real rating (empty for other users)",
            )
        st.dataframe(
            table, key="ni_audience", hide_index=True, width="stretch", column_config=config
        )

        st.plotly_chart(distribution_chart(s, names), key="ni_dist_chart", width="stretch")
        # the map of the model whose audience is shown, else the learner's (or another's)
        mapped = models.mapped
        on_map = (
            shown
            if shown in mapped
            else next((n for n in mapped if isn.is_learner(n)), mapped[0] if mapped else None)
        )
        item_map = s.item_map(on_map) if on_map is not None else None
        if item_map is not None:
            st.plotly_chart(
                map_chart(
                    item_map,
                    s.map_path(on_map),
                    data,
                    state.chart_text(f"Where it lands among the training items ({_label(on_map)})"),
                ),
                key="ni_map_chart",
                width="stretch",
            )
            st.caption(
                f"Each dot is a training item as {_label(on_map)} sees it (its state from its "
                "description and ratings, in two dimensions), coloured by its rarest genre. "
                "The star is the new item now; the dotted line, where it was after each rating."
            )

        st.subheader("The models side by side", anchor=False)
        rows = {
            "model": [_label(n) for n in names],
            "agree": [s.agreement(n, learner) for n in names],
        }
        cols = {
            "model": st.column_config.TextColumn("Model"),
            "agree": st.column_config.ProgressColumn(
                "Same audience",
                format="percent",
                min_value=0.0,
                max_value=1.0,
                help=f"Share of the top {s.top_n} users of {_label(learner)} that this "
                f"model's top {s.top_n} holds too",
            ),
        }
        if v.errors is not None:
            rows["mae"] = [v.errors[n].mae for n in names]
            rows["ndcg"] = [v.errors[n].ndcg for n in names]
            cols["mae"] = st.column_config.NumberColumn(
                "Error on hidden raters",
                format="%.3f",
                help=glossary.help_text("MAE", "Average error on the hidden ratings (stars)."),
            )
            cols["ndcg"] = st.column_config.NumberColumn(
                f"Order of hidden raters (nDCG@{isn.CURVE_NDCG_K})",
                format="%.3f",
                help=glossary.help_text(
                    "nDCG@5",
                    "How well the hidden raters who liked it most come first (higher is better).",
                ),
            )
        st.dataframe(
            pd.DataFrame(rows), key="ni_models", hide_index=True, width="stretch",
            column_config=cols,
        )  # fmt: skip
        if v.errors is not None and s.curve:
            st.plotly_chart(error_chart(s.curve, names), key="ni_curve_chart", width="stretch")
        else:
            st.caption(
                "A described item has no hidden ratings: there is no error to measure. Pick a "
                "held-out real item to see it."
            )
        if s.users:
            st.subheader("Ratings so far", anchor=False)
            st.dataframe(
                pd.DataFrame(
                    {
                        "order": np.arange(1, len(s.users) + 1),
                        "user": [str(data.user_ids[u]) for u in s.users],
                        "rating": s.ratings,
                        "by": [_source_text(r) for r in s.sources],
                    }
                ),
                key="ni_rated",
                hide_index=True,
                width="stretch",
                column_config={
                    "order": st.column_config.NumberColumn("#", width="small"),
                    "user": st.column_config.TextColumn("User"),
                    "rating": st.column_config.NumberColumn("Rating", format="%g ★"),
                    "by": st.column_config.TextColumn(
                        "From",
                        help="replay: the item's real rating; you: your choice; persona: a "
                        "taste persona's rating, given through its best-matching real user",
                    ),
                },
            )

    results()
