"""The new-item page's shipped models of the sample (sample_data/item_models/) load safely, fit
the sample data without its held-out items' ratings, and predict.

Regenerate them (after changing a new-item method or the sample) with `make sample-model`, i.e.
    python -m metarec_core train sample_data/ratings.csv --items sample_data/items.csv \
        --cold items --new-item-page --seed 0 --out sample_data/item_models
"""

from __future__ import annotations

import numpy as np
import pytest

from metarec_core.data.synthetic import SAMPLE_DIR, load_sample
from metarec_core.interactive import item_session as isn

FOLDER = SAMPLE_DIR / isn.SAMPLE_MODELS_DIR


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture(scope="module")
def models(sample):
    missing = [n for n in isn.ITEM_PLAYGROUND_METHODS if not (FOLDER / f"{n}.pt").is_file()]
    assert not missing, f"{FOLDER} lacks {missing}: regenerate (see this module's docstring)"
    assert sum(p.stat().st_size for p in FOLDER.glob("*.pt")) < 5 * 2**20  # shipped in the repo
    return isn.load_models(sample, FOLDER, seed=0)


def test_every_page_model_is_there_for_the_samples_held_out_fold(models, sample):
    # load_models refuses a file not fitted on the sample without the held-out items' ratings
    assert models.names == isn.ITEM_PLAYGROUND_METHODS
    assert models.fingerprint == sample.fingerprint()
    assert np.array_equal(models.fold.test_items, isn.heldout_item_fold(sample, 0).test_items)
    assert all(m.fitted_ for m in models.models.values())


def test_they_predict_an_audience_for_a_described_and_a_held_out_item(models, sample):
    item = int(isn.heldout_items(sample, models.fold)[0])
    for s in (
        isn.ItemSession.described(sample, models, "Space Opera (2026)", ["Sci-Fi"]),
        isn.ItemSession.held_out(sample, models, item),
    ):
        for name in models.names:
            scores = s.view.scores[name]
            assert np.all((scores >= sample.scale.low) & (scores <= sample.scale.high))
            assert len(s.audience(name)) == isn.AUDIENCE_N
    assert set(models.mapped) == {"mf_foldin_levels", isn.ITEM_PLAYGROUND_LEARNER}
