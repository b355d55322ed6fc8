"""The personal chance of knowing an item (`elicitation.known.CoRating`) and the strategies on it."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.data.io import from_arrays
from metarec_core.elicitation import Answers, ElicitContext, make_strategy
from metarec_core.elicitation.known import CoRating
from metarec_core.methods.baselines import MFFoldIn
from metarec_core.protocol.splits import user_folds


def two_camps(n_per_camp: int = 30, seed: int = 0) -> RatingsDataset:
    """Camp A rates mostly items 0-4, camp B mostly items 5-9; item 10 by almost everyone."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(2 * n_per_camp):
        mine = np.arange(5) if u < n_per_camp else np.arange(5, 10)
        other = np.arange(5, 10) if u < n_per_camp else np.arange(5)
        chosen = (
            list(mine[rng.random(5) < 0.8])
            + list(other[rng.random(5) < 0.1])
            + ([10] if rng.random() < 0.95 else [])
        )
        users += [u] * len(chosen)
        items += chosen
    ratings = rng.integers(1, 6, len(users)).astype(np.float64)
    data = from_arrays(
        [f"u{u:03d}" for u in users], [f"i{i:02d}" for i in items], ratings,
        scale=RatingScale(1.0, 5.0, 1.0),
    )  # fmt: skip
    # zero-padded ids: inner indices in the order above
    assert list(data.item_ids) == [f"i{i:02d}" for i in range(11)]
    return data


def brute_force(data: RatingsDataset, known: list[int], unknown: list[int], j: int, a: float):
    """Naive Bayes for item j written out user by user (the reference of `probability`)."""
    seen = np.zeros((data.n_users, data.n_items), bool)
    seen[data.user, data.item] = True
    N = data.n_users
    n_j = seen[:, j].sum()
    logit = np.log(n_j / N) - np.log(1 - n_j / N)
    for i, answered in [(i, True) for i in known] + [(i, False) for i in unknown]:
        n_i = seen[:, i].sum()
        c = (seen[:, i] & seen[:, j]).sum()
        if_j = (c + a * n_i / N) / (n_j + a)
        if_not = (n_i - c + a * n_i / N) / (N - n_j + a)
        if answered:
            logit += np.log(if_j) - np.log(if_not)
        else:
            logit += np.log(1 - if_j) - np.log(1 - if_not)
    return 1 / (1 + np.exp(-logit))


def test_no_answer_gives_each_item_its_share_of_raters():
    data = two_camps()
    co = CoRating.from_ratings(data)
    p = co.probability(np.zeros(0, np.int64), np.zeros(0, np.int64))
    counts = np.array([len(set(data.user[data.item == i])) for i in range(11)])
    assert np.allclose(p, counts / data.n_users)


def test_answers_move_the_chance_toward_the_users_camp():
    data = two_camps()
    co = CoRating.from_ratings(data)
    prior = co.prior
    knows_0 = co.probability(np.array([0]), np.zeros(0, np.int64))
    assert knows_0[1] > prior[1] + 0.1  # the same camp's items: likelier
    assert knows_0[6] < prior[6] - 0.1  # the other camp's: less likely
    not_0 = co.probability(np.zeros(0, np.int64), np.array([0]))
    assert not_0[1] < prior[1] - 0.1 and not_0[6] > prior[6] + 0.1


@pytest.mark.parametrize(
    ("known", "unknown"), [([0], []), ([0, 2], [7]), ([], [5, 6]), ([3], [10])]
)
def test_probability_equals_naive_bayes_written_out(known, unknown):
    data = two_camps(seed=3)
    co = CoRating.from_ratings(data, smoothing=1.0)
    p = co.probability(np.array(known, np.int64), np.array(unknown, np.int64))
    for j in range(11):
        assert p[j] == pytest.approx(brute_force(data, known, unknown, j, 1.0), rel=1e-4)


def test_only_the_given_users_and_the_most_rated_items_count():
    data = two_camps()
    camp_a = np.arange(30)
    co = CoRating.from_ratings(data, camp_a, max_items=3)
    assert co.n_users == 30
    assert len(co.top) == 3 and co.top[0] == 10  # rated by almost everyone: first
    # an item outside the top keeps its prior whatever the answers
    outside = [i for i in range(11) if i not in set(co.top) and co.count[i] > 0][0]
    p = co.probability(np.array(co.top[:2]), np.zeros(0, np.int64))
    assert p[outside] == pytest.approx(co.prior[outside])


