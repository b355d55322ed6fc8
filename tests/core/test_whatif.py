"""Side-by-side model comparison (metarec_core.interactive.whatif)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny_dataset, tiny_split

from metarec_core.interactive import whatif
from metarec_core.interactive.personas import heldout_candidates, heldout_persona
from metarec_core.methods.baselines import ItemMean, MFFoldIn, Popularity, UserBias


@pytest.fixture(scope="module")
def data():
    return tiny_dataset()


@pytest.fixture(scope="module")
def models(data):
    s = tiny_split(data)
    return {
        "mf_foldin": MFFoldIn(seed=0).fit(data, s.train_users, s.val_users),
        "user_bias": UserBias(seed=0).fit(data, s.train_users, s.val_users),
        "popularity": Popularity(seed=0).fit(data, s.train_users),
        "item_mean": ItemMean(seed=0).fit(data, s.train_users, s.val_users),
    }


@pytest.fixture(scope="module")
def persona(data):
    s = tiny_split(data)
    return heldout_persona(data, int(heldout_candidates(data, s.val_users)[0]))


def test_top_n_excludes_and_breaks_ties_by_index():
    scores = np.array([1.0, 3.0, 3.0, 2.0, 5.0])
    np.testing.assert_array_equal(whatif.top_n(scores, np.array([4]), 3), [1, 2, 3])
    assert len(whatif.top_n(scores, np.arange(5), 3)) == 0


def test_overlap():
    assert whatif.overlap(np.array([1, 2, 3, 4]), np.array([4, 3, 9, 8])) == 0.5
    assert whatif.overlap(np.array([], dtype=int), np.array([], dtype=int)) == 1.0


@pytest.mark.parametrize(
    ("lists", "kind", "after"),
    [
        ([[1, 2], [3, 4], [5, 6], [5, 6], [5, 6]], "settled", 2),  # settled after 2 ratings
        ([[1, 2], [3, 4], [3, 4]], "settled", 1),  # one rating confirms the change
        ([[1, 2], [2, 1], [1, 2]], "never_adapts", None),  # same items throughout (order aside)
        ([[1, 2], [1, 2], [1, 2]], "never_adapts", None),  # ignores the ratings: not "0"
        ([[1, 2], [1, 2]], "never_adapts", None),
        ([[1, 2], [5, 6], [1, 2], [3, 4]], "changing", None),  # changed at the last rating
        ([[1, 2], [3, 4], [1, 2]], "changing", None),  # back to the first list: still moving
        ([[1, 2], [1, 2], [3, 4]], "changing", None),  # moved only at the last rating
        ([[1, 2]], "no_ratings", None),
    ],
)
def test_stability(lists, kind, after):
    tops = [np.array(x) for x in lists]
    assert whatif.stability(tops) == whatif.Stability(kind, after)
    assert whatif.stable_after(tops) == after


def test_a_list_that_never_moves_is_not_the_fastest_to_settle():
    # the reported bug: a model whose top-10 never changed scored 0 ratings, best of all
    frozen = [np.arange(10)] * 6
    moving = [np.arange(10), np.arange(10) + 5, *[np.arange(10) + 20] * 4]
    assert whatif.stability(frozen).kind == "never_adapts"
    assert whatif.stable_after(frozen) is None
    assert whatif.stability(moving) == whatif.Stability("settled", 2)


def test_kept_from_previous_is_the_overlap_with_the_list_before():
    tops = [np.array(x) for x in ([1, 2, 3, 4], [1, 2, 3, 9], [1, 2, 3, 9], [5, 6, 7, 8])]
    assert whatif.kept_from_previous(tops) == [0.75, 1.0, 0.0]


def test_stability_threshold():
    lists = [np.array(x) for x in ([1, 2, 3, 4], [1, 2, 3, 9], [1, 2, 3, 5], [1, 2, 3, 4])]
    assert whatif.stability(lists, threshold=1.0).kind == "changing"
    # every rating keeps 3 of 4: within a 0.75 threshold it settled at once, but it did adapt
    assert whatif.stability(lists, threshold=0.75) == whatif.Stability("settled", 0)
    lists[2] = np.array([1, 2, 7, 8])  # keeps 2 of 4 at rating 2, then 2 of 4 again at 3
    assert whatif.stability(lists, threshold=0.75).kind == "changing"
    lists[3] = np.array([1, 2, 7, 9])
    assert whatif.stability(lists, threshold=0.75) == whatif.Stability("settled", 2)


def test_prefix_top_lists_match_adapt(data, models, persona):
    m = models["mf_foldin"]
    items, ratings = persona.reveal_items[:6], persona.reveal_ratings[:6]
    lists = whatif.prefix_top_lists(m, items, ratings, n=10)
    assert len(lists) == 7
    for k in (0, 3, 6):
        a = m.adapt(items[:k], ratings[:k])
        expected, _ = a.recommend(10, exclude=items)
        np.testing.assert_array_equal(lists[k], expected)
        assert not set(lists[k]) & set(items)


def test_compare_models(data, models, persona):
    items, ratings = persona.reveal_items[:8], persona.reveal_ratings[:8]
    pick = {k: models[k] for k in ("mf_foldin", "user_bias", "popularity")}
    c = whatif.compare_models(pick, items, ratings, n=10)
    assert c.names == ("mf_foldin", "user_bias", "popularity")
    assert c.pairwise_overlap.shape == (3, 3)
    np.testing.assert_allclose(np.diag(c.pairwise_overlap), 1.0)
    np.testing.assert_allclose(c.pairwise_overlap, c.pairwise_overlap.T)
    for name in c.names:
        assert len(c.top[name]) == 10 and len(c.overlap_with_final[name]) == 9
        assert c.overlap_with_final[name][-1] == 1.0
        others = set().union(*(set(c.top[o]) for o in c.names if o != name))
        assert set(c.only_in[name]) == set(c.top[name]) - others
        assert set(c.in_all) <= set(c.top[name])
    # popularity ignores the user's ratings: its list never changes, which is not settling
    assert c.stability["popularity"] == whatif.Stability("never_adapts")
    assert c.stable_at["popularity"] is None
    assert c.overlap_with_final["popularity"] == [1.0] * 9
    assert c.kept["popularity"] == [1.0] * 8
    # mf_foldin adapts to the ratings: its list moves
    assert c.stability["mf_foldin"].kind in ("settled", "changing")
    assert min(c.kept["mf_foldin"]) < 1.0
    for name in c.names:
        assert len(c.kept[name]) == 8
    # the scores are those of each model's list
    a = pick["user_bias"].adapt(items, ratings)
    np.testing.assert_allclose(c.scores["user_bias"], a.scores[c.top["user_bias"]])


def test_compare_models_needs_two(data, models, persona):
    with pytest.raises(ValueError, match="at least two"):
        whatif.compare_models(
            {"a": models["item_mean"]}, persona.reveal_items, persona.reveal_ratings
        )


def test_each_model_says_why_and_how_sure(data, models, persona):
    from metarec_core.interactive import explain as ex

    s = tiny_split(data)
    items, ratings = persona.reveal_items[:6], persona.reveal_ratings[:6]
    c = whatif.compare_models(models, items, ratings, n=5, data=data, val_users=s.val_users)
    for name, m in models.items():
        want = ex.explain(m, items, ratings, c.top[name])
        assert c.explanations[name] == tuple(want)
    assert any(e.strongest is not None for e in c.explanations["mf_foldin"])
    assert c.bands["popularity"] is None  # a ranking has no interval
    band = c.bands["user_bias"]
    assert band is not None and band.source == "conformal"
    assert (band.low <= band.high).all()
    bare = whatif.compare_models(models, items, ratings, n=5)  # no validation users
    assert bare.bands["user_bias"] is None
