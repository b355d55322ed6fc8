"""Cold-start evaluation: report schema (typed and its JSON), protocol guarantees, determinism,
CLI end to end."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.evaluation import metrics
from metarec_core.evaluation import runner as evaluate
from metarec_core.evaluation.report import ROW_COLUMNS, EvaluationReport, KShotProtocol
from metarec_core.evaluation.runner import EvalConfig, EvaluationCancelled, run_evaluation
from metarec_core.methods.baselines import GlobalMean, UserBias
from metarec_core.methods.registry import BASELINES, make_method
from metarec_core.protocol.splits import user_folds
from metarec_core.protocol.tasks import MELU_QUERY, make_tasks

ROOT = Path(__file__).resolve().parents[2]
RATERS = tuple(m for m in BASELINES if m != "popularity")
TIMING_KEYS = ("seconds", "fit_seconds", "score_seconds")


def synthetic(
    counts: np.ndarray, n_items: int = 80, seed: int = 0
) -> tuple[RatingsDataset, np.ndarray]:
    """Integer 1-5 ratings with planted user and item biases; user u has counts[u] ratings."""
    rng = np.random.default_rng(seed)
    bu = rng.normal(0, 0.7, len(counts))
    bi = rng.normal(0, 0.7, n_items)
    users = np.repeat(np.arange(len(counts)), counts)
    items = np.concatenate([rng.choice(n_items, c, replace=False) for c in counts])
    r = np.clip(np.rint(3.3 + bu[users] + bi[items] + rng.normal(0, 0.4, len(users))), 1, 5)
    data = RatingsDataset(
        user=users.astype(np.int64),
        item=items.astype(np.int64),
        rating=r.astype(np.float32),
        timestamp=None,
        user_ids=np.array([str(u) for u in range(len(counts))]),
        item_ids=np.array([f"m{i}" for i in range(n_items)]),
        scale=RatingScale(1.0, 5.0, 1.0),
        source="synthetic",
    )
    return data, bu


@pytest.fixture(scope="module")
def small() -> RatingsDataset:
    counts = np.random.default_rng(1).integers(18, 45, size=90)
    return synthetic(counts)[0]


CFG = EvalConfig(methods=BASELINES, support=(1, 3, 8), query=5, folds=3, seed=0)


@pytest.fixture(scope="module")
def typed(small) -> EvaluationReport:
    return run_evaluation(small, CFG)


@pytest.fixture(scope="module")
def report(typed) -> dict:
    """The report's JSON (what `evaluate --out` writes)."""
    return typed.to_dict()


def without_timing(rep: EvaluationReport) -> dict:
    rep = json.loads(rep.to_json())
    for row in rep["rows"]:
        for key in TIMING_KEYS:
            row.pop(key)
    return rep


def test_report_schema(report, typed, small):
    assert isinstance(typed.protocol, KShotProtocol) and typed.methods == BASELINES
    assert [(r.method, r.support) for r in typed.rows] == [
        (m, k) for m in BASELINES for k in (1, 3, 8)
    ]
    assert set(report) == {"dataset", "protocol", "rows", "paired"}
    assert report["dataset"]["n_users"] == small.n_users
    json.dumps(report, allow_nan=False)  # strict JSON: no NaN
    rows = report["rows"]
    assert [(r["method"], r["support"]) for r in rows] == [
        (m, k) for m in BASELINES for k in (1, 3, 8)
    ]
    pr = report["protocol"]
    assert pr["name"] == "kshot" and pr["support"] == [1, 3, 8] and pr["query"] == 5
    # every user is a test user in exactly one fold; too-short users are counted, not lost
    short = int((small.counts_per_user() < 8 + 5).sum())
    assert pr["left_out"] == short and pr["test_users"] == small.n_users - short
    for r in rows:
        assert set(ROW_COLUMNS) <= set(r)
        assert r["users"] == pr["test_users"]  # the same users at every k, for every method
        assert r["seconds"] >= 0 and 0 <= r["ndcg@3"] <= 1 and 0 <= r["ndcg@5"] <= 1
        assert 0 <= r["recall@10"] <= 1
        assert r["recall_users"] + r["recall_excluded"] == r["users"]
        if r["method"] == "popularity":
            assert r["mae"] is None and r["rmse"] is None and r["mae_ci95"] is None
        else:
            lo, hi = r["mae_ci95"]
            assert lo < r["mae"] < hi and r["mae"] <= r["rmse"]


