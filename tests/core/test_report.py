"""The typed evaluation report (metarec_core.evaluation.report): JSON round trip, the JSON's
keys (what `evaluate --out` wrote before the report was typed), clear errors on a bad report."""

from __future__ import annotations

import copy
import csv
import io
import json
import math

import pytest
from helpers import tiny_dataset

from metarec_core.evaluation.report import (
    CSV_COLUMNS,
    PAIRED_NOTE,
    SECONDS_NOTE,
    EvaluationReport,
    KShotProtocol,
    MeluProtocol,
    MethodRow,
    PairedDifference,
)
from metarec_core.evaluation.runner import EvalConfig, run_evaluation

# The JSON's keys, in order, as `evaluate --out` wrote them before the report was typed.
ROW_KEYS = [
    "method", "support", "users", "mae", "rmse", "ndcg@3", "ndcg@5", "recall@10", "seconds",
    "mae_ci95", "recall_users", "recall_excluded", "fit_seconds", "score_seconds",
]  # fmt: skip
KSHOT_KEYS = [
    "name", "folds", "query", "support", "seed", "val_fraction", "min_ratings", "test_users",
    "left_out", "relevant_threshold", "bootstrap_resamples", "paired", "seconds", "train_seeds",
]  # fmt: skip
MELU_KEYS = [
    "name", "query", "support", "seed", "val_fraction", "min_ratings", "max_ratings",
    "test_fraction", "train_users", "val_users", "test_users", "left_out", "support_sizes",
    "relevant_threshold", "bootstrap_resamples", "paired", "seconds", "train_seeds",
]  # fmt: skip
DATASET_KEYS = [
    "source", "n_users", "n_items", "n_ratings", "scale", "density", "mean_rating",
    "ratings_per_user", "ratings_per_item", "rating_counts", "users_fewer_than", "has_items",
    "n_genres", "items_missing", "notes",
]  # fmt: skip


@pytest.fixture(scope="module")
def kshot() -> EvaluationReport:
    cfg = EvalConfig(
        methods=("item_mean", "user_bias", "popularity"),
        support=(0, 2),
        query=5,
        folds=2,
        n_boot=200,
        train_seeds=2,
    )
    return run_evaluation(tiny_dataset(), cfg)


def test_json_round_trip_is_exact(kshot):
    text = kshot.to_json()
    back = EvaluationReport.from_json(text)
    assert back == kshot
    assert back.to_json() == text
    assert EvaluationReport.from_dict(json.loads(text)) == kshot
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in strict JSON"))


def test_the_json_keeps_the_keys_and_notes_of_before(kshot):
    d = kshot.to_dict()
    assert list(d) == ["dataset", "protocol", "rows", "paired"]
    assert list(d["dataset"]) == DATASET_KEYS
    assert list(d["protocol"]) == [*KSHOT_KEYS, "train_seeds_note"]
    p = d["protocol"]
    assert p["paired"] == PAIRED_NOTE and p["seconds"] == SECONDS_NOTE
    assert p["train_seeds_note"] == (
        "every method fitted 2 times per fold (seeds 0..1); per-user metrics are means over the fits"
    )
    assert p["support"] == [0, 2]
    for row in d["rows"]:
        rater = row["method"] != "popularity"
        assert list(row) == ROW_KEYS + (["mae_by_seed"] if rater else [])
        assert isinstance(row["mae_ci95"], list) if rater else row["mae_ci95"] is None
    assert [list(p) for p in d["paired"]] == [
        ["method", "vs", "support", "mae_diff", "ci95", "users"]
    ] * len(d["paired"])
    assert kshot.notes == (PAIRED_NOTE, SECONDS_NOTE, p["train_seeds_note"])


def test_one_training_run_has_no_seed_note_or_column():
    cfg = EvalConfig(methods=("item_mean",), support=(1,), query=5, folds=2, n_boot=100)
    rep = run_evaluation(tiny_dataset(), cfg)
    d = rep.to_dict()
    assert list(d["protocol"]) == KSHOT_KEYS and rep.protocol.train_seeds_note is None
    assert list(d["rows"][0]) == ROW_KEYS and rep.rows[0].mae_by_seed is None
    assert EvaluationReport.from_dict(d) == rep


def melu_report() -> EvaluationReport:
    """A hand-made melu report (the protocol needs users with 13-100 ratings)."""
    kshot = run_evaluation(
        tiny_dataset(), EvalConfig(methods=("item_mean",), support=(1,), query=5, folds=2)
    )
    d = kshot.to_dict()
    d["protocol"] = {
        "name": "melu", "query": 10, "support": "all", "seed": 0, "val_fraction": 0.1,
        "min_ratings": 13, "max_ratings": 100, "test_fraction": 0.2, "train_users": 50,
        "val_users": 6, "test_users": 14, "left_out": 10,
        "support_sizes": {"min": 3, "median": 15.0, "max": 15},
        "relevant_threshold": 4.2, "bootstrap_resamples": 2000, "paired": PAIRED_NOTE,
        "seconds": SECONDS_NOTE, "train_seeds": 1,
    }  # fmt: skip
    d["rows"][0]["support"] = "all"
    return EvaluationReport.from_dict(d)


