"""The playground's computations (metarec_core.interactive: session, personas, projection), on a
tiny genre-driven dataset."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from helpers import tiny_dataset, tiny_split

from metarec_core.interactive import personas
from metarec_core.interactive import projection as proj_mod
from metarec_core.interactive import session as pg
from metarec_core.methods.baselines import MFFoldIn, Popularity, UserBias


@pytest.fixture(scope="module")
def data():
    return tiny_dataset()


@pytest.fixture(scope="module")
def split(data):
    return tiny_split(data)


@pytest.fixture(scope="module")
def fitted(data, split):
    return {
        "mf_foldin": MFFoldIn(seed=0).fit(data, split.train_users, split.val_users),
        "user_bias": UserBias(seed=0).fit(data, split.train_users, split.val_users),
        "popularity": Popularity(seed=0).fit(data, split.train_users),
    }


def test_heldout_persona_hides_the_protocols_query(data, split):
    users = personas.heldout_candidates(data, split.val_users)
    assert len(users) > 0 and set(users) <= set(split.val_users)
    counts = data.counts_per_user()[users]
    assert (np.diff(counts) <= 0).all()  # most active first
    p = personas.heldout_persona(data, int(users[0]), hidden=10, seed=0)
    assert p.kind == "heldout" and p.user == int(users[0])
    assert len(p.hidden_items) == 10
    assert len(p.reveal_items) + 10 == counts[0]
    assert not set(p.reveal_items) & set(p.hidden_items)
    # the persona's ratings are the user's real ratings
    mine = data.user == users[0]
    truth = dict(zip(data.item[mine].tolist(), data.rating[mine].tolist(), strict=True))
    for i, r in zip(p.hidden_items, p.hidden_ratings, strict=True):
        assert truth[int(i)] == pytest.approx(r)
    again = personas.heldout_persona(data, int(users[0]), hidden=10, seed=0)
    np.testing.assert_array_equal(again.reveal_items, p.reveal_items)


def test_heldout_persona_needs_enough_ratings(data):
    with pytest.raises(ValueError, match="at least 31"):
        personas.heldout_persona(data, 0, hidden=30)


def test_taste_persona_rates_liked_genres_higher(data, split):
    p = personas.taste_persona(data, ["Sci-Fi"], ["Romance"], train_users=split.train_users, seed=3)
    assert p.kind == "taste" and p.likes == ("Sci-Fi",) and p.dislikes == ("Romance",)
    items = np.concatenate([p.reveal_items, p.hidden_items])
    ratings = np.concatenate([p.reveal_ratings, p.hidden_ratings])
    assert len(set(items.tolist())) == len(items) == 50
    g = data.items.genre_names
    scifi = data.items.genres[items, g.index("Sci-Fi")]
    romance = data.items.genres[items, g.index("Romance")]
    assert scifi.any() and romance.any()
    assert ratings[scifi].mean() > ratings[romance].mean() + 1.0
    # ratings lie on the scale's steps
    assert set(np.unique(ratings)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    same = personas.taste_persona(
        data, ["Sci-Fi"], ["Romance"], train_users=split.train_users, seed=3
    )
    np.testing.assert_array_equal(same.reveal_ratings, p.reveal_ratings)


@pytest.mark.parametrize(
    ("likes", "dislikes", "message"),
    [(["Western"], [], "unknown genre"), ([], [], "at least one"), (["Drama"], ["Drama"], "both")],
)
def test_taste_persona_rejects_bad_genres(data, likes, dislikes, message):
    with pytest.raises(ValueError, match=message):
        personas.taste_persona(data, likes, dislikes)


def test_suggest_tastes_pairs_distinct_genres(data):
    pairs = personas.suggest_tastes(data, n=3)
    assert len(pairs) == 3
    for likes, dislikes in pairs:
        assert not set(likes) & set(dislikes)
        personas.taste_persona(data, likes, dislikes)  # every suggestion is a valid persona


def test_search_items_by_title_and_genre(data):
    found = pg.search_items(data, "film 00", limit=100)
    titles = data.items.titles[found]
    assert len(found) == 10 and all("Film 00" in t for t in titles)
    counts = data.counts_per_item()[found]
    assert (np.diff(counts) <= 0).all()
    romance = pg.search_items(data, genre="Romance", exclude=found, limit=100)
    assert all("Romance" in data.items.genre_list(i) for i in romance)
    assert not set(romance) & set(found)
    assert len(pg.search_items(data, "no such title")) == 0
    assert len(pg.search_items(data, genre="Western")) == 0


def test_rank_movement_and_overlap():
    prev = np.array([5, 6, 7, 8])
    cur = np.array([7, 5, 9, 8])
    assert pg.rank_movement(prev, cur) == [2, -1, None, 0]  # places up; None: new
    assert pg.list_overlap(prev, cur) == 0.75
    assert pg.list_overlap(None, cur) is None
    assert pg.rank_movement(None, cur) == [None] * 4


def test_project_users_pca_recovers_the_main_axis():
    rng = np.random.default_rng(0)
    t = rng.normal(0, 3, 200)
    states = np.stack([t, 0.5 * t, rng.normal(0, 0.1, 200)], 1)
    proj = proj_mod.project_users(states, np.arange(200))
    assert proj.points.shape == (200, 2)
    assert proj.explained[0] > 0.99
    axis = proj.components[0]
    assert abs(axis @ np.array([1, 0.5, 0]) / np.linalg.norm([1, 0.5, 0])) == pytest.approx(
        1, abs=1e-3
    )
    np.testing.assert_allclose(proj.transform(states), proj.points, atol=1e-9)
    with pytest.raises(ValueError):
        proj_mod.project_users(np.zeros((1, 3)), np.arange(1))


def test_fit_projection_none_for_models_without_states(data, split, fitted):
    assert proj_mod.fit_projection(fitted["mf_foldin"], data, split.train_users) is None


class WithStates(UserBias):
    """A baseline with a per-user state vector (its first ratings, padded)."""

    def user_states(self, data, users, k=10):
        return np.stack([np.resize(data.rating[data.user == u][:k], 4) for u in users])


class DeclaresStates(WithStates):
    capabilities = replace(UserBias.capabilities, user_state=True)


def test_fit_projection_reads_the_declared_capability_not_the_method(data, split):
    users = split.train_users
    undeclared = WithStates(seed=0).fit(data, users, split.val_users)
    assert proj_mod.fit_projection(undeclared, data, users) is None  # not probed
    declared = DeclaresStates(seed=0).fit(data, users, split.val_users)
    proj = proj_mod.fit_projection(declared, data, users, max_users=30)
    assert proj is not None and proj.points.shape == (30, 2) and set(proj.users) <= set(users)


def test_session_manual_ratings_change_recommendations(data, fitted):
    s = pg.PlaygroundSession(data, fitted["mf_foldin"], model_name="mf", top_n=10)
    assert s.view.n_ratings == 0 and s.view.overlap is None
    assert s.curve == []  # no persona: no ground truth, no learning curve
    first = s.view.top_items.copy()
    g = data.items.genre_names
    scifi = np.flatnonzero(data.items.genres[:, g.index("Sci-Fi")])[:4]
    romance = np.flatnonzero(data.items.genres[:, g.index("Romance")])[:4]
    for i in scifi:
        s.add_rating(int(i), 5.0)
    for i in romance:
        s.add_rating(int(i), 1.0)
    v = s.view
    assert v.n_ratings == 8
    assert not set(v.top_items) & (set(scifi) | set(romance))  # rated items are not recommended
    assert not np.array_equal(v.top_items, first)
    assert 0.0 <= v.overlap <= 1.0
    recs = s.recommendations()
    assert [r.rank for r in recs] == list(range(1, 11))
    assert [r.item for r in recs] == v.top_items.tolist()
    assert [r.movement for r in recs] == v.movement
    assert all(r.movement is None or isinstance(r.movement, int) for r in recs)
    for r in recs:
        assert r.item_id == str(data.item_ids[r.item]) and r.title == data.items.titles[r.item]
        assert r.genres == tuple(data.items.genre_list(r.item))
        assert r.predicted == pytest.approx(v.adapted.display_ratings([r.item])[0])
    # a fan of sci-fi who hates romance gets more sci-fi than romance
    top_g = data.items.genres[v.top_items]
    assert top_g[:, g.index("Sci-Fi")].sum() > top_g[:, g.index("Romance")].sum()


def test_session_remove_rerate_reset_and_errors(data, fitted):
    s = pg.PlaygroundSession(data, fitted["user_bias"], top_n=5)
    s.add_rating(3, 5.0)
    s.add_rating(4, 1.0)
    s.add_rating(3, 2.0)  # re-rating replaces in place
    assert s.items == [3, 4] and s.ratings == [2.0, 1.0]
    s.remove_rating(3)
    assert s.items == [4] and s.view.n_ratings == 1
    with pytest.raises(ValueError, match="has not been rated"):
        s.remove_rating(3)
    with pytest.raises(ValueError, match="outside the scale"):
        s.add_rating(5, 9.0)
    with pytest.raises(ValueError, match="outside the catalogue"):
        s.add_rating(data.n_items, 3.0)
    with pytest.raises(ValueError, match="persona"):
        s.add_next()
    s.reset()
    assert s.items == [] and s.view.n_ratings == 0


def test_session_persona_learning_curve_matches_full_recompute(data, split, fitted):
    users = personas.heldout_candidates(data, split.val_users)
    persona = personas.heldout_persona(data, int(users[0]))
    baselines = {"user_bias": fitted["user_bias"], "popularity": fitted["popularity"]}
    s = pg.PlaygroundSession(
        data, fitted["mf_foldin"], model_name="mf", baselines=baselines, persona=persona
    )
    assert len(s.curve) == 1 and s.curve[0].n == 0
    for _ in range(5):
        s.add_next()
    assert s.items == persona.reveal_items[:5].tolist()
    assert [p.n for p in s.curve] == [0, 1, 2, 3, 4, 5]
    # popularity ranks only: it has nDCG but no MAE
    assert set(s.curve[-1].mae) == {"mf", "user_bias"}
    assert set(s.curve[-1].ndcg) == {"mf", "user_bias", "popularity"}
    full = pg.learning_curve(
        s.methods(), *s.support(), persona.hidden_items, persona.hidden_ratings
    )
    for a, b in zip(s.curve, full, strict=True):
        assert a.mae == pytest.approx(b.mae) and a.ndcg == pytest.approx(b.ndcg)
    # removing the 2nd rating recomputes the curve from there on
    s.remove_rating(int(persona.reveal_items[1]))
    assert [p.n for p in s.curve] == [0, 1, 2, 3, 4]
    full = pg.learning_curve(
        s.methods(), *s.support(), persona.hidden_items, persona.hidden_ratings
    )
    for a, b in zip(s.curve, full, strict=True):
        assert a.mae == pytest.approx(b.mae)
    # the learning curve's error is the error of the model's own predictions
    pred = s.view.adapted.predict(persona.hidden_items)
    assert s.curve[-1].mae["mf"] == pytest.approx(np.abs(pred - persona.hidden_ratings).mean())


def test_session_rejects_a_model_named_like_a_baseline(data, fitted):
    with pytest.raises(ValueError, match="also a baseline"):
        pg.PlaygroundSession(data, fitted["mf_foldin"], model_name="user_bias", baselines=fitted)


def test_session_persona_runs_out_of_ratings(data, fitted):
    persona = personas.taste_persona(data, ["Comedy"], ["Drama"], n_reveal=3, n_hidden=5)
    s = pg.PlaygroundSession(data, fitted["user_bias"], persona=persona)
    s.add_rating(int(persona.reveal_items[1]), 4.0)  # rated by hand: skipped when revealed
    s.add_next()
    s.add_next()
    assert not s.has_next()
    assert sorted(s.items) == sorted(persona.reveal_items.tolist())
    with pytest.raises(ValueError, match="no more ratings"):
        s.add_next()


def test_playground_baselines_are_the_level_versions(data, split):
    fitted = pg.fit_baselines(data, split.train_users, split.val_users)
    assert tuple(fitted) == pg.PLAYGROUND_BASELINES
    assert {"mf_foldin_levels", "user_bias_levels", "popularity"} == set(fitted)
    assert all(m.fitted_ for m in fitted.values())


def test_baselines_are_fitted_once_per_dataset_and_split(data, split, monkeypatch):
    pg.clear_baseline_cache()
    fits: list[str] = []
    real = pg.fit_baselines

    def counting(d, train, val, names=pg.PLAYGROUND_BASELINES):
        fits.extend(names)
        return real(d, train, val, names)

    monkeypatch.setattr(pg, "fit_baselines", counting)
    stages: list[tuple[str, int, int]] = []
    args = (data, split.train_users, split.val_users)
    assert pg.missing_baselines(*args) == list(pg.PLAYGROUND_BASELINES)
    one = pg.cached_baselines(*args, ["popularity"], on_fit=lambda *a: stages.append(a))
    assert fits == ["popularity"] and stages == [("popularity", 0, 1)]
    assert pg.missing_baselines(*args) == ["mf_foldin_levels", "user_bias_levels"]
    both = pg.cached_baselines(*args, on_fit=lambda *a: stages.append(a))
    assert tuple(both) == pg.PLAYGROUND_BASELINES
    assert both["popularity"] is one["popularity"]  # cached, not refitted
    assert fits == ["popularity", "mf_foldin_levels", "user_bias_levels"]
    assert stages[1:] == [("mf_foldin_levels", 0, 2), ("user_bias_levels", 1, 2)]
    again = pg.cached_baselines(*args, on_fit=lambda *a: stages.append(a))
    assert (
        len(fits) == 3
        and len(stages) == 3
        and again["mf_foldin_levels"] is both["mf_foldin_levels"]
    )
    # another split or other data content is another entry
    pg.cached_baselines(data, split.train_users[1:], split.val_users, ["popularity"])
    other = tiny_dataset(seed=1)
    pg.cached_baselines(other, split.train_users, split.val_users, ["popularity"])
    assert fits[3:] == ["popularity", "popularity"]
    pg.clear_baseline_cache()


def test_baseline_cache_is_bounded(data, split, monkeypatch):
    pg.clear_baseline_cache()
    monkeypatch.setattr(pg, "BASELINE_CACHE_SIZE", 2)
    for k in range(4):
        pg.cached_baselines(data, split.train_users[k:], split.val_users, ["popularity"])
    assert len(pg._cache) == 2
    assert pg.missing_baselines(data, split.train_users, split.val_users, ["popularity"])
    pg.clear_baseline_cache()


def test_baselines_can_join_a_session_later(data, split, fitted):
    # the playground opens without baselines (they only feed a persona's learning curve)
    persona = personas.heldout_persona(
        data, int(personas.heldout_candidates(data, split.val_users)[0])
    )
    s = pg.PlaygroundSession(data, fitted["mf_foldin"], model_name="mf", persona=persona)
    s.add_next()
    s.add_next()
    assert [set(p.mae) for p in s.curve] == [{"mf"}] * 3
    s.set_baselines({"user_bias": fitted["user_bias"]})
    assert [set(p.mae) for p in s.curve] == [{"mf", "user_bias"}] * 3
    full = pg.learning_curve(
        s.methods(), *s.support(), persona.hidden_items, persona.hidden_ratings
    )
    for a, b in zip(s.curve, full, strict=True):
        assert a.mae == pytest.approx(b.mae)
    with pytest.raises(ValueError, match="also a baseline"):
        s.set_baselines({"mf": fitted["user_bias"]})


def test_session_tells_the_personas_ratings_from_the_persons(data, fitted):
    persona = personas.taste_persona(data, ["Comedy"], ["Drama"], n_reveal=4, n_hidden=5)
    s = pg.PlaygroundSession(data, fitted["user_bias"], persona=persona)
    s.add_next()
    mine = next(i for i in range(data.n_items) if i not in persona.reveal_items)
    s.add_rating(mine, 2.0)
    s.add_next()
    assert s.from_persona == [True, False, True]
    s.add_rating(int(persona.reveal_items[0]), 1.0)  # re-rated by hand: now the person's
    assert s.from_persona == [False, False, True]
    s.remove_rating(mine)
    assert s.from_persona == [False, True]
    s.reset()
    assert s.from_persona == []


def test_recommendations_say_why_and_how_sure(data, split, fitted):
    """Each top item names the ratings that moved it (the explain module's measure) and its
    interval: conformal for a baseline given validation users, none without them."""
    from metarec_core.evaluation import intervals as iv
    from metarec_core.interactive import explain as ex

    model = fitted["mf_foldin"]
    s = pg.PlaygroundSession(data, model, model_name="m", val_users=split.val_users)
    for i, r in [(0, 5.0), (3, 1.0), (7, 4.0), (12, 2.0)]:
        s.add_rating(i, r)
    recs = s.recommendations()
    items, ratings = s.support()
    want = ex.explain(model, items, ratings, [r.item for r in recs])
    assert any(r.because for r in recs)
    for r, e in zip(recs, want, strict=True):
        assert [b.item for b in r.because] == [f.item for f in e.influences]
        for b in r.because:
            assert b.title == s.title(b.item) and b.rating == ratings[items.tolist().index(b.item)]
        assert r.low is not None and r.low <= r.predicted <= r.high
    assert s.view.band.source == "conformal" and s.view.band.coverage == iv.DEFAULT_COVERAGE
    bare = pg.PlaygroundSession(data, model, model_name="m")  # no validation users: no band
    bare.add_rating(0, 5.0)
    assert all(r.low is None and r.high is None for r in bare.recommendations())
    pop = pg.PlaygroundSession(data, fitted["popularity"], val_users=split.val_users)
    pop.add_rating(0, 5.0)
    assert all(r.because == () and r.low is None for r in pop.recommendations())


def test_no_ratings_no_reasons(data, fitted):
    s = pg.PlaygroundSession(data, fitted["user_bias"])
    assert all(r.because == () for r in s.recommendations())


def test_reasons_stop_beyond_the_measured_support(data, fitted):
    from metarec_core.interactive import explain as ex

    s = pg.PlaygroundSession(data, fitted["user_bias"])
    for i in range(ex.MAX_SUPPORT):
        s.add_rating(i, 1.0 + i % 5)
    assert s.view.explanations and any(r.because for r in s.recommendations())
    s.add_rating(ex.MAX_SUPPORT, 5.0)  # one more than is explained
    assert s.view.explanations == () and all(r.because == () for r in s.recommendations())
