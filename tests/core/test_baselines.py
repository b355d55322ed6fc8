"""Baselines on small synthetic data with planted structure."""

from __future__ import annotations

import numpy as np
import pytest

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.methods import baselines
from metarec_core.methods.base import NotFittedError
from metarec_core.methods.baselines import (
    BASELINE_CLASSES,
    GlobalMean,
    ItemMean,
    MFFoldIn,
    Popularity,
    UserBias,
)
from metarec_core.methods.baselines.mf import ALS_CACHE
from metarec_core.methods.registry import BASELINES, make_method
from metarec_core.protocol.splits import user_folds
from metarec_core.protocol.tasks import make_tasks

CONT = RatingScale(1.0, 5.0, 0.01)


def make_dataset(users, items, ratings, scale: RatingScale = CONT, n_items=None) -> RatingsDataset:
    """A RatingsDataset straight from inner-index arrays (no file parsing involved)."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    n_users = int(users.max()) + 1
    n_items = int(items.max()) + 1 if n_items is None else n_items
    return RatingsDataset(
        user=users,
        item=items,
        rating=np.asarray(ratings, dtype=np.float32),
        timestamp=None,
        user_ids=np.array([f"u{u}" for u in range(n_users)]),
        item_ids=np.array([f"i{i}" for i in range(n_items)]),
        scale=scale,
    )


def planted(
    n_users=240, n_items=120, per_user=45, rank=0, noise=0.0, seed=0, bias_sd=0.5
) -> tuple[RatingsDataset, dict]:
    """Ratings = 3 + b_u + b_i (+ p_u·q_i of `rank`) (+ noise), clipped to [1, 5]."""
    rng = np.random.default_rng(seed)
    bu = rng.normal(0, bias_sd, n_users)
    bi = rng.normal(0, bias_sd, n_items)
    P = rng.normal(0, 0.7, (n_users, rank))
    Q = rng.normal(0, 0.7, (n_items, rank))
    users, items = [], []
    for u in range(n_users):
        users.append(np.full(per_user, u))
        items.append(rng.choice(n_items, per_user, replace=False))
    users, items = np.concatenate(users), np.concatenate(items)
    r = 3 + bu[users] + bi[items] + np.einsum("nf,nf->n", P[users], Q[items])
    r = np.clip(r + rng.normal(0, noise, len(r)), 1, 5)
    return make_dataset(users, items, r, n_items=n_items), {"bu": bu, "bi": bi}


@pytest.fixture(scope="module")
def bias_data():
    return planted(noise=0.05)


@pytest.fixture(scope="module")
def split(bias_data):
    return user_folds(bias_data[0], 5, seed=0)[0]


def query_mae(model, data, users, k, seed=0):
    tasks, _ = make_tasks(data, users, query=10, min_support=k, seed=seed)
    scores = model.score_many([t.support(k) for t in tasks])
    qi = np.stack([t.query[0] for t in tasks])
    qr = np.stack([t.query[1] for t in tasks])
    return float(np.abs(np.take_along_axis(scores, qi, 1) - qr).mean())


def test_registry_matches_methods():
    assert tuple(BASELINE_CLASSES) == BASELINES
    for name, cls in BASELINE_CLASSES.items():
        m = make_method(name, seed=3)
        assert isinstance(m, cls) and m.name == name and m.seed == 3


@pytest.mark.parametrize("name", BASELINES)
def test_use_before_fit_raises(name):
    m = BASELINE_CLASSES[name]()
    with pytest.raises(NotFittedError, match="fit"):
        m.score_many([(np.array([0]), np.array([4.0]))])
    with pytest.raises(NotFittedError):
        m.adapt(np.array([0]), np.array([4.0]))


def test_global_mean_uses_training_users_only():
    data = make_dataset([0, 0, 1, 2], [0, 1, 0, 1], [2.0, 4.0, 3.0, 5.0], n_items=3)
    m = GlobalMean().fit(data, np.array([0, 1]))
    assert m.global_mean_ == pytest.approx(3.0)
    np.testing.assert_allclose(m.score_many([(np.array([2]), np.array([5.0]))]), [[3, 3, 3]])


def test_item_mean_damping_formula():
    data = make_dataset([0, 1, 2, 0], [0, 0, 0, 1], [5.0, 5.0, 2.0, 1.0], n_items=3)
    m = ItemMean(damping=2.0).fit(data, np.array([0, 1, 2]))
    mu = 13 / 4
    want = [(12 + 2 * mu) / 5, (1 + 2 * mu) / 3, mu]  # item 2 is unrated: the global mean
    np.testing.assert_allclose(m.score_many([(np.array([], int), np.array([]))])[0], want)


def test_item_mean_tuned_on_validation(bias_data, split):
    data, _ = bias_data
    m = ItemMean().fit(data, split.train_users, split.val_users)
    assert m.damping_ in ItemMean.DAMPING_GRID
    assert query_mae(m, data, split.test_users, 1) < query_mae(
        GlobalMean().fit(data, split.train_users), data, split.test_users, 1
    )


def test_user_bias_recovers_planted_biases(bias_data, split):
    data, truth = bias_data
    m = UserBias().fit(data, split.train_users, split.val_users)
    # item biases are identified up to the global mean's share
    assert np.corrcoef(m.item_bias_, truth["bi"])[0, 1] > 0.97
    # a new user's fold-in: b_u = Σ(r - mu - b_i) / (k + γ), shrunk toward 0
    tasks, _ = make_tasks(data, split.test_users, query=10, min_support=30)
    est = np.array([m.adapt(*t.support(30)).state[0] for t in tasks])
    true = truth["bu"][[t.user for t in tasks]]
    assert np.corrcoef(est, true)[0, 1] > 0.95
    # one exact closed-form check
    items, ratings = tasks[0].support(5)
    resid = ratings.astype(np.float64) - m.global_mean_ - m.item_bias_[items]
    assert m.adapt(items, ratings).state[0] == pytest.approx(
        resid.sum() / (5 + m.fold_damping_), rel=1e-6
    )
    # more support -> better predictions than the item mean
    item_mae = query_mae(
        ItemMean().fit(data, split.train_users, split.val_users), data, split.test_users, 10
    )
    assert query_mae(m, data, split.test_users, 10) < item_mae - 0.1


def test_user_bias_zero_support_is_the_prior(bias_data, split):
    data, _ = bias_data
    m = UserBias().fit(data, split.train_users, split.val_users)
    got = m.score_many([(np.array([], int), np.array([]))])[0]
    np.testing.assert_allclose(got, np.clip(m.global_mean_ + m.item_bias_, 1, 5))


@pytest.fixture(scope="module")
def lowrank():
    data, _ = planted(n_users=300, n_items=100, per_user=50, rank=3, noise=0.1, seed=1)
    return data, user_folds(data, 5, seed=0)[0]


def test_mf_foldin_beats_item_mean_on_low_rank_data(lowrank):
    data, fold = lowrank
    mf = MFFoldIn(factors=5, reg=2.0).fit(data, fold.train_users, fold.val_users)
    ub = UserBias().fit(data, fold.train_users, fold.val_users)
    im = ItemMean().fit(data, fold.train_users, fold.val_users)
    mf_mae = query_mae(mf, data, fold.test_users, 20)
    assert mf_mae < query_mae(im, data, fold.test_users, 20) - 0.15
    assert mf_mae < query_mae(ub, data, fold.test_users, 20) - 0.1
    assert mf.item_factors_.shape == (data.n_items, 5)
    assert mf.item_bias_.shape == (data.n_items,)
    assert isinstance(mf.global_mean_, float)


def test_mf_fold_in_is_the_ridge_solution(lowrank):
    data, fold = lowrank
    mf = MFFoldIn(factors=4, reg=2.0, fold_reg=(3.0, 1.5), iters=4).fit(data, fold.train_users)
    items = np.array([3, 7, 11, 20, 40])
    ratings = np.array([4.0, 2.0, 5.0, 3.0, 1.0])
    X = np.hstack([mf.item_factors_[items], np.ones((5, 1))])
    y = ratings - mf.global_mean_ - mf.item_bias_[items]
    w = np.linalg.solve(X.T @ X + np.diag([3.0] * 4 + [1.5]), X.T @ y)
    ad = mf.adapt(items, ratings, query_items=np.array([0, 1]), query_ratings=np.array([3.0, 4.0]))
    np.testing.assert_allclose(ad.state, w, rtol=1e-8)
    raw = mf.global_mean_ + mf.item_bias_ + w[4] + mf.item_factors_ @ w[:4]
    np.testing.assert_allclose(ad.scores, np.clip(raw, 1, 5))
    # the query-items path used while tuning agrees with the whole-catalogue path
    some = np.array([[5, 0, 99]])
    np.testing.assert_allclose(mf._predict(w[None], some), raw[None, some[0]])
    # the trace: support loss before (prior) and after fold-in, which fits the support better
    assert len(ad.trace.support_loss) == 2 and ad.trace.support_loss[1] < ad.trace.support_loss[0]
    assert len(ad.trace.query_loss) == 2


@pytest.mark.parametrize("name", ["item_mean", "user_bias", "mf_foldin", "popularity"])
def test_score_many_matches_adapt(name, lowrank):
    data, fold = lowrank
    m = BASELINE_CLASSES[name](seed=0).fit(data, fold.train_users, fold.val_users)
    tasks, _ = make_tasks(data, fold.test_users[:6], query=10, min_support=1)
    supports = [t.support(k) for t, k in zip(tasks, [0, 1, 3, 5, 20, 40], strict=False)]
    batch = m.score_many(supports)
    assert batch.shape == (len(supports), data.n_items)
    for b, (i, r) in enumerate(supports):
        np.testing.assert_allclose(batch[b], m.adapt(i, r).scores, rtol=1e-9, atol=1e-12)
    if m.capabilities.predicts_ratings:
        assert batch.min() >= 1.0 and batch.max() <= 5.0


def test_popularity_ranks_by_count():
    users = [0, 1, 2, 0, 1, 0, 3]
    items = [2, 2, 2, 0, 0, 1, 1]  # counts among users 0-2: item 2: 3, item 0: 2, item 1: 1
    data = make_dataset(users, items, [1.0, 2, 3, 4, 5, 1, 5], n_items=4)
    m = Popularity().fit(data, np.array([0, 1, 2]))
    assert not m.capabilities.predicts_ratings
    ad = m.adapt(np.array([], int), np.array([]))
    np.testing.assert_allclose(ad.scores, [2, 1, 3, 0])
    assert list(ad.recommend(3)[0]) == [2, 0, 1]
    assert ad.trace is None


def test_bad_support_is_a_clear_error(bias_data, split):
    data, _ = bias_data
    m = UserBias().fit(data, split.train_users, split.val_users)
    with pytest.raises(ValueError, match="out of range"):
        m.score_many([(np.array([data.n_items]), np.array([3.0]))])
    with pytest.raises(ValueError, match="2 items but 1 ratings"):
        m.score_many([(np.array([0, 1]), np.array([3.0]))])
    with pytest.raises(ValueError, match="finite"):
        m.score_many([(np.array([0]), np.array([np.nan]))])


@pytest.mark.parametrize(
    ("name", "kw"), [("item_mean", {}), ("user_bias", {}), ("mf_foldin", {"iters": 3})]
)
def test_fit_never_sees_test_users(name, kw, lowrank, monkeypatch):
    data, fold = lowrank
    seen = []
    real = baselines.common.make_tasks

    def spy(d, users, **kw):
        seen.append(np.asarray(users).copy())
        return real(d, users, **kw)

    monkeypatch.setattr(baselines.common, "make_tasks", spy)
    a = BASELINE_CLASSES[name](seed=0, **kw).fit(data, fold.train_users, fold.val_users)
    assert seen and all(set(s.tolist()) <= set(fold.val_users.tolist()) for s in seen)
    # changing every rating of the test users changes nothing that was fitted
    r = data.rating.copy()
    test = np.isin(data.user, fold.test_users)
    r[test] = 6.0 - r[test]
    flipped = RatingsDataset(
        data.user, data.item, r, None, data.user_ids, data.item_ids, data.scale
    )
    b = BASELINE_CLASSES[name](seed=0, **kw).fit(flipped, fold.train_users, fold.val_users)
    sup = [(np.array([1, 2, 3]), np.array([5.0, 1.0, 4.0]))]
    np.testing.assert_array_equal(a.score_many(sup), b.score_many(sup))


def test_mf_deterministic_given_seed(lowrank):
    data, fold = lowrank
    a = MFFoldIn(seed=5, factors=4, iters=3).fit(data, fold.train_users, fold.val_users)
    ALS_CACHE.clear()  # b solves its ALS again rather than reading a's
    b = MFFoldIn(seed=5, factors=4, iters=3).fit(data, fold.train_users, fold.val_users)
    c = MFFoldIn(seed=6, factors=4, iters=3).fit(data, fold.train_users, fold.val_users)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    assert (a.reg_, a.fold_reg_) == (b.reg_, b.fold_reg_)
    assert not np.array_equal(a.item_factors_, c.item_factors_)


def test_fit_without_validation_users_uses_defaults(bias_data, split):
    data, _ = bias_data
    m = UserBias().fit(data, split.train_users)
    assert m.fitted_ and m.fold_damping_ == 5.0
    with pytest.raises(ValueError, match="training user"):
        UserBias().fit(data, np.array([], dtype=np.int64))


def test_level_thresholds_find_a_shifted_decision():
    rng = np.random.default_rng(0)
    true = rng.integers(1, 6, 2000).astype(float)
    pred = true + 0.6 + rng.uniform(-0.1, 0.1, true.shape)  # biased by +0.6 but ordered
    th = baselines.tune_level_thresholds(pred, true, 1.0, 1.0, 5)
    assert np.all(np.diff(th) > 0) and th.shape == (4,)
    rounded = np.abs(np.clip(np.rint(pred), 1, 5) - true).mean()
    tuned = np.abs(baselines.snap_to_levels(pred, th, 1.0, 1.0) - true).mean()
    assert rounded > 0.2 and tuned == 0.0
    assert baselines.level_grid(RatingScale(1.0, 5.0, 1.0)) == (1.0, 1.0, 5)
    assert baselines.level_grid(RatingScale(0.5, 5.0, 0.5)) == (0.5, 0.5, 10)
    assert baselines.level_grid(CONT) is None  # 401 levels: treated as continuous


@pytest.fixture(scope="module")
def integer_data():
    data, _ = planted(noise=0.6, seed=3)
    r = np.rint(data.rating).astype(np.float32)
    data = make_dataset(data.user, data.item, r, RatingScale(1.0, 5.0, 1.0), data.n_items)
    return data, user_folds(data, 5, seed=0)[0]


@pytest.mark.parametrize(
    "base,levels", [("user_bias", "user_bias_levels"), ("mf_foldin", "mf_foldin_levels")]
)
def test_level_baselines_cut_the_same_model_into_levels(base, levels, integer_data):
    data, fold = integer_data
    plain = make_method(base).fit(data, fold.train_users, fold.val_users)
    cut = make_method(levels).fit(data, fold.train_users, fold.val_users)
    assert cut.thresholds_ is not None and np.all(np.diff(cut.thresholds_) > 0)
    tasks, _ = make_tasks(data, fold.test_users, query=10, min_support=5, seed=0)
    sup = [t.support(5) for t in tasks]
    raw, snapped = plain.score_many(sup), cut.score_many(sup)
    # the same fitted model underneath, then a level (+ a 1e-3 tie-break that keeps the order)
    assert np.abs(snapped - np.rint(snapped)).max() <= 4e-3
    for b in range(len(sup)):
        order = np.argsort(raw[b], kind="stable")
        assert np.all(np.diff(snapped[b][order]) >= 0)
    # on integer ratings the level decision lowers MAE on test users it never saw
    assert (
        query_mae(cut, data, fold.test_users, 5) < query_mae(plain, data, fold.test_users, 5) - 0.01
    )


def test_level_baselines_on_a_continuous_scale_are_the_base_model(bias_data, split):
    data = bias_data[0]
    plain = UserBias().fit(data, split.train_users, split.val_users)
    cut = baselines.UserBiasLevels().fit(data, split.train_users, split.val_users)
    assert cut.thresholds_ is None
    sup = [(np.array([0, 1]), np.array([4.0, 2.5]))]
    np.testing.assert_array_equal(cut.score_many(sup), plain.score_many(sup))


def test_level_baseline_adapt_scores_levels_and_shows_the_mean(integer_data):
    data, fold = integer_data
    plain = make_method("mf_foldin").fit(data, fold.train_users, fold.val_users)
    cut = make_method("mf_foldin_levels").fit(data, fold.train_users, fold.val_users)
    items, ratings = np.array([0, 5, 9]), np.array([5.0, 1.0, 4.0])
    a, b = plain.adapt(items, ratings), cut.adapt(items, ratings)
    np.testing.assert_allclose(b.expected, a.scores)  # shown to a person: the mean prediction
    np.testing.assert_allclose(b.scores, cut.score_many([(items, ratings)])[0])  # scored: levels
    np.testing.assert_allclose(b.display_ratings(np.arange(4)), a.scores[:4])
    assert np.abs(b.scores - np.rint(b.scores)).max() <= 4e-3


# ------------------------------------------------------------------------------ persistence
@pytest.fixture(scope="module")
def star_data():
    """Ratings on a 1..5 star scale, so the `_levels` variants tune thresholds."""
    data, _ = planted(n_users=80, n_items=40, per_user=20, rank=2, noise=0.3)
    return make_dataset(data.user, data.item, np.round(data.rating), RatingScale(1.0, 5.0, 1.0))


@pytest.mark.parametrize("name", BASELINES)
def test_to_state_round_trips_through_a_weights_only_load(name, star_data):
    import io

    import torch

    fold = user_folds(star_data, 4, seed=0)[0]
    kw = {"iters": 3} if name.startswith("mf_foldin") else {}
    m = BASELINE_CLASSES[name](seed=0, **kw).fit(star_data, fold.train_users, fold.val_users)
    buf = io.BytesIO()
    torch.save(m.to_state(), buf)
    state = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    again = type(m).from_state(state)
    supports = [(np.array([0, 5, 9]), np.array([5.0, 2.0, 4.0])), (np.array([], int), np.array([]))]
    np.testing.assert_array_equal(again.score_many(supports), m.score_many(supports))
    a, b = m.adapt(*supports[0]), again.adapt(*supports[0])
    np.testing.assert_array_equal(a.scores, b.scores)
    assert (a.expected is None) == (b.expected is None)
    if a.expected is not None:
        np.testing.assert_array_equal(a.expected, b.expected)
    assert again.n_items == star_data.n_items and again.capabilities == m.capabilities
    if name.endswith("_levels"):
        assert again.thresholds_ is not None  # the level decision itself was saved


def test_from_state_refuses_what_the_class_does_not_declare(star_data):
    import torch

    fold = user_folds(star_data, 4, seed=0)[0]
    m = MFFoldIn(seed=0, iters=2).fit(star_data, fold.train_users, fold.val_users)
    good = m.to_state()

    def broken(**changes) -> dict:
        return {**good, **changes}

    q = good["arrays"]["item_factors_"]
    cases = [
        (broken(name="user_bias"), "of 'user_bias'"),
        (broken(version=9), "state version 9"),
        (broken(arrays={**good["arrays"], "item_factors_": q[:-1]}), "expected 40 along its items"),
        (broken(arrays={**good["arrays"], "item_bias_": torch.full((40,), float("nan"))}), "NaN"),
        (broken(values={**good["values"], "reg_": float("inf")}), "values.reg_"),
        (broken(params={"factors": 20, "evil": 1}), "params are unknown"),
    ]
    for state, match in cases:
        with pytest.raises(ValueError, match=match):
            MFFoldIn.from_state(state)
    with pytest.raises(ValueError, match="over the limit of 8"):
        MFFoldIn.check_state(good, max_width=8)
    with pytest.raises(NotFittedError):
        MFFoldIn().to_state()
