"""A new method is one class plus one registry entry.

A toy constant predictor (a baseline) and a toy meta-learning algorithm (first-order MAML with
its own name and adaptation step) are registered through the registry's public `register`
only; they then show in the CLI (`evaluate --methods toy` runs, `train --algo small_step`
trains, `--help` lists them), the Train page (fitted or trained there as a background job),
the Evaluate page's and What-if page's pickers, the Train page's checkpoint upload and download
picker and the sidebar's model picker, and they are saved and loaded by checkpoint.py, with no
other edit. They are removed after each test.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import (
    TINY_FORM,
    TINY_LEARNER,
    new_app,
    ratings_csv,
    tiny_dataset,
    tiny_split,
    train_page,
    wait_until,
)

from metarec_core import cli
from metarec_core.checkpoint import load_checkpoint, to_bytes
from metarec_core.data.dataset import RatingsDataset
from metarec_core.methods import registry
from metarec_core.methods.base import AdaptedUser, Recommender
from metarec_core.methods.meta import FOMAML, LearnerConfig, learner_class, make_learner, preset


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


TOY = registry.MethodSpec.of(
    Constant, "Toy constant", "The middle of the rating scale for everyone."
)


class SmallStep(FOMAML):
    """The toy algorithm: first-order MAML with its own name and smaller adaptation steps."""

    name = "small_step"
    defaults = {"inner_lr": 0.1}


SMALL_STEP = registry.MethodSpec.of(SmallStep, "Small-step FOMAML", "FOMAML, smaller steps.")


def _registered(spec: registry.MethodSpec):
    """`spec` registered for one test (the one `register` call), then removed."""
    registry.register(spec)
    yield spec
    registry.unregister(spec.name)
    assert spec.name not in registry.available_methods()


@pytest.fixture
def toy():
    yield from _registered(TOY)


@pytest.fixture
def algo():
    yield from _registered(SMALL_STEP)


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


# ------------------------------------------------------------- a registered meta-algorithm
TINY = {**TINY_LEARNER, "steps": 2, "eval_every": 1, "pretrain": False}


def test_a_registered_algorithm_is_its_class_and_one_entry(algo):
    assert registry.available_methods(registry.META_LEARNER)[-1] == "small_step"
    assert preset("small_step") == LearnerConfig(
        name="small_step", algorithm="small_step", inner_lr=0.1
    )
    assert learner_class(preset("small_step")) is SmallStep
    learner = make_learner("small_step", seed=3, device="cpu")
    assert type(learner) is SmallStep and learner.first_order  # FOMAML's rule, inherited
    assert learner.config.inner_lr == 0.1 and learner.config.seed == 3
    assert type(registry.make_method("small_step", device="cpu")) is SmallStep
    assert preset("small_step").phases == ("warm_start", "pretrain", "meta")


def test_an_algorithm_is_unknown_once_removed():
    with pytest.raises(ValueError, match="unknown algorithm 'small_step'"):
        LearnerConfig(algorithm="small_step")
    with pytest.raises(ValueError, match="unknown learner 'small_step'"):
        preset("small_step")


def test_a_class_no_worker_can_import_is_refused():
    class Local(Constant):
        name = "local"

    with pytest.raises(ValueError, match="top level of an importable module"):
        registry.MethodSpec.of(Local, "Local", "Defined in a function.")


def test_the_cli_lists_trains_and_saves_it(algo, tmp_path, capsys):
    from metarec_core.checkpoint import load_checkpoint as load
    from metarec_core.data.io import load_ratings

    path = tmp_path / "ratings.csv"
    path.write_bytes(ratings_csv())
    for command in ("train", "evaluate"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "small_step" in capsys.readouterr().out, command
    out = tmp_path / "small.pt"
    argv = ["train", str(path), "--out", str(out), "--algo", "small_step", "--steps", "2"]
    argv += ["--device", "cpu"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    ck = load(out, load_ratings(path))
    assert type(ck.learner) is SmallStep and ck.method == "small_step"
    assert ck.learner.config.inner_lr == 0.1


def test_a_trained_algorithm_saves_and_loads(algo):
    data = tiny_dataset()
    split = tiny_split(data)
    learner = make_learner("small_step", device="cpu", **TINY)
    learner.fit(data, split.train_users, split.val_users)
    ck = load_checkpoint(to_bytes(learner, data, train_users=split.train_users), data)
    assert type(ck.learner) is SmallStep and ck.learner.config == learner.config
    items, ratings = np.arange(3), np.array([5.0, 1.0, 4.0])
    np.testing.assert_allclose(
        ck.learner.adapt(items, ratings).scores, learner.adapt(items, ratings).scores, atol=1e-6
    )


@pytest.mark.usefixtures("small_sample")
def test_the_train_page_trains_it_and_the_pages_offer_it(algo, monkeypatch):
    from helpers import check_only_against

    check_only_against(monkeypatch, "user_bias")  # a tiny training passes this model check
    at = train_page()
    at.selectbox(key="train_preset").set_value("small_step").run()
    assert at.number_input(key="train_inner_lr").value == pytest.approx(0.1)  # its preset
    for key, value in TINY_FORM.items():
        widget = at.text_input(key=key) if key == "train_hidden" else at.number_input(key=key)
        widget.set_value(value)
    at.checkbox(key="train_pretrain").uncheck()
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error
    wait_until(at, lambda a: any("Training done" in s.value for s in a.success))
    entry = at.session_state["mr_models"]["small_step"]
    assert type(entry.model) is SmallStep and entry.model.config.inner_lr == 0.1
    assert at.session_state["mr_active_model"] == "small_step"
    assert "small_step" in at.selectbox(key="ckpt_pick").options

    at.switch_page("pages/evaluate.py").run()
    assert "Small-step FOMAML" in at.multiselect(key="eval_methods").options
    at.switch_page("pages/whatif.py").run()
    assert not at.exception
    assert "Small-step FOMAML" in at.multiselect(key="wi_models").options
    at.switch_page("pages/playground.py").run()
    assert not at.exception


@pytest.mark.usefixtures("small_sample")
def test_the_train_page_fits_a_baseline(toy):
    at = new_app()
    at.switch_page("pages/train.py").run()
    at.selectbox(key="train_preset").set_value("toy").run()
    # only what applies to it: its seed (no meta-learning settings, no device)
    keys = {w.key for w in at.number_input} | {w.key for w in at.selectbox}
    assert "train_seed" in keys and "train_steps" not in keys and "train_device" not in keys
    assert not at.checkbox
    at.number_input(key="train_seed").set_value(5)
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error
    wait_until(at, lambda a: any("Fitting Toy constant done" in s.value for s in a.success))
    # a model of the session, named apart from the baseline of the same name (what-if lists both)
    name = at.session_state["mr_active_model"]
    assert name == "toy #2"
    entry = at.session_state["mr_models"][name]
    assert isinstance(entry.model, Constant) and entry.model.seed == 5
    assert entry.config == registry.FitConfig("toy", seed=5, device="cpu")
    assert name in at.selectbox(key="ckpt_pick").options  # saveable
    at.switch_page("pages/playground.py").run()
    assert not at.exception


def test_a_worker_process_runs_registered_methods(algo, toy, monkeypatch):
    """The app's jobs run in worker processes: they are sent the registered entries and import
    the classes by name (here the worker finds this module through PYTHONPATH)."""
    from test_jobs import WAIT

    from metarec_core.jobs import JobPool, TrainingJob

    here = Path(__file__).parent
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(here), str(here.parent)]))
    data = tiny_dataset()
    cfg = dataclasses.replace(preset("small_step"), device="cpu", **TINY)
    pool = JobPool(1, workers="process")
    try:
        job = TrainingJob(data, cfg).start(pool)
        assert job.wait(WAIT).status == "done", job.snapshot().error
        assert pool.worker_pids()  # it ran in a worker
        fit = TrainingJob(data, registry.FitConfig("toy", seed=2)).start(pool)
        assert fit.wait(WAIT).status == "done", fit.snapshot().error
    finally:
        pool.close()
    assert type(job.result) is SmallStep and isinstance(fit.result, Constant)
    same = TrainingJob(data, cfg).start(JobPool(1, workers="thread"))
    assert same.wait(WAIT).status == "done"
    items, ratings = np.arange(3), np.array([5.0, 1.0, 4.0])
    np.testing.assert_allclose(
        job.result.adapt(items, ratings).scores, same.result.adapt(items, ratings).scores, atol=1e-6
    )


PLUGIN = """
from metarec_core.methods import registry
from metarec_core.methods.meta import Reptile


