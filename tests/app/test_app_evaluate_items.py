"""AppTest: the Evaluate page's "Who is new?" choice, new items (`EvalConfig(cold="items")`)."""

from __future__ import annotations

import json

import pytest
from helpers import new_app, wait_until

from metarec_core.evaluation.report import ItemKShotProtocol
from metarec_core.methods.registry import available_methods, default_methods, display_name, spec

# the app on a tiny sample folder, Streamlit caches cleared around each test (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("small_sample")

ITEM_METHODS = ("global_mean", "content", "item_bias")


def item_name(name: str) -> str:
    return spec(name, cold="items").display


def test_new_items_list_the_registrys_item_methods_and_evaluate_them():
    at = new_app()
    at.switch_page("pages/evaluate.py").run()
    assert at.radio(key="eval_cold").value == "users"  # today's default
    at.radio(key="eval_cold").set_value("items").run()
    assert not at.exception
    picker = at.multiselect(key="eval_methods_items")
    assert picker.options == [item_name(m) for m in available_methods(cold="items")]
    assert picker.value == list(default_methods("items"))
    assert at.text_input(key="eval_support_items").value == "0,1,3,5,10,20"
    picker.set_value(list(ITEM_METHODS))
    at.text_input(key="eval_support_items").set_value("0,1")
    at.number_input(key="eval_folds").set_value(2)
    at.button(key="eval_start").click().run()
    wait_until(at, lambda a: any("Evaluation done" in s.value for s in a.success))
    assert not at.exception and not at.error
    report = at.session_state["mr_eval_report"]
    assert isinstance(report.protocol, ItemKShotProtocol)
    assert {(r.method, r.support) for r in report.rows} == {
        (m, k) for m in ITEM_METHODS for k in (0, 1)
    }
    assert any("test items" in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert set(table["method"]) == {item_name(m) for m in ITEM_METHODS}
    assert json.loads(at.dataframe[0].proto.columns)["users"]["label"] == "Items"
    mae = json.loads(at.get("plotly_chart")[0].proto.spec)
    lines = {t["name"] for t in mae["data"] if t.get("mode") == "lines+markers"}
    assert lines == {item_name(m) for m in ITEM_METHODS}
    assert mae["layout"]["xaxis"]["title"]["text"] == "Ratings seen of the new item (k)"
    # back to new users: the users' methods and settings, untouched
    at.radio(key="eval_cold").set_value("users").run()
    assert not at.exception
    users = at.multiselect(key="eval_methods")
    assert users.options == [display_name(m) for m in available_methods()]
    assert at.text_input(key="eval_support").value == "1,3,5,10,20"