def test_melu_round_trip_and_support_all():
    rep = melu_report()
    assert isinstance(rep.protocol, MeluProtocol) and rep.protocol.support_sizes.median == 15.0
    assert rep.rows[0].support is None  # "all the rest"
    d = rep.to_dict()
    assert list(d["protocol"]) == MELU_KEYS
    assert d["rows"][0]["support"] == "all" and d["protocol"]["support"] == "all"
    assert EvaluationReport.from_json(rep.to_json()) == rep
    text = rep.to_text()
    assert "protocol: melu, query 10, support = all the rest, 14 test users" in text
    assert "\nitem_mean  all " in text


def test_csv_has_a_row_per_method_and_support_with_empty_nulls(kshot):
    parsed = list(csv.DictReader(io.StringIO(kshot.to_csv())))
    assert list(parsed[0]) == list(CSV_COLUMNS)
    assert [(r["method"], int(r["support"])) for r in parsed] == [
        (r.method, r.support) for r in kshot.rows
    ]
    for got, row in zip(parsed, kshot.rows, strict=True):
        if row.mae is None:
            assert got["mae"] == got["mae_ci95_lo"] == got["mae_ci95_hi"] == ""
        else:
            assert float(got["mae"]) == row.mae  # repr of a float reads back exactly
            assert float(got["mae_ci95_hi"]) == row.mae_ci95[1]


def test_paired_difference_excludes_zero():
    def pair(lo, hi):
        return PairedDifference("a", "b", 3, 0.1, (lo, hi), 10)

    assert pair(0.01, 0.2).excludes_zero and pair(-0.3, -0.1).excludes_zero
    assert not pair(-0.01, 0.2).excludes_zero
    assert not pair(None, 0.2).excludes_zero


def test_an_older_report_without_optional_fields_is_read(kshot):
    d = kshot.to_dict()
    for key in ("users_fewer_than", "n_genres", "items_missing", "mean_rating"):
        del d["dataset"][key]
    for row in d["rows"]:
        for key in ("recall_users", "recall_excluded", "fit_seconds", "score_seconds"):
            del row[key]
    del d["protocol"]["train_seeds"], d["protocol"]["train_seeds_note"]
    rep = EvaluationReport.from_dict(d)
    assert rep.protocol.train_seeds == 1 and rep.dataset.n_genres == 0
    assert math.isnan(rep.dataset.mean_rating)
    assert rep.rows[0].fit_seconds == 0.0 and rep.rows[0].recall_users == 0
    assert [r.mae for r in rep.rows] == [r.mae for r in kshot.rows]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["rows"][1].pop("method"), r"rows\[1\] has no 'method'"),
        (lambda d: d["rows"][0].update(users="many"), r"rows\[0\]\.users = 'many' is not valid"),
        (lambda d: d["rows"][0].update(support="some"), r"rows\[0\]\.support = 'some' is not a"),
        (
            lambda d: d["rows"][0].update(mae_ci95=[1.0]),
            r"rows\[0\]\.mae_ci95 .* is not \[lo, hi\]",
        ),
        (lambda d: d["protocol"].update(name="loo"), "unknown protocol 'loo'"),
        (lambda d: d["protocol"].pop("folds"), "protocol has no 'folds'"),
        (lambda d: d["paired"][0].update(ci95=None), r"paired\[0\]\.ci95 = None is not valid"),
        (lambda d: d.pop("dataset"), "report has no 'dataset'"),
        (lambda d: d["dataset"].update(n_users=True), r"dataset\.n_users = True is not valid"),
    ],
)
def test_a_bad_report_is_a_clear_error(kshot, edit, message):
    d = copy.deepcopy(kshot.to_dict())
    edit(d)
    with pytest.raises(ValueError, match="evaluation report: " + message):
        EvaluationReport.from_dict(d)


def test_not_json_or_not_an_object_is_a_clear_error():
    with pytest.raises(ValueError, match="evaluation report: not JSON"):
        EvaluationReport.from_json("{rows:")
    with pytest.raises(ValueError, match="evaluation report: report must be an object"):
        EvaluationReport.from_json("[1, 2]")


def test_hand_built_rows_read_by_field():
    row = MethodRow(
        method="m", support=3, users=5, mae=0.8, rmse=1.0, ndcg_3=0.5, ndcg_5=0.6,
        recall_10=None, seconds=1.5, mae_ci95=(0.7, None), recall_users=0, recall_excluded=5,
        fit_seconds=1.0, score_seconds=0.5,
    )  # fmt: skip
    d = row.to_dict()
    assert d["recall@10"] is None and d["mae_ci95"] == [0.7, None] and d["ndcg@5"] == 0.6
    assert MethodRow.from_dict(d) == row
    protocol = KShotProtocol(
        query=5, seed=0, val_fraction=0.1, min_ratings=8, test_users=5, left_out=0,
        relevant_threshold=4.2, bootstrap_resamples=100, train_seeds=1, folds=2, support=(3,),
    )  # fmt: skip
    assert protocol.to_dict()["name"] == "kshot" and protocol.notes == (PAIRED_NOTE, SECONDS_NOTE)
