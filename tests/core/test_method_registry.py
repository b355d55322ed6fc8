"""A new method is one class plus one registry entry.

A toy constant predictor is registered through the registry's public `register` only; it then
shows in the CLI (`evaluate --methods toy` runs, `--help` lists it), the Evaluate page's and
What-if page's pickers, and the Train page's checkpoint upload and download picker, and the
sidebar's model picker, with no other edit. It is removed after each test.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import new_app, ratings_csv, tiny_dataset, tiny_split, wait_until

from metarec_core import cli
from metarec_core.checkpoint import load_checkpoint, to_bytes
from metarec_core.data.dataset import RatingsDataset
from metarec_core.methods import registry
from metarec_core.methods.base import AdaptedUser, Recommender


class Constant(Recommender):
    """The toy: predicts the middle of the rating scale for every item, whoever asks."""

    name = "toy"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, data: RatingsDataset, train_users, val_users=None, **hooks) -> Constant:
        self.n_items_ = data.n_items
        self.value_ = (data.scale.low + data.scale.high) / 2
        self.fitted_ = True
        return self

    def adapt(self, items, ratings, **query) -> AdaptedUser:
        return AdaptedUser(np.full(self.n_items_, self.value_), np.asarray(items), ratings)

    def to_state(self) -> dict[str, Any]:
        return {"n_items": self.n_items_, "value": self.value_}

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str = "cpu") -> Constant:
        toy = cls()
        toy.n_items_, toy.value_, toy.fitted_ = int(state["n_items"]), float(state["value"]), True
        return toy


TOY = registry.MethodSpec(
    name="toy",
    display="Toy constant",
    description="The middle of the rating scale for everyone.",
    kind=registry.BASELINE,
    load=lambda: Constant,
)


@pytest.fixture
def toy():
    registry.register(TOY)
    yield TOY
    registry.unregister("toy")
    assert "toy" not in registry.available_methods()


def test_the_registry_is_the_one_list(toy):
    assert registry.available_methods(registry.BASELINE)[-1] == "toy"
    assert registry.display_name("toy") == "Toy constant" and registry.describe("toy")
    assert isinstance(registry.make_method("toy", seed=1, device="cuda"), Constant)
    assert registry.default_methods() == (
        "global_mean",
        "item_mean",
        "user_bias",
        "mf_foldin",
        "popularity",
    )
    with pytest.raises(ValueError, match="registered already"):
        registry.register(TOY)
    with pytest.raises(ValueError, match="built in"):
        registry.unregister("popularity")


def test_make_method_passes_a_device_only_to_methods_that_declare_one():
    assert not registry.method_class("mf_foldin").capabilities.device
    registry.make_method("mf_foldin", device="cuda")  # a baseline takes no device: no error
    learners = pytest.importorskip("metarec_core.methods.meta")
    learner = registry.make_method("maml", seed=4, device="cpu")
    assert isinstance(learner, learners.MetaLearner) and learner.config.device == "cpu"
    assert learner.capabilities.device and learner.capabilities.meta_learned


def test_the_cli_lists_and_evaluates_it(toy, tmp_path, capsys):
    path = tmp_path / "ratings.csv"
    path.write_bytes(ratings_csv())
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--help"])
    assert "toy" in capsys.readouterr().out
    argv = ["evaluate", str(path), "--methods", "toy,item_mean", "--support", "1,3", "--folds", "2"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "toy" in out and "item_mean" in out


def test_the_cli_refuses_it_once_removed(tmp_path, capsys):
    path = tmp_path / "ratings.csv"
    path.write_bytes(ratings_csv())
    argv = ["evaluate", str(path), "--methods", "toy", "--folds", "2"]
    assert cli.main(argv) == 2
    assert "unknown method 'toy'" in capsys.readouterr().err


def test_a_saved_toy_loads_through_the_registry(toy):
    data = tiny_dataset()
    split = tiny_split(data)
    method = registry.make_method("toy").fit(data, split.train_users, split.val_users)
    ck = load_checkpoint(to_bytes(method, data, train_users=split.train_users), data)
    assert isinstance(ck.learner, Constant) and ck.method == "toy"
    np.testing.assert_array_equal(ck.train_users, split.train_users)


@pytest.mark.usefixtures("small_sample")
def test_the_pages_offer_it(toy):
    at = new_app()
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    picker = at.multiselect(key="eval_methods")
    assert "Toy constant" in picker.options
    picker.set_value(["toy", "item_mean"])
    at.text_input(key="eval_support").set_value("1,3")
    at.number_input(key="eval_folds").set_value(2)
    at.button(key="eval_start").click().run()
    wait_until(at, lambda a: any("Evaluation done" in s.value for s in a.success))
    assert {r.method for r in at.session_state["mr_eval_report"].rows} == {"toy", "item_mean"}

    at.switch_page("pages/whatif.py").run()
    assert not at.exception
    assert "Toy constant" in at.multiselect(key="wi_models").options

    # the Train page's checkpoint upload takes it, and its download and the sidebar list it
    data = tiny_dataset()
    split = tiny_split(data)
    method = registry.make_method("toy").fit(data, split.train_users, split.val_users)
    # a split other than the seeded one the app would derive: the stored one must be used
    train = split.train_users[:-3]
    raw = to_bytes(method, data, train_users=train, val_users=split.val_users)
    at.switch_page("pages/train.py").run()
    at.file_uploader(key="upload_checkpoint").set_value(("toy.pt", raw, "application/x")).run()
    assert not at.exception and not at.error
    assert at.session_state["mr_active_model"] == "toy.pt"
    at.run()  # the download column is drawn before the upload's: it lists it from the next run
    assert not at.exception
    assert "toy.pt" in at.selectbox(key="ckpt_pick").options
    assert "toy.pt" in at.selectbox(key="sidebar_model").options
    entry = at.session_state["mr_models"]["toy.pt"]
    np.testing.assert_array_equal(entry.train_users, train)  # the stored split
    assert set(split.train_users[-3:]) <= set(entry.heldout_users)


@pytest.mark.parametrize("name", ["user_bias_levels", "popularity", "toy"])
def test_cli_recommend_takes_any_saved_method(name, toy, tmp_path, capsys):
    import json

    from metarec_core.checkpoint import save_checkpoint

    data = tiny_dataset()
    split = tiny_split(data)
    method = registry.make_method(name).fit(data, split.train_users, split.val_users)
    model = save_checkpoint(method, data, tmp_path / f"{name}.pt")
    ratings = tmp_path / "me.csv"
    ids = [str(x) for x in data.item_ids[:3]]
    rows = [f"{i},{r}\n" for i, r in zip(ids, (5, 1, 4), strict=True)]
    ratings.write_text("item,rating\n" + "".join(rows))
    assert cli.main(["recommend", str(model), "--ratings", str(ratings), "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)["recommendations"]
    assert len(recs) == 10 and not {r["item"] for r in recs} & set(ids)


@pytest.mark.usefixtures("small_sample")
def test_a_saved_baseline_serves_every_page():
    data = tiny_dataset()
    split = tiny_split(data)
    method = registry.make_method("user_bias_levels").fit(data, split.train_users, split.val_users)
    raw = to_bytes(method, data, train_users=split.train_users, val_users=split.val_users)
    at = new_app()
    at.switch_page("pages/train.py").run()
    at.file_uploader(key="upload_checkpoint").set_value(("b.pt", raw, "application/x")).run()
    assert at.session_state["mr_active_model"] == "b.pt"
    for page in ("pages/home.py", "pages/evaluate.py", "pages/whatif.py", "pages/playground.py"):
        at.switch_page(page).run()
        assert not at.exception, page
