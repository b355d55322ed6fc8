"""New users on new items (--cold both) and MeLU's four states (--protocol melu --state):
the splits, the no-leak guarantee, metadata-generated new items, the report and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pytest

from metarec_core import cli
from metarec_core.data.dataset import RatingsDataset
from metarec_core.evaluation.report import (
    BothKShotProtocol,
    EvaluationReport,
    MeluStateProtocol,
)
from metarec_core.evaluation.runner import EvalConfig, item_method_in_state, run_evaluation
from metarec_core.methods import registry
from metarec_core.methods.base import AdaptedUser, ItemRecommender, NewItem, Recommender
from metarec_core.methods.both import fill_new_items
from metarec_core.protocol.both_splits import (
    MELU_STATES,
    both_folds,
    make_both_tasks,
    melu_item_split,
    melu_state_tasks,
    melu_states,
    without_users,
)
from metarec_core.protocol.item_splits import without_items
from metarec_core.protocol.splits import MELU_MAX_RATINGS, MELU_MIN_RATINGS
from tests.core.test_item_cold import genre_dataset, genre_items
from tests.helpers import write_frames

SUPPORT = (1, 3, 5)


@pytest.fixture(scope="module")
def data():
    # 60 ratings of 90 items per user: ~12 of a fold's (or the newest) items, 13-100 in all
    return genre_dataset(n_users=120, n_items=90, per_user=60)


# --------------------------------------------------------------------------- both: protocol


def test_both_folds_pair_a_user_fold_with_an_item_fold(data):
    folds = both_folds(data, 3, seed=0)
    assert np.array_equal(np.sort(np.concatenate([f.test_users for f in folds])), np.arange(120))
    assert np.array_equal(np.sort(np.concatenate([f.new_items for f in folds])), np.arange(90))
    for f in folds:
        assert not np.intersect1d(f.test_users, np.r_[f.train_users, f.val_users]).size


def test_support_is_warm_and_nested_and_the_query_is_new(data):
    fold = both_folds(data, 3, seed=0)[0]
    tasks, left_out = make_both_tasks(
        data, fold.test_users, fold.new_items, query=10, min_support=5
    )
    assert len(tasks) + left_out == len(fold.test_users) and tasks
    for t in tasks:
        assert np.isin(t.query[0], fold.new_items).all() and len(t.query[0]) == 10
        assert not np.isin(t.support()[0], fold.new_items).any()
        assert np.array_equal(t.support(3)[0], t.support(5)[0][:3])  # nested
    again, _ = make_both_tasks(data, fold.test_users[::-1], fold.new_items, query=10, min_support=5)
    by_user = {t.user: t for t in again}
    assert all(np.array_equal(by_user[t.user].query[0], t.query[0]) for t in tasks)  # seeded


# --------------------------------------------------------------------------- both: no leak


class Spy(Recommender):
    """Records what every fit is given; predicts the training mean."""

    name: ClassVar[str] = "spy_both"
    fits: ClassVar[list] = []

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, data, train_users, val_users=None, *, should_stop=None, progress=None):
        Spy.fits.append((data, np.asarray(train_users), np.asarray(val_users)))
        self.n_items_, self.mean_, self.fitted_ = data.n_items, float(data.rating.mean()), True
        return self

    def adapt(self, items, ratings, *, query_items=None, query_ratings=None) -> AdaptedUser:
        return AdaptedUser(np.full(self.n_items_, self.mean_), items, ratings)

    def score_many(self, supports: Sequence) -> np.ndarray:
        return np.full((len(supports), self.n_items_), self.mean_)


def test_no_rating_of_a_test_user_or_a_new_item_reaches_a_fit(data):
    registry.register(registry.MethodSpec.of(Spy, "Spy", "Records its fits."))
    Spy.fits.clear()
    try:
        run_evaluation(
            data, EvalConfig(cold="both", methods=("spy_both",), support=SUPPORT, folds=3)
        )
    finally:
        registry.unregister("spy_both")
    folds = both_folds(data, 3, seed=0)
    assert len(Spy.fits) == 3
    for (seen, train, val), fold in zip(Spy.fits, folds, strict=True):
        assert not np.isin(seen.item, fold.new_items).any()  # no rating of a new item at all
        assert not np.isin(np.r_[train, val], fold.test_users).any()  # no test user fitted


@pytest.mark.parametrize("name", ["user_bias", "mf_foldin_levels"])
def test_a_method_fitted_for_both_reads_no_test_users_rating(data, name):
    fold = both_folds(data, 3, seed=0)[0]
    tasks, _ = make_both_tasks(data, fold.test_users, fold.new_items, query=10, min_support=5)
    q = np.stack([t.query[0] for t in tasks])
    preds = []
    seen = without_items(data, fold.new_items)
    for d in (seen, without_users(seen, fold.test_users)):
        m = registry.make_method(name).fit(d, fold.train_users, fold.val_users)
        fill_new_items(m, d, fold.train_users, fold.new_items)
        scores = m.score_many([t.support(5) for t in tasks])
        preds.append(np.take_along_axis(scores, q, 1))
    np.testing.assert_allclose(preds[0], preds[1], atol=1e-9)


def test_new_items_get_their_parameters_from_metadata(data):
    fold = both_folds(data, 3, seed=0)[0]
    seen = without_items(data, fold.new_items)
    m = registry.make_method("user_bias").fit(seen, fold.train_users, fold.val_users)
    before = m.item_bias_[fold.new_items].copy()
    fill_new_items(m, seen, fold.train_users, fold.new_items)
    after = m.item_bias_[fold.new_items]
    assert np.allclose(before, 0.0) and after.std() > 0.3  # the genre effect (± 1 star) appears
    genre = np.array([data.items.genre_list(int(i))[0] for i in fold.new_items])
    assert after[genre == "Sci-Fi"].mean() > after[genre == "Romance"].mean() + 1.0  # +1 vs -1
    with pytest.raises(ValueError, match="predicts no rating"):
        pop = registry.make_method("popularity").fit(seen, fold.train_users)
        fill_new_items(pop, seen, fold.train_users, fold.new_items)


@pytest.fixture(scope="module")
def both_report(data):
    methods = ("global_mean", "item_mean", "user_bias")
    return run_evaluation(
        data, EvalConfig(cold="both", methods=methods, support=SUPPORT, folds=3, n_boot=200)
    )


def test_metadata_beats_the_global_mean_with_both_new(both_report):
    mae = {(r.method, r.support): r.mae for r in both_report.rows}
    for k in SUPPORT:
        assert mae[("user_bias", k)] < mae[("global_mean", k)] - 0.1
    assert mae[("user_bias", 5)] < mae[("user_bias", 1)]  # the user's warm ratings help
    assert all(r.recall_10 is None for r in both_report.rows)


def test_the_both_report_reads_back(both_report):
    assert isinstance(both_report.protocol, BothKShotProtocol)
    d = both_report.to_dict()
    assert d["protocol"]["name"] == "kshot_both" and d["protocol"]["cold"] == "both"
    assert EvaluationReport.from_json(both_report.to_json()).to_dict() == d
    assert "new users on new items" in both_report.to_text()


def test_both_config_errors():
    with pytest.raises(ValueError, match="predicts no rating"):
        EvalConfig(cold="both", methods=("popularity",))
    assert "popularity" not in EvalConfig(cold="both").methods
    with pytest.raises(ValueError, match="kshot protocol only"):
        EvalConfig(cold="both", protocol="melu")
    with pytest.raises(ValueError, match="needs --protocol melu"):
        EvalConfig(state="both")
    with pytest.raises(ValueError, match="unknown melu state"):
        EvalConfig(protocol="melu", state="cold")


# --------------------------------------------------------------------------- MeLU's states


def test_melu_items_are_split_by_release_year(data):
    new, cut = melu_item_split(data)
    years = np.array([int(str(t)[-5:-1]) for t in data.items.titles])  # "Film j (YYYY)"
    assert np.array_equal(new, np.flatnonzero(years >= cut))
    assert abs(len(new) / data.n_items - 0.2) < 0.05


def test_the_four_states_split_as_specified(data):
    st = melu_states(data, seed=0)
    existing = np.r_[st.train_users, st.val_users]
    counts = data.counts_per_user()
    ok = (counts >= MELU_MIN_RATINGS) & (counts <= MELU_MAX_RATINGS)
    assert set(existing) | set(st.new_users) == set(np.flatnonzero(ok))
    assert not np.intersect1d(existing, st.new_users).size
    fit = st.fit_data
    assert np.isin(fit.user, existing).all() and not np.isin(fit.item, st.new_items).any()
    fit_pairs = set(zip(fit.user.tolist(), fit.item.tolist(), strict=True))
    for state in MELU_STATES:
        tasks, _ = melu_state_tasks(data, st, state)
        assert tasks, state
        users = np.array([t.user for t in tasks])
        new_user = state in ("user", "both")
        assert np.isin(users, st.new_users if new_user else existing).all(), state
        for t in tasks:
            q_new = np.isin(t.query[0], st.new_items)
            assert q_new.all() if state in ("item", "both") else not q_new.any(), state
            assert len(t.query[0]) == 10 and len(t.support()[0]) >= 3
            assert not np.isin(t.support()[0], st.new_items).any()  # support: existing items
            # no query rating was fitted on (warm: its query was removed from the fit data)
            assert not fit_pairs & set(zip([t.user] * 10, t.query[0].tolist(), strict=True))


@pytest.mark.parametrize("state", MELU_STATES)
def test_each_melu_state_evaluates(data, state):
    cfg = EvalConfig(protocol="melu", state=state, methods=("global_mean", "user_bias"), n_boot=100)
    rep = run_evaluation(data, cfg)
    assert isinstance(rep.protocol, MeluStateProtocol) and rep.protocol.state == state
    mae = {r.method: r.mae for r in rep.rows}
    assert mae["user_bias"] < mae["global_mean"]
    assert EvaluationReport.from_json(rep.to_json()).to_dict() == rep.to_dict()


# --------------------------------------------------------------------------- CLI


def test_cli_evaluates_both_and_a_melu_state(tmp_path, capsys):
    rows, items = genre_items(n_users=100, n_items=60, per_user=40)
    write_frames(tmp_path, rows, items)
    base = ["evaluate", str(tmp_path / "r.csv"), "--items", str(tmp_path / "i.csv")]
    out = tmp_path / "both.json"
    argv = [*base, "--cold", "both", "--methods", "global_mean,user_bias", "--support", "1,3"]
    assert cli.main([*argv, "--folds", "2", "--out", str(out)]) == 0
    assert "--cold both" in capsys.readouterr().out
    assert EvaluationReport.from_json(out.read_text()).protocol.name == "kshot_both"
    argv = [*base, "--protocol", "melu", "--state", "item", "--methods", "global_mean,user_bias"]
    assert cli.main(argv) == 0
    assert "state item" in capsys.readouterr().out
    assert cli.main([*base, "--state", "item"]) == 2
    assert "--state needs --protocol melu" in capsys.readouterr().err


def test_a_learner_gets_its_new_items_rows_from_metadata(data):
    from metarec_core.methods.meta import make_learner

    fold = both_folds(data, 3, seed=0)[0]
    seen = without_items(data, fold.new_items)
    tiny = dict(steps=30, eval_every=10, factors=4, embedding_dim=8, hidden=(16,), meta_batch=16)
    learner = make_learner("metasgd", seed=0, device="cpu", **tiny)
    learner.fit(seen, fold.train_users, fold.val_users)
    tasks, _ = make_both_tasks(data, fold.test_users, fold.new_items, query=10, min_support=5)
    q, r = np.stack([t.query[0] for t in tasks]), np.stack([t.query[1] for t in tasks])

    def mae() -> float:
        scores = learner.score_many([t.support(5) for t in tasks])
        return float(np.abs(np.take_along_axis(scores, q, 1) - r).mean())

    enc = learner.model_.item_enc
    warm = enc.bias.detach().clone()
    before = mae()
    fill_new_items(learner, seen, fold.train_users, fold.new_items)
    rest = np.setdiff1d(np.arange(data.n_items), fold.new_items)
    assert torch_equal(enc.bias.detach()[rest], warm[rest])  # warm items untouched
    assert mae() < before - 0.05  # the genre effect, from metadata
    fitted = enc.bias.detach()[fold.new_items].numpy()
    genre = np.array([data.items.genre_list(int(i))[0] for i in fold.new_items])
    assert fitted[genre == "Sci-Fi"].mean() > fitted[genre == "Romance"].mean()


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


# --------------------------------------------------------------------------- new-item methods
# in MeLU's new-item state


class ItemSpy(ItemRecommender):
    """Records its fits and the metadata it is asked about; predicts each user's training mean
    (so a prediction shows whose it is)."""

    name: ClassVar[str] = "spy_state_items"
    fits: ClassVar[list[tuple[RatingsDataset, np.ndarray, np.ndarray]]] = []
    asked: ClassVar[list[NewItem]] = []

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _fit_items(self, data, train_items, val_items, should_stop, progress) -> bool:
        ItemSpy.fits.append((data, np.asarray(train_items), np.asarray(val_items)))
        self.n_users_ = data.n_users
        sums = np.bincount(data.user, weights=data.rating, minlength=data.n_users)
        self.user_mean_ = sums / np.maximum(np.bincount(data.user, minlength=data.n_users), 1)
        return True

    def predict(self, new_items: Sequence[NewItem], users: np.ndarray) -> np.ndarray:
        ItemSpy.asked.extend(new_items)
        return self.user_mean_[np.asarray(users)]


def test_a_new_item_method_in_melus_new_item_state_sees_no_new_item_and_knows_the_user(data):
    registry.register(registry.MethodSpec.of(ItemSpy, "Item spy", "Records its fits."))
    ItemSpy.fits.clear()
    ItemSpy.asked.clear()
    try:
        cfg = EvalConfig(protocol="melu", state="item", methods=("spy_state_items",), n_boot=100)
        rep = run_evaluation(data, cfg)
    finally:
        registry.unregister("spy_state_items", cold="items")
    st = melu_states(data, seed=0)
    tasks, _ = melu_state_tasks(data, st, "item")
    ((seen, train, val),) = ItemSpy.fits
    assert not np.isin(seen.item, st.new_items).any()  # no rating of a new item
    assert not np.isin(np.r_[train, val], st.new_items).any()
    assert not np.intersect1d(train, val).size and len(val) > 0
    # every new item is asked about by its metadata alone (k = 0)
    assert all(len(n.users) == 0 for n in ItemSpy.asked)
    titles = {str(data.items.titles[i]) for t in tasks for i in t.query[0]}
    assert {n.title for n in ItemSpy.asked} == titles
    # each task is scored with its own (existing) user's prediction
    sums = np.bincount(seen.user, weights=seen.rating, minlength=data.n_users)
    mean = sums / np.maximum(np.bincount(seen.user, minlength=data.n_users), 1)
    expected = np.mean([np.abs(mean[t.user] - t.query[1]).mean() for t in tasks])
    (row,) = rep.rows
    assert row.users == len(tasks) and row.mae == pytest.approx(expected)


def test_new_item_methods_take_the_new_item_state_only(data):
    cfg = EvalConfig(
        protocol="melu", state="item", methods=("global_mean", "content", "item_bias_levels"),
        n_boot=100,
    )  # fmt: skip
    mae = {r.method: r.mae for r in run_evaluation(data, cfg).rows}
    assert mae["content"] < mae["global_mean"] - 0.05  # the genre effect, from metadata
    for state in ("warm", "user", "both"):
        with pytest.raises(ValueError, match="takes the new-item state only"):
            EvalConfig(protocol="melu", state=state, methods=("content",))
    # a name both registries have is the users' method (new items' rows from metadata)
    assert not item_method_in_state("mf_foldin_levels", "item")
    assert item_method_in_state("item_metasgd", "item")
    assert not item_method_in_state("item_metasgd", None)
