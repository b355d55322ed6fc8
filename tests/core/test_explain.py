"""Explanations by leave-one-out re-adaptation (metarec_core.interactive.explain): faithful to
an independent loop that adapts from scratch without each support rating."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import TINY_LEARNER, tiny_dataset, tiny_split

from metarec_core.interactive import explain as ex
from metarec_core.methods.registry import available_methods, make_method


@pytest.fixture(scope="module")
def tiny():
    """The tiny dataset and its app split (its validation users give the supports)."""
    data = tiny_dataset()
    return data, tiny_split(data)


@pytest.fixture(scope="module")
def learner(tiny):
    data, split = tiny
    """A tiny trained meta-learner (a few steps: its adaptation is real, its accuracy moot)."""
    from metarec_core.methods.meta import make_learner

    model = make_learner("metasgd", seed=0, device="cpu", **TINY_LEARNER)
    return model.fit(data, split.train_users, split.val_users)


@pytest.fixture(scope="module")
def baselines(tiny):
    data, split = tiny
    return {
        name: make_method(name, seed=0).fit(data, split.train_users, split.val_users)
        for name in available_methods("baseline")
    }


def _support(data, split, k: int) -> tuple[np.ndarray, np.ndarray]:
    user = int(split.val_users[0])
    mine = np.flatnonzero(data.user == user)[:k]
    return data.item[mine].astype(np.int64), data.rating[mine].astype(np.float64)


def _naive_deltas(model, items, ratings, targets) -> np.ndarray:
    """(k, T) influence by k + 1 separate `adapt` calls: the independent check."""
    full = model.adapt(items, ratings).display_ratings(targets)
    rows = []
    for j in range(len(items)):
        keep = np.arange(len(items)) != j
        rows.append(full - model.adapt(items[keep], ratings[keep]).display_ratings(targets))
    return np.array(rows)


@pytest.mark.parametrize("which", ["learner", "mf_foldin_levels", "user_bias"])
def test_the_named_rating_moves_the_recommendation_most(tiny, which, learner, baselines):
    data, split = tiny
    model = learner if which == "learner" else baselines[which]
    items, ratings = _support(data, split, 8)
    targets, _ = model.adapt(items, ratings).recommend(10)
    naive = _naive_deltas(model, items, ratings, targets)
    assert np.abs(naive).max() > 1e-4  # the ratings do move this model's predictions
    out = ex.explain(model, items, ratings, targets, top=3)
    assert [e.item for e in out] == targets.tolist()
    named = 0
    for c, e in enumerate(out):
        col = np.abs(naive[:, c])
        if e.strongest is None:  # nothing moved it: the naive loop agrees
            assert col.max() < ex.MIN_DELTA * 10
            continue
        named += 1
        j = items.tolist().index(e.strongest.item)
        # removing the named rating moves the score the most among the support ratings
        assert col[j] >= col.max() - 1e-6
        assert e.strongest.delta == pytest.approx(naive[j, c], abs=1e-5)
        assert e.strongest.rating == ratings[j]
        mags = [abs(i.delta) for i in e.influences]
        assert mags == sorted(mags, reverse=True)
    assert named >= 1


def test_batched_influence_equals_the_naive_loop(tiny, learner):
    data, split = tiny
    items, ratings = _support(data, split, 5)
    targets = np.arange(data.n_items)[:30]
    predicted, delta = ex.influence_matrix(learner, items, ratings, targets)
    np.testing.assert_allclose(delta, _naive_deltas(learner, items, ratings, targets), atol=1e-5)
    np.testing.assert_allclose(
        predicted, learner.adapt(items, ratings).display_ratings(targets), atol=1e-5
    )


def test_display_many_is_what_adapt_shows(tiny, learner, baselines):
    data, split = tiny
    items, ratings = _support(data, split, 4)
    for model in [learner, *baselines.values()]:
        want = model.adapt(items, ratings).display_ratings(np.arange(data.n_items))
        got = model.display_many([(items, ratings)])[0]
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=type(model).__name__)


def test_a_method_that_ignores_ratings_names_none(tiny, baselines):
    data, split = tiny
    items, ratings = _support(data, split, 6)
    out = ex.explain(baselines["popularity"], items, ratings, [0, 1, 2])
    assert all(e.strongest is None for e in out)


def test_no_ratings_and_too_many(learner):
    out = ex.explain(learner, np.zeros(0, np.int64), np.zeros(0), [3, 4])
    assert [e.influences for e in out] == [(), ()]
    many = np.arange(ex.MAX_SUPPORT + 1)
    with pytest.raises(ValueError, match="at most 20"):
        ex.explain(learner, many, np.full(len(many), 3.0), [0])


def test_leave_one_out_supports():
    sup = ex.leave_one_out_supports(np.array([4, 5, 6]), np.array([1.0, 2.0, 3.0]))
    assert [s[0].tolist() for s in sup] == [[4, 5, 6], [5, 6], [4, 6], [4, 5]]
    assert [s[1].tolist() for s in sup] == [[1, 2, 3], [2, 3], [1, 3], [1, 2]]


def test_display_of_some_items_is_the_catalogues(tiny, learner, baselines):
    """`display_many(supports, items)` scores only `items`, as the catalogue's columns."""
    data, split = tiny
    sups = [_support(data, split, k) for k in (0, 2, 5)]
    items = np.array([[3, 1, 7], [0, 0, 9], [5, 2, 4]])
    for model in [learner, *baselines.values()]:
        full = model.display_many(sups)
        np.testing.assert_allclose(
            model.display_many(sups, items), np.take_along_axis(full, items, 1), atol=1e-6
        )
    dist, some = learner.predictive_many(sups), learner.predictive_many(sups, items)
    np.testing.assert_allclose(
        some.probs, np.take_along_axis(dist.probs, items[..., None], 1), atol=1e-6
    )