def test_rows_behave_like_their_models(report):
    mae = {(r["method"], r["support"]): r["mae"] for r in report["rows"]}
    # no adaptation: the same predictions whatever k
    assert mae[("item_mean", 1)] == mae[("item_mean", 8)]
    assert mae[("global_mean", 1)] == mae[("global_mean", 3)]
    # planted user biases: more support, better predictions
    assert mae[("user_bias", 8)] < mae[("user_bias", 1)] < mae[("global_mean", 1)]
    assert mae[("user_bias", 8)] < mae[("item_mean", 8)]


def test_paired_compares_with_best_other_rater(report):
    mae = {(r["method"], r["support"]): r["mae"] for r in report["rows"]}
    paired = report["paired"]
    assert len(paired) == len(RATERS) * 3
    assert {p["method"] for p in paired} == set(RATERS)  # popularity has no MAE
    for p in paired:
        k = p["support"]
        others = [m for m in RATERS if m != p["method"]]
        assert p["vs"] == min(others, key=lambda m: mae[(m, k)])
        # the same users and queries: mean of differences = difference of means
        assert p["mae_diff"] == pytest.approx(mae[(p["method"], k)] - mae[(p["vs"], k)])
        lo, hi = p["ci95"]
        assert lo <= p["mae_diff"] <= hi
    gm = [p for p in paired if p["method"] == "global_mean"]
    assert all(p["ci95"][0] > 0 for p in gm)  # clearly worse than the best, and the CI says so


def test_rows_and_pairs_match_an_independent_computation(small, report):
    """Per-user MAE recomputed outside run_evaluation (same folds and queries): the rows are its
    means, and each paired CI is the bootstrap of the per-user differences, user by user."""
    per_user: dict[tuple[str, int], list[np.ndarray]] = {}
    for fold in user_folds(small, CFG.folds, CFG.seed, evaluate.VAL_FRACTION):
        tasks, _ = make_tasks(
            small, fold.test_users, query=CFG.query, min_support=max(CFG.support), seed=CFG.seed
        )
        qi = np.stack([t.query[0] for t in tasks])
        qr = np.stack([t.query[1] for t in tasks]).astype(np.float64)
        for name in RATERS:
            m = make_method(name, seed=CFG.seed).fit(small, fold.train_users, fold.val_users)
            for k in CFG.support:
                scores = m.score_many([t.support(k) for t in tasks])
                pred = np.take_along_axis(scores, qi, axis=1)
                per_user.setdefault((name, k), []).append(np.abs(pred - qr).mean(1))
    mae = {key: np.concatenate(v) for key, v in per_user.items()}
    for r in report["rows"]:
        if r["method"] in RATERS:
            assert r["mae"] == pytest.approx(mae[(r["method"], r["support"])].mean(), abs=1e-12)
    for p in report["paired"]:
        a, b = mae[(p["method"], p["support"])], mae[(p["vs"], p["support"])]
        diff, lo, hi = metrics.paired_bootstrap_ci(a, b, n_boot=CFG.n_boot, seed=CFG.seed)
        assert p["mae_diff"] == pytest.approx(diff, abs=1e-12)
        assert p["ci95"] == pytest.approx([lo, hi], abs=1e-12)
        # users matched in another order give another interval: the check above sees pairing
        shuffled = np.random.default_rng(0).permutation(b)
        if not np.array_equal(shuffled, b):
            _, lo2, hi2 = metrics.paired_bootstrap_ci(a, shuffled, n_boot=CFG.n_boot, seed=CFG.seed)
            assert [lo2, hi2] != pytest.approx([lo, hi], abs=1e-12)


