"""Metric formulas against hand-computed values; bootstrap determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metarec_core.evaluation.metrics import (
    bootstrap_ci,
    mae,
    ndcg_at_k,
    paired_bootstrap_ci,
    recall_at_k,
    rmse,
)

L3 = math.log2(3)


def test_mae_rmse_hand_values():
    pred, true = np.array([3.0, 4.0, 5.0]), np.array([4.0, 4.0, 3.0])
    assert mae(pred, true) == pytest.approx(1.0)
    assert rmse(pred, true) == pytest.approx(math.sqrt(5 / 3))


def test_mae_rmse_are_per_user_not_pooled():
    pred = np.array([[1.0, 1.0], [1.0, 5.0]])
    true = np.array([[1.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(mae(pred, true), [0.0, 2.0])
    # per-user RMSE then mean: (0 + sqrt(8)) / 2, not the pooled sqrt(16 / 4) = 2
    np.testing.assert_allclose(rmse(pred, true), [0.0, math.sqrt(8)])
    assert np.mean(rmse(pred, true)) == pytest.approx(math.sqrt(8) / 2)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        mae(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="Q >= 1"):
        rmse(np.zeros((2, 0)), np.zeros((2, 0)))


def test_ndcg_hand_value():
    true = np.array([5.0, 3.0, 4.0])
    pred = np.array([0.1, 0.9, 0.5])  # ranks items 1 (r=3), 2 (r=4), 0 (r=5)
    dcg = 7 / 1 + 15 / L3 + 31 / 2
    idcg = 31 / 1 + 15 / L3 + 7 / 2
    assert ndcg_at_k(pred, true, 3) == pytest.approx(dcg / idcg)
    # @2 uses the first two ranks of both orders
    assert ndcg_at_k(pred, true, 2) == pytest.approx((7 + 15 / L3) / (31 + 15 / L3))
    assert ndcg_at_k(np.array([0.9, 0.1, 0.5]), true, 3) == pytest.approx(1.0)


def test_ndcg_ties_keep_query_order_and_do_not_peek():
    tied = np.array([3.0, 3.0])
    # item 0 is ranked first whatever the true ratings are
    assert ndcg_at_k(tied, np.array([1.0, 5.0]), 2) == pytest.approx((1 + 31 / L3) / (31 + 1 / L3))
    assert ndcg_at_k(tied, np.array([5.0, 1.0]), 2) == pytest.approx(1.0)


def test_ndcg_k_capped_at_query_size_and_batched():
    pred = np.array([[0.1, 0.9, 0.5], [3.0, 2.0, 1.0]])
    true = np.array([[5.0, 3.0, 4.0], [1.0, 2.0, 3.0]])
    batched = ndcg_at_k(pred, true, 5)
    assert batched.shape == (2,)
    for b in range(2):
        assert batched[b] == pytest.approx(ndcg_at_k(pred[b], true[b], 3))
    with pytest.raises(ValueError):
        ndcg_at_k(pred, true, 0)


def test_ndcg_undefined_when_every_gain_is_zero():
    assert math.isnan(ndcg_at_k(np.array([1.0, 2.0]), np.array([0.0, 0.0]), 2))


def test_ndcg_on_a_scale_below_zero_shifts_the_gains():
    # a -10..10 scale: gains 2^(r + 10) - 1, never negative; the same as on a 0..20 scale
    true = np.array([-10.0, 4.0, -2.5])
    pred = np.array([0.3, 0.1, 0.2])
    got = ndcg_at_k(pred, true, 3, low=-10.0)
    assert got == pytest.approx(ndcg_at_k(pred, true + 10.0, 3))
    assert 0.0 < got < 1.0
    # a scale from 0 or above is unchanged by low
    assert ndcg_at_k(pred, true + 11.0, 3, low=1.0) == ndcg_at_k(pred, true + 11.0, 3)
    with pytest.raises(ValueError, match="scale's low"):
        ndcg_at_k(pred, true, 3)


def test_recall_hand_values_and_tie_break():
    scores = np.array([10.0, 9.0, 8.0, 8.0, 1.0, 0.0])
    # item 0 is support: excluded although it scores highest
    # k=2: items 1 and 2 (tie 2 vs 3 -> lower index) -> one of the two relevant items
    assert recall_at_k(scores, [0], [1, 3], k=2) == pytest.approx(0.5)
    assert recall_at_k(scores, [0], [1, 3], k=3) == pytest.approx(1.0)
    assert recall_at_k(scores, [0], [4, 5], k=4) == pytest.approx(0.5)


def test_recall_whole_catalogue_and_exclusion():
    scores = np.array([5.0, 4.0, 3.0, 2.0])
    # with only two candidates left and k=10, every candidate is in the list
    assert recall_at_k(scores, [0, 1], [2, 3], k=10) == pytest.approx(1.0)
    # no relevant item: undefined (excluded from averages), not zero
    assert math.isnan(recall_at_k(scores, [0], [], k=2))


def test_recall_batched_masks_match_single_users():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(5, 12)).astype(float)  # many ties
    ex = rng.random((5, 12)) < 0.3
    rel = (rng.random((5, 12)) < 0.3) & ~ex
    rel[0] = False
    got = recall_at_k(scores, ex, rel, k=4)
    assert math.isnan(got[0])
    for b in range(1, 5):
        want = recall_at_k(scores[b], np.flatnonzero(ex[b]), np.flatnonzero(rel[b]), k=4)
        assert got[b] == pytest.approx(want)
    with pytest.raises(ValueError, match="masks"):
        recall_at_k(scores, [0], [1], k=4)


def test_bootstrap_ci_deterministic_and_sensible():
    v = np.random.default_rng(1).normal(0.8, 0.2, size=400)
    a = bootstrap_ci(v, seed=3)
    assert a == bootstrap_ci(v, seed=3)
    assert a != bootstrap_ci(v, seed=4)
    lo, hi = a
    assert lo < v.mean() < hi
    # about ±1.96 standard errors
    se = v.std(ddof=1) / math.sqrt(len(v))
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert bootstrap_ci(np.full(10, 0.5)) == (0.5, 0.5)
    assert all(math.isnan(x) for x in bootstrap_ci(np.array([])))


def test_paired_bootstrap_uses_per_user_differences():
    rng = np.random.default_rng(2)
    base = rng.normal(0.8, 0.3, size=300)
    better = base - 0.05 + rng.normal(0, 0.01, size=300)
    diff, lo, hi = paired_bootstrap_ci(better, base, seed=0)
    assert diff == pytest.approx(np.mean(better - base))
    # pairing removes the large between-user spread: the interval is tight and excludes 0
    assert lo < diff < hi < 0
    assert hi - lo < 0.01
    assert paired_bootstrap_ci(better, base, seed=0) == (diff, lo, hi)
    assert paired_bootstrap_ci(base, base) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="align"):
        paired_bootstrap_ci(base, base[:-1])
