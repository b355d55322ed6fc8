"""bench/compare_reports.py: the before/after check of docs/refactor.md can fail."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("compare_reports", ROOT / "bench/compare_reports.py")
cr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cr)

REPORT = {
    "rows": [
        {"method": "metasgd", "support": 1, "mae": 0.78, "seconds": 58.0, "mae_ci95": [0.7, 0.8]}
    ],
    "paired": [{"a": "metasgd", "b": "user_bias", "diff": -0.01}],
}


def test_equal_reports_pass_and_timings_are_left_out():
    other = {**REPORT, "rows": [{**REPORT["rows"][0], "seconds": 3.0}]}
    assert cr.compare(REPORT, other) == (8, 0.0, [])  # 5 row values, 3 paired


def test_a_changed_metric_a_missing_row_and_a_changed_name_fail():
    moved = {**REPORT, "rows": [{**REPORT["rows"][0], "mae": 0.78 + 2e-6}]}
    n, worst, bad = cr.compare(REPORT, moved)
    assert [p for p, *_ in bad] == ["rows[0].mae"] and worst > 1e-6
    assert cr.compare(REPORT, {**REPORT, "rows": []})[2]
    renamed = {**REPORT, "paired": [{**REPORT["paired"][0], "b": "mf_foldin"}]}
    assert [p for p, *_ in cr.compare(REPORT, renamed)[2]] == ["paired[0].b"]
