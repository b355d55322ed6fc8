"""The item meta-learners (``item_metasgd``, ``item_finetune``): the MAML family with the new item
as the task, trained on the transposed ratings; tiny trainings on the genre-driven items of
test_item_cold.py."""

from __future__ import annotations

import numpy as np
import pytest

from metarec_core import cli
from metarec_core.evaluation.report import EvaluationReport
from metarec_core.methods import registry
from metarec_core.methods.base import NewItem
from metarec_core.methods.items_meta import ItemFinetune, ItemMetaLearner, ItemMetaSGD, transpose
from metarec_core.protocol.item_splits import item_folds, make_item_tasks, without_items
from tests.core.test_item_cold import genre_dataset, genre_items
from tests.helpers import write_frames

# a few meta-steps of a small network: enough to train, seconds on one core
TINY = dict(
    steps=30, eval_every=10, factors=4, embedding_dim=8, hidden=(16,), meta_batch=16,
    val_repeats=1, device="cpu",
)  # fmt: skip

SUPPORT = (0, 1, 3, 5, 10)


@pytest.fixture(scope="module")
def data():
    return genre_dataset()


@pytest.fixture(scope="module")
def fold(data):
    return item_folds(data, 3, seed=0)[0]


@pytest.fixture(scope="module")
def tasks(data, fold):
    tasks, _ = make_item_tasks(data, fold.test_items, query=10, min_support=max(SUPPORT))
    return tasks


@pytest.fixture(scope="module")
def fitted(data, fold):
    """Both learners fitted once on the fold's training items (test items' ratings removed)."""
    seen = without_items(data, fold.test_items)
    return {
        cls.name: cls(seed=0, **TINY).fit(seen, fold.train_items, fold.val_items)
        for cls in (ItemMetaSGD, ItemFinetune)
    }


def _mae(model, tasks, k: int) -> float:
    users = np.stack([t.query[0] for t in tasks])
    ratings = np.stack([t.query[1] for t in tasks])
    return float(np.abs(model.predict([t.new_item(k) for t in tasks], users) - ratings).mean())


def test_transpose_swaps_users_and_items_and_keeps_only_the_given_items(data, fold):
    t = transpose(data, fold.train_items)
    keep = np.isin(data.item, fold.train_items)
    assert t.n_users == data.n_items and t.n_items == data.n_users and t.items is None
    np.testing.assert_array_equal(t.user, data.item[keep])
    np.testing.assert_array_equal(t.item, data.user[keep])
    np.testing.assert_array_equal(t.rating, data.rating[keep])
    assert not np.isin(t.user, fold.test_items).any()


def test_both_learners_fit_and_predict_with_the_right_shapes(fitted, tasks, data):
    users = np.stack([t.query[0] for t in tasks])
    for m in fitted.values():
        assert m.fitted_ and m.learner_.config.algorithm in ("metasgd", "finetune")
        for k in (0, 3):
            pred = m.predict([t.new_item(k) for t in tasks], users)
            assert pred.shape == users.shape and np.isfinite(pred).all()
            assert pred.min() >= data.scale.low and pred.max() <= data.scale.high
        assert m.score_items([tasks[0].new_item(3)]).shape == (1, data.n_users)
        assert m.predict([], np.zeros((0, 4), dtype=np.int64)).shape == (0, 4)
        with pytest.raises(ValueError, match="out of range"):
            m.predict([tasks[0].new_item(0)], np.array([[data.n_users]]))


def test_no_rating_of_a_test_item_reaches_the_learner(data, fold, tasks):
    """Fitted on all the data or on the data without the test items' ratings, the learner
    gives the same predictions: it reads only the training and validation items' ratings."""
    users = np.stack([t.query[0] for t in tasks])
    preds = []
    for seen in (data, without_items(data, fold.test_items)):
        m = ItemMetaSGD(seed=0, **{**TINY, "steps": 10}).fit(seen, fold.train_items, fold.val_items)
        preds.append(m.predict([t.new_item(3) for t in tasks], users))
    np.testing.assert_array_equal(preds[0], preds[1])


