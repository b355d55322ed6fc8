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
    assert s.sources == [isn.BY_HAND] and not s.can_rate(first)
    with pytest.raises(ValueError, match="rated this item already"):
        s.add_rating(first, 2.0)
    with pytest.raises(ValueError, match="outside the scale"):
        s.add_rating(int(s.task.users[1]), 9.0)
    s.add_next()
    assert s.users == [first, int(s.task.users[1])]
    assert [r.kind for r in s.sources] == ["hand", "replay"]


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


# ---------------------------------------------------------------------------------------------
# after each rating: the distribution of predictions, the map of items, a persona's ratings


def test_rating_distribution_bins_on_the_scales_levels():
    from metarec_core.data.dataset import RatingScale

    five = RatingScale(1.0, 5.0, 1.0)
    d = isn.rating_distribution(np.array([1.0, 1.2, 2.6, 4.49, 4.51, 5.0, 9.0, -3.0]), five)
    assert d.centres.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    # -3 counts as 1 and 9 as 5 (clipped to the scale); 4.49 is a 4, 4.51 a 5
    assert (d.shares * 8).round().tolist() == [3, 0, 1, 1, 3]
    assert d.mean == pytest.approx(np.mean([1, 1.2, 2.6, 4.49, 4.51, 5, 5, 1]))
    halves = isn.rating_distribution(np.array([0.5, 0.75, 5.0]), RatingScale(0.5, 5.0, 0.5))
    assert len(halves.centres) == 10 and halves.shares.sum() == pytest.approx(1.0)
    cont = isn.rating_distribution(np.linspace(0, 1, 101), RatingScale(0.0, 1.0, 0.0))
    assert len(cont.centres) == 10 and cont.shares.sum() == pytest.approx(1.0)
    assert cont.centres[0] == pytest.approx(0.05)


def test_each_model_gives_a_distribution_that_follows_its_scores(data, models):
    s = isn.ItemSession.held_out(data, models, int(isn.heldout_items(data, models.fold)[0]))
    for name in models.names:
        d = s.distribution(name)
        assert d.shares.sum() == pytest.approx(1.0)
        assert d.mean == pytest.approx(float(s.view.scores[name].mean()))


def test_a_map_of_the_training_items_for_the_models_with_item_states(data, models):
    from metarec_core.interactive.projection import rarest_genres

    assert set(models.mapped) == {"mf_foldin_levels", isn.ITEM_PLAYGROUND_LEARNER}
    s = isn.ItemSession.described(data, models, "Space Opera (2024)", ["Sci-Fi"])
    assert s.item_map("content") is None and len(s.map_path("content")) == 0
    for name in models.mapped:
        m = s.item_map(name)
        assert m is s.item_map(name)  # made once
        # only training items, never a held-out one; each labelled by a genre it has
        assert set(m.items.tolist()) <= set(models.fold.train_items.tolist())
        assert m.points.shape == (len(m.items), 2)
        assert m.genres == rarest_genres(data, m.items)
        assert all(
            g in data.items.genre_list(int(i)) for i, g in zip(m.items, m.genres, strict=True)
        )
        assert s.map_path(name).shape == (1, 2)
    first = {n: s.map_path(n)[-1].copy() for n in models.mapped}
    for user in [m.user for m in s.audience("content")][:3]:
        s.add_rating(user, 1.0)
    for name in models.mapped:
        path = s.map_path(name)
        assert path.shape == (4, 2) and np.allclose(path[0], first[name])
        assert not np.allclose(path[-1], path[0])  # its ratings move it
    s.reset()
    assert all(s.map_path(n).shape == (1, 2) for n in models.mapped)


def test_a_training_item_described_by_its_own_ratings_lands_on_its_own_point(data, models):
    name = "mf_foldin_levels"
    m = models.item_map(name, data)
    j = int(m.items[0])
    seen = data.item == j
    title, genres = str(data.items.titles[j]), tuple(data.items.genre_list(j))
    item = isn.NewItem.of(title, genres, data.user[seen], data.rating[seen])
    state = models.states(item)[name]
    assert np.allclose(m.place(state[None])[0], m.points[0])


def test_the_map_reads_no_rating_of_a_held_out_item(data, models, monkeypatch):
    from metarec_core.interactive import projection

    seen = []
    real = projection.fit_item_map

    def spy(model, d, train_items, **kw):
        seen.append(d)
        return real(model, d, train_items, **kw)

    monkeypatch.setattr(isn, "fit_item_map", spy)
    fresh = isn.merge_models([models])
    fresh._maps.clear()
    fresh.item_map("mf_foldin_levels", data)
    (d,) = seen
    assert not np.isin(d.item, models.fold.test_items).any()


