"""AppTest: the Train page's "Tune for this dataset" option (methods/tuning.py's search in the
training job: its phase and cancel, then the trials table)."""

from __future__ import annotations

import pytest
from helpers import check_only_against, train_page, wait_until

pytestmark = pytest.mark.usefixtures("small_sample")


def _bars(at) -> list[str]:
    return [el.proto.text for el in at.get("progress")]


def test_tuning_runs_the_trials_then_the_training_and_shows_the_trials_table(monkeypatch):
    check_only_against(monkeypatch, "user_bias")  # a tiny training passes this check
    at = train_page()
    at.checkbox(key="train_pretrain").uncheck()
    at.checkbox(key="train_search").check()
    at.number_input(key="train_search_trials").set_value(2)
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error
    wait_until(at, lambda a: len(a.success) > 0, tries=1200)
    assert "Training done" in at.success[0].value
    model = at.session_state["mr_models"]["metasgd"].model
    assert model.fitted_ and len(model.search_.trials) == 2
    [table] = at.dataframe
    rows = table.value
    assert list(rows["setting"]) == ["preset", "mf_reg chosen on validation users"]
    assert rows["chosen"].sum() == 1
    assert "Settings tried for this dataset" in " ".join(m.value for m in at.markdown)


def test_the_search_shows_its_phase_and_cancel_stops_it():
    at = train_page(train_steps=100_000, train_eval_every=10_000)
    at.checkbox(key="train_search").check()
    at.button(key="train_start").click().run()
    wait_until(at, lambda a: any(b.startswith("Search for this dataset") for b in _bars(a)),
               tries=1200)  # fmt: skip
    [bar] = _bars(at)
    assert bar.startswith("Search for this dataset's settings (phase 1 of 5): ")
    at.button(key="train_cancel").click().run()
    wait_until(at, lambda a: any("cancelled" in w.value for w in a.warning), tries=1200)
    assert "metasgd" not in at.session_state["mr_models"] and not at.exception
