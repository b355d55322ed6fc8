"""The one-click demo of the home page: a real user the model never saw rates a few films.

The playground replays the persona's ratings by itself (auto-play) and stops when they run out,
so a stakeholder watches the model adapt after each rating next to the baselines.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from metarec_core.data.dataset import RatingsDataset
from metarec_core.interactive.personas import Persona, heldout_candidates, heldout_persona

DEMO_RATINGS = 5


def demo_persona(
    data: RatingsDataset, heldout_users: np.ndarray, n_ratings: int = DEMO_RATINGS, seed: int = 0
) -> Persona:
    """The most active held-out user of `heldout_users` as a persona revealing only their first
    `n_ratings` ratings (their hidden ratings are the protocol's query set, as for any held-out
    persona). ValueError when no held-out user has `n_ratings` + the hidden ratings."""
    if n_ratings < 1:
        raise ValueError(f"the demo needs at least one rating to replay, got {n_ratings}")
    users = heldout_candidates(data, heldout_users, min_reveal=n_ratings)
    if len(users) == 0:
        raise ValueError(
            f"no held-out user has enough ratings for the demo ({n_ratings} to replay plus the "
            "hidden ones)"
        )
    p = heldout_persona(data, int(users[0]), seed=seed)
    return replace(
        p,
        reveal_items=p.reveal_items[:n_ratings],
        reveal_ratings=p.reveal_ratings[:n_ratings],
        replays=n_ratings,
    )