def test_a_taste_persona_rates_through_the_best_matching_real_users(data, models):
    item = int(isn.heldout_items(data, models.fold)[0])
    s = isn.ItemSession.described(data, models, "Space Opera (2024)", ["Sci-Fi"])
    affinity, means = s._user_tastes()
    sci = list(data.items.genre_names).index("Sci-Fi")
    for _ in range(6):
        user, _ = s.persona_rater(["Sci-Fi"])
        # the most Sci-Fi-loving user who may still rate it
        free = [u for u in range(data.n_users) if s.can_rate(u)]
        assert affinity[user, sci] == max(affinity[u, sci] for u in free)
        s.add_persona_rating(["Sci-Fi"])
        assert s.sources[-1] == isn.RatingSource("persona", ("Sci-Fi",), ())
    lovers = np.array(s.users)
    assert (affinity[lovers, sci] > 0).all()
    # a Sci-Fi lover rates a Sci-Fi item above their own mean, on average
    assert np.mean(s.ratings) > np.mean(means[lovers]) + 0.5
    hater = isn.ItemSession.described(data, models, "Space Opera (2024)", ["Sci-Fi"])
    for _ in range(6):
        hater.add_persona_rating([], ["Sci-Fi"])
    assert np.mean(hater.ratings) < np.mean(means[np.array(hater.users)]) - 0.5
    # the same rater and noise on an item without the genre: a rating a push lower
    plain = isn.ItemSession.described(data, models, "Love Story", ["Romance"])
    again = isn.ItemSession.described(data, models, "Space Opera (2024)", ["Sci-Fi"])
    (u1, r1), (u2, r2) = plain.persona_rater(["Sci-Fi"]), again.persona_rater(["Sci-Fi"])
    assert u1 == u2 == int(lovers[0])
    assert r2 >= r1 + 1 or r2 == data.scale.high
    # never a hidden rater of a held-out item, and the same choice twice (seeded)
    h = isn.ItemSession.held_out(data, models, item)
    a = [h.persona_rater(["Sci-Fi"])[0] for _ in range(2)]
    assert a[0] == a[1] and a[0] not in set(h.hidden_users.tolist())
    with pytest.raises(ValueError, match="unknown genre"):
        s.persona_rater(["Western"])
    with pytest.raises(ValueError, match="at least one liked or disliked"):
        s.persona_rater([])


def test_models_saved_and_loaded_predict_alike_and_a_leaky_file_is_refused(data, models, tmp_path):
    from metarec_core.checkpoint import CheckpointError, save_checkpoint

    assert isn.load_models(data, tmp_path) is None  # nothing there
    paths = isn.save_models(models, data, tmp_path)
    assert sorted(p.name for p in paths) == sorted(f"{n}.pt" for n in models.names)
    back = isn.load_models(data, tmp_path)
    assert back.names == models.names and back.fingerprint == data.fingerprint()
    assert np.array_equal(back.fold.test_items, models.fold.test_items)
    item = isn.NewItem.of("Space Opera (2024)", ("Sci-Fi",), [0, 1], [5.0, 4.0])
    a, b = back.scores(item), models.scores(item)
    assert all(np.allclose(a[n], b[n]) for n in models.names)
    with pytest.raises(CheckpointError):  # another split seed: other held-out items
        isn.load_models(data, tmp_path, seed=1)
    # a model fitted with the held-out items' ratings in its data is refused
    leaky = isn.fit_item_models(data, names=("content",))
    leaky_model = leaky.models["content"]
    leaky_model.fit(data, np.arange(data.n_items))
    save_checkpoint(leaky_model, data, tmp_path / "content.pt")
    with pytest.raises(CheckpointError):
        isn.load_models(data, tmp_path)


def test_the_cli_writes_the_pages_models_for_load_models(tmp_path, monkeypatch, capsys):
    from helpers import tiny_frames, write_frames

    from metarec_core.cli import main
    from metarec_core.data.io import load_ratings

    monkeypatch.setattr(isn, "LEARNER_SETTINGS", TINY_ITEM_LEARNER)
    r, i = write_frames(tmp_path, *tiny_frames())
    out = tmp_path / "item_models"
    args = ["train", str(r), "--items", str(i), "--cold", "items", "--new-item-page"]
    assert main([*args, "--out", str(out), "--seed", "0"]) == 0
    assert "fit item_metasgd" in capsys.readouterr().out
    back = isn.load_models(load_ratings(r, items=i), out, seed=0)
    assert back is not None and back.names == isn.ITEM_PLAYGROUND_METHODS
    assert main([*args, "--out", str(out), "--steps", "5"]) == 2
    assert "no --steps" in capsys.readouterr().err
    assert main(["train", str(r), "--new-item-page", "--out", str(out)]) == 2
    assert "needs --cold items" in capsys.readouterr().err


def test_what_if_for_one_item_compares_the_models_audiences(data, models):
    s = isn.ItemSession.held_out(data, models, int(isn.heldout_items(data, models.fold)[0]))
    for _ in range(3):
        s.add_next()
    c = s.compare()
    assert c.names == models.names
    for name in models.names:
        # the audiences now, as the page shows them (raters already left out)
        assert c.top[name].tolist() == [m.user for m in s.audience(name)]
        assert len(c.kept[name]) == 3
        others = set().union(*(set(c.top[o].tolist()) for o in c.names if o != name))
        assert not set(c.only_in[name].tolist()) & others
    assert np.allclose(np.diag(c.pairwise_overlap), 1.0)
    assert set(c.in_all.tolist()) <= set(c.top["content"].tolist())
    # content reads the description only: its audience never moves with the ratings
    assert c.stability["content"].kind == "never_adapts"
    assert c.stability["mf_foldin_levels"].kind != "never_adapts"
    with pytest.raises(ValueError, match="at least two models"):
        s.compare(["content"])
