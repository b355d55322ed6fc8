"""AppTest: the Train page (tiny training polled until done, cancel, checkpoints)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import (
    check_only_against,
    items_csv,
    new_app,
    ratings_csv,
    texts,
    tiny_model_bytes,
    train_page,
    wait_until,
)

from metarec_core.evaluation.check import CHECK_BASELINES
from metarec_core.methods.registry import display_name

# the app on a tiny sample folder, Streamlit caches cleared around each test (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("small_sample")


def test_train_page_shows_device_and_preset_defaults():
    at = new_app()
    at.switch_page("pages/train.py").run()
    assert any("Training will run on: cpu" in c.value for c in at.caption)
    assert at.checkbox(key="train_pretrain").value is True  # metasgd starts from finetune
    at.selectbox(key="train_preset").set_value("melu").run()
    assert at.checkbox(key="train_pretrain").value is False
    assert at.selectbox(key="train_adapt").value == "head"
    assert at.number_input(key="train_meta_batch").value == 32
    assert at.number_input(key="train_inner_lr").value == pytest.approx(5e-6)


def test_training_runs_in_the_background_until_done(monkeypatch):
    check_only_against(monkeypatch, "user_bias")  # a tiny training passes this check
    at = train_page()
    at.checkbox(key="train_pretrain").uncheck()
    before = set(at.session_state["mr_models"])
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error
    wait_until(at, lambda a: len(a.success) > 0)
    assert "Training done" in at.success[0].value
    models = at.session_state["mr_models"]
    new = set(models) - before
    assert new == {"metasgd"} and at.session_state["mr_active_model"] == "metasgd"
    assert models["metasgd"].model.fitted_
    assert not models["metasgd"].model.config.pretrain  # the form's checkbox, not the preset
    assert at.sidebar.selectbox(key="sidebar_model").value == "metasgd"
    # the two training curves and the model check's chart
    assert len(at.get("plotly_chart")) == 3
    best = display_name("user_bias")  # the check compares with user_bias alone here
    assert f"On your 8 check users, this model is better than the best baseline, {best}" in (
        at.success[0].value
    )
    assert "train_use_baseline" not in [b.key for b in at.button]
    assert "Download checkpoint" in [b.label for b in at.get("download_button")]


def test_cancel_stops_training_without_a_model():
    at = train_page(train_steps=100_000, train_eval_every=10_000)
    at.button(key="train_start").click().run()
    wait_until(at, lambda a: "train_cancel" in [b.key for b in a.button])
    at.button(key="train_cancel").click().run()
    wait_until(at, lambda a: any("cancelled" in w.value for w in a.warning))
    assert "metasgd" not in at.session_state["mr_models"]
    assert not at.exception


def test_bad_configuration_is_a_clear_error():
    at = train_page(train_hidden="8,x")
    at.button(key="train_start").click().run()
    assert not at.exception
    assert "Cannot start training" in at.error[0].value
    assert "decision layers" in at.error[0].value


def test_checkpoint_upload_good_mismatched_and_corrupt():
    at = new_app()
    at.switch_page("pages/train.py").run()
    up = at.file_uploader(key="upload_checkpoint")
    up.set_value(("mine.pt", tiny_model_bytes(), "application/octet-stream")).run()
    assert not at.exception and not at.error
    assert "mine.pt" in at.session_state["mr_models"]
    assert at.session_state["mr_active_model"] == "mine.pt"
    # a checkpoint of a different catalogue (the Data page's upload is another dataset)
    at.switch_page("pages/data.py").run()
    at.radio(key="data_source").set_value("Upload a file").run()
    at.file_uploader(key="upload_ratings").set_value(
        ("other.csv", ratings_csv(n_users=30, n_items=40, per_user=15, seed=2), "text/csv")
    ).run()
    at.file_uploader(key="upload_items").set_value(
        ("other_items.csv", items_csv(n_items=40), "text/csv")
    ).run()
    assert at.session_state["mr_data"].label == "other.csv"
    at.switch_page("pages/train.py").run()
    at.file_uploader(key="upload_checkpoint").set_value(
        ("mine.pt", tiny_model_bytes(), "application/octet-stream")
    ).run()
    assert not at.exception
    assert len(at.error) == 1 and "mine.pt" in at.error[0].value.replace("\\", "")
    at.file_uploader(key="upload_checkpoint").set_value(
        ("junk.pt", b"not a checkpoint" * 10, "application/octet-stream")
    ).run()
    assert not at.exception
    assert len(at.error) == 1 and "junk.pt" in at.error[0].value.replace("\\", "")


def progress_texts(at) -> list[str]:
    return [el.proto.text for el in at.get("progress")]


OTHER = "".join(f"u{u},i{i},{1 + (u * 7 + i) % 5}\n" for u in range(12) for i in range(9)).encode()


def test_pretraining_shows_its_phase_without_empty_charts_and_cancel_is_acknowledged(held):
    training = held(hold_at=("pretrain", 2))  # held after the second pre-training step
    at = train_page()
    at.button(key="train_start").click().run()
    training.wait_reached()
    at.run()
    assert not at.exception
    [bar] = progress_texts(at)
    assert bar.startswith("Pre-training (phase 2 of 4): step 2/4 · ")  # not "step 0/4"
    assert "ETA of this phase" in bar
    assert at.get("plotly_chart") == []  # no empty axes before the first meta-step
    assert "The training error appears here after the first training step." in texts(at)
    at.button(key="train_cancel").click().run()
    # the worker is still held inside the step: the click is acknowledged at once anyway
    [bar] = progress_texts(at)
    assert bar.startswith("Cancelling… (Pre-training (phase 2 of 4)")
    assert at.button(key="train_cancel").disabled
    training.wait_finished()
    at.run()
    assert any("cancelled" in w.value for w in at.warning) and not at.exception
    assert "metasgd" not in at.session_state["mr_models"]


def test_a_model_worse_than_the_baselines_is_not_made_active_without_a_choice(held):
    trainings = held()
    # what the form allows: outer lr 1.0 and inner lr 10 end "done" with a poor model
    at = train_page(train_outer_lr=1.0, train_inner_lr=10.0)
    at.checkbox(key="train_pretrain").uncheck()
    before = at.session_state["mr_active_model"]
    at.button(key="train_start").click().run()
    trainings.wait_finished()
    at.run()
    assert not at.exception
    assert trainings.jobs[0].snapshot().status == "done"
    models = at.session_state["mr_models"]
    assert "metasgd" in models and at.session_state["mr_active_model"] == before
    warning = " ".join(w.value for w in at.warning)
    check = trainings.jobs[0].baseline_check
    assert check.worse and check.describe(display_name) in warning
    winner = display_name(check.winner)  # the page names baselines as the registry displays them
    assert f"On your 8 check users, {winner} is better than this model at k = " in warning
    assert "It was not made active" in warning
    # the model check's chart: the model and the four baselines, MAE by k with 95% intervals
    figs = {c.proto.spec and json.loads(c.proto.spec)["layout"]["title"]["text"]: c
            for c in at.get("plotly_chart")}  # fmt: skip
    fig = json.loads(figs["Model check: error on the check users"].proto.spec)
    assert [t["name"] for t in fig["data"]] == ["metasgd", *map(display_name, CHECK_BASELINES)]
    assert all(t["x"] == [1, 3, 5, 10] and len(t["error_y"]["array"]) == 4 for t in fig["data"])
    assert fig["data"][0]["y"] == pytest.approx([check.mae("model", k) for k in check.ks])
    assert at.sidebar.selectbox(key="sidebar_model").value == before
    # switching to other data and back makes the dataset's latest good model active, not it
    at.switch_page("pages/data.py").run()
    at.radio(key="data_source").set_value("Upload a file").run()
    at.file_uploader(key="upload_ratings").set_value(("o.csv", OTHER, "text/csv")).run()
    at.radio(key="data_source").set_value("Sample data").run()
    assert not at.exception and at.session_state["mr_data"].is_sample
    assert at.session_state["mr_active_model"] == before
    at.switch_page("pages/train.py").run()
    assert at.button(key="train_use_baseline").label == (
        f"Use {display_name(check.winner)} as the active model"
    )
    at.button(key="train_use_anyway").click().run()
    assert not at.exception
    assert at.session_state["mr_active_model"] == "metasgd"
    assert at.sidebar.selectbox(key="sidebar_model").value == "metasgd"
    assert "You chose to use it anyway." in " ".join(w.value for w in at.warning)


def test_the_model_check_offers_the_better_baseline_as_the_active_model(held):
    trainings = held()
    at = train_page(train_outer_lr=1.0, train_inner_lr=10.0)  # ends "done" with a poor model
    at.checkbox(key="train_pretrain").uncheck()
    at.button(key="train_start").click().run()
    trainings.wait_finished()
    at.run()
    job = trainings.jobs[0]
    winner = job.baseline_check.winner
    button = at.button(key="train_use_baseline")
    assert button.label == f"Use {display_name(winner)} as the active model"
    button.click().run()
    assert not at.exception
    name = f"{display_name(winner)} (baseline)"
    entry = at.session_state["mr_models"][name]
    assert at.session_state["mr_active_model"] == name
    assert at.sidebar.selectbox(key="sidebar_model").value == name
    # the very baseline the check fitted: same users, same seed, so the same predictions
    from metarec_core.evaluation.check import fit_check_baselines

    same = fit_check_baselines(job.data, job.train_users, job.val_users, [winner])[winner]
    assert type(entry.model) is type(same) and entry.model.fitted_
    items, ratings = np.array([0, 1, 2]), np.array([5.0, 1.0, 3.0])
    np.testing.assert_array_equal(
        entry.model.adapt(items, ratings).scores, same.adapt(items, ratings).scores
    )
    np.testing.assert_array_equal(entry.train_users, job.train_users)
    assert "ws_key" in entry.extra  # saved in the workspace like a trained model
    warning = " ".join(w.value for w in at.warning)
    assert f"{display_name(winner)} is the active model" in warning
    assert "train_use_baseline" not in [b.key for b in at.button]  # used: no second offer
    assert at.session_state["mr_models"]["metasgd"].extra.get("worse")
    # beside a baseline that is active, the playground and what-if do not list it twice
    import app_state
    from metarec_core.interactive.session import PLAYGROUND_BASELINES

    assert app_state.baseline_of(entry) == winner
    shown = app_state.beside(entry, PLAYGROUND_BASELINES)
    assert winner not in shown and len(shown) == len(PLAYGROUND_BASELINES) - (
        winner in PLAYGROUND_BASELINES
    )
    at.switch_page("pages/whatif.py").run()
    assert not at.exception
    picked = at.multiselect(key="wi_models").value
    assert picked[0] == name and winner not in picked and len(picked) == len(set(picked))