def test_scale_below_zero_gives_the_ndcg_of_its_shift_to_zero(small):
    """The small data on a -2..2 scale scores as on 0..4 (gains from the scale's low, never
    negative); the shift-equivariant user bias has the same MAE on both."""

    def shifted(by: float) -> RatingsDataset:
        return RatingsDataset(
            small.user,
            small.item,
            small.rating + by,
            None,
            small.user_ids,
            small.item_ids,
            RatingScale(1.0 + by, 5.0 + by, 1.0),
        )

    cfg = EvalConfig(methods=("user_bias", "popularity"), support=(1, 3), query=5, folds=3)
    below, zero = (run_evaluation(shifted(by), cfg).rows for by in (-3.0, -1.0))
    for a, b in zip(below, zero, strict=True):
        assert 0.0 < a.ndcg_3 <= 1.0 and 0.0 < a.ndcg_5 <= 1.0
        assert (a.ndcg_3, a.ndcg_5) == pytest.approx((b.ndcg_3, b.ndcg_5), abs=1e-12)
        if a.method == "user_bias":
            assert a.mae == pytest.approx(b.mae, abs=1e-9)


def test_same_seed_same_report(small, typed):
    again = run_evaluation(small, CFG)
    assert without_timing(again) == without_timing(typed)
    other = run_evaluation(
        small, EvalConfig(methods=("item_mean",), support=(1, 3, 8), query=5, folds=3, seed=1)
    )
    first = next(r for r in typed.rows if r.method == "item_mean")
    assert other.rows[0].mae != first.mae


class Spy(GlobalMean):
    """Records what the evaluation hands to a method."""

    log: list = []

    def fit(self, data, train_users, val_users=None, **hooks):
        Spy.log.append(("fit", np.asarray(train_users), np.asarray(val_users)))
        return super().fit(data, train_users, val_users, **hooks)

    def score_many(self, supports):
        Spy.log.append(("score", [(i.copy(), r.copy()) for i, r in supports]))
        return super().score_many(supports)


@pytest.fixture
def spy(monkeypatch):
    Spy.log = []
    real = evaluate.make_method
    monkeypatch.setattr(
        evaluate,
        "make_method",
        lambda name, **kw: Spy(seed=kw["seed"]) if name == "global_mean" else real(name, **kw),
    )
    return Spy.log


def test_test_users_never_seen_in_fit_and_supports_nested(small, spy):
    run_evaluation(small, EvalConfig(methods=("global_mean",), support=(2, 6), query=5, folds=3))
    fits = [e for e in spy if e[0] == "fit"]
    scores = [e[1] for e in spy if e[0] == "score"]
    assert len(fits) == 3 and len(scores) == 6
    for f, ((_, train, val), fold) in enumerate(zip(fits, user_folds(small, 3, 0), strict=True)):
        # fitting sees the fold's training and validation users, never its test users
        np.testing.assert_array_equal(train, fold.train_users)
        np.testing.assert_array_equal(val, fold.val_users)
        assert len(np.intersect1d(np.union1d(train, val), fold.test_users)) == 0
        # the supports are those of the fold's test users, nested across k
        tasks, _ = make_tasks(small, fold.test_users, query=5, min_support=6, seed=0)
        k2, k6 = scores[2 * f], scores[2 * f + 1]
        assert len(k2) == len(k6) == len(tasks) > 0
        for t, (i2, r2), (i6, r6) in zip(tasks, k2, k6, strict=True):
            np.testing.assert_array_equal(i6, t.support(6)[0])
            np.testing.assert_array_equal(r6, t.support(6)[1])
            np.testing.assert_array_equal(i2, i6[:2])
            np.testing.assert_array_equal(r2, r6[:2])


