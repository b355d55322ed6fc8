"""Data page: use the sample or upload ratings (+ optional items); validation result and summary."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import app_state as state
from app_support.charts import set_log_axis, titled
from metarec_core import glossary
from metarec_core.data.dataset import DataError, RatingsDataset
from metarec_core.data.io import attach_items, load_ratings
from metarec_core.data.summary import summarize

state.require_router()

# What the active upload was made from, so the page can show it after the upload boxes have
# emptied (Streamlit clears a widget's files when its page is left).
K_UPLOAD = "mr_data_upload"  # {"fingerprint", "ratings", "items", "key", "base"}
K_OUTCOME = "mr_data_upload_outcome"  # (key, error message or None) of the last upload tried
K_REPLACE = "mr_data_replace"  # the Replace button was pressed: show the upload boxes


@st.cache_data(show_spinner="Checking the file…", max_entries=8)
def parse_ratings(ratings: bytes, name: str) -> tuple[RatingsDataset | None, str | None]:
    """(dataset, None) or (None, the DataError message); keyed on the uploaded bytes."""
    try:
        return load_ratings(ratings, name=name), None
    except DataError as e:
        return None, str(e)


def parse_items(
    base: RatingsDataset, items: bytes, items_name: str
) -> tuple[RatingsDataset | None, str | None]:
    """`base` (the upload without items) with the items file attached, or the error."""
    try:
        with st.spinner("Checking the items file…"):
            return attach_items(base, items, name=items_name), None
    except DataError as e:
        return None, str(e)


def items_line(data: RatingsDataset, items_name: str | None) -> str:
    """What an items file attached: "items.csv: 3,449 items with titles and 18 genres"."""
    s = summarize(data)
    if not s.has_items:
        return (
            "No items file: items are shown by their id. Add one for titles, genres and "
            "taste personas."
        )
    named = s.n_items - s.items_missing
    text = f"{items_name or 'Items file'}: {named:,} items with titles and {s.n_genres} genres"
    if s.items_missing:
        text += f"; {s.items_missing:,} rated items have no row in it and are shown by their id"
    return text + "."


def rating_distribution(summary) -> go.Figure:
    keys = list(summary.rating_counts)
    fig = go.Figure(
        go.Bar(x=keys, y=[summary.rating_counts[k] for k in keys], marker_color="#4c6ef5")
    )
    return titled(
        fig,
        "Rating distribution",
        "Rating (scale units)",
        "Number of ratings",
        xaxis_type="category",
    )


def ratings_per_user(data: RatingsDataset) -> go.Figure:
    counts = data.counts_per_user()
    fig = go.Figure(go.Histogram(x=counts, nbinsx=50, marker_color="#37b24d"))
    titled(fig, "Ratings per user", "Ratings per user (count)", "Users (log scale)")
    return set_log_axis(fig, "y", 1, max(data.n_users, 1))


def item_popularity(data: RatingsDataset) -> go.Figure:
    counts = np.sort(data.counts_per_item())[::-1]
    fig = go.Figure(
        go.Scatter(x=np.arange(1, len(counts) + 1), y=counts, mode="lines", line_color="#f76707")
    )
    titled(
        fig,
        "Item popularity: the long tail",
        "Item rank by number of ratings",
        "Ratings per item (log scale)",
    )
    return set_log_axis(
        fig, "y", max(counts[-1], 1) if len(counts) else 1, max(counts[0], 1) if len(counts) else 1
    )


def show_summary(data: RatingsDataset) -> None:
    summary = summarize(data)
    for note in data.notes:
        st.warning(state.plain(note), icon=":material/warning:")
    s = summary.scale
    steps = f"in steps of {s.step:g}" if s.step > 0 else "any value in between"
    c = st.columns(5)
    c[0].metric("Users", f"{summary.n_users:,}")
    c[1].metric("Items", f"{summary.n_items:,}")
    c[2].metric("Ratings", f"{summary.n_ratings:,}")
    c[3].metric(
        "Density",
        f"{100 * summary.density:.2f}%",
        help="The share of all (user, item) pairs that have a rating.",
    )
    # the value stays short (a long one is cut in a narrow column); the step goes to the help
    c[4].metric(
        "Rating scale", f"{s.low:g}–{s.high:g}", help=f"From {s.low:g} to {s.high:g}, {steps}."
    )
    few = summary.users_fewer_than
    line = f"Ratings from {s.low:g} to {s.high:g}, {steps}."
    if few:
        line += (
            " Users with too few ratings to be tested after k ratings (a test needs k ratings "
            "plus 10 hidden ones): " + ", ".join(f"fewer than {k}: {v:,}" for k, v in few.items())
        )
    st.caption(
        line,
        help=glossary.help_text("k-shot") + " " + glossary.help_text("query set"),
    )
    g = st.columns(3)
    g[0].plotly_chart(rating_distribution(summary), key="chart_ratings", width="stretch")
    g[1].plotly_chart(ratings_per_user(data), key="chart_users", width="stretch")
    g[2].plotly_chart(item_popularity(data), key="chart_items", width="stretch")
    with st.expander("Summary as text"):
        st.text(summary.to_text())


def upload_record(active) -> dict:
    """What the active (non-sample) dataset was made from: the record this page kept, or one
    made from the dataset itself when another part of the app made it active."""
    upload = st.session_state.get(K_UPLOAD)
    if upload is not None and upload["fingerprint"] == active.data.fingerprint():
        return upload
    return {
        "fingerprint": active.data.fingerprint(),
        "key": (("active", active.data.fingerprint()), None),
        "base": active.data,
        "ratings": active.label,
        "items": None,
    }


def boxes_key(up, up_items, upload: dict | None) -> tuple | None:
    """(ratings file id, items file id) of what the upload boxes ask for; an items file alone
    goes with the active upload's ratings. None: nothing to load."""
    if up is not None:
        return (up.file_id, None if up_items is None else up_items.file_id)
    if up_items is not None and upload is not None:
        return (upload["key"][0], up_items.file_id)
    return None


