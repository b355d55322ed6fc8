"""AppTest: the Evaluate page's "Who is new?" choice, new items (`EvalConfig(cold="items")`)."""

from __future__ import annotations

import json

import pytest
from helpers import check_report, new_app, run_evaluation

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
    report = run_evaluation(at, "_items", ITEM_METHODS, "0,1")
    check_report(at, report, ItemKShotProtocol, ITEM_METHODS, (0, 1), item_name, "Items")
    assert any("test items" in c.value for c in at.caption)
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