class FastReptile(Reptile):
    name = "fast_reptile"
    defaults = {"outer_lr": 2e-3}


registry.register(registry.MethodSpec.of(FastReptile, "Fast Reptile", "Reptile, bigger steps."))
"""


def _cli(tmp_path, module: str, *argv: str):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "METAREC_METHODS": module}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(root)])
    cmd = [sys.executable, "-m", "metarec_core", *argv]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_a_module_named_in_metarec_methods_registers_in_every_process(tmp_path):
    """A method in one's own module: named in METAREC_METHODS, the CLI (and the app, and a
    job's worker) import it on the registry's first use."""
    (tmp_path / "my_methods.py").write_text(PLUGIN)
    done = _cli(tmp_path, "my_methods", "train", "--help")
    assert done.returncode == 0 and "fast_reptile" in done.stdout, done.stderr
    missing = _cli(tmp_path, "not_there", "train", "--help")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "METAREC_METHODS names the module 'not_there'" in missing.stderr


class Patient(Constant):
    """A toy whose fit reports half-way, then waits for its stop flag (a long fit)."""

    def fit(self, data, train_users, val_users=None, *, should_stop=None, progress=None):
        import time

        progress(0.5, "half-way")
        deadline = time.monotonic() + 60
        while not should_stop() and time.monotonic() < deadline:
            time.sleep(0.01)
        return super().fit(data, train_users, val_users)


def test_a_fit_job_reports_progress_and_cancels_through_the_fit_hooks(toy):
    from test_jobs import WAIT

    from metarec_core.jobs import JobPool, TrainingJob

    job = TrainingJob(
        tiny_dataset(), registry.FitConfig("toy"), learner_factory=lambda c: Patient()
    )
    job.start(JobPool(1, workers="thread"))
    wait = 0
    while job.snapshot().fraction < 0.5 and wait < 3000:
        wait += 1
        job.wait(0.01)
    snap = job.snapshot()
    assert snap.fraction == 0.5 and snap.phase.describe() == "Fitting: 50%"
    assert snap.message == "fitting: half-way" and snap.device == "cpu"
    job.cancel()
    assert job.wait(WAIT).status == "cancelled" and job.result is None
