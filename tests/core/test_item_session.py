"""The new-item playground's core (metarec_core.interactive.item_session): held-out items never
in a fit, the seeded replay order, the audience and the errors on the hidden raters."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from helpers import tiny_dataset

from metarec_core.interactive import item_session as isn
from metarec_core.methods.baselines.items import ItemBias, ItemContent
from metarec_core.protocol.item_splits import item_folds

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# a few meta-steps of a small network: seconds on one core
TINY_ITEM_LEARNER = dict(
    steps=10, eval_every=5, patience=1, factors=4, embedding_dim=8, hidden=(16,), meta_batch=16,
    val_repeats=1, device="cpu", pretrain=False,
)  # fmt: skip
BASELINES_ONLY = ("content", "item_bias_levels")


@pytest.fixture(scope="module")
def data():
    return tiny_dataset()


@pytest.fixture(scope="module")
def models(data):
    """The playground's item models on the tiny data, the learner tiny (fitted once)."""
    return isn.fit_item_models(data, settings=TINY_ITEM_LEARNER)


class Recording:
    """A factory whose methods record the data and items each fit saw."""

    def __init__(self) -> None:
        self.fits: list[tuple[object, np.ndarray, np.ndarray]] = []

    def __call__(self, name, seed, settings):
        rec = self
        base = {"content": ItemContent, "item_bias": ItemBias}[name]

        class Spy(base):
            def fit(self, data, train_items, val_items=None, **kw):
                rec.fits.append((data, np.asarray(train_items), np.asarray(val_items)))
                return super().fit(data, train_items, val_items, **kw)

        return Spy(seed=seed)


def test_heldout_items_are_the_protocols_fold_and_never_reach_a_fit(data):
    fold = isn.heldout_item_fold(data, seed=0)
    assert np.array_equal(fold.test_items, item_folds(data, isn.ITEM_FOLDS, 0)[0].test_items)
    picks = isn.heldout_items(data, fold)
    assert len(picks) > 0 and set(picks.tolist()) <= set(fold.test_items.tolist())
    counts = data.counts_per_item()[picks]
    assert (counts >= isn.MIN_REVEAL + isn.ITEM_QUERY).all()
    assert (np.diff(counts) <= 0).all()  # most rated first
    spy = Recording()
    got = isn.fit_item_models(data, names=("content", "item_bias"), factory=spy)
    assert len(spy.fits) == 2 and np.array_equal(got.fold.test_items, fold.test_items)
    for seen, train, val in spy.fits:
        # not one rating of a held-out item is in the data any fit gets
        assert not np.isin(seen.item, fold.test_items).any()
        assert seen.n_ratings == data.n_ratings - int(np.isin(data.item, fold.test_items).sum())
        assert not np.intersect1d(train, fold.test_items).size
        assert not np.intersect1d(val, fold.test_items).size


def test_a_session_refuses_an_item_the_models_saw(data, models):
    seen_item = int(models.fold.train_items[0])
    with pytest.raises(ValueError, match="is not held out"):
        isn.ItemSession.held_out(data, models, seen_item)


def test_replay_is_the_protocols_seeded_order_and_deterministic(data, models):
    item = int(isn.heldout_items(data, models.fold)[0])
    a, b = isn.replay_task(data, item, seed=0), isn.replay_task(data, item, seed=0)
    assert np.array_equal(a.users, b.users) and np.array_equal(a.ratings, b.ratings)
    other = isn.replay_task(data, item, seed=1)
    assert not np.array_equal(a.users, other.users)  # the seed matters
    assert sorted(a.users.tolist()) == sorted(other.users.tolist())  # the same raters
    hidden = a.query[0]
    assert len(hidden) == isn.ITEM_QUERY and not set(hidden.tolist()) & set(
        a.support(3)[0].tolist()
    )
    s1 = isn.ItemSession.held_out(data, models, item)
    s2 = isn.ItemSession.held_out(data, models, item)
    for _ in range(4):
        s1.add_next()
        s2.add_next()
    assert s1.users == s2.users == a.users[:4].tolist()
    assert s1.ratings == a.ratings[:4].astype(float).tolist()
    assert set(s1.hidden_users.tolist()) == set(hidden.tolist())


