"""The shipped sample checkpoint (sample_data/model.pt) loads safely and fits the sample data.

Regenerate it with:
    python -m metarec_core train sample_data/ratings.csv --items sample_data/items.csv \
        --out sample_data/model.pt --seed 0 --steps 300
"""

from __future__ import annotations

import numpy as np
import pytest

from metarec_core.checkpoint import load_checkpoint
from metarec_core.data.synthetic import SAMPLE_DIR, load_sample
from metarec_core.protocol.splits import split_users


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture(scope="module")
def loaded(sample):
    path = SAMPLE_DIR / "model.pt"
    assert path.exists(), f"{path} is missing: regenerate it (see this module's docstring)"
    assert path.stat().st_size < 5 * 2**20  # small enough to ship in the repo
    return load_checkpoint(path, sample, strict=True)


def test_checkpoint_matches_the_sample_dataset(loaded, sample):
    assert loaded.fingerprint == sample.fingerprint()
    assert loaded.n_items == sample.n_items
    np.testing.assert_array_equal(loaded.item_ids, sample.item_ids)
    assert loaded.learner.fitted_


def test_checkpoint_recommends_for_a_held_out_user(loaded, sample):
    # the app's held-out personas are the validation users of the training split
    _, val = split_users(sample, int(loaded.config["seed"]))
    user = int(val[0])
    mine = sample.user == user
    items, ratings = sample.item[mine][:5], sample.rating[mine][:5]
    adapted = loaded.learner.adapt(items, ratings)
    top, scores = adapted.recommend(10)
    assert len(top) == 10 and not set(top) & set(items)
    assert np.all((scores >= sample.scale.low) & (scores <= sample.scale.high))
    assert adapted.state is not None and np.isfinite(adapted.state).all()
