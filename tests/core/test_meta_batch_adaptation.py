"""`MetaLearner.adapt_batch` / `predict_adapted`: the public batch adaptation (from the
meta-learned start or from given starts), and the private names other code still calls
(`_pad`, `_inner_loop`, `_fast0`, `_batch_feats`, `_predict`, `_ratings`: items_meta.py)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import TINY_LEARNER, tiny_dataset

from metarec_core.methods.items_meta import ItemMetaSGD
from metarec_core.methods.meta import make_learner
from metarec_core.protocol.splits import split_users

SUPPORTS = [
    (np.array([0, 1, 2]), np.array([5.0, 1.0, 3.0])),
    (np.array([4]), np.array([2.0])),
    (np.array([], dtype=np.int64), np.array([])),
]


@pytest.fixture(scope="module")
def learner():
    data = tiny_dataset()
    train, val = split_users(data, 0)
    return make_learner("metasgd", seed=0, device="cpu", **TINY_LEARNER).fit(data, train, val)


def test_adapt_batch_from_the_learned_start_is_what_score_many_scores(learner):
    fast = learner.adapt_batch(SUPPORTS)
    assert fast["user_init"].shape == (3, learner.config.factors + 1)
    items = np.broadcast_to(np.arange(learner.n_items), (3, learner.n_items))
    np.testing.assert_array_equal(
        learner.predict_adapted(fast, items), learner.score_many(SUPPORTS)
    )


def test_adapt_batch_from_given_starts(learner):
    shared = learner._fast0()["user_init"].detach().numpy()
    same = learner.adapt_batch(SUPPORTS, np.tile(shared, (3, 1)))
    np.testing.assert_allclose(
        same["user_init"].numpy(), learner.adapt_batch(SUPPORTS)["user_init"].numpy(), atol=1e-6
    )
    # the empty support stays at its own start; others move from theirs
    starts = np.tile(shared, (3, 1)) + 1.0 + np.arange(3)[:, None]
    moved = learner.adapt_batch(SUPPORTS, starts)["user_init"].numpy()
    np.testing.assert_allclose(moved[2], starts[2], atol=1e-6)
    assert not np.allclose(moved[0], same["user_init"].numpy()[0])
    with pytest.raises(ValueError, match="2 starts for 3 supports"):
        learner.adapt_batch(SUPPORTS, starts[:2])


def test_item_learner_private_calls_still_work_and_agree(learner):
    """items_meta.py's `_adapt` (MetaLearner's `_pad`, `_inner_loop`, `_fast0`,
    `_batch_feats`) gives what the public `adapt_batch` gives."""
    item = ItemMetaSGD.__new__(ItemMetaSGD)
    item.learner_ = learner
    shared = learner._fast0()["user_init"].detach().numpy()
    starts = np.tile(shared, (3, 1)) - 0.5
    private = item._adapt(starts, SUPPORTS)["user_init"].numpy()
    public = learner.adapt_batch(SUPPORTS, starts)["user_init"].numpy()
    np.testing.assert_array_equal(private, public)
