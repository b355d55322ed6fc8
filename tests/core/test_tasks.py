"""Cold-start protocol: user folds, MeLU split, per-user tasks, padded batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarec_core.data.io import from_arrays
from metarec_core.protocol.splits import MELU_MAX_RATINGS, MELU_MIN_RATINGS, melu_split, user_folds
from metarec_core.protocol.tasks import MELU_QUERY, make_tasks, pad_tasks, user_ratings


def make_data(counts, seed=0, n_items=200):
    """A dataset whose user u has counts[u] ratings of distinct items."""
    rng = np.random.default_rng(seed)
    users, items, ratings = [], [], []
    for u, c in enumerate(counts):
        users += [u] * c  # integer ids: inner user u is raw user u
        items += rng.choice(n_items, size=c, replace=False).tolist()
        ratings += rng.integers(1, 6, size=c).tolist()
    return from_arrays(users, items, ratings)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    return make_data(rng.integers(5, 150, size=103).tolist())


# --------------------------------------------------------------------------- folds


@pytest.mark.parametrize("n_folds", [2, 5, 7])
def test_folds_disjoint_and_covering(data, n_folds):
    folds = user_folds(data, n_folds=n_folds, seed=0)
    assert [f.index for f in folds] == list(range(n_folds))
    tests = np.concatenate([f.test_users for f in folds])
    assert np.array_equal(np.sort(tests), np.arange(data.n_users))  # each user tested once
    sizes = [len(f.test_users) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for f in folds:
        train, val, test = set(f.train_users), set(f.val_users), set(f.test_users)
        assert not (train & test) and not (val & test) and not (train & val)
        # Validation users are carved out of the non-test users; together they are all users.
        assert train | val | test == set(range(data.n_users))
        assert len(val) == max(1, round(0.1 * (data.n_users - len(test))))
        for arr in (f.train_users, f.val_users, f.test_users):
            assert arr.dtype.kind == "i" and np.all(np.diff(arr) > 0)


def test_folds_deterministic_by_seed(data):
    a, b = user_folds(data, 5, seed=3), user_folds(data, 5, seed=3)
    c = user_folds(data, 5, seed=4)
    for fa, fb in zip(a, b, strict=True):
        assert np.array_equal(fa.test_users, fb.test_users)
        assert np.array_equal(fa.val_users, fb.val_users)
        assert np.array_equal(fa.train_users, fb.train_users)
    assert any(
        not np.array_equal(fa.test_users, fc.test_users) for fa, fc in zip(a, c, strict=True)
    )


def test_folds_need_two(data):
    with pytest.raises(ValueError, match="at least 2"):
        user_folds(data, n_folds=1)


# --------------------------------------------------------------------------- tasks


def test_make_tasks_left_out_counts_and_sizes(data):
    counts = data.counts_per_user()
    users = np.arange(data.n_users)
    for k in (1, 5, 20):
        tasks, left_out = make_tasks(data, users, query=10, min_support=k, seed=0)
        assert left_out == int((counts < k + 10).sum())
        assert len(tasks) + left_out == data.n_users
        assert {t.user for t in tasks} == set(np.flatnonzero(counts >= k + 10).tolist())
        for t in tasks:
            assert len(t.items) == counts[t.user]
            assert t.query_size == 10 and len(t.query[0]) == 10
            assert t.n_available == counts[t.user] - 10
            assert len(t.support(k)[0]) == k


def test_task_holds_exactly_the_users_ratings(data):
    tasks, _ = make_tasks(data, np.arange(data.n_users), query=3, seed=0)
    (items_all, ratings_all) = user_ratings(data, [tasks[0].user])[0]
    t = tasks[0]
    assert sorted(zip(t.items.tolist(), t.ratings.tolist(), strict=True)) == sorted(
        zip(items_all.tolist(), ratings_all.tolist(), strict=True)
    )
    # Support and query do not overlap and together are every rating.
    s_items, _ = t.support()
    q_items, _ = t.query
    assert not set(s_items.tolist()) & set(q_items.tolist())
    assert len(s_items) + len(q_items) == len(items_all)


def test_supports_nested_across_k_and_query_fixed(data):
    users = np.arange(data.n_users)
    by_k = {k: make_tasks(data, users, query=10, min_support=k, seed=0)[0] for k in (1, 3, 20)}
    big = {t.user: t for t in by_k[20]}
    for k in (1, 3):
        for t in by_k[k]:
            if t.user in big:
                # Same query and the k-support is a prefix of the 20-support.
                assert np.array_equal(t.query[0], big[t.user].query[0])
                assert np.array_equal(t.support(k)[0], big[t.user].support(20)[0][:k])
    t = by_k[20][0]
    s3, s10 = t.support(3)[0], t.support(10)[0]
    assert np.array_equal(s3, s10[:3])


def test_task_permutation_depends_on_seed_and_user_only(data):
    all_users = np.arange(data.n_users)
    some = all_users[::3]
    a = {t.user: t for t in make_tasks(data, all_users, seed=5)[0]}
    b = {t.user: t for t in make_tasks(data, some, seed=5)[0]}
    c = {t.user: t for t in make_tasks(data, all_users, seed=6)[0]}
    for u, t in b.items():
        assert np.array_equal(t.items, a[u].items) and np.array_equal(t.ratings, a[u].ratings)
    assert any(not np.array_equal(a[u].items, c[u].items) for u in a)


def test_support_larger_than_available_is_an_error(data):
    t = make_tasks(data, np.arange(data.n_users), query=10, seed=0)[0][0]
    with pytest.raises(ValueError, match="support ratings"):
        t.support(t.n_available + 1)


def test_user_ratings_in_file_order():
    d = from_arrays(["a", "b", "a", "a"], ["x", "x", "z", "y"], [1, 2, 3, 4])
    (items_a, ratings_a), (items_b, _) = user_ratings(d, [0, 1])
    assert d.item_ids[items_a].tolist() == ["x", "z", "y"]
    assert ratings_a.tolist() == [1.0, 3.0, 4.0]
    assert d.item_ids[items_b].tolist() == ["x"]


# --------------------------------------------------------------------------- MeLU split


def test_melu_split_rules():
    counts = [5, 12, 13, 14, 50, 99, 100, 101, 300] + [20] * 40
    d = make_data(counts, n_items=400)
    fold, left_out = melu_split(d, seed=0)
    eligible = set(np.flatnonzero((np.array(counts) >= 13) & (np.array(counts) <= 100)).tolist())
    assert left_out == 4  # 5, 12, 101 and 300 ratings
    used = set(fold.train_users) | set(fold.val_users) | set(fold.test_users)
    assert used == eligible
    assert len(fold.test_users) == round(0.2 * len(eligible))
    assert not set(fold.test_users) & (set(fold.train_users) | set(fold.val_users))
    assert not set(fold.train_users) & set(fold.val_users)
    assert (MELU_MIN_RATINGS, MELU_MAX_RATINGS, MELU_QUERY) == (13, 100, 10)
    # Query 10 and support = the rest: every eligible test user yields a task.
    tasks, dropped = make_tasks(d, fold.test_users, query=MELU_QUERY, min_support=3, seed=0)
    assert dropped == 0
    for t in tasks:
        assert len(t.query[0]) == 10 and len(t.support()[0]) == counts[t.user] - 10


def test_melu_split_deterministic():
    d = make_data([30] * 50)
    a, _ = melu_split(d, seed=1)
    b, _ = melu_split(d, seed=1)
    c, _ = melu_split(d, seed=2)
    assert np.array_equal(a.test_users, b.test_users)
    assert not np.array_equal(a.test_users, c.test_users)


# --------------------------------------------------------------------------- padding


def test_pad_tasks_shapes_values_and_mask():
    pairs = [
        (np.array([3, 1]), np.array([4.0, 2.0])),
        (np.array([7, 8, 9, 5]), np.array([1.0, 2.0, 3.0, 5.0])),
        (np.array([], dtype=np.int64), np.array([])),
    ]
    b = pad_tasks(pairs)
    assert b.items.shape == b.ratings.shape == b.mask.shape == (3, 4)
    assert b.items.dtype == torch.int64 and b.ratings.dtype == torch.float32
    assert b.mask.dtype == torch.bool
    assert b.counts.tolist() == [2, 4, 0]
    assert b.items[0].tolist() == [3, 1, 0, 0]
    assert b.ratings[1].tolist() == [1.0, 2.0, 3.0, 5.0]
    assert b.mask[0].tolist() == [True, True, False, False]
    # Padding is item 0 with rating 0.
    assert (b.items[~b.mask] == 0).all() and (b.ratings[~b.mask] == 0).all()


def test_pad_tasks_fixed_length_dtype_and_errors():
    pairs = [(np.array([1, 2]), np.array([3.0, 4.0]))]
    b = pad_tasks(pairs, length=5, dtype=torch.float64)
    assert b.items.shape == (1, 5) and b.ratings.dtype == torch.float64
    assert b.to("cpu").mask.sum().item() == 2
    with pytest.raises(ValueError, match="longer than length=1"):
        pad_tasks(pairs, length=1)
    empty = pad_tasks([])
    assert empty.items.shape == (0, 1)


def test_the_one_split_draws_what_each_inline_split_drew_before():
    # protocol/splits.py replaced four hand-written splits; the same seeds must give the same users
    from metarec_core.protocol.splits import fit_validation_split, holdout, seeded_rng

    users = np.arange(3, 250, 2)
    perm = np.random.default_rng([5, 7]).permutation(users)
    n_val = max(1, int(round(0.1 * len(perm))))
    train, val = fit_validation_split(users, 5, 0.1)
    assert np.array_equal(val, np.sort(perm[:n_val]))
    assert np.array_equal(train, np.sort(perm[n_val:]))
    # the minimums: at least one held, at least `min_kept` kept
    assert [len(p) for p in holdout(np.arange(3), 0.01, seeded_rng(0, 1))] == [2, 1]
    assert [len(p) for p in holdout(np.arange(2), 0.9, None, min_kept=1)] == [1, 1]
    assert [len(p) for p in holdout(np.arange(2), 0.1, None, min_held=0)] == [2, 0]
