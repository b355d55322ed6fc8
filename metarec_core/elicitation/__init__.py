"""Elicitation: what to ask a new user first (strategies, their registry, an interview).

The offline evaluation of the strategies is `metarec_core.evaluation.elicitation`.
"""

from metarec_core.elicitation.interview import Interview
from metarec_core.elicitation.known import CoRating
from metarec_core.elicitation.strategies import (
    Answers,
    ElicitContext,
    ItemStats,
    Proposal,
    Strategy,
    available_strategies,
    check_names,
    make_strategy,
    register,
    strategy_class,
)
from metarec_core.elicitation.views import StateView, state_view

__all__ = [
    "Answers",
    "CoRating",
    "ElicitContext",
    "Interview",
    "ItemStats",
    "Proposal",
    "StateView",
    "Strategy",
    "available_strategies",
    "check_names",
    "make_strategy",
    "register",
    "state_view",
    "strategy_class",
]
