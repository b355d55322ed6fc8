"""New-item models persist: every item method's checkpoint round trip gives the same
predictions; a damaged or crafted item checkpoint is refused with a clear message; the
audience ranking and its CLI (`audience`, `train --cold items`)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from metarec_core import cli
from metarec_core.checkpoint import CheckpointError, load_checkpoint, to_bytes
from metarec_core.data.dataset import DataError
from metarec_core.interactive.audience import audience, read_item_ratings, with_year
from metarec_core.methods import registry
from metarec_core.methods.base import NewItem
from metarec_core.methods.items_meta import ItemFinetune, ItemMetaSGD
from metarec_core.protocol.item_splits import item_folds, make_item_tasks, without_items
from tests.core.test_item_cold import genre_dataset, genre_items
from tests.core.test_item_learners import TINY
from tests.helpers import edited_checkpoint as _edited
from tests.helpers import write_frames


@pytest.fixture(scope="module")
def data():
    return genre_dataset(n_users=60, n_items=40, per_user=20)


@pytest.fixture(scope="module")
def fold(data):
    return item_folds(data, 3, seed=0)[0]


@pytest.fixture(scope="module")
def probe(data, fold):
    """New items at k = 3 and their query users."""
    tasks, _ = make_item_tasks(data, fold.test_items, query=5, min_support=3)
    return [t.new_item(3) for t in tasks], np.stack([t.query[0] for t in tasks])


def _fit(name: str, data, fold):
    seen = without_items(data, fold.test_items)
    if name in registry.ITEM_META_LEARNERS:
        cls = {c.name: c for c in (ItemMetaSGD, ItemFinetune)}[name]
        return cls(seed=0, **TINY).fit(seen, fold.train_items, fold.val_items)
    return registry.make_method(name, cold="items").fit(seen, fold.train_items, fold.val_items)


@pytest.fixture(scope="module")
def saved(data, fold):
    return {
        name: (m := _fit(name, data, fold), to_bytes(m, data))
        for name in registry.available_methods(cold="items")
    }


@pytest.mark.parametrize("name", [*registry.ITEM_BASELINES, *registry.ITEM_META_LEARNERS])
def test_round_trip_gives_the_same_predictions(saved, data, probe, name):
    model, raw = saved[name]
    ck = load_checkpoint(io.BytesIO(raw), data, cold="items")
    assert ck.cold == "items" and ck.method == name and type(ck.learner) is type(model)
    assert list(ck.user_ids) == [str(u) for u in data.user_ids]
    new, users = probe
    np.testing.assert_allclose(ck.learner.predict(new, users), model.predict(new, users), atol=1e-6)
    again = load_checkpoint(raw, cold=None)  # without a dataset (the CLI), any kind
    np.testing.assert_allclose(
        again.learner.predict(new, users), model.predict(new, users), atol=1e-6
    )


@pytest.mark.parametrize(
    "name, edit, message",
    [
        (
            "mf_foldin",
            lambda o: o["learner"]["arrays"].update(user_factors_=torch.zeros(10**6, 2)),
            "user_factors_ has shape",
        ),
        (
            "content",
            lambda o: o["learner"]["arrays"].update(coef_=torch.full((3,), float("nan"))),
            "coef_ has shape",
        ),
        (
            "item_bias",
            lambda o: o["learner"]["features"].update(words=["x" * 10_000]),
            "features.words",
        ),
        ("content", lambda o: o["learner"].update(format="metarec-baseline"), "not an item"),
        (
            "item_metasgd",
            lambda o: o["learner"]["learner"]["config"].update(factors=10**9),
            "factors",
        ),
        (
            "item_metasgd",
            lambda o: o["learner"].update(coef=torch.zeros(2, 2)),
            "coef has shape",
        ),
        ("content", lambda o: o.update(method="item_bias"), "is of 'content'"),
        ("content", lambda o: o.update(method="nonesuch"), "new-item method this MetaRec"),
        ("content", lambda o: o.update(user_ids=o["user_ids"][:-1]), "user ids"),
    ],
)
def test_a_crafted_item_checkpoint_is_refused_with_a_clear_message(saved, name, edit, message):
    raw = _edited(saved[name][1], edit)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(io.BytesIO(raw), name="bad.pt", cold="items")


def test_an_item_model_of_other_users_is_refused(saved, data):
    other = genre_dataset(n_users=61, n_items=40, per_user=20)
    if other.n_items != data.n_items:
        pytest.skip("the other dataset has another catalogue")
    with pytest.raises(CheckpointError, match="other users"):
        load_checkpoint(io.BytesIO(saved["content"][1]), other, cold="items")


def test_a_caller_of_user_models_is_told_it_got_an_item_model(saved):
    with pytest.raises(CheckpointError, match="model for new items, not for new users"):
        load_checkpoint(io.BytesIO(saved["content"][1]), name="items.pt")


# --------------------------------------------------------------------------- audience


def test_the_audience_is_ordered_and_leaves_out_the_raters(saved, data):
    model = saved["item_bias"][0]
    raters = np.array([3, 7, 11])
    item = NewItem.of("Film 1 (1961)", ("Sci-Fi",), raters, [5.0, 4.0, 5.0])
    result = audience(model, item, top=data.n_users)
    scores = model.score_items([item])[0]
    assert not np.isin(result.users, raters).any() and result.excluded == 3
    assert len(result.users) == data.n_users - 3
    assert np.all(np.diff(result.predicted) <= 0)  # best first
    np.testing.assert_allclose(result.predicted, scores[result.users])
    ties = result.predicted[:-1] == result.predicted[1:]
    assert np.all(result.users[:-1][ties] < result.users[1:][ties])  # ties by user index
    top3 = audience(model, item, top=3)
    assert np.array_equal(top3.users, result.users[:3])
    with pytest.raises(ValueError, match="top must be"):
        audience(model, item, top=0)


def test_item_ratings_are_read_with_clear_errors(data):
    index = {str(u): i for i, u in enumerate(data.user_ids)}
    u0, u1 = str(data.user_ids[0]), str(data.user_ids[1])
    got = read_item_ratings(
        f"user,rating\n{u0},5\n{u1},4\nghost,3\n{u0},2\n".encode(), index, data.scale
    )
    assert got.users.tolist() == [1, 0] and got.ratings.tolist() == [4.0, 2.0]
    assert got.unknown_ids == ("ghost",) and got.duplicates == 1
    assert read_item_ratings(f"{u0},5\n".encode(), index, data.scale).users.tolist() == [0]
    for text, message in [
        ("who,what\nx,1\n", "header without a user column"),
        (f"user,rating\n{u0},nine\n", "row 2: rating 'nine' is not a number"),
        (f"user,rating\n{u0},9\n", "outside the model's scale"),
        ("user,rating\nghost,3\n", "none of the 1 users is known"),
        ("", "no ratings"),
    ]:
        with pytest.raises(DataError, match=message):
            read_item_ratings(text.encode(), index, data.scale, name="r.csv")
    assert with_year("Alien", 1979) == "Alien (1979)" and with_year("Alien (1979)", 1980) == (
        "Alien (1979)"
    )


def test_cli_trains_an_item_model_and_lists_its_audience(tmp_path, capsys):
    rows, items = genre_items(n_users=50, n_items=30, per_user=15)
    write_frames(tmp_path, rows, items)
    model = tmp_path / "items.pt"
    data_args = [str(tmp_path / "r.csv"), "--items", str(tmp_path / "i.csv")]
    assert (
        cli.main(
            ["train", *data_args, "--cold", "items", "--algo", "item_bias", "--out", str(model)]
        )
        == 0
    )
    assert "model written" in capsys.readouterr().out
    (tmp_path / "first.csv").write_text("user,rating\nu0,5\nu1,5\nnobody,1\n")
    argv = ["audience", str(model), "--item-title", "Star", "--year", "1999", "--genres", "Sci-Fi"]
    assert cli.main([*argv, "--ratings", str(tmp_path / "first.csv"), "--top", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    users = [r["user"] for r in out["audience"]]
    assert len(users) == 5 and "u0" not in users and "u1" not in users
    preds = [r["predicted_rating"] for r in out["audience"]]
    assert preds == sorted(preds, reverse=True) and out["item"]["title"] == "Star (1999)"
    assert out["unknown_users"] == ["nobody"] and out["excluded_raters"] == 2
    # from a ratings file: fit --method first
    assert cli.main(["audience", *data_args, "--genres", "Romance", "--top", "3"]) == 0
    assert "top 3 users" in capsys.readouterr().out
    # errors: a user model, an unknown method, train with an item method but no --cold items
    assert cli.main(["train", *data_args, "--algo", "content", "--out", str(model)]) == 2
    assert "add --cold items" in capsys.readouterr().err
    assert cli.main(["audience", *data_args, "--method", "nonesuch"]) == 2
    assert "unknown new-item method 'nonesuch'" in capsys.readouterr().err
    assert cli.main(["audience", str(tmp_path / "missing.pt")]) == 2
    assert cli.main(["recommend", str(model), "--ratings", str(tmp_path / "first.csv")]) == 2
    assert "model for new items, not for new users" in capsys.readouterr().err


def test_cli_train_items_refuses_steps_for_a_baseline(tmp_path, capsys):
    """--steps is a meta-learner's setting: the item baselines refuse it by their class."""
    rows, items = genre_items(n_users=50, n_items=30, per_user=15)
    write_frames(tmp_path, rows, items)
    argv = ["train", str(tmp_path / "r.csv"), "--items", str(tmp_path / "i.csv"), "--cold"]
    argv += ["items", "--algo", "item_bias", "--steps", "5", "--out", str(tmp_path / "m.pt")]
    assert cli.main(argv) == 2
    assert "--steps applies to the new-item meta-learners, not item_bias" in capsys.readouterr().err
