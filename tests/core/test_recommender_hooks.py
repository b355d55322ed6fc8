"""`Recommender.fit` and `adapt` are template methods: the base class checks once, a method
implements the hooks `_fit_users` and `_adapt`; methods that override `fit`/`adapt` themselves
(plugins written before the hooks) keep working, and one with neither says so."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.methods.base import AdaptedUser, FitHooks, NotFittedError, Recommender

N_ITEMS = 4


@pytest.fixture
def data() -> RatingsDataset:
    users = np.array([0, 0, 1, 1, 2], dtype=np.int64)
    items = np.array([0, 1, 1, 2, 3], dtype=np.int64)
    return RatingsDataset(
        user=users,
        item=items,
        rating=np.array([1.0, 2.0, 3.0, 4.0, 5.0], dtype=np.float32),
        timestamp=None,
        user_ids=np.array(["u0", "u1", "u2"]),
        item_ids=np.array([f"i{i}" for i in range(N_ITEMS)]),
        scale=RatingScale(1.0, 5.0, 1.0),
    )


class Spy(Recommender):
    """Implements only the hooks; records what they are given."""

    name: ClassVar[str] = "spy_users"

    def _fit_users(self, data, train, val, hooks) -> bool:
        self.fit_args_ = (train, val, hooks)
        self.n_items_ = data.n_items
        return not (hooks.should_stop is not None and hooks.should_stop())

    def _adapt(self, items, ratings, query) -> AdaptedUser:
        self.adapt_args_ = (items, ratings, query)
        return AdaptedUser(np.zeros(self.n_items_), items, ratings)


def test_fit_bundles_the_hooks_and_sets_fitted_from_the_hook(data):
    stop, progress = (lambda: False), (lambda f, m: None)
    spy = Spy().fit(data, np.array([0, 1]), np.array([2]), should_stop=stop, progress=progress)
    assert spy.fitted_
    train, val, hooks = spy.fit_args_
    assert train.tolist() == [0, 1] and val.tolist() == [2]
    assert hooks == FitHooks(stop, progress)
    assert not Spy().fit(data, np.array([0]), should_stop=lambda: True).fitted_  # stopped


def test_adapt_checks_and_converts_once_before_the_hook(data):
    with pytest.raises(NotFittedError):
        Spy().adapt(np.array([0]), np.array([3.0]))
    spy = Spy().fit(data, np.array([0, 1]))
    spy.adapt([[1], [2]], [4, 5], query_items=[3], query_ratings=[2])
    items, ratings, query = spy.adapt_args_
    assert items.dtype == np.int64 and items.tolist() == [1, 2]  # flattened
    assert ratings.dtype == np.float64 and ratings.tolist() == [4.0, 5.0]
    assert query[0].dtype == np.int64 and query[1].dtype == np.float64
    spy.adapt(np.array([1]), np.array([4.0]), query_ratings=np.array([2.0]))
    assert spy.adapt_args_[2] is None  # hidden ratings without items: no query
    bad = [
        (([N_ITEMS], [3.0]), {}, r"support: item index out of range \[0, 4\): found 4\.\.4"),
        (([-1], [3.0]), {}, "support: item index out of range"),
        (([0, 1], [3.0]), {}, "support: 2 items but 1 ratings"),
        (([0], [np.nan]), {}, "support: ratings must be finite numbers"),
        (([0], [3.0]), {"query_items": [0]}, "query_items given without query_ratings"),
        (([0], [3.0]), {"query_items": [9], "query_ratings": [1.0]}, "query: item index out"),
    ]
    for (items, ratings), query, message in bad:
        spy.adapt_args_ = None
        with pytest.raises(ValueError, match=message):
            spy.adapt(np.array(items), np.array(ratings), **query)
        assert spy.adapt_args_ is None  # the hook never saw bad arrays


class OldStyle(Recommender):
    """A method written before the hooks (a plugin's, say): it overrides `fit` and `adapt`."""

    name: ClassVar[str] = "old_style_users"

    def fit(self, data, train_users, val_users=None, *, should_stop=None, progress=None):
        self.n_items_, self.fitted_ = data.n_items, True
        return self

    def adapt(self, items, ratings, *, query_items=None, query_ratings=None) -> AdaptedUser:
        return AdaptedUser(np.full(self.n_items_, 3.0), np.asarray(items), np.asarray(ratings))


def test_a_method_that_overrides_fit_and_adapt_itself_still_works(data):
    model = OldStyle().fit(data, np.arange(3))
    assert (
        model.fitted_ and model.adapt(np.array([0]), np.array([4.0])).scores.tolist() == [3.0] * 4
    )
    assert model.score_many([(np.array([0]), np.array([4.0]))]).shape == (1, N_ITEMS)


def test_a_method_with_neither_says_so(data):
    class Neither(Recommender):
        name: ClassVar[str] = "neither_users"

    with pytest.raises(NotImplementedError, match="implements neither fit nor _fit_users"):
        Neither().fit(data, np.arange(3))
    fitted = Neither()
    fitted.fitted_, fitted.n_items_ = True, N_ITEMS
    with pytest.raises(NotImplementedError, match="implements neither adapt nor _adapt"):
        fitted.adapt(np.array([0]), np.array([4.0]))
