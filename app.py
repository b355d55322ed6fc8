"""MetaRec Studio: the Streamlit entry point (router and frame).

Run with ``streamlit run app.py`` (or ``make run``). Pages live in ``pages/``, routed by
``st.navigation`` (which makes Streamlit ignore its legacy scan of that folder); per-session state in
``app_state.py``; every number the pages show is computed by ``metarec_core``.
"""

from __future__ import annotations

import streamlit as st

import app_state as state
from metarec_core.jobs import SIDEBAR_POLL_S

st.set_page_config(page_title="MetaRec Studio", page_icon=":material/movie:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", url_path="home", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/database:", url_path="data"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page(
        "pages/playground.py",
        title="Cold-start playground",
        icon=":material/sports_esports:",
        url_path="playground",
    ),
    st.Page(
        "pages/new_item.py",
        title="A new item arrives",
        icon=":material/new_releases:",
        url_path="new_item",
    ),
    st.Page(
        "pages/evaluate.py", title="Evaluate", icon=":material/analytics:", url_path="evaluate"
    ),
    st.Page(
        "pages/whatif.py", title="What-if", icon=":material/compare_arrows:", url_path="whatif"
    ),
    st.Page(
        "pages/glossary.py", title="Glossary", icon=":material/menu_book:", url_path="glossary"
    ),
]
page = st.navigation(PAGES)
state.begin_whole_run()

state.ensure_defaults()
state.collect_finished_jobs()


def _sidebar() -> None:
    with st.sidebar:
        st.markdown("### MetaRec Studio")
        st.caption("Meta-learning for cold-start recommendation")
        active = state.get_data()
        if active is None:
            st.info("No dataset yet: choose one on the Data page.")
            return
        d = active.data
        st.markdown("**Dataset**")
        st.text(
            f"{active.label}\n{d.n_users:,} users · {d.n_items:,} items · {d.n_ratings:,} ratings"
        )
        st.markdown("**Model**")
        usable = state.models_for_active_data()
        current = state.active_model()
        if usable:
            names = list(usable)
            # Keep the widget in step with models activated elsewhere (training, upload). None
            # active (a trained model worse than the baselines is not adopted): the person
            # chooses; nothing is made active here.
            st.session_state["sidebar_model"] = current.name if current is not None else None
            choice = st.selectbox(
                "Active model",
                names,
                index=None,
                placeholder="Choose a model",
                key="sidebar_model",
                on_change=lambda: state.set_active_model(st.session_state["sidebar_model"]),
                help="Used by the playground. Models trained on another dataset are hidden.",
            )
            if choice is not None:
                state.set_active_model(choice)
                st.caption(state.plain(usable[choice].source))
        job = state.jobs().get("sample")
        if not usable and active.is_sample and job is not None and job.is_active:
            snap = job.snapshot()
            line = f"Training a quick model for the sample · {snap.status_line}"
            st.progress(snap.fraction, text=line)
        elif not usable:
            st.text("none yet: train one on the Train page")
        _sidebar_jobs()
        err = st.session_state.get("mr_sample_model_error")
        if err and not usable:
            st.warning(f"The shipped sample model could not be loaded: {err}")


def _job_line(what: str, job) -> str:
    """A running job in one line, from its snapshot: the same figure as its page shows."""
    snap = job.snapshot()
    if snap.cancelling:
        return f"{what}: cancelling…"
    if snap.queue_position is not None:
        return f"{what}: {snap.status_line}"
    where = ""
    if snap.phase is not None and snap.phase.count > 1:
        where = f" ({snap.phase.label.lower()}, phase {snap.phase.index} of {snap.phase.count})"
    return f"{what} running in the background{where}: {100 * snap.fraction:.0f}%"


def _sidebar_jobs() -> None:
    """The running jobs' progress, polled like the pages' own (a full rerun drew it once)."""
    active = [
        (w, j)
        for s, w in (("train", "Training"), ("eval", "Evaluation"))
        if (j := state.jobs().get(s)) is not None and j.is_active
    ]

    @state.polling_fragment(SIDEBAR_POLL_S if active else None)
    def lines() -> None:
        still = False
        for what, job in active:
            if job.is_active:
                still = True
                st.caption(_job_line(what, job))
        if active and not still:
            st.rerun()  # all ended: a full rerun stops the polling

    lines()


_sidebar()
with st.sidebar:
    state.show_workspace_info()
page.run()
