"""Meta-learners: vectorised meta-gradients equal the per-task loop, adaptation, fit, state."""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import pytest
import torch

from metarec_core.data.dataset import ItemInfo, RatingScale, RatingsDataset
from metarec_core.methods import registry as methods
from metarec_core.methods.base import AdaptedUser, NotFittedError
from metarec_core.methods.meta import (
    LearnerConfig,
    MetaLearner,
    TrainProgress,
    make_learner,
    preset,
    resolve_device,
)
from metarec_core.methods.meta.reference import reference_meta_gradients

N_USERS, N_ITEMS = 60, 40


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data() -> RatingsDataset:
    """Users with a taste (2 latent factors) and a bias; 16-30 ratings each, 1-5 stars."""
    rng = np.random.default_rng(0)
    pu, qi = rng.normal(0, 1, (N_USERS, 2)), rng.normal(0, 0.7, (N_ITEMS, 2))
    bu, bi = rng.normal(0, 0.5, N_USERS), rng.normal(0, 0.5, N_ITEMS)
    users, items, ratings = [], [], []
    for u in range(N_USERS):
        its = rng.choice(N_ITEMS, rng.integers(16, 31), replace=False)
        r = 3.4 + bu[u] + bi[its] + qi[its] @ pu[u] + rng.normal(0, 0.4, len(its))
        users += [u] * len(its)
        items += list(its)
        ratings += list(np.clip(np.round(r), 1, 5))
    genres = rng.random((N_ITEMS, 3)) < 0.4
    return RatingsDataset(
        np.array(users, dtype=np.int64),
        np.array(items, dtype=np.int64),
        np.array(ratings, dtype=np.float32),
        None,
        np.array([f"u{u}" for u in range(N_USERS)]),
        np.array([f"i{i}" for i in range(N_ITEMS)]),
        RatingScale(1.0, 5.0, 1.0),
        ItemInfo(np.array([f"t{i}" for i in range(N_ITEMS)]), ("a", "b", "c"), genres),
    )


TRAIN, VAL = np.arange(0, 48), np.arange(48, 60)
SMALL = dict(device="cpu", factors=3, embedding_dim=4, hidden=(8, 8), meta_batch=8, max_support=8)
SUPPORT = [
    (np.array([1, 2, 3]), np.array([4.0, 5.0, 2.0])),
    (np.array([4]), np.array([3.0])),
    (np.array([5, 6, 7, 8, 9]), np.array([1.0, 2.0, 3.0, 4.0, 5.0])),
]
QUERY = [
    (np.array([10, 11]), np.array([3.0, 4.0])),
    (np.array([12, 13]), np.array([5.0, 1.0])),
    (np.array([14, 15]), np.array([2.0, 2.0])),
]


def _set_up(data, name: str, **kw) -> MetaLearner:
    """A built (not meta-trained) float64 learner with a perturbed head and implicit table,
    so that every term of the meta-gradient is non-zero."""
    learner = make_learner(name, **{**SMALL, "dtype": "float64", "inner_steps": 3, **kw})
    learner.setup(data, TRAIN, VAL)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in learner.model_.head.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        if learner.model_.implicit is not None:
            learner.model_.implicit.add_(
                0.1 * torch.randn(learner.model_.implicit.shape, generator=g, dtype=torch.float64)
            )
    return learner


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize(
    "name, kw",
    [
        ("maml", {}),
        ("fomaml", {}),
        ("metasgd", {}),
        ("metasgd", {"adapt": "head"}),
        ("metasgd", {"outer_loss": "mse", "implicit": True}),
        ("metasgd", {"outer_loss": "huber", "adapt": "head", "first_order": True}),
        ("maml", {"adapt": "all"}),
        ("melu", {"inner_steps": 3, "inner_lr": 0.05}),
        ("metasgd", {"inner_solver": "newton"}),
        ("maml", {"inner_solver": "newton", "implicit": True}),
        ("fomaml", {"inner_solver": "newton"}),
        ("reptile", {"inner_solver": "newton"}),
        ("metasgd", {"inner_solver": "newton", "adapt": "head"}),  # takes diagonal steps
        ("maml", {"inner_solver": "diagonal"}),
        ("metasgd", {"inner_solver": "diagonal", "implicit": True}),
        ("fomaml", {"inner_solver": "diagonal"}),
    ],
)
def test_vectorised_meta_gradient_equals_per_task_loop(data, name, kw):
    learner = _set_up(data, name, **kw)
    loss, fast = learner.meta_gradients(SUPPORT, QUERY)
    ref_loss, slow = reference_meta_gradients(learner, SUPPORT, QUERY)
    assert abs(loss - ref_loss) < 1e-10
    assert _max_diff(fast, slow) < 1e-5
    # the check is not vacuous: the gradient has substance in the shared and adapted parts
    assert float(fast["model.user_init"].abs().sum()) > 1e-6
    assert float(fast["model.item_enc.factor"].abs().sum()) > 1e-6