def test_melu_protocol():
    rng = np.random.default_rng(3)
    counts = np.concatenate([rng.integers(13, 60, 70), [5, 12, 101, 120]])
    data, _ = synthetic(counts, n_items=150)
    typed = run_evaluation(
        data, EvalConfig(methods=("item_mean", "user_bias", "popularity"), protocol="melu")
    )
    assert [r.support for r in typed.rows] == [None] * 3  # None: all the rest
    assert EvaluationReport.from_json(typed.to_json()) == typed
    rep = typed.to_dict()
    pr = rep["protocol"]
    assert pr["name"] == "melu" and pr["support"] == "all" and pr["query"] == MELU_QUERY
    assert pr["left_out"] == 4  # outside 13-100 ratings
    assert pr["test_users"] == round(0.2 * 70)
    assert pr["support_sizes"]["min"] >= 3
    assert [r["support"] for r in rep["rows"]] == ["all"] * 3
    assert all(r["users"] == pr["test_users"] for r in rep["rows"])
    assert [(p["method"], p["vs"], p["support"]) for p in rep["paired"]] == [
        ("item_mean", "user_bias", "all"),
        ("user_bias", "item_mean", "all"),
    ]
    assert "melu" in typed.to_text()
    with pytest.raises(ValueError, match="query=10"):
        EvalConfig(methods=("item_mean",), protocol="melu", query=5)


def test_progress_callback_and_cancel(small):
    seen = []
    cfg = EvalConfig(methods=("item_mean", "user_bias"), support=(1, 3), query=5, folds=2)
    run_evaluation(small, cfg, progress=lambda f, msg: seen.append((f, msg)))
    fracs = [f for f, _ in seen]
    assert fracs == sorted(fracs) and fracs[-1] == 1.0 and fracs[0] < 0.5
    assert any("fitting user_bias" in m for _, m in seen)

    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(EvaluationCancelled):
        run_evaluation(small, cfg, should_stop=stop)
    assert len(calls) == 4  # stopped at the first check that said so


def test_progress_moves_inside_every_fit(small, monkeypatch):
    learners = pytest.importorskip("metarec_core.methods.meta")
    real = evaluate._instantiate

    def tiny(name, cfg, seed):  # the presets train thousands of meta-steps: a tiny fomaml
        if name != "fomaml":
            return real(name, cfg, seed)
        return learners.make_learner(
            "fomaml", seed=seed, device="cpu", steps=6, eval_every=3, meta_batch=8,
            factors=4, embedding_dim=4, hidden=(8,), inner_steps=2,
        )  # fmt: skip

    monkeypatch.setattr(evaluate, "_instantiate", tiny)
    seen: list[tuple[float, str]] = []
    cfg = EvalConfig(methods=("mf_foldin", "fomaml"), support=(1, 3), query=5, folds=2)
    run_evaluation(small, cfg, progress=lambda f, msg: seen.append((f, msg)))
    fracs = [f for f, _ in seen]
    assert fracs == sorted(fracs) and fracs[-1] == 1.0
    for name in ("mf_foldin", "fomaml"):
        # between "fitting" and "fitted" the fraction moves with the fit's own steps
        inside = {f for f, m in seen if m.startswith("fold 1/2: fitting " + name + ":")}
        assert len(inside) >= 5, (name, sorted(inside))
    assert "fold 1/2: fitting fomaml: meta-training: step 3/6" in [m for _, m in seen]
    assert "fold 2/2: fitting mf_foldin: λ 1/3, ALS round 12/12: items" in [m for _, m in seen]
    # the meta-learner's fit spans most of the bar (a rough time weight, not one unit of 10)
    start = next(f for f, m in seen if m == "fold 1/2: fitting fomaml")
    end = next(f for f, m in seen if m == "fold 1/2: fitted fomaml")
    assert end - start > 0.3


def test_tqdm_bar_on_stderr(small, capsys):
    run_evaluation(
        small, EvalConfig(methods=("item_mean",), support=(1,), query=5, folds=2), progress=True
    )
    out, err = capsys.readouterr()
    assert out == "" and "item_mean" in err


def test_config_validation():
    with pytest.raises(ValueError, match="unknown method 'nope'.*global_mean"):
        EvalConfig(methods=("item_mean", "nope"))
    with pytest.raises(ValueError, match="more than once"):
        EvalConfig(methods=("item_mean", "item_mean"))
    with pytest.raises(ValueError, match="folds"):
        EvalConfig(methods=("item_mean",), folds=1)
    with pytest.raises(ValueError, match="protocol"):
        EvalConfig(methods=("item_mean",), protocol="loo")
    cfg = EvalConfig(methods=["item_mean"], support=[5, 1, 5])
    assert cfg.methods == ("item_mean",) and cfg.support == (1, 5)