def test_audience_excludes_the_raters_and_is_sorted(data, models):
    item = int(isn.heldout_items(data, models.fold)[0])
    s = isn.ItemSession.held_out(data, models, item)
    for name in models.names:  # k = 0: metadata alone, a full audience for every model
        assert len(s.audience(name)) == isn.AUDIENCE_N
    for _ in range(3):
        s.add_next()
    for name in models.names:
        aud = s.audience(name)
        users = [m.user for m in aud]
        assert len(aud) == isn.AUDIENCE_N and not set(users) & set(s.users)
        assert len(set(users)) == len(users)
        scores = [m.predicted for m in aud]
        assert scores == sorted(scores, reverse=True)
        assert [m.rank for m in aud] == list(range(1, len(aud) + 1))
        # nobody left out scores higher than the last one in (raters aside)
        rest = np.setdiff1d(np.arange(data.n_users), np.r_[users, s.users])
        assert s.view.scores[name][rest].max() <= scores[-1]
        assert all(mv is None or isinstance(mv, int) for mv in (m.movement for m in aud))
    # the function itself: ties by user index, raters out
    u, sc = isn.audience(np.array([3.0, 5.0, 5.0, 4.0]), np.array([1]), n=3)
    assert u.tolist() == [2, 3, 0] and sc.tolist() == [5.0, 4.0, 3.0]


def test_each_rating_updates_scores_errors_and_the_curve(data, models):
    item = int(isn.heldout_items(data, models.fold)[0])
    s = isn.ItemSession.held_out(data, models, item)
    assert [p.n for p in s.curve] == [0] and set(s.view.errors) == set(models.names)
    before = {n: v.copy() for n, v in s.view.scores.items()}
    s.add_next()
    s.add_next()
    assert [p.n for p in s.curve] == [0, 1, 2] and s.view.n_ratings == 2
    # the item's ratings move a model that reads them (content ignores them by design)
    assert not np.array_equal(before["item_bias_levels"], s.view.scores["item_bias_levels"])
    assert np.array_equal(before["content"], s.view.scores["content"])
    hu, hr = s.task.query
    for name, e in s.view.errors.items():
        pred = s.view.scores[name][hu]
        assert e.mae == pytest.approx(np.abs(pred - hr).mean())
        assert e.ndcg is None or 0.0 <= e.ndcg <= 1.0
    s.reset()
    assert s.users == [] and [p.n for p in s.curve] == [0] and s.has_next()
    assert all(np.array_equal(before[n], s.view.scores[n]) for n in before)


def test_ratings_by_hand_and_their_limits(data, models):
    item = int(isn.heldout_items(data, models.fold)[0])
    s = isn.ItemSession.held_out(data, models, item)
    hidden = int(s.hidden_users[0])
    assert not s.can_rate(hidden)
    with pytest.raises(ValueError, match="hidden raters"):
        s.add_rating(hidden, 4.0)
    first = int(s.task.users[0])
    s.add_rating(first, 1.0)  # the first replayed rater, by hand: the replay skips them
    assert s.from_replay == [False] and not s.can_rate(first)
    with pytest.raises(ValueError, match="rated this item already"):
        s.add_rating(first, 2.0)
    with pytest.raises(ValueError, match="outside the scale"):
        s.add_rating(int(s.task.users[1]), 9.0)
    s.add_next()
    assert s.users == [first, int(s.task.users[1])] and s.from_replay == [False, True]


