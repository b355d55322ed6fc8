"""Glossary page: the plain words the app uses, the technical terms, and the methods' names."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import app_state as state
from metarec_core.glossary import GLOSSARY
from metarec_core.methods.registry import available_methods, describe, display_name, spec

state.require_router()

st.title("Glossary")
st.caption(
    "The pages use plain words; the technical term is in each control's help (the ? icon). "
    "This page lists both."
)
st.dataframe(
    pd.DataFrame(
        {
            "plain": [e.plain for e in GLOSSARY],
            "term": [e.term for e in GLOSSARY],
            "meaning": [e.meaning for e in GLOSSARY],
        }
    ),
    key="glossary_terms",
    hide_index=True,
    width="stretch",
    column_config={
        "plain": st.column_config.TextColumn("In plain words", width="medium"),
        "term": st.column_config.TextColumn("Technical term", width="small"),
        "meaning": st.column_config.TextColumn("Meaning", width="large"),
    },
)

st.subheader("Methods", anchor=False)
st.dataframe(
    pd.DataFrame(
        {
            "name": [display_name(m) for m in available_methods()],
            "code": available_methods(),
            "kind": [spec(m).kind for m in available_methods()],
            "what": [describe(m) for m in available_methods()],
        }
    ),
    key="glossary_methods",
    hide_index=True,
    width="stretch",
    column_config={
        "name": st.column_config.TextColumn("Method", width="medium"),
        "code": st.column_config.TextColumn(
            "Code name", width="small", help="As in reports, the CLI and --methods"
        ),
        "kind": st.column_config.TextColumn("Kind", width="small"),
        "what": st.column_config.TextColumn("What it does", width="large"),
    },
)