def load_boxes(key: tuple, up, up_items, upload: dict | None) -> str | None:
    """Check the boxes' files and make them the active dataset; the error message, if any.

    Either order works: an items file added after the ratings file (or alone, to the active
    upload) is attached to those ratings.
    """
    if up is not None:
        base, error = parse_ratings(up.getvalue(), up.name)
        if error is not None:
            return error
        files = {"ratings": up.name, "items": None}
    else:
        base, files = upload["base"], {"ratings": upload["ratings"], "items": None}
    data = base
    if up_items is not None:
        data, error = parse_items(base, up_items.getvalue(), up_items.name)
        if error is not None:
            return error
        files["items"] = up_items.name
    state.set_data(data, files["ratings"], is_sample=False)
    st.session_state[K_UPLOAD] = {
        "fingerprint": data.fingerprint(),
        "key": key,
        "base": base,  # the ratings without items, to attach another items file to
        **files,
    }
    st.session_state[K_REPLACE] = False
    return None


def show_active_upload(active, upload: dict) -> None:
    d = active.data
    st.success(
        state.plain(
            f"Loaded {active.label}: {d.n_ratings:,} ratings of {d.n_users:,} users and "
            f"{d.n_items:,} items."
        ),
        icon=":material/check_circle:",
    )
    st.caption(state.plain(items_line(d, upload["items"])))


st.title("Data")
st.caption(
    "Choose the ratings to work on: the built-in sample (1,000 made-up users rating 1,500 "
    "made-up films) or your own file (CSV with a header, MovieLens u.data, ratings.dat or "
    "ratings.csv), with an optional items file for titles and genres (u.item, movies.csv, "
    "movies.dat or item,title,genres CSV)."
)

active = state.get_data()
source = st.radio(
    "Ratings source",
    ["Sample data", "Upload a file"],
    index=0 if active is None or active.is_sample else 1,
    horizontal=True,
    key="data_source",
)

if source == "Sample data":
    if active is None or not active.is_sample:
        with st.spinner("Loading the sample data…"):
            state.set_data(state.sample_dataset(), "sample data (synthetic)", is_sample=True)
            state.load_or_train_sample_model()
        st.rerun()
else:
    uploaded = active is not None and not active.is_sample
    upload = upload_record(active) if uploaded else None
    show_boxes = (
        not uploaded
        or st.session_state.get(K_REPLACE)
        or st.session_state.get("upload_ratings") is not None
        or st.session_state.get("upload_items") is not None
    )
    if uploaded:
        show_active_upload(active, upload)
    if not show_boxes:
        # The boxes empty when the page is left: say what is active rather than ask again.
        st.button(
            "Replace the files or add an items file",
            key="data_replace",
            icon=":material/upload_file:",
            on_click=lambda: st.session_state.update({K_REPLACE: True}),
        )
    else:
        left, right = st.columns(2)
        up = left.file_uploader(
            "Ratings file",
            key="upload_ratings",
            help=f"Any format the core reads, up to {st.get_option('server.maxUploadSize')} MB "
            "(about 9 million ratings as user,item,rating,timestamp; MovieLens-1M: 24 MB). "
            "Larger files: `python -m metarec_core validate FILE --max-mb N` and the other "
            "commands.",
        )
        up_items = right.file_uploader(
            "Items file (optional)",
            key="upload_items",
            help="Titles and genres, for display and taste personas; add it before or after "
            "the ratings file.",
        )
        key = boxes_key(up, up_items, upload)
        outcome = st.session_state.get(K_OUTCOME)
        if key is not None and (not uploaded or upload["key"] != key):
            if outcome is None or outcome[0] != key or outcome[1] is None:  # check new files once
                outcome = st.session_state[K_OUTCOME] = (key, load_boxes(key, up, up_items, upload))
                if outcome[1] is None:
                    st.rerun()
            st.error(state.plain(outcome[1]), icon=":material/error:")
        elif up is None and up_items is not None:
            st.info(
                "Now upload the ratings file: the items file gives its items titles and genres."
            )
        elif up is None and not uploaded:
            st.info("Upload a ratings file to check and use it.")

active = state.get_data()
if active is not None:
    st.subheader("Active dataset: " + state.plain(active.label), anchor=False)
    show_summary(active.data)
    st.page_link(
        "pages/playground.py",
        label="Try the cold-start playground →",
        icon=":material/sports_esports:",
    )
