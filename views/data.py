"""Data page: use the sample or upload ratings (+ optional items); validation result and summary."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import app_state as state
from metarec_core.data import DataError, RatingsDataset, load_ratings, summarize


@st.cache_data(show_spinner="Checking the file…", max_entries=8)
def parse_upload(
    ratings: bytes, name: str, items: bytes | None, items_name: str | None
) -> tuple[RatingsDataset | None, str | None]:
    """(dataset, None) or (None, the DataError message); keyed on the uploaded bytes."""
    try:
        return load_ratings(ratings, name=name, items=items, items_name=items_name), None
    except DataError as e:
        return None, str(e)


def rating_distribution(summary) -> go.Figure:
    keys = list(summary.rating_counts)
    fig = go.Figure(
        go.Bar(x=keys, y=[summary.rating_counts[k] for k in keys], marker_color="#4c6ef5")
    )
    fig.update_layout(
        title="Rating distribution",
        xaxis_title="Rating (scale units)",
        yaxis_title="Number of ratings",
        xaxis_type="category",
        height=320,
        margin=dict(t=50, b=40, l=50, r=10),
    )
    return fig


def ratings_per_user(data: RatingsDataset) -> go.Figure:
    counts = data.counts_per_user()
    fig = go.Figure(go.Histogram(x=counts, nbinsx=50, marker_color="#37b24d"))
    fig.update_layout(
        title="Ratings per user",
        xaxis_title="Ratings per user (count)",
        yaxis_title="Users (log scale)",
        yaxis_type="log",
        height=320,
        margin=dict(t=50, b=40, l=50, r=10),
    )
    return fig


def item_popularity(data: RatingsDataset) -> go.Figure:
    counts = np.sort(data.counts_per_item())[::-1]
    fig = go.Figure(
        go.Scatter(x=np.arange(1, len(counts) + 1), y=counts, mode="lines", line_color="#f76707")
    )
    fig.update_layout(
        title="Item popularity: the long tail",
        xaxis_title="Item rank by number of ratings",
        yaxis_title="Ratings per item (log scale)",
        yaxis_type="log",
        height=320,
        margin=dict(t=50, b=40, l=50, r=10),
    )
    return fig


def show_summary(data: RatingsDataset) -> None:
    summary = summarize(data)
    for note in data.notes:
        st.warning(state.plain(note), icon=":material/warning:")
    c = st.columns(5)
    c[0].metric("Users", f"{summary.n_users:,}")
    c[1].metric("Items", f"{summary.n_items:,}")
    c[2].metric("Ratings", f"{summary.n_ratings:,}")
    c[3].metric("Density", f"{100 * summary.density:.2f}%")
    s = summary.scale
    c[4].metric("Scale", f"{s.low:g}–{s.high:g}" + (f" (step {s.step:g})" if s.step > 0 else ""))
    few = summary.users_fewer_than
    if few:
        st.caption(
            "Users too short for each support size k (they need k + 10 query ratings): "
            + ", ".join(f"fewer than {k}: {v:,}" for k, v in few.items())
        )
    g = st.columns(3)
    g[0].plotly_chart(rating_distribution(summary), key="chart_ratings", width="stretch")
    g[1].plotly_chart(ratings_per_user(data), key="chart_users", width="stretch")
    g[2].plotly_chart(item_popularity(data), key="chart_items", width="stretch")
    with st.expander("Summary as text"):
        st.text(summary.to_text())


st.title("Data")
st.caption(
    "Choose what to work on: the synthetic sample (1,000 users, 1,500 items) or your own ratings "
    "file (CSV with a header, MovieLens u.data, ratings.dat or ratings.csv), with an optional "
    "items file (u.item, movies.csv, movies.dat or item,title,genres CSV)."
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
    left, right = st.columns(2)
    up = left.file_uploader("Ratings file", key="upload_ratings", help="Any format the core reads")
    up_items = right.file_uploader(
        "Items file (optional)", key="upload_items", help="Titles and genres for display"
    )
    if up is None:
        st.info("Upload a ratings file to check and use it.")
    else:
        parsed, error = parse_upload(
            up.getvalue(),
            up.name,
            None if up_items is None else up_items.getvalue(),
            None if up_items is None else up_items.name,
        )
        if error is not None:
            st.error(state.plain(error), icon=":material/error:")
        elif parsed is not None:
            if active is None or active.data.fingerprint() != parsed.fingerprint():
                state.set_data(parsed, up.name, is_sample=False)
                st.rerun()
            st.success(
                state.plain(
                    f"Loaded {up.name}: {parsed.n_ratings:,} ratings of {parsed.n_users:,} users"
                )
            )

active = state.get_data()
if active is not None:
    st.subheader("Active dataset: " + state.plain(active.label), anchor=False)
    show_summary(active.data)
    st.page_link(
        "views/playground.py",
        label="Try the cold-start playground →",
        icon=":material/sports_esports:",
    )
