"""A method added in one place (tests/app/plugins/toy_methods.py: its class and one registry
entry, in a module named in METAREC_METHODS) appears in the Train, Evaluate and what-if pages'
method choices without any other edit."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import new_app

from metarec_core.methods import registry

PLUGINS = Path(__file__).resolve().parent / "plugins"


@pytest.fixture
def toy_methods(monkeypatch):
    """The registry as a fresh process would build it with METAREC_METHODS=toy_methods."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.setenv(registry.METHODS_ENV, "toy_methods")
    monkeypatch.setattr(registry, "_imported_env", False)  # the first use is still to come
    yield
    for name in ("firm_user_bias", "gentle_fomaml"):
        registry.unregister(name)
    sys.modules.pop("toy_methods", None)


@pytest.mark.usefixtures("small_sample", "toy_methods")
def test_a_plugin_module_s_methods_appear_in_the_pages():
    at = new_app()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    train = at.selectbox(key="train_preset").options
    assert {"Firm user bias", "Gentle FOMAML"} <= set(train)
    at.selectbox(key="train_preset").set_value("gentle_fomaml").run()
    assert not at.exception
    assert at.number_input(key="train_inner_lr").value == pytest.approx(0.2)  # its preset

    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    evaluate = at.multiselect(key="eval_methods").options
    assert {"Firm user bias", "Gentle FOMAML"} <= set(evaluate)

    at.switch_page("pages/whatif.py").run()
    assert not at.exception
    assert "Firm user bias" in at.multiselect(key="wi_models").options


@pytest.mark.usefixtures("toy_methods")
def test_a_plugin_baseline_saves_loads_and_recommends(tmp_path, capsys):
    """The same addition, with nothing else edited: checkpoint.py saves and loads it (through
    the registry) and the CLI's `recommend` serves it."""
    import json

    from helpers import tiny_dataset, tiny_split

    from metarec_core import cli
    from metarec_core.checkpoint import load_checkpoint, save_checkpoint

    data = tiny_dataset()
    split = tiny_split(data)
    method = registry.make_method("firm_user_bias").fit(data, split.train_users, split.val_users)
    path = save_checkpoint(method, data, tmp_path / "firm.pt", train_users=split.train_users)
    ck = load_checkpoint(path, data)
    assert type(ck.learner).__name__ == "FirmUserBias" and ck.method == "firm_user_bias"
    ratings = tmp_path / "me.csv"
    ratings.write_text("item,rating\n" + "".join(f"{i},4\n" for i in data.item_ids[:2]))
    assert cli.main(["recommend", str(path), "--ratings", str(ratings), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["recommendations"]) == 10
