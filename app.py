"""MetaRec Studio: the Streamlit entry point (router and frame).

Run with ``streamlit run app.py`` (or ``make run``). Pages live in ``views/`` (not ``pages/``,
which Streamlit would treat as its legacy multipage folder); per-session state in
``app_state.py``; every number the pages show is computed by ``metarec_core``.
"""

from __future__ import annotations

import streamlit as st

import app_state as state

st.set_page_config(page_title="MetaRec Studio", page_icon=":material/movie:", layout="wide")

PAGES = [
    st.Page(
        "views/data.py", title="Data", icon=":material/database:", url_path="data", default=True
    ),
    st.Page("views/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page(
        "views/playground.py",
        title="Cold-start playground",
        icon=":material/sports_esports:",
        url_path="playground",
    ),
    st.Page(
        "views/evaluate.py", title="Evaluate", icon=":material/analytics:", url_path="evaluate"
    ),
    st.Page(
        "views/whatif.py", title="What-if", icon=":material/compare_arrows:", url_path="whatif"
    ),
]
page = st.navigation(PAGES)

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
            # Keep the widget in step with models activated elsewhere (training, upload).
            st.session_state["sidebar_model"] = current.name if current is not None else names[-1]
            choice = st.selectbox(
                "Active model",
                names,
                key="sidebar_model",
                on_change=lambda: state.set_active_model(st.session_state["sidebar_model"]),
                help="Used by the playground. Models trained on another dataset are hidden.",
            )
            state.set_active_model(choice)
            st.caption(state.plain(usable[choice].source))
        job = state.jobs().get("sample")
        if not usable and active.is_sample and job is not None and job.is_active:
            snap = job.snapshot()
            line = f"Training a quick model for the sample · {snap.status_line}"
            st.progress(snap.fraction, text=line)
        elif not usable:
            st.text("none yet: train one on the Train page")
        for slot, what in (("train", "Training"), ("eval", "Evaluation")):
            running = state.jobs().get(slot)
            if running is not None and running.is_active:
                snap = running.snapshot()
                st.caption(f"{what} in the background: {snap.status_line}")
        err = st.session_state.get("mr_sample_model_error")
        if err and not usable:
            st.warning(f"The shipped sample model could not be loaded: {err}")


_sidebar()
page.run()