@pytest.mark.parametrize("low", [1, 0])
def test_episode_support_sizes_span_min_to_max_support(data, low):
    learner = make_learner("metasgd", **{**SMALL, "min_support": low})
    ep = learner._episodes(data, TRAIN)
    rng = np.random.default_rng(0)
    sizes = [len(i) for _ in range(60) for i, _ in learner._sample(ep, rng)[0]]
    assert min(sizes) == low and max(sizes) == SMALL["max_support"]


def test_min_query_keeps_users_with_fewer_ratings_and_lengthens_queries(data):
    # the users have 16-30 ratings: a query of exactly 28 keeps only those with 29 or more
    strict = make_learner("metasgd", **{**SMALL, "query": 28})._episodes(data, TRAIN)
    learner = make_learner("metasgd", **{**SMALL, "query": 28, "min_query": 4})
    ep = learner._episodes(data, TRAIN)
    assert 0 < len(strict.pairs) < len(ep.pairs) == len(TRAIN)
    rng = np.random.default_rng(0)
    q_sizes = []
    for _ in range(60):
        support, query = learner._sample(ep, rng)
        for (si, _), (qi, _) in zip(support, query, strict=True):
            assert 1 <= len(si) <= SMALL["max_support"] and not set(si) & set(qi)
            q_sizes.append(len(qi))
    assert min(q_sizes) >= 4 and max(q_sizes) == 28 and len(set(q_sizes)) > 5
    with pytest.raises(ValueError, match="min_query"):
        LearnerConfig(query=10, min_query=11)
    with pytest.raises(ValueError, match="min_query"):
        LearnerConfig(min_query=0)


def test_an_episode_without_support_trains_the_prior(data):
    """min_support=0 puts empty supports in the meta-batch: the vectorised meta-gradient still
    equals the loop's, and the query loss then reaches the prior (user_init) unadapted."""
    learner = _set_up(data, "metasgd")
    empty = (np.zeros(0, np.int64), np.zeros(0))
    support = [empty, *SUPPORT[1:]]
    loss, fast = learner.meta_gradients(support, QUERY)
    ref_loss, slow = reference_meta_gradients(learner, support, QUERY)
    assert abs(loss - ref_loss) < 1e-10 and _max_diff(fast, slow) < 1e-5
    only_empty = learner.meta_gradients([empty], QUERY[:1])[1]
    assert float(only_empty["model.user_init"].abs().sum()) > 1e-6
    with pytest.raises(ValueError, match="min_support"):
        LearnerConfig(min_support=-1)
    with pytest.raises(ValueError, match="min_support"):
        LearnerConfig(min_support=5, max_support=4)


def test_second_order_terms_are_present_in_maml_and_absent_in_fomaml(data):
    so = _set_up(data, "maml")
    fo = _set_up(data, "fomaml")
    assert all(
        torch.equal(a, b)
        for a, b in zip(so.model_.parameters(), fo.model_.parameters(), strict=True)
    )
    _, g_so = so.meta_gradients(SUPPORT, QUERY)
    _, g_fo = fo.meta_gradients(SUPPORT, QUERY)
    # the prior precision only acts through the inner gradient: first order cannot see it
    assert float(g_so["inner.log_prec.user_init"].abs().sum()) > 1e-6
    assert float(g_fo["inner.log_prec.user_init"].abs().sum()) == 0.0
    assert _max_diff({"u": g_so["model.user_init"]}, {"u": g_fo["model.user_init"]}) > 1e-6


