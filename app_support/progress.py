"""Progress for blocking work that a page does in its own run (no background job)."""

from __future__ import annotations

import time
from collections.abc import Callable

import streamlit as st


def run_stages(title: str, stages: list[tuple[str, Callable[[], object]]]) -> None:
    """Run `stages` (label, work) one by one under a status box whose progress bar names the
    stage at work; the box then closes, listing each stage with its time. Nothing is drawn when
    there is nothing to do."""
    if not stages:
        return
    t_all = time.perf_counter()
    with st.status(title, expanded=True) as box:
        bar = st.progress(0.0)
        for k, (label, work) in enumerate(stages):
            bar.progress(k / len(stages), text=f"Step {k + 1} of {len(stages)}: {label}…")
            t0 = time.perf_counter()
            work()
            st.write(f"✓ {label} ({time.perf_counter() - t0:.1f} s)")
        bar.progress(1.0, text="Done")
        box.update(
            label=f"{title}: done in {time.perf_counter() - t_all:.1f} s",
            state="complete",
            expanded=False,
        )
