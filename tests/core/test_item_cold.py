"""New items (--cold items): item folds, per-item tasks, the no-leak guarantee, the new-item
baselines behind `ItemRecommender`, the evaluation and the CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pytest

from metarec_core import cli
from metarec_core.data.dataset import RatingsDataset
from metarec_core.evaluation.report import EvaluationReport, ItemKShotProtocol
from metarec_core.evaluation.runner import EvalConfig, run_evaluation
from metarec_core.methods import registry
from metarec_core.methods.base import ItemRecommender, NewItem
from metarec_core.protocol.item_splits import (
    item_folds,
    make_item_tasks,
    without_items,
)
from tests.helpers import dataset_from_frames, write_frames

GENRES = ("Sci-Fi", "Romance", "Comedy", "Drama")
GENRE_EFFECT = np.array([1.0, -1.0, 0.4, -0.4])
SUPPORT = (0, 1, 3, 5)


def genre_items(n_users: int = 150, n_items: int = 90, per_user: int = 30, seed: int = 0):
    """(ratings rows, item rows): an item's effect is its genre's (± 1 star) plus a little noise,
    users have a rating habit: metadata alone predicts a new item."""
    rng = np.random.default_rng(seed)
    genre = np.arange(n_items) % len(GENRES)
    b_i = GENRE_EFFECT[genre] + rng.normal(0, 0.15, n_items)
    b_u = rng.normal(0, 0.4, n_users)
    rows = []
    for u in range(n_users):
        for j in rng.choice(n_items, per_user, replace=False):
            r = 3.2 + b_u[u] + b_i[j] + rng.normal(0, 0.4)
            rows.append((f"u{u}", f"i{j}", int(np.clip(np.rint(r), 1, 5))))
    items = [(f"i{j}", f"Film {j} ({1960 + j % 40})", GENRES[genre[j]]) for j in range(n_items)]
    return rows, items


def genre_dataset(**kw) -> RatingsDataset:
    return dataset_from_frames(*genre_items(**kw), source="genre-items")


@pytest.fixture(scope="module")
def data() -> RatingsDataset:
    return genre_dataset()


# --------------------------------------------------------------------------- protocol


def test_item_folds_partition_the_items_and_carve_validation_from_training(data):
    folds = item_folds(data, n_folds=3, seed=0)
    tests = np.concatenate([f.test_items for f in folds])
    assert np.array_equal(np.sort(tests), np.arange(data.n_items))  # each item tested once
    for f in folds:
        assert not np.intersect1d(f.test_items, f.train_items).size
        assert not np.intersect1d(f.test_items, f.val_items).size
        assert not np.intersect1d(f.train_items, f.val_items).size
        assert len(f.val_items) > 0
    assert [f.test_items.tolist() for f in item_folds(data, 3, seed=0)] == [
        f.test_items.tolist() for f in folds
    ]  # seeded


def test_supports_are_nested_and_the_query_is_the_same_at_every_k(data):
    tasks, _ = make_item_tasks(data, np.arange(data.n_items), query=10, min_support=5)
    for t in tasks:
        q_users, q_ratings = t.query
        assert len(q_users) == 10 and not np.isin(q_users, t.support(5)[0]).any()
        for k in SUPPORT:
            users, ratings = t.support(k)
            assert len(users) == k
            assert np.array_equal(users, t.support(5)[0][:k])  # the first k of the same order
            assert np.array_equal(ratings, t.support(5)[1][:k])
        assert t.new_item(0).users.size == 0 and t.new_item(0).genres == (t.genres)
    again, _ = make_item_tasks(data, np.arange(data.n_items)[::-1], query=10, min_support=5)
    by_item = {t.item: t for t in again}
    for t in tasks:  # the order depends on (seed, item) only
        assert np.array_equal(by_item[t.item].users, t.users)


def test_items_with_too_few_ratings_are_left_out_and_counted(data):
    counts = data.counts_per_item()
    need = 40 + 10
    tasks, left_out = make_item_tasks(data, np.arange(data.n_items), query=10, min_support=40)
    assert left_out == int((counts < need).sum()) > 0
    assert {t.item for t in tasks} == set(np.flatnonzero(counts >= need).tolist())
    rep = run_evaluation(
        data,
        EvalConfig(cold="items", methods=("global_mean",), support=(0, 40), folds=3, n_boot=100),
    )
    assert rep.protocol.left_out == left_out
    assert rep.protocol.test_items == len(tasks)
    assert {r.users for r in rep.rows} == {len(tasks)}


# --------------------------------------------------------------------------- no leak


class Spy(ItemRecommender):
    """Records what every fit is given; predicts the training mean."""

    name: ClassVar[str] = "spy_items"
    fits: ClassVar[list[tuple[RatingsDataset, np.ndarray, np.ndarray]]] = []

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _fit_items(self, data, train_items, val_items, should_stop, progress) -> bool:
        Spy.fits.append((data, np.asarray(train_items), np.asarray(val_items)))
        self.n_users_, self.mean_ = data.n_users, float(data.rating.mean())
        return True

    def predict(self, new_items: Sequence[NewItem], users: np.ndarray) -> np.ndarray:
        return np.full(np.shape(users), self.mean_)


def test_fit_checks_the_training_items_before_the_method_sees_them(data):
    Spy.fits.clear()
    spy = Spy().fit(data, np.array([3, 1, 3, 2]))
    assert spy.fitted_ and Spy.fits[0][1].tolist() == [1, 2, 3]  # sorted, distinct
    with pytest.raises(ValueError, match="at least one training item"):
        Spy().fit(data, np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match=r"inner item indices in \[0, "):
        Spy().fit(data, np.array([data.n_items]))


class OldStyle(ItemRecommender):
    """An item method written before `_fit_items` (a plugin's, say): it overrides `fit`."""

    name: ClassVar[str] = "old_style_items"

    def fit(self, data, train_items, val_items=None, *, should_stop=None, progress=None):
        self.n_users_, self.fitted_ = data.n_users, True
        return self

    def predict(self, new_items: Sequence[NewItem], users: np.ndarray) -> np.ndarray:
        return np.zeros(np.shape(users))


def test_a_method_that_overrides_fit_itself_still_works(data):
    model = OldStyle().fit(data, np.arange(5))
    assert model.score_items([NewItem.of("x")]).shape == (1, data.n_users)


def test_a_method_with_neither_fit_nor_fit_items_says_so(data):
    class Neither(ItemRecommender):
        name: ClassVar[str] = "neither"

        def predict(self, new_items, users):
            return np.zeros(np.shape(users))

    with pytest.raises(NotImplementedError, match="implements neither fit nor _fit_items"):
        Neither().fit(data, np.arange(5))


def test_no_rating_of_a_test_item_reaches_a_fit(data):
    spec = registry.MethodSpec.of(Spy, "Spy", "Records its fits.")
    registry.register(spec)
    Spy.fits.clear()
    try:
        cfg = EvalConfig(cold="items", methods=("spy_items",), support=SUPPORT, folds=3)
        run_evaluation(data, cfg)
    finally:
        registry.unregister("spy_items", cold="items")
    folds = item_folds(data, 3, seed=0, val_fraction=0.1)
    assert len(Spy.fits) == len(folds)
    for (seen, train, val), fold in zip(Spy.fits, folds, strict=True):
        assert not np.isin(seen.item, fold.test_items).any()  # no rating of a test item
        assert not np.isin(train, fold.test_items).any()
        assert not np.isin(val, fold.test_items).any()
        assert seen.n_items == data.n_items  # the catalogue itself is unchanged


@pytest.mark.parametrize("name", registry.ITEM_BASELINES)
def test_a_baseline_reads_only_its_training_and_validation_items(data, name):
    fold = item_folds(data, 3, seed=0)[0]
    tasks, _ = make_item_tasks(data, fold.test_items, query=10, min_support=5)
    users = np.stack([t.query[0] for t in tasks])
    preds = []
    for seen in (data, without_items(data, fold.test_items)):
        m = registry.make_method(name, cold="items").fit(seen, fold.train_items, fold.val_items)
        preds.append(m.predict([t.new_item(3) for t in tasks], users))
    np.testing.assert_array_equal(preds[0], preds[1])


# --------------------------------------------------------------------------- baselines


@pytest.fixture(scope="module")
def report(data) -> EvaluationReport:
    cfg = EvalConfig(
        cold="items",
        methods=registry.ITEM_BASELINES,
        support=SUPPORT,
        folds=3,
        n_boot=200,
    )
    return run_evaluation(data, cfg)


def _mae(report: EvaluationReport, name: str, k: int) -> float:
    return next(r.mae for r in report.rows if r.method == name and r.support == k)


@pytest.mark.parametrize("name", [m for m in registry.ITEM_BASELINES if m != "global_mean"])
def test_each_baseline_beats_global_mean_when_genres_drive_the_item_effect(report, name):
    for k in SUPPORT:
        assert _mae(report, name, k) < _mae(report, "global_mean", k) - 0.15, (name, k)


def test_k0_is_metadata_alone(data):
    """At k = 0 a prediction depends on the metadata only: two new items with the same title and
    genres get the same scores, another genre other scores; item_bias is content there."""
    fold = item_folds(data, 3, seed=0)[0]
    fitted = {
        n: registry.make_method(n, cold="items").fit(data, fold.train_items, fold.val_items)
        for n in ("content", "item_bias", "mf_foldin")
    }
    scifi, romance = (
        NewItem.of("New film (1999)", ["Sci-Fi"]),
        NewItem.of("New (1999)", ["Romance"]),
    )
    for m in fitted.values():
        s = m.score_items([scifi, NewItem.of("New film (1999)", ["Sci-Fi"]), romance])
        np.testing.assert_array_equal(s[0], s[1])
        assert s[0].mean() > s[2].mean() + 1.0  # Sci-Fi is rated 2 stars above Romance
    np.testing.assert_allclose(
        fitted["content"].score_items([scifi]), fitted["item_bias"].score_items([scifi])
    )
    # a few ratings move the prediction away from the metadata alone (content ignores them)
    rated = NewItem.of("New film (1999)", ["Sci-Fi"], [0, 1, 2], [1, 1, 1])
    for m in (fitted["item_bias"], fitted["mf_foldin"]):
        assert m.adapt_item(rated).scores.mean() < m.adapt_item(scifi).scores.mean()


def test_the_item_report_reads_back_and_keeps_its_own_keys(report):
    d = json.loads(report.to_json())
    assert d["protocol"]["name"] == ItemKShotProtocol.name and d["protocol"]["cold"] == "items"
    assert "test_items" in d["protocol"] and "test_users" not in d["protocol"]
    assert EvaluationReport.from_json(report.to_json()).to_dict() == d
    assert {p.support for p in report.paired} == set(SUPPORT)
    assert "items" in report.to_text().splitlines()[3]


def test_the_user_protocol_is_unchanged_by_cold(data):
    cfg = EvalConfig(methods=("global_mean", "user_bias"), support=(1, 3), folds=2, n_boot=100)
    d = run_evaluation(data, cfg).to_dict()
    assert d["protocol"]["name"] == "kshot" and "cold" not in d["protocol"]
    assert EvalConfig(cold="items").methods == registry.default_methods("items")
    with pytest.raises(ValueError, match="unknown method 'content'"):
        EvalConfig(methods=("content",))
    with pytest.raises(ValueError, match="unknown method 'popularity'"):
        EvalConfig(cold="items", methods=("popularity",))


def test_cli_evaluates_new_items_end_to_end(tmp_path, capsys):
    rows, items = genre_items(n_users=80, n_items=40, per_user=25)
    write_frames(tmp_path, rows, items)
    out = tmp_path / "rep.json"
    code = cli.main(
        [
            "evaluate",
            str(tmp_path / "r.csv"),
            "--items",
            str(tmp_path / "i.csv"),
            "--cold",
            "items",
            "--methods",
            "global_mean,content,item_bias",
            "--support",
            "0,3",
            "--folds",
            "2",
            "--out",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and "new items" in text and "item_bias" in text
    rep = EvaluationReport.from_json(out.read_text())
    assert rep.protocol.name == "kshot_items"
    assert {(r.method, r.support) for r in rep.rows} == {
        (m, k) for m in ("global_mean", "content", "item_bias") for k in (0, 3)
    }
    assert (
        cli.main(["evaluate", str(tmp_path / "r.csv"), "--cold", "items", "--methods", "user_bias"])
        == 2
    )
    assert "unknown method 'user_bias'" in capsys.readouterr().err