def test_metasgd_learns_its_inner_rates_and_maml_does_not(data):
    _, g = _set_up(data, "metasgd").meta_gradients(SUPPORT, QUERY)
    assert g["inner.lr.user_init"].shape == (3, 4)  # per step, per state dimension
    assert float(g["inner.lr.user_init"].abs().sum()) > 1e-6
    _, g = _set_up(data, "maml").meta_gradients(SUPPORT, QUERY)
    assert "inner.lr.user_init" not in g


def test_reptile_update_matches_reference(data):
    learner = _set_up(data, "reptile")
    loss, fast = learner.meta_gradients(SUPPORT, QUERY)
    ref_loss, slow = reference_meta_gradients(learner, SUPPORT, QUERY)
    assert abs(loss - ref_loss) < 1e-10
    assert _max_diff(fast, slow) < 1e-5
    # the adapted start moves towards the task-adapted states: θ0 - mean θ'
    assert float(fast["model.user_init"].abs().sum()) > 1e-6


def _fit(data, name="metasgd", **kw) -> MetaLearner:
    cfg = {**SMALL, "steps": 12, "eval_every": 4, "patience": 50, **kw}
    return make_learner(name, **cfg).fit(data, TRAIN, VAL)


def test_same_seed_gives_same_weights_and_predictions(data):
    a, b, c = _fit(data, seed=3), _fit(data, seed=3), _fit(data, seed=4)
    for (n, pa), pb in zip(
        a.model_.state_dict().items(), b.model_.state_dict().values(), strict=True
    ):
        assert torch.equal(pa, pb), n
    np.testing.assert_array_equal(a.score_many(SUPPORT), b.score_many(SUPPORT))
    assert not np.array_equal(a.score_many(SUPPORT), c.score_many(SUPPORT))


@pytest.mark.parametrize("name", ["metasgd", "melu", "reptile", "finetune"])
def test_fit_never_sees_test_users(data, name):
    """Every rating of users outside train/val replaced: the fitted weights do not move (the
    finetune phase of metasgd's pretrain, the ALS warm start and early stopping included)."""
    train, val = TRAIN[:40], TRAIN[40:]  # users 48..59 play the test users
    test = ~np.isin(data.user, TRAIN)
    flipped = dataclasses.replace(data, rating=np.where(test, 6.0 - data.rating, data.rating))
    assert not np.array_equal(flipped.rating, data.rating)
    cfg = {**SMALL, "steps": 8, "eval_every": 4, "patience": 50}
    a = make_learner(name, **cfg).fit(data, train, val)
    b = make_learner(name, **cfg).fit(flipped, train, val)
    for (n, pa), pb in zip(
        a.model_.state_dict().items(), b.model_.state_dict().values(), strict=True
    ):
        assert torch.equal(pa, pb), n
    np.testing.assert_array_equal(a.score_many(SUPPORT), b.score_many(SUPPORT))


@pytest.fixture(scope="module")
def fitted(data) -> MetaLearner:
    return _fit(data, steps=16)


def test_adapt_does_not_modify_meta_weights(fitted):
    before = {k: v.clone() for k, v in fitted.model_.state_dict().items()}
    inner = {k: v.clone() for k, v in fitted.inner_.state_dict().items()}
    user = fitted.adapt(np.array([1, 2, 3]), np.array([5.0, 1.0, 4.0]))
    fitted.score_many(SUPPORT)
    assert all(torch.equal(before[k], v) for k, v in fitted.model_.state_dict().items())
    assert all(torch.equal(inner[k], v) for k, v in fitted.inner_.state_dict().items())
    assert not np.allclose(user.state, fitted.model_.user_init.detach().numpy())


def test_adapt_trace_scores_and_recommendations(fitted):
    items, ratings = np.array([1, 2, 3, 4]), np.array([5.0, 5.0, 1.0, 2.0])
    user = fitted.adapt(
        items, ratings, query_items=np.array([7, 8]), query_ratings=np.array([4.0, 2.0])
    )
    steps = fitted.config.inner_steps
    assert len(user.trace.support_loss) == steps + 1
    assert len(user.trace.query_loss) == steps + 1
    assert user.trace.support_loss[-1] < user.trace.support_loss[0]  # adaptation fits the support
    assert user.scores.shape == (N_ITEMS,)
    assert user.scores.min() >= 1.0 and user.scores.max() <= 5.0
    assert user.state.shape == (fitted.config.factors + 1,)
    top, _ = user.recommend(5)
    assert len(top) == 5 and not set(top) & set(items)
    # the same user through the batched path gives the same scores
    np.testing.assert_allclose(fitted.score_many([(items, ratings)])[0], user.scores, atol=1e-5)


