"""The app's display text for the core's numbers and records (app_support.format)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny_dataset

from app_support import format as fmt
from metarec_core.data.io import from_arrays
from metarec_core.interactive.personas import Persona, heldout_persona, taste_persona
from metarec_core.interactive.session import Reason, Recommendation, rank_movement
from metarec_core.interactive.whatif import Stability


@pytest.mark.parametrize(
    ("move", "label"), [(2, "↑ 2"), (1, "↑ 1"), (-1, "↓ 1"), (-7, "↓ 7"), (0, "="), (None, "new")]
)
def test_movement_label(move, label):
    assert fmt.movement_label(move) == label


def test_movement_labels_of_a_ranking_change():
    moves = rank_movement(np.array([5, 6, 7, 8]), np.array([7, 5, 9, 8]))
    assert [fmt.movement_label(m) for m in moves] == ["↑ 2", "↓ 1", "new", "="]


def test_item_label_with_and_without_genres():
    data = tiny_dataset()
    i = int(np.flatnonzero(data.item_ids == "i5")[0])
    assert fmt.item_label(data, i) == "Film 005 Romance story (Romance)"
    bare = from_arrays(["u1", "u2"], ["a", "b"], [4, 5])
    assert fmt.item_label(bare, 1) == str(bare.item_ids[1])


def test_recommendation_rows_are_plain_text():
    why = (
        Reason(3, "Alien", 5.0, 0.4213),
        Reason(9, "Heat *2*", 1.0, -0.1),
        Reason(4, "X", 3, 0.01),
    )
    recs = [
        Recommendation(1, 7, "i7", "Heat", ("Action", "Crime"), 4.25, 3, why, 3.0, 5.0),
        Recommendation(2, 2, "i2", "Up", (), 3.5, None),
    ]
    assert fmt.recommendation_rows(recs) == [
        {
            "rank": 1,
            "item": "i7",
            "title": "Heat",
            "genres": "Action, Crime",
            "predicted": 4.25,
            "interval": "3–5",
            "movement": "↑ 3",
            # the two strongest, the user's titles as they are (the table shows text)
            "because": "Alien 5★ (+0.42); Heat *2* 1★ (−0.10)",
        },
        {
            "rank": 2,
            "item": "i2",
            "title": "Up",
            "genres": "",
            "predicted": 3.5,
            "interval": "",
            "movement": "new",
            "because": "",
        },
    ]


@pytest.mark.parametrize(
    ("stability", "text"),
    [
        (Stability("settled", 1), "after 1 rating"),
        (Stability("settled", 4), "after 4 ratings"),
        (Stability("settled", 0), "after 0 ratings"),
        (Stability("never_adapts"), "never adapts (same 10 items as with no ratings)"),
        (Stability("changing"), "still changing at the last rating"),
        (Stability("no_ratings"), "no ratings yet"),
    ],
)
def test_stability_text(stability, text):
    assert fmt.stability_text(stability) == text


def test_support_label():
    assert [fmt.support_label(k) for k in (0, 10, None)] == ["0", "10", "all"]


def test_persona_names_and_descriptions():
    data = tiny_dataset()
    taste = taste_persona(data, ["Sci-Fi"], ["Romance", "Drama"], n_reveal=5, n_hidden=3)
    assert fmt.persona_name(taste) == "Loves Sci-Fi, dislikes Romance, Drama"
    assert fmt.persona_description(taste) == (
        "Loves Sci-Fi, dislikes Romance, Drama: generated ratings (5 to reveal, 3 hidden)"
    )
    assert fmt.persona_name(taste_persona(data, [], ["Drama"])) == (
        "Loves nothing in particular, dislikes Drama"
    )
    real = heldout_persona(data, 3)
    assert fmt.persona_name(real) == f"Held-out user {data.user_ids[3]}"
    assert real.favourites  # tiny users love one genre
    assert fmt.persona_description(real) == (
        f"Real user {data.user_ids[3]} (not trained on): 25 ratings; likes "
        + ", ".join(real.favourites)
    )
    plain = Persona("heldout", *[np.zeros(0)] * 4, user=0, user_id="u9", n_ratings=12, replays=4)
    assert fmt.persona_description(plain) == (
        "Real user u9 (not trained on): 12 ratings. The demo replays their first 4."
    )
