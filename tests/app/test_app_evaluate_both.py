"""AppTest: the Evaluate page's "Who is new?" choice "Both new": new users scored on new items
(`EvalConfig(cold="both")`, protocol/both_splits.py)."""

from __future__ import annotations

import json

import pytest
from helpers import check_report, new_app, run_evaluation

from metarec_core.evaluation.report import BothKShotProtocol
from metarec_core.evaluation.runner import evaluable_methods
from metarec_core.methods.registry import available_methods, display_name, method_class

# the app on a tiny sample folder, Streamlit caches cleared around each test (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("small_sample")

BOTH_METHODS = ("global_mean", "user_bias")


def test_both_new_offers_the_rating_predictors_and_evaluates_them():
    at = new_app()
    at.switch_page("pages/evaluate.py").run()
    at.radio(key="eval_cold").set_value("both").run()
    assert not at.exception
    picker = at.multiselect(key="eval_methods_both")
    offered, defaults = evaluable_methods("both")
    # the users' methods that predict ratings: a new item has no counts to rank it by
    assert picker.options == [display_name(m) for m in offered]
    ranking = [m for m in available_methods() if not method_class(m).capabilities.predicts_ratings]
    assert ranking and not set(ranking) & set(offered)
    assert set(offered) | set(ranking) == set(available_methods())
    assert picker.value == list(defaults) and not set(defaults) & set(ranking)
    assert at.selectbox(key="eval_protocol_both").disabled
    report = run_evaluation(at, "_both", BOTH_METHODS, "1,3", tries=300)
    check_report(at, report, BothKShotProtocol, BOTH_METHODS, (1, 3), display_name, "Users")
    assert any("New users on new items" in c.value for c in at.caption)
    mae = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert mae["layout"]["xaxis"]["title"]["text"] == "Ratings seen from the new user (k)"
    # new items have settings of their own (k = 0 first)
    at.radio(key="eval_cold").set_value("items").run()
    assert at.text_input(key="eval_support_items").value == "0,1,3,5,10,20"


def test_evaluable_methods_per_cold():
    assert evaluable_methods("users")[0] == available_methods()
    assert evaluable_methods("items")[0] == available_methods(cold="items")
    with pytest.raises(ValueError, match="unknown cold"):
        evaluable_methods("nobody")