def test_expected_ratings_are_the_ordinal_mean_for_display(fitted):
    assert fitted.model_.ordinal is not None
    items, ratings = np.array([1, 2, 3]), np.array([5.0, 1.0, 4.0])
    user = fitted.adapt(items, ratings)
    # the point prediction is a median (on the levels, up to the tiny tie-break) ...
    np.testing.assert_allclose(user.scores, np.round(user.scores), atol=5e-3)
    # ... while the expected rating is the mean of the same distribution: from the empty
    # support's raw outputs, computed independently here
    prior = fitted.adapt(np.array([], dtype=np.int64), np.array([]))
    with torch.no_grad():
        z = fitted.model_(torch.arange(N_ITEMS), raw=True)
        cdf = fitted.model_.ordinal.cdf(z).double().numpy()
    np.testing.assert_allclose(prior.expected, 1.0 + (1.0 - cdf).sum(-1), atol=1e-5)
    assert user.expected.shape == (N_ITEMS,)
    assert user.expected.min() >= 1.0 and user.expected.max() <= 5.0
    assert not np.allclose(user.expected, np.round(user.expected))
    top, _ = user.recommend(5)
    np.testing.assert_array_equal(user.display_ratings(top), user.expected[top])
    # without an expected rating, what is shown is the score itself
    plain = AdaptedUser(user.scores, items, ratings)
    np.testing.assert_array_equal(plain.display_ratings(top), user.scores[top])


def test_empty_support_gives_the_meta_learned_prior(fitted):
    user = fitted.adapt(np.array([], dtype=np.int64), np.array([]))
    with torch.no_grad():
        prior = fitted.model_(torch.arange(N_ITEMS)).numpy()
    np.testing.assert_allclose(user.scores, np.clip(prior, 1, 5), atol=1e-5)
    np.testing.assert_allclose(user.state, fitted.model_.user_init.detach().numpy(), atol=1e-7)
    assert all(math.isnan(x) for x in user.trace.support_loss)
    mixed = fitted.score_many([(np.array([], dtype=np.int64), np.array([])), SUPPORT[0]])
    np.testing.assert_allclose(mixed[0], user.scores, atol=1e-5)
    assert not np.allclose(mixed[1], user.scores)


@pytest.mark.parametrize(
    "adapt, prefixes",
    [("user", set()), ("head", {"head."}), ("all", {"head.", "item_enc."})],
)
def test_adapted_groups_are_exactly_the_configured_ones(data, adapt, prefixes):
    learner = _set_up(data, "maml", adapt=adapt, dtype="float32")
    learner.fitted_ = True
    s = learner._pad(SUPPORT)
    fast, _, _ = learner._adapt_batch(s)
    params = dict(learner.model_.named_parameters())
    want = {"user_init"} | {n for n in params if any(n.startswith(p) for p in prefixes)}
    assert set(fast) == want
    for n, v in fast.items():
        moved = (v - params[n].detach().unsqueeze(0)).abs().amax()
        assert float(moved) > 0, f"{n} did not adapt"


def test_fit_early_stops_and_restores_the_best_weights(data):
    # A far too large outer lr makes validation worse after a few steps.
    learner = _fit(  # the prior calibration after training would move best_val_mae_ on
        data,
        steps=60,
        eval_every=2,
        patience=2,
        outer_lr=0.5,
        item_lr=0.5,
        val_metric="mae",
        calibrate_prior=False,
    )
    vals = [h.val_mae for h in learner.history_ if h.val_mae is not None]
    assert len(learner.history_) < 60  # stopped early
    assert learner.best_val_mae_ <= min(vals) + 1e-12
    val = learner._val_batches(data, VAL)
    assert learner._val_metrics(val)[0] == pytest.approx(learner.best_val_mae_, abs=1e-6)
    assert learner.history_[-1].best_val_mae == learner.best_val_mae_


