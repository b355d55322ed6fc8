"""Widgets more than one page draws: the rating slider and the replay controls (next rating,
play/pause, reset) of a session that replays ratings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import streamlit as st

from metarec_core.data.dataset import RatingScale


def rating_values(scale: RatingScale) -> list[float]:
    """The ratings a person can give on `scale` (a continuous one: tenths of its range)."""
    step = scale.step if scale.step > 0 else (scale.high - scale.low) / 10
    return [float(v) for v in np.round(np.arange(scale.low, scale.high + step / 2, step), 6)]


def rating_slider(label: str, scale: RatingScale, key: str) -> float:
    """A star-rating slider over `scale`, starting at its top."""
    values = rating_values(scale)
    return st.select_slider(
        label, values, value=values[-1], key=key, format_func=lambda v: f"{v:g} ★"
    )


# Button callbacks change the state before the page is drawn, so the buttons drawn in that
# same run show it (a Play label, a Next button enabled again after Reset).
def _on_next(session: Callable[[], Any], act: Callable) -> None:
    act(session().add_next)


def _on_play(playing_key: str) -> None:
    st.session_state[playing_key] = not st.session_state.get(playing_key, False)


def _on_reset(session: Callable[[], Any], act: Callable, playing_key: str) -> None:
    st.session_state[playing_key] = False
    act(session().reset)


def replay_controls(
    replaying: bool,
    session: Callable[[], Any],
    act: Callable,
    playing_key: str,
    prefix: str,
    next_help: str | None = None,
) -> None:
    """Next / Play-Pause / Reset for the session `session()` returns when it is `replaying`
    (Reset alone otherwise); `act(fn)` runs a session change, `playing_key` holds Play's
    state, the buttons' keys are `prefix` + "_next", "_play", "_reset"."""
    reset = dict(key=f"{prefix}_reset", on_click=_on_reset, args=(session, act, playing_key))
    if not replaying:
        st.button("Reset", **reset)
        return
    s = session()
    c1, c2, c3 = st.columns([2, 1, 1])
    c1.button(
        "Add next rating",
        key=f"{prefix}_next",
        disabled=not s.has_next(),
        on_click=_on_next,
        args=(session, act),
        help=next_help,
    )
    playing = st.session_state.get(playing_key, False)
    c2.button(
        "Pause" if playing else "Play",
        key=f"{prefix}_play",
        disabled=not s.has_next() and not playing,
        on_click=_on_play,
        args=(playing_key,),
    )
    c3.button("Reset", **reset)


def mode_radio(label: str, modes: list[str] | tuple[str, ...], key: str, kept_key: str, on_change):
    """A horizontal radio of `modes` whose choice outlives the page: a radio loses its state
    when the person visits another page, so it restarts from the mode kept in `kept_key`."""
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get(kept_key, modes[0])
    return st.radio(
        label,
        modes,
        key=key,
        label_visibility="collapsed",
        horizontal=True,
        on_change=on_change,
    )


def replay_step(session: Any, act: Callable, playing_key: str) -> None:
    """While Play is on: the session's next rating, or, at the end, Play off and a full rerun
    (which turns the polling off)."""
    if st.session_state.get(playing_key):
        if session.has_next():
            act(session.add_next)
        else:
            st.session_state[playing_key] = False
            st.rerun()


def start_job(slot: str, make_config: Callable[[], Any], make_job: Callable, report_key: str):
    """Start the job `make_job(make_config())` in `state.jobs()[slot]`, forget the report
    shown in `report_key` and rerun; a configuration's ValueError is shown instead."""
    import app_state as state

    try:
        cfg = make_config()
    except ValueError as e:
        st.error(state.plain(f"Cannot start: {e}"))
    else:
        state.jobs()[slot] = make_job(cfg).start()
        st.session_state.pop(report_key, None)
        st.rerun()


def elsewhere_note(job: Any, doing: str, result: str) -> None:
    """The note that `job` is on another dataset than the active one: "This {doing} on <its
    data>, not on the active dataset; {result} when that dataset is active again."."""
    import app_state as state

    st.info(
        state.plain(
            f"This {doing} on {state.data_label(job.data)}, not on the active dataset; "
            f"{result} when that dataset is active again."
        )
    )
