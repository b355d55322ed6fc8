"""Home page: what the app is for, the idea of meta-learning as a picture, where to go next."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import app_state as state
from metarec_core import glossary
from metarec_core.interactive.demo import DEMO_RATINGS

state.require_router()

GREY, BLUE, RED = "#868e96", "#4c6ef5", "#e03131"


# Built once per process (plotly validates every annotation as it is added: ~35 ms a page load);
# the figure is only read afterwards (st.plotly_chart copies it to a dict).
@st.cache_resource(show_spinner=False)
def idea_figure() -> go.Figure:
    """The seed idea of MAML as a sketch: many training users' best models around one learned
    start (left), and a new user reached from that start in a few small steps (right)."""
    rng = np.random.default_rng(3)
    angles = np.linspace(0, 2 * np.pi, 10, endpoint=False) + rng.uniform(-0.25, 0.25, 10)
    radii = rng.uniform(0.7, 1.0, 10)
    users = np.c_[np.cos(angles) * radii, np.sin(angles) * radii]
    new_user = np.array([0.75, 0.55])
    path = np.array([[0, 0], [0.35, 0.2], [0.6, 0.42], new_user])  # three adaptation steps
    fig = go.Figure()
    for dx, title in ((0.0, "1. Meta-training on many users"), (3.0, "2. A new user adapts")):
        fig.add_annotation(
            x=dx, y=1.35, text=title, showarrow=False, font=dict(size=15), xanchor="center"
        )
    # left: every training user is a short way from the learned start
    for u in users:
        fig.add_annotation(
            x=u[0],
            y=u[1],
            ax=0,
            ay=0,
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            showarrow=True,
            arrowhead=2,
            arrowwidth=1,
            arrowcolor=GREY,
            text="",
        )
    fig.add_scatter(
        x=users[:, 0],
        y=users[:, 1],
        mode="markers",
        marker=dict(size=11, color=GREY),
        name="training users (each one's best model)",
        hoverinfo="skip",
    )
    # right: the same start among the same users (faint), one new user, three small steps
    fig.add_scatter(
        x=3 + users[:, 0],
        y=users[:, 1],
        mode="markers",
        marker=dict(size=11, color=GREY, opacity=0.25),
        showlegend=False,
        hoverinfo="skip",
    )
    fig.add_scatter(
        x=3 + path[:, 0],
        y=path[:, 1],
        mode="lines+markers",
        line=dict(color=RED, width=3),
        marker=dict(size=[1, 8, 8, 14], color=RED),
        name="a new user: a few steps from their first ratings",
        hoverinfo="skip",
    )
    fig.add_scatter(
        x=[0, 3],
        y=[0, 0],
        mode="markers",
        marker=dict(size=24, color=BLUE, symbol="star"),
        name="the meta-learned start",
        hoverinfo="skip",
    )
    fig.add_annotation(x=3 + new_user[0], y=new_user[1] + 0.2, text="new user", showarrow=False)
    fig.add_annotation(x=3, y=-0.3, text="start", showarrow=False)
    fig.update_xaxes(visible=False, range=[-1.4, 4.4])
    fig.update_yaxes(visible=False, range=[-1.25, 1.5], scaleanchor="x", scaleratio=1)
    fig.update_layout(
        height=330,
        margin=dict(t=10, b=10, l=10, r=10),
        legend=dict(orientation="h", y=-0.02, x=0.5, xanchor="center"),
        plot_bgcolor="rgba(0,0,0,0)",
        dragmode=False,
    )
    return fig


def use_sample() -> None:
    """Make the shipped sample active (its pre-trained model with it)."""
    active = state.get_data()
    if active is None or not active.is_sample:
        state.set_data(state.sample_dataset(), "sample data (synthetic)", is_sample=True)
    state.load_or_train_sample_model()


st.title("MetaRec Studio")
st.markdown(
    "A recommender learns your taste from your ratings, so a **brand-new user**, with no "
    "ratings yet, gets the same generic suggestions as everyone: this is the *cold-start "
    "problem*. **Meta-learning** trains the model on many users' small learning problems so that "
    "it learns a starting point from which a new user's first few ratings are enough to fit them.",
    help=glossary.help_text("cold start") + " " + glossary.help_text("MAML"),
)
st.plotly_chart(idea_figure(), key="home_idea", width="stretch", config={"displayModeBar": False})
st.caption(
    "Left: during meta-training, the model learns one start (the star) from which every "
    "training user is only a short way off. Right: a new user's few ratings move the model from "
    "that start to them in a few small adaptation steps; ordinary models start from an average "
    "and need many more ratings.",
    help=glossary.help_text("inner step"),
)

st.subheader("See it in one click", anchor=False)
st.markdown(
    f"A real user the model never saw rates **{DEMO_RATINGS} films**, one per second: watch the "
    "recommendations change and the error on their other, hidden ratings fall after each rating, "
    "next to the usual methods (item averages, matrix factorisation)."
)
if st.button(
    f"Watch a new user rate {DEMO_RATINGS} films",
    key="home_demo",
    type="primary",
    icon=":material/play_circle:",
    help="Opens the playground on the active dataset if it has a model, else on the sample, and "
    "plays a held-out user's first ratings by itself. " + glossary.help_text("held-out user"),
):
    if state.active_model() is None:  # the demo needs a trained model: the sample ships one
        use_sample()
    st.session_state[state.K_DEMO] = DEMO_RATINGS
    st.switch_page("pages/playground.py")

st.subheader("Or explore", anchor=False)
c1, c2, c3 = st.columns(3)
with c1:
    st.markdown("**Try it yourself.** Rate films on the sample and see the list adapt.")
    if st.button(
        "Try the playground on the sample", key="home_playground", icon=":material/sports_esports:"
    ):
        use_sample()
        st.switch_page("pages/playground.py")
with c2:
    st.markdown("**Your own ratings.** Upload a ratings file (and titles) and train a model.")
    if st.button("Upload your data", key="home_upload", icon=":material/upload_file:"):
        active = state.get_data()
        if active is None or active.is_sample:
            st.session_state["data_source"] = "Upload a file"  # the Data page's source radio
        st.switch_page("pages/data.py")
with c3:
    st.markdown("**How much better is it?** Compare methods on users never trained on.")
    if st.button("See the evaluation", key="home_evaluate", icon=":material/analytics:"):
        st.switch_page("pages/evaluate.py")

st.caption(
    "New words? The Glossary page explains support and query ratings, adaptation steps, "
    "nDCG and the rest in plain words."
)