def test_a_users_repeated_rating_of_an_item_counts_once():
    data = two_camps()
    twice = dataclasses.replace(
        data, user=np.r_[data.user, data.user[:5]], item=np.r_[data.item, data.item[:5]],
        rating=np.r_[data.rating, data.rating[:5]], timestamp=None,
    )  # fmt: skip
    assert twice.n_ratings == data.n_ratings + 5
    a, b = CoRating.from_ratings(data), CoRating.from_ratings(twice)
    assert np.array_equal(a.both, b.both)


@pytest.fixture(scope="module")
def camps_ctx():
    data = two_camps(n_per_camp=40)
    fold = user_folds(data, 4, 0, 0.1)[0]
    method = MFFoldIn(seed=0, factors=3, reg=8.0, fold_reg=(8.0, 4.0), iters=4)
    method.fit(data, fold.train_users, fold.val_users)
    return ElicitContext.build(data, method, fold.train_users, seed=0)


def test_likely_known_starts_with_the_most_rated_then_follows_the_answers(camps_ctx):
    s = make_strategy("likely_known", camps_ctx)
    first = s.propose(Answers())
    assert first.item == make_strategy("popularity", camps_ctx).propose(Answers()).item == 10
    after_a = s.propose(Answers().add(10, 4.0).add(0, 5.0))
    after_b = s.propose(Answers().add(10, 4.0).add(5, 5.0))
    assert after_a.item in range(1, 5) and after_b.item in range(6, 10)
    assert "likely that you have seen it" in after_a.reason


def test_shrinkage_known_weighs_the_same_cut_by_the_personal_chance(camps_ctx):
    plain = make_strategy("shrinkage", camps_ctx)
    personal = make_strategy("shrinkage_known", camps_ctx)
    cands = np.arange(11)
    # before any answer the personal chance is everyone's: the same scores
    assert np.allclose(plain.rank(Answers(), cands), personal.rank(Answers(), cands))
    answers = Answers().add(10, 4.0).add(0, 5.0).add(1, None)
    known = camps_ctx.known_now(answers)
    cut = plain.rank(answers, cands) / camps_ctx.stats.known[cands]
    assert np.allclose(personal.rank(answers, cands), cut * known[cands])
    assert "likely that you know it" in personal.propose(answers).reason


def test_the_co_rating_counts_are_made_once_when_a_strategy_that_reads_them_is_built(camps_ctx):
    data = two_camps(n_per_camp=40)
    ctx = ElicitContext.build(data, camps_ctx.method, np.arange(60), seed=0)
    make_strategy("popularity", ctx).propose(Answers())
    make_strategy("shrinkage", ctx).propose(Answers().add(10, 4.0))
    assert "corating" not in vars(ctx)  # seconds on a million ratings: not made for these
    make_strategy("likely_known", ctx)  # built with the strategy, not at its first question
    made = vars(ctx)["corating"]
    assert made.n_users == 60
    make_strategy("shrinkage_known", ctx).propose(Answers().add(10, 4.0))
    assert ctx.corating is made


def test_overwhelming_evidence_gives_chances_of_0_and_1_without_warnings():
    # two camps that never cross: 58 known items of camp A push camp B's items to a log-odds
    # far below -709, where a plain 1 / (1 + exp(-x)) overflows
    users = [u for u in range(20) for _ in range(60)] + [
        u for u in range(20, 40) for _ in range(60)
    ]
    items = [i for _ in range(20) for i in range(60)] + [
        i for _ in range(20) for i in range(60, 120)
    ]
    data = from_arrays(
        [f"u{u:03d}" for u in users], [f"i{i:03d}" for i in items], np.full(len(users), 4.0),
        scale=RatingScale(1.0, 5.0, 1.0),
    )  # fmt: skip
    co = CoRating.from_ratings(data, smoothing=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = co.probability(np.arange(58), np.zeros(0, np.int64))
    assert np.isfinite(p).all()
    assert p[58] == pytest.approx(1.0) and p[60] == pytest.approx(0.0, abs=1e-12)
