"""The home page's one-click demo persona (core)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny_dataset, tiny_split

from app_support import format as fmt
from metarec_core.interactive.demo import demo_persona
from metarec_core.interactive.personas import PERSONA_HIDDEN


def test_demo_persona_replays_five_ratings_of_a_user_never_trained_on():
    data = tiny_dataset()
    split = tiny_split(data)
    p = demo_persona(data, split.val_users)
    assert p.kind == "heldout" and p.user in set(split.val_users.tolist())
    assert len(p.reveal_items) == 5 and len(p.hidden_items) == PERSONA_HIDDEN
    assert not set(p.reveal_items.tolist()) & set(p.hidden_items.tolist())
    # the revealed ratings are the user's own
    mine = data.user == p.user
    own = {(int(i), float(r)) for i, r in zip(data.item[mine], data.rating[mine], strict=True)}
    assert {
        (int(i), float(r)) for i, r in zip(p.reveal_items, p.reveal_ratings, strict=True)
    } <= own
    assert p.replays == 5 and p.n_ratings == len(own)
    assert "replays their first 5" in fmt.persona_description(p)
    again = demo_persona(data, split.val_users)  # the same demo every time
    assert np.array_equal(again.reveal_items, p.reveal_items)


def test_demo_without_a_usable_held_out_user_says_why():
    data = tiny_dataset()
    with pytest.raises(ValueError, match="no held-out user has enough ratings"):
        demo_persona(data, np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="at least one rating"):
        demo_persona(data, tiny_split(data).val_users, n_ratings=0)