def test_early_stopping_on_validation_nll_keeps_the_lowest_nll_weights(data):
    val = None
    nlls: dict[int, float] = {}
    learner = make_learner(
        "metasgd",
        **{**SMALL, "steps": 40, "eval_every": 2, "patience": 3, "outer_lr": 0.01},
        calibrate_prior=False,  # it would move the final weights' prior after the last check
        dtype="float64",
        val_metric="nll",
        pretrain=False,  # the meta loop's own early stopping, from the warm start
    )

    def record(p: TrainProgress) -> None:
        if p.val_mae is not None:  # weights of this step, before any restore
            nlls[p.step] = learner._val_metrics(val)[1]

    val = learner.setup(data, TRAIN, VAL)._val_batches(data, VAL)
    learner.fit(data, TRAIN, VAL, callback=record)
    assert learner.model_.ordinal is not None and len(nlls) >= 2
    kept = learner._val_metrics(val)[1]
    assert kept <= min(nlls.values()) + 1e-5  # improvements under 1e-5 do not count
    assert 0 < learner.best_step_ < learner.history_[-1].step  # improved, then stopped
    assert nlls[learner.best_step_] == pytest.approx(kept, abs=1e-6)
    # the reported best validation MAE is the MAE of the kept weights, not the lowest MAE
    at_best = [h.val_mae for h in learner.history_ if h.step == learner.best_step_]
    assert learner.best_val_mae_ == pytest.approx(at_best[0], abs=1e-9)
    assert learner._val_metrics(val)[0] == pytest.approx(learner.best_val_mae_, abs=1e-6)


def test_non_finite_loss_raises_floating_point_error(data):
    learner = make_learner("maml", **{**SMALL, "steps": 5, "inner_lr": 1e30, "pretrain": False})
    with pytest.raises(FloatingPointError, match="at step 1 "):
        learner.fit(data, TRAIN, VAL)
    # with pretraining the same inner loop already fails in the finetune phase, as readably
    pretrained = make_learner("maml", **{**SMALL, "steps": 5, "inner_lr": 1e30})
    with pytest.raises(FloatingPointError, match="validation MAE became nan"):
        pretrained.fit(data, TRAIN, VAL)


def test_should_stop_ends_training_and_keeps_progress(data):
    seen: list[TrainProgress] = []

    def stop() -> bool:  # after the third meta-step (should_stop is polled in every phase)
        return sum(p.phase == "meta" for p in seen) >= 3

    learner = make_learner(
        "metasgd", **{**SMALL, "steps": 50, "eval_every": 100, "pretrain": False}
    )
    learner.fit(data, TRAIN, VAL, callback=seen.append, should_stop=stop)
    warm = [p for p in seen if p.phase == "warm_start"]
    meta = [p for p in seen if p.phase == "meta"]
    assert seen == warm + meta and warm[-1].step == warm[-1].total == 100  # warm start first
    assert [p.step for p in meta] == [1, 2, 3]
    assert learner.fitted_ and len(learner.history_) == 3
    assert all(p.total == 50 and p.train_loss is not None for p in meta)
    learner.score_many(SUPPORT)

    never = make_learner("metasgd", **{**SMALL, "steps": 50}).fit(
        data, TRAIN, VAL, should_stop=lambda: True
    )
    assert not never.fitted_
    with pytest.raises(NotFittedError):
        never.adapt(np.array([1]), np.array([3.0]))