def test_the_registered_learner_reads_no_test_rating_in_evaluate(data, monkeypatch):
    """`evaluate --cold items` hands the learner no rating of a test item: the transposed
    data its MetaLearner is fitted on holds none (recorded at each fold)."""
    from metarec_core.evaluation.runner import EvalConfig, run_evaluation
    from metarec_core.methods import items_meta

    seen_by_fit = []
    original = items_meta.transpose

    def recording(d, items):
        out = original(d, items)
        seen_by_fit.append(np.unique(out.user))  # the items whose ratings it trains on
        return out

    monkeypatch.setattr(items_meta, "transpose", recording)
    monkeypatch.setattr(items_meta.ItemMetaSGD, "__init__", _tiny_init)
    run_evaluation(
        data, EvalConfig(cold="items", methods=("item_metasgd",), support=(0, 1), folds=3)
    )
    folds = item_folds(data, 3, seed=0, val_fraction=0.1)
    assert len(seen_by_fit) == len(folds)
    for items, f in zip(seen_by_fit, folds, strict=True):
        assert not np.isin(items, f.test_items).any()
        assert np.isin(items, np.concatenate([f.train_items, f.val_items])).all()


def _tiny_init(self, seed: int = 0, device: str = "auto", **overrides) -> None:
    """A registered learner as `make_method` builds it, with a tiny training."""
    ItemMetaLearner.__init__(self, seed, **{**TINY, "steps": 5, **overrides})


def test_k0_uses_the_metadata(fitted):
    """At k = 0 the prediction comes from the metadata: the same title and genres give the same
    scores, Sci-Fi (rated 2 stars above Romance in the data) scores higher."""
    for m in fitted.values():
        scifi = NewItem.of("New film (1999)", ["Sci-Fi"])
        s = m.score_items([scifi, NewItem.of("New film (1999)", ["Sci-Fi"]), NewItem.of(
            "New film (1999)", ["Romance"])])  # fmt: skip
        np.testing.assert_array_equal(s[0], s[1])
        assert s[0].mean() > s[2].mean() + 1.0, m.name
        assert not np.allclose(m.prior_states([scifi]), m.learner_.model_.user_init.detach())


def test_k0_beats_global_mean_and_error_does_not_rise_with_k(fitted, data, fold, tasks):
    seen = without_items(data, fold.test_items)
    gm = registry.make_method("global_mean", cold="items").fit(seen, fold.train_items)
    floor = _mae(gm, tasks, 0)
    for m in fitted.values():
        maes = [_mae(m, tasks, k) for k in SUPPORT]
        assert maes[0] < floor - 0.2, (m.name, maes, floor)
        # on average over the support sizes the ratings do not make it worse (noise: 0.03)
        assert np.mean(maes[1:]) <= maes[0] + 0.03, (m.name, maes)


def test_the_ratings_move_the_prediction(fitted):
    scifi = NewItem.of("New film (1999)", ["Sci-Fi"])
    low = NewItem.of("New film (1999)", ["Sci-Fi"], np.arange(10), np.ones(10))
    for m in fitted.values():
        assert m.adapt_item(low).scores.mean() < m.adapt_item(scifi).scores.mean() - 0.2


def test_registry_lists_the_item_learners():
    assert registry.ITEM_META_LEARNERS == ("item_metasgd", "item_finetune")
    assert registry.available_methods(registry.ITEM_META_LEARNER, cold="items") == list(
        registry.ITEM_META_LEARNERS
    )
    m = registry.make_method("item_finetune", seed=3, device="cpu", cold="items")
    assert isinstance(m, ItemFinetune) and m.seed == 3 and m.device == "cpu"
    assert registry.method_class("item_metasgd", cold="items").capabilities.meta_learned
    assert "item_metasgd" not in registry.available_methods()  # not a new-user method


def test_cli_evaluates_item_metasgd_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ItemMetaSGD, "__init__", _tiny_init)
    rows, items = genre_items(n_users=80, n_items=40, per_user=25)
    write_frames(tmp_path, rows, items)
    out = tmp_path / "rep.json"
    args = ["evaluate", str(tmp_path / "r.csv"), "--items", str(tmp_path / "i.csv")]
    args += ["--cold", "items", "--methods", "item_metasgd", "--support", "0,3", "--folds", "2"]
    code = cli.main([*args, "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "item_metasgd" in text
    rep = EvaluationReport.from_json(out.read_text())
    assert {(r.method, r.support) for r in rep.rows} == {("item_metasgd", 0), ("item_metasgd", 3)}
