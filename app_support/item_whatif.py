"""What-if for one new item (the What-if page's "A new item"): the new-item page's item and its
ratings so far fed to every item model, their audiences side by side
(`ItemSession.compare`); where they disagree, and when each audience stops changing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import app_state as state
from app_support import format as fmt
from metarec_core.interactive import item_session as isn

K_RESULT = "mr_item_whatif"  # (the comparison, what was fed, the session it came from)


_label = fmt.item_method_label


def show(active: state.ActiveData) -> None:
    """The item what-if of the active data's new-item session (or where to make one)."""
    s: isn.ItemSession | None = st.session_state.get(state.K_ITEM_SESSION)
    if s is None or s.data is not active.data:
        st.info("Describe or pick a new item first on the page A new item arrives.")
        st.page_link(
            "pages/new_item.py", label="Go to A new item arrives", icon=":material/new_releases:"
        )
        return
    what = (
        f"{s.title or '(no title)'} ({', '.join(s.genres) or 'no genres'}), "
        f"its {len(s.users)} rating{'s' if len(s.users) != 1 else ''} so far"
    )
    st.caption(state.plain(f"The item of the page A new item arrives: {what}."))
    names = st.multiselect(
        "Models to compare",
        list(s.models.names),
        default=list(s.models.names),
        key="wi_item_models",
        format_func=_label,
    )
    if st.button("Compare", key="wi_item_compare", type="primary", disabled=len(names) < 2):
        try:
            st.session_state[K_RESULT] = (s.compare(names), what, s)
        except ValueError as e:
            st.error(state.plain(str(e)))
    stored = st.session_state.get(K_RESULT)
    if stored is None or stored[2] is not s:
        return
    c, fed, _ = stored
    st.subheader(f"Who each model shows it to (top {s.top_n})", anchor=False)
    st.caption(state.plain(f"Ratings fed: {fed}."))
    ids = s.data.user_ids
    width = max(len(c.top[n]) for n in c.names)
    table: dict[str, object] = {"rank": np.arange(1, width + 1)}
    cfg = {"rank": st.column_config.NumberColumn("Rank", width="small")}
    for j, name in enumerate(c.names):
        only = set(c.only_in[name].tolist())
        users = list(c.top[name]) + [None] * (width - len(c.top[name]))
        table[f"m{j}"] = [
            "" if u is None else f"user {ids[u]}" + (" ★ only here" if int(u) in only else "")
            for u in users
        ]
        cfg[f"m{j}"] = st.column_config.TextColumn(_label(name))
    st.dataframe(
        pd.DataFrame(table), key="wi_item_table", hide_index=True, width="stretch",
        column_config=cfg,
    )  # fmt: skip
    st.caption(
        f"{len(c.in_all)} user(s) are in every audience; ★ marks users only one model lists."
    )
    # one row per model: when its audience settles, what only it lists, its overlap with each
    labels = [_label(n) for n in c.names]
    rows = pd.DataFrame(
        {
            "model": labels,
            "settles": [fmt.stability_text(c.stability[n], f"{s.top_n} users") for n in c.names],
            "alone": [len(c.only_in[n]) for n in c.names],
        }
    )
    overlap = st.column_config.ProgressColumn
    cols: dict[str, object] = {
        "model": st.column_config.TextColumn("Model"),
        "settles": st.column_config.TextColumn(
            "Audience stops changing",
            help="Fewest ratings after which every further rating leaves the audience "
            "unchanged. 'Never adapts': the same users as from the description alone.",
        ),
        "alone": st.column_config.NumberColumn("Users no other model lists"),
    }
    for j, label in enumerate(labels):
        rows[f"o{j}"] = c.pairwise_overlap[:, j]
        cols[f"o{j}"] = overlap(
            f"Shared with {label}", format="percent", min_value=0.0, max_value=1.0
        )
    st.dataframe(rows, key="wi_item_models", hide_index=True, width="stretch", column_config=cols)
    st.caption("Shared with …: the share of the audience two models have in common.")
