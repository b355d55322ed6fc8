"""One class per meta-learning algorithm: declared rules, the config -> class map, persistence."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from test_learners import SMALL, SUPPORT, TRAIN, VAL, data  # noqa: F401  (fixtures)

from metarec_core.methods import registry
from metarec_core.methods.base import Capabilities
from metarec_core.methods.meta import (
    ALGORITHMS,
    FOMAML,
    MAML,
    PRESETS,
    Finetune,
    MeLU,
    MetaLearner,
    MetaSGD,
    Reptile,
    algorithms,
    learner_class,
    make_learner,
    preset,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

META = Path(algorithms.__file__).parent
CLASSES = {
    "maml": MAML,
    "fomaml": FOMAML,
    "metasgd": MetaSGD,
    "reptile": Reptile,
    "finetune": Finetune,
    "melu": MeLU,
}


def test_every_algorithm_and_preset_has_its_own_class():
    assert set(algorithms.ALGORITHM_CLASSES) == set(ALGORITHMS) == set(CLASSES)
    for name, cls in CLASSES.items():
        assert cls.name == name and learner_class(preset(name)) is cls
        learner = make_learner(name, device="cpu")
        assert type(learner) is cls and learner.config == dataclasses.replace(
            PRESETS[name], device="cpu"
        )
        assert type(registry.make_method(name, device="cpu")) is cls  # the registry's path
        assert cls.capabilities == Capabilities(
            predicts_ratings=True,
            user_state=True,
            device=True,
            meta_learned=True,
            distribution=True,
        )
    assert type(MAML()) is MAML and MAML().config == preset("maml")  # its preset by default


def test_each_class_declares_its_update_rule():
    assert [c.pretrainer for c in CLASSES.values()] == [Finetune] * 4 + [None, Finetune]
    assert [n for n, c in CLASSES.items() if c.learned_lr] == ["metasgd"]
    assert [n for n, c in CLASSES.items() if c.learned_prior] == [
        "maml",
        "fomaml",
        "metasgd",
        "melu",
    ]
    first = {n: make_learner(n).first_order for n in CLASSES}
    assert first == {
        "maml": False,
        "fomaml": True,
        "metasgd": False,
        "reptile": True,
        "finetune": True,
        "melu": False,
    }
    assert make_learner("maml", first_order=True).first_order
    assert preset("finetune").phases == ("warm_start", "meta")
    assert preset("reptile").phases == ("warm_start", "pretrain", "meta")


def test_a_config_builds_only_its_own_class():
    with pytest.raises(TypeError):
        MetaLearner(preset("maml"))  # the shared part alone has no update rule
    with pytest.raises(ValueError, match="fomaml configuration cannot make a MAML"):
        MAML(preset("fomaml"))


def test_no_branch_on_the_algorithm_name_in_meta():
    """The classes own their rules: nothing in meta/ compares an algorithm's name."""
    pattern = re.compile(
        r"""(algorithm|\.name)\s*(==|!=)\s*["']|algorithm\s+(not\s+)?in\s*[(\[{]|is_first_order"""
    )
    for path in sorted(META.glob("*.py")):
        hits = [
            f"{path.name}:{i}: {line.strip()}"
            for i, line in enumerate(path.read_text().splitlines(), 1)
            if pattern.search(line) and not line.lstrip().startswith("#")
        ]
        assert hits == [], hits


def test_the_model_does_not_depend_on_the_baselines():
    tree = ast.parse((META / "model.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any("baselines" in (m or "") for m in imported), imported


def test_pretraining_trains_the_pretrainer_from_the_learners_set_up(data):  # noqa: F811
    learner = make_learner("metasgd", **SMALL).setup(data, TRAIN, VAL)
    before = {k: v.clone() for k, v in learner.model_.state_dict().items()}
    pre = Finetune(dataclasses.replace(learner.config, algorithm="finetune", steps=3))
    pre.train_from(learner, data, TRAIN, VAL)
    assert pre.fitted_ and pre.n_items_ == learner.n_items_ and pre.model_ is not learner.model_
    for k, v in learner.model_.state_dict().items():  # the source is not changed
        assert torch.equal(before[k], v), k
    assert not torch.equal(pre.model_.user_init, learner.model_.user_init)
    assert learner.inner_.per_step and not pre.inner_.per_step  # its own inner rule


@pytest.mark.parametrize("name", list(CLASSES))
def test_from_state_rebuilds_the_algorithms_class(data, name):  # noqa: F811
    learner = make_learner(name, **{**SMALL, "steps": 2, "eval_every": 1, "pretrain": False})
    learner.fit(data, TRAIN, VAL)
    state = learner.to_state()
    again = MetaLearner.from_state(state)
    assert type(again) is CLASSES[name] and again.config == learner.config
    np.testing.assert_array_equal(again.score_many(SUPPORT), learner.score_many(SUPPORT))
    assert type(CLASSES[name].from_state(state)) is CLASSES[name]
    other = Reptile if name != "reptile" else MAML
    with pytest.raises(ValueError, match=f"is a {CLASSES[name].__name__}, not a"):
        other.from_state(state)


def test_a_melu_state_of_the_previous_version_still_loads(data):  # noqa: F811
    """Version-1 states saved before the classes named MeLU's configuration "maml"."""
    learner = make_learner("melu", **{**SMALL, "steps": 2, "eval_every": 1})
    learner.fit(data, TRAIN, VAL)
    state = learner.to_state()
    state["config"] = {**state["config"], "algorithm": "maml"}
    again = MetaLearner.from_state(state)
    assert type(again) is MAML and again.name == "melu"  # the same rule, the same numbers
    np.testing.assert_array_equal(again.score_many(SUPPORT), learner.score_many(SUPPORT))
