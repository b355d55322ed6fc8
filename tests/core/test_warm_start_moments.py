"""The warm start's E[q_i²] over the training ratings, computed from per-item counts (issue 16:
no (ratings x factors) array in the set-up) is the plain mean over the ratings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import tiny_dataset

from metarec_core.methods.baselines.mf import MFFoldIn
from metarec_core.methods.meta import make_learner

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_inner_hessian_start_is_the_mean_of_q_squared_over_training_ratings():
    data = tiny_dataset(n_items=40)
    train, val = np.arange(0, 60), np.arange(60, 80)
    learner = make_learner("metasgd", device="cpu", dtype="float64", factors=4, seed=2)
    learner.setup(data, train, val)
    # the same MF fit as the warm start's, then the mean the old code took rating by rating
    mf = MFFoldIn(seed=2, factors=4, reg=learner.config.mf_reg).fit(data, train, val)
    rated = data.item[np.isin(data.user, train)]
    want = (np.asarray(mf.item_factors_)[rated] ** 2).mean(0)
    sq = learner._inner_init[0]
    assert sq.dtype == torch.float64 and sq.shape == (4,)
    np.testing.assert_allclose(sq.numpy(), np.maximum(want, 1e-4), rtol=1e-12)
    # each item weighs by its count of training ratings: not a mean over the items
    assert not np.allclose(want, (np.asarray(mf.item_factors_) ** 2).mean(0), rtol=1e-3)
