"""The accuracy suite (bench/accuracy_suite.py, bench/accuracy.py --suite): its verdicts and the
monotone-in-k check on a hand-made report, the runner's comparisons vs every method
(`compare_all`), and a small end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import accuracy, accuracy_suite
from bench.accuracy_suite import (
    SUITE,
    SuiteDataset,
    headline_markdown,
    monotone,
    suite_markdown,
    summarize,
)
from metarec_core.data.io import load_ratings
from metarec_core.data.synthetic import SyntheticSpec
from metarec_core.evaluation.report import EvaluationReport
from metarec_core.evaluation.runner import EvalConfig, run_evaluation

BASE = ("user_bias", "mf_foldin")


def _row(method: str, k: int, mae: float, half: float = 0.01) -> dict:
    return {"method": method, "support": k, "mae": mae, "mae_ci95": [mae - half, mae + half]}


def _pair(method: str, vs: str, k: int, diff: float, lo: float, hi: float) -> dict:
    return {"method": method, "vs": vs, "support": k, "mae_diff": diff, "ci95": [lo, hi]}


# metasgd: at k=0 significantly worse than user_bias, though the best baseline by mean MAE is
# mf_foldin, and its CI against that one covers 0; at k=1 best of all; at k=3 not significantly
# worse but finetune has a lower mean. finetune's MAE rises with k beyond its CI; user_bias's
# rises a little, within it.
KS = (0, 1, 3)
MAE = {  # method: its MAE at each support size of KS
    "user_bias": (0.800, 0.790, 0.795),
    "mf_foldin": (0.790, 0.780, 0.770),
    "metasgd": (0.805, 0.770, 0.765),
    "finetune": (0.810, 0.820, 0.860),
}
REPORT = {
    "rows": [
        *(_row(m, k, v) for m, maes in MAE.items() for k, v in zip(KS, maes, strict=True)),
        {"method": "popularity", "support": 0, "mae": None, "mae_ci95": None},
    ],
    "pairwise": [
        _pair("metasgd", "user_bias", 0, 0.005, 0.001, 0.009),
        _pair("metasgd", "mf_foldin", 0, 0.015, -0.002, 0.030),
        _pair("metasgd", "user_bias", 1, -0.020, -0.030, -0.010),
        _pair("metasgd", "mf_foldin", 1, -0.010, -0.020, 0.001),
        _pair("metasgd", "user_bias", 3, -0.030, -0.040, -0.020),
        _pair("metasgd", "mf_foldin", 3, -0.005, -0.012, 0.003),
        _pair("finetune", "user_bias", 0, 0.010, 0.002, 0.020),  # another subject: not read
    ],
}


def test_verdicts_use_every_baseline_not_only_the_best():
    s = summarize("toy", REPORT, subject="metasgd", baselines=BASE)
    assert s.baselines == BASE and s.missing == ()
    v0, v1, v3 = s.ks
    assert (v0.k, v0.best_baseline, v0.best_baseline_mae) == (0, "mf_foldin", 0.790)
    assert v0.diff == 0.015 and v0.diff_ci95 == (-0.002, 0.030)
    assert v0.worse_than == ("user_bias",) and not v0.never_worse and not v0.lowest
    assert v1.never_worse and v1.lowest and v1.worse_than == ()
    assert v3.never_worse and v3.lowest  # finetune's 0.860 is higher
    assert not s.never_worse  # k=0 fails
    assert s.lowest_k1  # k=0 does not count for "lowest at every k >= 1"


def test_lowest_counts_every_method_in_the_report():
    rows = [dict(r) for r in REPORT["rows"]]
    rows[11] = _row("finetune", 3, 0.760)  # the ablation beats the default learner at k=3
    s = summarize("toy", {**REPORT, "rows": rows}, subject="metasgd", baselines=BASE)
    assert [v.lowest for v in s.ks] == [False, True, False]
    assert not s.lowest_k1
    # below every baseline is about the baselines alone: the ablation does not count there
    assert s.ks[2].below_baselines and s.below_baselines_k1
    assert not s.ks[0].below_baselines  # user_bias is below it at k=0


def test_a_missing_pair_is_named_and_fails_the_verdict():
    report = {**REPORT, "pairwise": REPORT["pairwise"][1:]}  # no metasgd vs user_bias at k=0
    s = summarize("toy", report, subject="metasgd", baselines=BASE)
    assert s.missing == ("metasgd vs user_bias at k=0",)
    assert not s.ks[0].never_worse


def test_monotone_in_k():
    ft = monotone(REPORT, "finetune")
    assert ft.rises and ft.at == (0, 3) and ft.rise == pytest.approx(0.05)
    ub = monotone(REPORT, "user_bias")  # 0.790 -> 0.795: within 0.790's CI (hi 0.800)
    assert not ub.rises and ub.at == (1, 3) and ub.rise == pytest.approx(0.005)
    assert not monotone(REPORT, "metasgd").rises
    s = summarize("toy", REPORT, subject="metasgd", baselines=BASE)
    assert {m.method: m.rises for m in s.monotone} == {
        "user_bias": False,
        "mf_foldin": False,
        "metasgd": False,
        "finetune": True,
    }
    assert not s.no_rise


def test_suite_markdown_says_no_where_a_verdict_fails():
    s = summarize("toy", REPORT, subject="metasgd", baselines=BASE)
    md = suite_markdown([s], {"toy": "held out"}, {"toy": ["`some command`"]})
    assert "| toy | held out | metasgd | **no** | yes | yes | **no** |" in md
    assert (
        "| 0 | 0.8050 | mf_foldin | 0.7900 | +0.0150 [-0.0020, +0.0300] | **no** | **no** | **no** | "
        in md
    )
    assert "| finetune (learner) | **yes** | +0.0500 (0 → 3) |" in md
    assert "`some command`" in md


def test_summarize_needs_the_subject():
    with pytest.raises(ValueError, match="toy: the report has no MAE of 'melu'"):
        summarize("toy", REPORT, subject="melu")


def test_suite_names_datasets_and_keeps_ml1m_out_of_design():
    assert list(SUITE) == [
        "ml100k",
        "ml1m",
        "sample",
        "half_star",
        "ten_point",
        "small_catalogue",
        "sparse_longtail",
        "short_users",
    ]
    assert [n for n, d in SUITE.items() if d.role == accuracy_suite.HELD_OUT] == ["ml1m"]
    assert SUITE["ml1m"].folds == 3
    for d in SUITE.values():
        if d.spec is not None:  # small enough for about a minute of training
            assert 30_000 <= d.spec.n_ratings <= 100_000
        if d.spec is not None and d.spec.max_ratings is not None:  # some users can be tested
            assert max(d.support) + d.query <= d.spec.max_ratings


def _tiny_data(n_users: int = 150) -> SuiteDataset:
    spec = SyntheticSpec(n_users=n_users, n_items=120, n_ratings=n_users * 40, scale="0.5-5")
    return SuiteDataset("tiny", "a tiny half-star set", spec=spec, support=(0, 1, 5), query=5)


def test_compare_all_pairs_the_learner_with_every_other_method(tmp_path):
    ratings, items = accuracy_suite.ensure_data(_tiny_data(), tmp_path)
    data = load_ratings(ratings, items=items)
    methods = ("user_bias", "user_bias_levels", "item_mean", "popularity")
    cfg = EvalConfig(methods=methods, support=(0, 3), query=5, folds=2, compare_all=("user_bias",))
    rep = run_evaluation(data, cfg)
    got = [(p.method, p.vs, p.support) for p in rep.pairwise]
    assert got == [
        ("user_bias", vs, k) for k in (0, 3) for vs in ("user_bias_levels", "item_mean")
    ]  # popularity predicts no ratings
    # where the best other is the same method, pairwise and paired agree exactly
    paired = {(p.method, p.vs, p.support): p for p in rep.paired}
    shared = [p for p in rep.pairwise if (p.method, p.vs, p.support) in paired]
    assert shared and all(p == paired[(p.method, p.vs, p.support)] for p in shared)
    d = rep.to_dict()
    assert list(d) == ["dataset", "protocol", "rows", "paired", "pairwise"]
    assert EvaluationReport.from_dict(json.loads(rep.to_json())) == rep
    plain = run_evaluation(data, EvalConfig(methods=methods, support=(0, 3), query=5, folds=2))
    assert plain.pairwise == () and "pairwise" not in plain.to_dict()
    with pytest.raises(ValueError, match="compare_all names 'metasgd', which is not among"):
        EvalConfig(methods=methods, compare_all=("metasgd",))


def test_ensure_data_writes_once_and_rewrites_when_the_options_change(tmp_path):
    ds = _tiny_data()
    ratings, _ = accuracy_suite.ensure_data(ds, tmp_path)
    first = ratings.read_bytes()
    ratings.write_bytes(b"user,item,rating\n")  # a cached file is not rewritten...
    accuracy_suite.ensure_data(ds, tmp_path)
    assert ratings.read_bytes() == b"user,item,rating\n"
    accuracy_suite.ensure_data(_tiny_data(160), tmp_path)  # ...unless its options changed
    assert ratings.read_bytes() != first and len(ratings.read_bytes()) > len(first)


def test_suite_quick_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setitem(SUITE, "tiny", _tiny_data())
    out = tmp_path / "out"
    argv = ["--suite", "--quick", "--datasets", "tiny", "--no-progress", "--out", str(out)]
    argv += ["--data-dir", str(tmp_path / "data"), "--methods", "user_bias,user_bias_levels"]
    assert accuracy.main(argv) == 0
    report = json.loads((out / "suite_tiny.json").read_text())
    assert report["protocol"]["folds"] == 2 and report["protocol"]["train_seeds"] == 1
    assert {p["method"] for p in report["pairwise"]} == {"user_bias_levels"}
    assert "--suite --datasets tiny --quick" in report["bench"]["command"]
    assert (out / "suite_tiny.md").exists() and (out / "suite_tiny.csv").exists()
    md = (out / "suite.md").read_text()
    assert "### tiny (design)" in md and "| k | user_bias_levels MAE |" in md
    assert "Data: `python -m metarec_core make-sample" in md
    assert accuracy.main(["--suite", "--datasets", "nope", "--out", str(out)]) == 2


def test_suite_config_defaults_and_quick():
    ds = SUITE["ml1m"]
    full = accuracy.suite_config(ds, ds.paths()[0], None).eval
    assert (full.folds, full.train_seeds, full.support, full.query) == (
        3,
        3,
        (0, 1, 3, 5, 10, 20),
        10,
    )
    assert full.methods == accuracy_suite.SUITE_METHODS
    assert full.compare_all == ("metasgd", "finetune")
    quick = accuracy.suite_config(SUITE["short_users"], ds.paths()[0], None, quick=True).eval
    assert (quick.folds, quick.train_seeds, quick.support, quick.query) == (
        2,
        1,
        (0, 1, 3, 5, 10),
        5,
    )
    assert np.isin(accuracy_suite.SUITE_BASELINES, accuracy_suite.SUITE_METHODS).all()


def test_the_headline_table_gives_each_dataset_its_difference_and_marks_significant_ones():
    s = summarize("toy", REPORT, subject="metasgd", baselines=BASE)
    best = s.ks[1].best_baseline
    pairs = [
        {**p, "ci95": [-0.02, -0.005]}
        if (p["method"], p["vs"], p["support"]) == ("metasgd", best, 1)
        else p
        for p in REPORT["pairwise"]
    ]
    s = summarize("toy", {**REPORT, "pairwise": pairs}, subject="metasgd", baselines=BASE)
    table = headline_markdown([s], {"toy": "design"})
    lines = table.splitlines()
    assert lines[0] == "| dataset | role | k=0 | k=1 | k=3 |"
    cells = lines[2].split(" | ")
    assert cells[:2] == ["| toy", "design"]
    assert cells[2] == "+0.0150 [-0.002, +0.030]"  # within the noise: plain
    assert cells[3] == "**-0.0100 [-0.020, -0.005]**"  # the CI excludes 0: bold
    assert table in suite_markdown([s], {"toy": "design"})
