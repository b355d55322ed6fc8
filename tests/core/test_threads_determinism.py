"""The same seed gives the same meta-learner with several torch threads (issue 14's probes
found two trainings of one seed drifting apart at 2 threads)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from metarec_core.data.io import load_ratings
from metarec_core.methods.registry import make_method
from metarec_core.protocol.splits import user_folds

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _fit(data, fold):
    learner = make_method("metasgd", seed=0, device="cpu")
    # short: the drift showed within 30 meta-steps on this data
    learner.config = dataclasses.replace(learner.config, steps=30, eval_every=10, pretrain=False)
    return learner.fit(data, fold.train_users, fold.val_users)


def test_two_trainings_with_two_threads_give_the_same_weights(two_threads):
    # the sample's size matters: on tiny data the threaded kernels stay single-threaded
    data = load_ratings(SAMPLE / "ratings.csv", items=SAMPLE / "items.csv")
    fold = user_folds(data, 5, 0, 0.1)[0]
    a, b = _fit(data, fold), _fit(data, fold)
    for (name, p), q in zip(a.model_.named_parameters(), b.model_.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert torch.are_deterministic_algorithms_enabled()
    supports = [(np.array([0, 1, 2]), np.array([4.0, 2.0, 5.0]))]
    assert np.array_equal(a.score_many(supports), b.score_many(supports))