def test_not_enough_ratings_is_a_clear_error(small):
    with pytest.raises(ValueError, match="use smaller support sizes or fewer query ratings"):
        run_evaluation(small, EvalConfig(methods=("item_mean",), support=(100,), query=5, folds=2))


def test_non_finite_scores_are_reported(small, monkeypatch):
    class Broken(UserBias):
        def score_many(self, supports):
            s = super().score_many(supports)
            s[0, 0] = np.nan
            return s

    monkeypatch.setattr(evaluate, "make_method", lambda name, **kw: Broken(seed=0))
    with pytest.raises(ValueError, match="'user_bias' produced non-finite scores for 1 of"):
        run_evaluation(small, EvalConfig(methods=("user_bias",), support=(1,), query=5, folds=2))


def test_format_table_and_csv(report, typed):
    text = typed.to_text()
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("method"))
    table = lines[header : header + 1 + len(report["rows"])]
    assert len({len(line) for line in table}) == 1  # aligned
    for col in ROW_COLUMNS:
        assert col in table[0]
    assert "synthetic" in lines[0]
    pop = next(line for line in table if line.startswith("popularity"))
    assert pop.split()[3:5] == ["-", "-"]
    assert "paired MAE difference" in text

    parsed = list(csv.DictReader(io.StringIO(typed.to_csv())))
    assert len(parsed) == len(report["rows"])
    for got, row in zip(parsed, report["rows"], strict=True):
        assert got["method"] == row["method"] and int(got["support"]) == row["support"]
        if row["mae"] is None:
            assert got["mae"] == ""
        else:
            assert float(got["mae"]) == pytest.approx(row["mae"])
            assert float(got["mae_ci95_lo"]) == pytest.approx(row["mae_ci95"][0])


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "metarec_core", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory, small) -> Path:
    path = tmp_path_factory.mktemp("eval") / "ratings.csv"
    lines = ["user_id,item_id,rating"]
    lines += [
        f"{small.user_ids[u]},{small.item_ids[i]},{int(r)}"
        for u, i, r in zip(small.user, small.item, small.rating, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_evaluate_end_to_end(tiny_csv, tmp_path):
    out = tmp_path / "sub" / "report.json"
    res = run_cli(
        "evaluate", str(tiny_csv), "--methods", "item_mean,user_bias,popularity",
        "--support", "1,5", "--query", "5", "--folds", "3", "--seed", "2", "--out", str(out),
        "--train-seeds", "2",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rep = json.loads(out.read_text())
    assert [(r["method"], r["support"]) for r in rep["rows"]] == [
        (m, k) for m in ("item_mean", "user_bias", "popularity") for k in (1, 5)
    ]
    assert (
        rep["protocol"]["seed"] == 2
        and rep["protocol"]["train_seeds"] == 2
        and rep["dataset"]["n_ratings"] == len(tiny_csv.read_text().splitlines()) - 1
    )
    assert "user_bias" in res.stdout and "recall@10" in res.stdout


def test_cli_unknown_method_exits_2(tiny_csv):
    res = run_cli("evaluate", str(tiny_csv), "--methods", "item_mean,magic")
    assert res.returncode == 2
    assert "unknown method 'magic'" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("evaluate", str(tiny_csv), "--methods", "item_mean", "--train-seeds", "0")
    assert res.returncode == 2
    assert "train_seeds must be at least 1" in res.stderr and "Traceback" not in res.stderr


def test_ml100k_reduced_evaluation(ml100k_dir):
    from metarec_core.data.io import load_ratings

    data = load_ratings(ml100k_dir / "u.data")
    cfg = EvalConfig(
        methods=("global_mean", "item_mean", "user_bias", "mf_foldin"),
        support=(1, 10),
        folds=2,
        seed=0,
    )
    rep = run_evaluation(data, cfg)
    mae = {(r.method, r.support): r.mae for r in rep.rows}
    assert rep.protocol.test_users == 943  # every ML-100K user has >= 20 ratings
    assert 0.90 < mae[("global_mean", 1)] < 0.99
    assert 0.79 < mae[("item_mean", 1)] < 0.87
    assert mae[("user_bias", 10)] < mae[("user_bias", 1)] < mae[("item_mean", 1)]
    assert 0.74 < mae[("mf_foldin", 10)] < 0.81
    assert make_method("mf_foldin").capabilities.predicts_ratings


def test_zero_shot_support(small):
    rep = run_evaluation(
        small,
        EvalConfig(methods=("item_mean", "user_bias"), support=(0, 8), query=5, folds=3),
    )
    mae = {(r.method, r.support): r.mae for r in rep.rows}
    # with no ratings the bias model is its prior: close to the item mean, worse than k=8
    assert mae[("user_bias", 0)] == pytest.approx(mae[("item_mean", 0)], abs=0.05)
    assert mae[("user_bias", 8)] < mae[("user_bias", 0)]


class SeedShift(GlobalMean):
    """Global mean + 0.3 x seed: a method whose predictions depend on its training seed."""

    def score_many(self, supports):
        return super().score_many(supports) + 0.3 * self.seed


def test_train_seeds_average_each_users_metrics_over_fits(small, monkeypatch):
    made: list[int] = []

    def make(name, **kw):
        made.append(kw["seed"])
        return SeedShift(seed=kw["seed"])

    monkeypatch.setattr(evaluate, "make_method", make)
    base = dict(methods=("global_mean",), support=(1, 4), query=5, folds=3, seed=2)
    typed = run_evaluation(small, EvalConfig(**base, train_seeds=2))
    both = typed.to_dict()
    assert made == [2, 3] * 3  # two fits per fold, seeds seed and seed + 1
    assert both["protocol"]["train_seeds"] == 2
    assert "fitted 2 times per fold (seeds 2..3)" in typed.to_text()
    assert EvaluationReport.from_json(typed.to_json()) == typed  # mae_by_seed too
    # each single-seed run, on the same folds and queries (the evaluation's seed stays 2)
    single = []
    for fixed in (2, 3):
        monkeypatch.setattr(evaluate, "make_method", lambda name, s=fixed, **kw: SeedShift(seed=s))
        single.append(run_evaluation(small, EvalConfig(**base)).to_dict())
    assert single[0]["protocol"]["train_seeds"] == 1
    for r, r0, r1 in zip(both["rows"], single[0]["rows"], single[1]["rows"], strict=True):
        assert r["users"] == r0["users"] == r1["users"]
        assert r0["mae"] != pytest.approx(r1["mae"])  # the seed matters for this method
        # per-user means over fits, so the row's mean is the mean of the single-seed rows
        assert r["mae"] == pytest.approx((r0["mae"] + r1["mae"]) / 2)
        assert r["rmse"] == pytest.approx((r0["rmse"] + r1["rmse"]) / 2)
        assert r["mae_by_seed"] == pytest.approx([r0["mae"], r1["mae"]])
        assert "mae_by_seed" not in r0
    with pytest.raises(ValueError, match="train_seeds must be at least 1"):
        EvalConfig(methods=("item_mean",), train_seeds=0)


def test_every_meta_learner_paces_the_progress_as_a_meta_learners_fit() -> None:
    """Meta-learners not listed in FIT_UNITS (the tuned one, item learners) are not paced as
    a scoring pass: the bar's ETA would otherwise say seconds for a fit of minutes."""
    from metarec_core.evaluation.runner import FIT_UNITS, fit_units

    meta = FIT_UNITS["metasgd"]
    assert fit_units("metasgd_tuned") == meta
    assert fit_units("item_metasgd", "items") == meta
    assert fit_units("mf_foldin") == FIT_UNITS["mf_foldin"]
    assert fit_units("content", "items") == 1.0