def test_a_described_item_has_an_audience_and_no_errors(data, models):
    s = isn.ItemSession.described(data, models, "  Space Opera (2024) ", ["Sci-Fi"])
    assert s.title == "Space Opera (2024)" and s.item is None and not s.has_next()
    assert s.view.errors is None and s.curve == []
    with pytest.raises(ValueError, match="only a held-out real item"):
        s.add_next()
    first = [m.user for m in s.audience(isn.ITEM_PLAYGROUND_LEARNER)]
    s.add_rating(first[0], 1.0)
    after = [m.user for m in s.audience(isn.ITEM_PLAYGROUND_LEARNER)]
    assert first[0] not in after
    with pytest.raises(ValueError, match="unknown genre 'Western'"):
        isn.ItemSession.described(data, models, "x", ["Western"])


def test_models_travel_by_pickle_and_keep_a_lock(models, data):
    back = pickle.loads(pickle.dumps(models))  # a worker process sends them back this way
    assert back.names == models.names and back._lock is not models._lock
    item = int(isn.heldout_items(data, models.fold)[0])
    a = isn.ItemSession.held_out(data, back, item).view.scores
    b = isn.ItemSession.held_out(data, models, item).view.scores
    assert all(np.allclose(a[n], b[n]) for n in models.names)


def test_the_fit_job_fits_in_the_background_and_can_be_cancelled(data):
    job = isn.ItemFitJob(data, names=BASELINES_ONLY).start()
    snap = job.wait(120)
    assert snap.status == "done", snap.error
    assert job.result.names == BASELINES_ONLY and job.matches(data) and not job.matches(data, 1)
    assert job._portable() is not None  # it may run in a worker process

    stopped = isn.ItemFitJob(data, names=BASELINES_ONLY)
    stopped.cancel()
    stopped.start()
    assert stopped.wait(30).status == "cancelled"
    assert isn.fit_item_models(data, names=BASELINES_ONLY, should_stop=lambda: True) is None


def test_shared_models_are_found_by_content_and_seed(data, models):
    isn.clear_shared_models()
    assert isn.shared_models(data) is None
    isn.share_models(models)
    assert isn.shared_models(tiny_dataset()) is models  # same content, another object
    assert isn.shared_models(data, names=("content",)) is None  # another part
    assert isn.shared_models(data, seed=1) is None
    assert isn.shared_models(tiny_dataset(seed=1)) is None
    isn.clear_shared_models()


def test_the_learner_joins_the_baselines_without_losing_the_ratings(data, models):
    assert isn.playground_parts() == (isn.ITEM_PLAYGROUND_BASELINES, (isn.ITEM_PLAYGROUND_LEARNER,))
    base = isn.ItemModels(
        models.fingerprint,
        models.seed,
        models.fold,
        {n: models.models[n] for n in isn.ITEM_PLAYGROUND_BASELINES},
        {},
    )
    rest = isn.ItemModels(
        models.fingerprint,
        models.seed,
        models.fold,
        {isn.ITEM_PLAYGROUND_LEARNER: models.models[isn.ITEM_PLAYGROUND_LEARNER]},
        {},
    )
    joined = isn.merge_models([base, rest])
    assert joined.names == models.names
    item = int(isn.heldout_items(data, models.fold)[0])
    s = isn.ItemSession.held_out(data, base, item)
    s.add_next()
    s.add_next()
    s.use_models(joined)
    full = isn.ItemSession.held_out(data, models, item)
    full.add_next()
    full.add_next()
    assert s.users == full.users and [p.n for p in s.curve] == [0, 1, 2]
    for a, b in zip(s.curve, full.curve, strict=True):
        assert {n: e.mae for n, e in a.errors.items()} == {n: e.mae for n, e in b.errors.items()}
    other = isn.ItemModels(models.fingerprint, 1, item_folds(data, 5, 1)[0], {}, {})
    with pytest.raises(ValueError, match="other data or held-out items"):
        s.use_models(other)
    with pytest.raises(ValueError, match="cannot be merged"):
        isn.merge_models([base, other])