def test_to_state_round_trips_through_weights_only_load(fitted):
    buf = io.BytesIO()
    torch.save(fitted.to_state(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    again = MetaLearner.from_state(state)
    assert again.config == fitted.config
    assert again.fitted_ and again.n_items_ == N_ITEMS
    np.testing.assert_array_equal(again.score_many(SUPPORT), fitted.score_many(SUPPORT))
    a = again.adapt(*SUPPORT[0])
    b = fitted.adapt(*SUPPORT[0])
    np.testing.assert_array_equal(a.state, b.state)
    assert [h.step for h in again.history_] == [h.step for h in fitted.history_]


def test_from_state_rejects_foreign_dicts(fitted):
    with pytest.raises(ValueError, match="format"):
        MetaLearner.from_state({"model": {}})
    state = {**fitted.to_state(), "version": 99}
    with pytest.raises(ValueError, match="version"):
        MetaLearner.from_state(state)


def test_user_states_are_adapted_vectors(fitted, data):
    states = fitted.user_states(data, np.array([0, 5, 9]), k=5)
    assert states.shape == (3, fitted.config.factors + 1)
    assert np.isfinite(states).all()
    assert not np.allclose(states[0], states[1])
    np.testing.assert_array_equal(states, fitted.user_states(data, np.array([0, 5, 9]), k=5))


def test_finetune_trains_without_the_meta_objective(data):
    # no validation users: nothing to restore, so the trained weights are kept
    learner = make_learner("finetune", **{**SMALL, "steps": 8, "meta_batch": 64})
    learner.fit(data, TRAIN, np.array([], dtype=np.int64))
    fresh = make_learner("finetune", **SMALL).setup(data, TRAIN, np.array([], dtype=np.int64))
    for (n, a), b in zip(
        learner.inner_.state_dict().items(), fresh.inner_.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), f"{n} is an inner-loop quantity and must not be meta-learned"
    assert not torch.equal(learner.model_.user_init, fresh.model_.user_init)
    user = learner.adapt(np.array([1, 2]), np.array([5.0, 5.0]))
    assert user.trace.support_loss[-1] < user.trace.support_loss[0]


def test_pretrain_starts_meta_training_from_the_finetune_solution(data):
    none = np.array([], dtype=np.int64)  # no validation: each phase runs all its steps
    reported: list[TrainProgress] = []

    def stop_after_pretraining() -> bool:
        return any(p.phase == "pretrain" and p.step == 6 for p in reported)

    cfg = {**SMALL, "steps": 6}
    paused = make_learner("metasgd", pretrain=True, **cfg)
    paused.fit(data, TRAIN, none, callback=reported.append, should_stop=stop_after_pretraining)
    assert [p.phase for p in reported][-1] == "pretrain"  # no meta-step ran
    assert not paused.fitted_ and paused.history_ == []
    finetune = make_learner("finetune", **{**cfg, "meta_batch": 1024}).fit(data, TRAIN, none)
    plain = make_learner("metasgd", **cfg).setup(data, TRAIN, none)
    for n, w in finetune.model_.state_dict().items():
        assert torch.equal(paused.model_.state_dict()[n], w), n
    assert not torch.equal(plain.model_.user_init, finetune.model_.user_init)

    seen: list[TrainProgress] = []
    full = make_learner("metasgd", pretrain=True, **cfg).fit(
        data, TRAIN, none, callback=seen.append
    )
    assert [p.step for p in full.history_] == [1, 2, 3, 4, 5, 6]
    assert all(p.phase == "meta" for p in full.history_)  # the finetune phase is not kept
    warm = [p for p in seen if p.phase == "warm_start"]
    assert seen[: len(warm)] == warm and [p.step for p in warm][-1] == 100  # the ALS first
    assert [(p.phase, p.step) for p in seen[len(warm) :]] == [
        ("pretrain", s) for s in range(1, 7)
    ] + [("meta", s) for s in range(1, 7)]
    assert not torch.equal(full.model_.head.out.weight, finetune.model_.head.out.weight)


def test_meta_params_inner_learns_only_the_adaptation_on_the_finetune_network(data):
    none = np.array([], dtype=np.int64)
    cfg = {**SMALL, "steps": 6}
    finetune = make_learner("finetune", **{**cfg, "meta_batch": 1024}).fit(data, TRAIN, none)
    warm = make_learner("metasgd", **cfg).setup(data, TRAIN, none)
    learner = make_learner("metasgd", pretrain=True, meta_params="inner", **cfg)
    learner.fit(data, TRAIN, none)
    assert [p.step for p in learner.history_] == [1, 2, 3, 4, 5, 6]
    # the pretraining phase trains the whole network (it is not frozen by meta_params)...
    assert not torch.equal(finetune.model_.head.out.weight, warm.model_.head.out.weight)
    # ...and the meta phase moves only the start state and the inner-loop quantities
    for n, w in finetune.model_.state_dict().items():
        same = torch.equal(learner.model_.state_dict()[n], w)
        assert same == (n != "user_init"), n
    moved = [
        n
        for n, w in warm.inner_.state_dict().items()
        if not torch.equal(learner.inner_.state_dict()[n], w)
    ]
    assert moved, "meta-training left every inner-loop quantity where it started"
    with pytest.raises(ValueError, match="meta_params"):
        LearnerConfig(meta_params="head")


def test_bad_support_is_a_clear_error(fitted):
    with pytest.raises(ValueError, match="out of range"):
        fitted.adapt(np.array([N_ITEMS]), np.array([3.0]))
    with pytest.raises(ValueError, match="finite"):
        fitted.adapt(np.array([1]), np.array([np.nan]))
    with pytest.raises(NotFittedError):
        make_learner("metasgd", device="cpu").score_many(SUPPORT)


def test_presets_registry_and_config_validation():
    assert preset("melu").adapt == "head" and preset("melu").inner_lr == 5e-6
    assert preset("melu").outer_lr == 5e-5 and preset("melu").meta_batch == 32
    assert make_learner("fomaml").first_order and not make_learner("maml").first_order
    learner = methods.make_method("metasgd", seed=2, device="cpu")
    assert isinstance(learner, MetaLearner) and learner.config.seed == 2
    assert make_learner("maml", device="cpu", inner_steps=2).config.inner_steps == 2
    with pytest.raises(ValueError, match="unknown learner"):
        make_learner("nope")
    with pytest.raises(ValueError, match="adapt"):
        LearnerConfig(adapt="items")
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset("maml").steps = 3  # type: ignore[misc]


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    want = "cuda" if torch.cuda.is_available() else None
    if want is None:
        mps = getattr(torch.backends, "mps", None)
        want = "mps" if mps is not None and mps.is_available() else "cpu"
    assert resolve_device("auto").type == want
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device|unsupported device"):
        resolve_device("tpu-ish")


def test_compare_with_baselines_is_the_model_check_with_the_learners_seed(data, fitted):
    from metarec_core.evaluation.check import CheckConfig, ModelCheck, run_model_check
    from metarec_core.methods.meta import CHECK_BASELINES, BaselineCheck

    assert BaselineCheck is ModelCheck  # the name it had here still works
    check = fitted.compare_with_baselines(data, TRAIN, VAL)
    cfg = CheckConfig(seed=fitted.config.seed)
    assert check == run_model_check(fitted, data, TRAIN, VAL, config=cfg)
    assert check.baselines == CHECK_BASELINES and check.ks == (1, 3, 5, 10)
    assert fitted.compare_with_baselines(data, TRAIN, None) is None


def test_one_newton_step_is_the_closed_form_ridge_fold_in(data):
    """Without decision layers the model is biased MF; one full Gauss-Newton step of the user
    state is then the ridge solution s0 + (QᵀQ + Λ)⁻¹ Qᵀ (r - r̂(s0)), on any rating scale,
    and further steps stay there. The diagonal solver does not reach it in one step."""
    for scale in (1.0, 10.0):  # ratings x10: the same solution, x10 in the state
        learner = _set_up(
            data, "maml", hidden=(), inner_solver="newton", inner_steps=1, outer_loss="mse"
        )
        items, ratings = np.array([1, 2, 3, 7, 9]), np.array([4.0, 5.0, 2.0, 1.0, 3.0]) * scale
        with torch.no_grad():
            learner.model_.item_enc.mu.fill_(3.0 * scale)
        s0 = learner.model_.user_init.detach().clone()
        feats = learner.model_.item_enc(torch.as_tensor(items)).detach()
        Q = torch.cat([feats[:, 1:], torch.ones(len(items), 1, dtype=feats.dtype)], 1)
        r = torch.as_tensor(ratings)
        resid = r - learner.model_(torch.as_tensor(items), raw=True).detach()
        lam = learner.inner_.log_prec["user_init"].exp().detach()
        ridge = s0 + torch.linalg.solve(Q.T @ Q + torch.diag(lam), Q.T @ resid)
        one = _adapted_state(learner, items, ratings)
        np.testing.assert_allclose(one, ridge.numpy(), atol=1e-8)
        more = _set_up(
            data, "maml", hidden=(), inner_solver="newton", inner_steps=4, outer_loss="mse"
        )
        more.model_.load_state_dict(learner.model_.state_dict())
        np.testing.assert_allclose(_adapted_state(more, items, ratings), ridge.numpy(), atol=1e-8)
    diag = _set_up(
        data, "maml", hidden=(), inner_steps=1, outer_loss="mse", inner_solver="diagonal"
    )
    diag.model_.load_state_dict(learner.model_.state_dict())
    assert np.abs(_adapted_state(diag, items, ratings) - ridge.numpy()).max() > 1e-3


def _adapted_state(learner: MetaLearner, items: np.ndarray, ratings: np.ndarray) -> np.ndarray:
    fast, _, _ = learner._adapt_batch(learner._pad([(items, ratings)]))
    return fast["user_init"][0].numpy()


def test_the_newton_step_fits_expected_ratings_whatever_scale_the_cut_points_learned(data):
    """With an ordinal output whose cut points were squeezed (as plain training can leave
    them: z = 3 already reads as the top level), a user who rates twenty items 3 is adapted to
    expect 3; fitting z to the ratings instead (the diagonal step) expects far more."""
    items, ratings = np.arange(20, 40), np.full(20, 3.0)
    expected = {}
    for solver in ("newton", "diagonal"):
        learner = _set_up(data, "maml", inner_solver=solver, inner_steps=5)
        out = learner.model_.ordinal
        with torch.no_grad():
            out.log_gaps.fill_(math.log(0.5))  # cut points 1.5, 2, 2.5, 3: half the scale's
            out.log_spread.fill_(math.log(0.2))
        fast, _, _ = learner._adapt_batch(learner._pad([(items, ratings)]))
        state = {k: v[0] for k, v in fast.items()}
        z = learner._predict(state, torch.as_tensor(items), None).detach()
        expected[solver] = float(out.mean(z).mean())
    assert abs(expected["newton"] - 3.0) < 0.25
    assert expected["diagonal"] - 3.0 > 0.5


def test_newton_steps_only_where_the_user_state_alone_adapts_on_the_posterior():
    with pytest.raises(ValueError, match="inner_solver"):
        LearnerConfig(inner_solver="exact")
    assert LearnerConfig().newton_steps
    assert not LearnerConfig(inner_solver="diagonal").newton_steps
    assert not LearnerConfig(adapt="head").newton_steps  # the diagonal step there
    from metarec_core.methods.meta import preset

    assert not preset("melu").newton_steps


@pytest.mark.parametrize("hidden", [(), (8,), (8, 8)])
def test_the_heads_written_out_jacobian_equals_autograds(hidden):
    from torch.func import jacfwd

    from metarec_core.methods.meta.model import DecisionHead

    torch.manual_seed(0)
    head = DecisionHead(3, hidden).double()
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, 0.5)  # the output layer starts at zero: move it
    state = torch.randn(4, dtype=torch.float64)
    feats = torch.randn(6, 1 + 3 + (hidden[0] if hidden else 0), dtype=torch.float64)
    value, jac = head.value_and_jacobian(state, feats)
    torch.testing.assert_close(value, head(state, feats))
    torch.testing.assert_close(jac, jacfwd(lambda s: head(s, feats))(state))
    assert float(jac[:, :3].abs().sum()) > 0


def test_prior_calibration_undoes_a_prior_that_is_far_too_weak(data):
    """After training, the prior precision's scale is checked on the validation users: one
    made 8x too weak by hand is scaled back up, and the criterion is no worse than before."""
    from metarec_core.methods.meta.trainer import PRIOR_SCALES

    learner = make_learner(
        "maml", **{**SMALL, "steps": 0, "calibrate_prior": True, "inner_solver": "newton"}
    )
    learner.fit(data, TRAIN, VAL)
    assert learner.prior_scale_ in PRIOR_SCALES
    val = learner._val_batches(data, VAL)
    key = "user_init"
    right = learner.inner_.log_prec[key].detach().clone()
    with torch.no_grad():
        learner.inner_.log_prec[key].sub_(math.log(8.0))
    weak = learner._val_scores(val)[1]
    learner._calibrate_prior(val, weak)
    assert learner.prior_scale_ >= 2.0
    assert learner._val_scores(val)[1] < weak
    shift = float((learner.inner_.log_prec[key] - right + math.log(8.0)).mean())
    assert shift == pytest.approx(math.log(learner.prior_scale_))
