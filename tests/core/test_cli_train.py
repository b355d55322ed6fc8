"""CLI `train` -> `recommend` on the sample data, and their error paths (exit 2, no traceback)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from metarec_core.cli import main
from metarec_core.evaluation.check import CHECK_BASELINES

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_RATINGS = ROOT / "sample_data" / "ratings.csv"
SAMPLE_ITEMS = ROOT / "sample_data" / "items.csv"
STEPS = "6"  # a few meta-steps: this tests the plumbing, not accuracy


def _need_sample() -> None:
    if not SAMPLE_RATINGS.exists():
        pytest.skip("sample_data/ratings.csv not generated yet")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """One small model trained on the sample data through the CLI (shared by this module)."""
    pytest.importorskip("metarec_core.methods.meta")
    _need_sample()
    out = tmp_path_factory.mktemp("cli") / "model.pt"
    rc = main(
        ["train", str(SAMPLE_RATINGS), "--items", str(SAMPLE_ITEMS), "--out", str(out)]
        + ["--steps", STEPS, "--seed", "0", "--device", "cpu", "--algo", "fomaml"]
    )
    assert rc == 0 and out.exists()
    return out


def write(tmp_path: Path, text: str, name: str = "me.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_train_reports_model_device_and_best_mae(tmp_path, capsys):
    pytest.importorskip("metarec_core.methods.meta")
    _need_sample()
    out = tmp_path / "sub" / "m.pt"
    rc = main(
        ["train", str(SAMPLE_RATINGS), "--out", str(out), "--steps", STEPS]
        + ["--seed", "1", "--device", "cpu", "--algo", "fomaml"]
    )
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert f"model written to {out}" in cap.out
    assert "device cpu" in cap.out and f"{STEPS} steps" in cap.out
    assert "best validation MAE" in cap.out or "no validation MAE" in cap.out
    assert "900 train, 100 validation" in cap.err  # the seeded 90/10 user split
    assert "step" in cap.err  # the tqdm bar went to stderr
    # the model check: a k x method MAE table, the paired differences with CIs, the sentence
    lines = cap.out.splitlines()
    at = lines.index("model check on 100 validation users: MAE by support size k")
    assert lines[at + 1].split() == ["k", "model", *CHECK_BASELINES]
    assert [ln.split()[0] for ln in lines[at + 2 : at + 6]] == ["1", "3", "5", "10"]
    assert all(len(ln.split()) == 6 for ln in lines[at + 2 : at + 6])
    diffs = [ln for ln in lines if re.match(r"  \w+ +k=\d+ +[+-]\d\.\d{4} \[[+-]", ln)]
    assert len(diffs) == 16  # four baselines x four k
    assert any(ln.startswith("On your 100 check users, ") for ln in lines)
    from metarec_core.checkpoint import load_checkpoint

    ck = load_checkpoint(out)
    assert ck.n_items == 1500 and ck.algorithm == "fomaml" and ck.titles is None
    # the checkpoint stores the split it was trained with (the seeded 90/10 one)
    from metarec_core.data.io import load_ratings
    from metarec_core.protocol.splits import split_users

    train, val = split_users(load_ratings(SAMPLE_RATINGS), 1)
    np.testing.assert_array_equal(ck.train_users, train)
    np.testing.assert_array_equal(ck.val_users, val)


def test_train_no_check_skips_the_model_check(tmp_path, capsys):
    pytest.importorskip("metarec_core.methods.meta")
    _need_sample()
    out = tmp_path / "m.pt"
    rc = main(
        ["train", str(SAMPLE_RATINGS), "--out", str(out), "--steps", "2", "--no-check"]
        + ["--device", "cpu", "--algo", "fomaml"]
    )
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "model check" not in cap.out and "check users" not in cap.out
    assert "Comparing with the plain baselines" not in cap.err  # no check phase ran
    assert out.exists()


def test_recommend_table_and_json(model, tmp_path, capsys):
    ratings = write(tmp_path, "item,rating\n244,5\n769,1\n1,4\n")
    assert main(["recommend", str(model), "--ratings", str(ratings), "--top", "5"]) == 0
    cap = capsys.readouterr()
    lines = cap.out.strip().splitlines()
    assert lines[0].startswith("top 5 for a new user with 3 rating(s)")
    assert lines[1].split() == ["rank", "item", "title", "predicted"]
    assert len(lines) == 7 and lines[2].split()[0] == "1" and lines[6].split()[0] == "5"
    assert cap.err == ""

    assert main(["recommend", str(model), "--ratings", str(ratings), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    recs = out["recommendations"]
    assert out["ratings_used"] == 3 and out["unknown_items"] == [] and len(recs) == 10
    assert [r["rank"] for r in recs] == list(range(1, 11))
    assert not {"244", "769", "1"} & {r["item"] for r in recs}  # rated items are excluded
    preds = [r["predicted_rating"] for r in recs]
    assert preds == sorted(preds, reverse=True) and all(1 <= p <= 5 for p in preds)
    assert recs[0]["title"] and isinstance(recs[0]["genres"], list)
    # Same input, same model -> same answer (adaptation is deterministic).
    main(["recommend", str(model), "--ratings", str(ratings), "--json"])
    assert json.loads(capsys.readouterr().out) == out


def test_recommendations_depend_on_the_ratings(model, tmp_path, capsys):
    a = write(tmp_path, "item,rating\n244,5\n769,5\n", "a.csv")
    b = write(tmp_path, "item,rating\n244,1\n769,1\n", "b.csv")
    main(["recommend", str(model), "--ratings", str(a), "--json", "--top", "1500"])
    ra = json.loads(capsys.readouterr().out)["recommendations"]
    main(["recommend", str(model), "--ratings", str(b), "--json", "--top", "1500"])
    rb = json.loads(capsys.readouterr().out)["recommendations"]
    pa = {r["item"]: r["predicted_rating"] for r in ra}
    pb = {r["item"]: r["predicted_rating"] for r in rb}
    assert pa.keys() == pb.keys() and len(pa) == 1498
    assert np.mean([pa[k] for k in pa]) > np.mean([pb[k] for k in pb])


def test_unknown_items_warn_with_a_count(model, tmp_path, capsys):
    ratings = write(tmp_path, "movieId,score\n244,5\nnot-an-item,4\n99999,3\n")
    assert main(["recommend", str(model), "--ratings", str(ratings), "--json"]) == 0
    cap = capsys.readouterr()
    assert "warning:" in cap.err and "ignored 2 rating(s)" in cap.err
    assert "'not-an-item', '99999'" in cap.err
    out = json.loads(cap.out)
    assert out["ratings_used"] == 1 and out["unknown_items"] == ["not-an-item", "99999"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("item,rating\nnope,5\nzip,3\n", "none of the 2 rated items is in the model's catalogue"),
        (
            "item,rating\n244,6\n1,4\n",
            "column 'rating': 1 rating outside the model's scale 1 to 5 at line 2: found '6'",
        ),
        (
            "item,rating\n244,great\n",
            "column 'rating': 1 rating is not a finite number at line 2: found 'great'",
        ),
        ("item,rating\n", "the file has a header ('item', 'rating') but no data rows"),
        ("", "the file is empty"),
        ("title,year\nX,1999\n", "line 1 looks like a header (title, year) but none of its"),
    ],
)
def test_bad_new_user_files_exit_2(model, tmp_path, capsys, text, message):
    ratings = write(tmp_path, text)
    assert main(["recommend", str(model), "--ratings", str(ratings)]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err.startswith("error: me.csv: ") and message in cap.err
    assert "Traceback" not in cap.err


def test_bad_model_files_exit_2(tmp_path, capsys):
    ratings = write(tmp_path, "item,rating\n1,5\n")
    cases = {
        "missing.pt": (None, "no such file"),
        "empty.pt": (b"", "the file is empty"),
        "noise.pt": (bytes(range(256)) * 4, "not a MetaRec checkpoint"),
        "text.pt": (b"user,item,rating\n1,2,3\n", "it is a text file"),
    }
    for name, (raw, message) in cases.items():
        if raw is not None:
            (tmp_path / name).write_bytes(raw)
        assert main(["recommend", str(tmp_path / name), "--ratings", str(ratings)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and name in err


def test_truncated_model_exit_2(model, tmp_path, capsys):
    raw = model.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(raw[: len(raw) // 3])
    ratings = write(tmp_path, "item,rating\n1,5\n")
    assert main(["recommend", str(cut), "--ratings", str(ratings)]) == 2
    assert "truncated" in capsys.readouterr().err


def test_recommend_argument_errors(model, tmp_path, capsys):
    ratings = write(tmp_path, "item,rating\n1,5\n")
    assert main(["recommend", str(model), "--ratings", str(ratings), "--top", "0"]) == 2
    assert "--top must be at least 1" in capsys.readouterr().err
    assert main(["recommend", str(model), "--ratings", str(tmp_path / "none.csv")]) == 2
    assert "none.csv" in capsys.readouterr().err


def test_train_input_errors_exit_2(tmp_path, capsys):
    pytest.importorskip("metarec_core.methods.meta")
    bad = write(tmp_path, "user,item,rating\n1,2,oops\n", "bad.csv")
    assert main(["train", str(bad), "--out", str(tmp_path / "m.pt"), "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.csv" in err and "Traceback" not in err
    assert main(["train", str(bad), "--out", str(tmp_path / "m.pt"), "--steps", "0"]) == 2
    assert "--steps must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


def test_train_on_too_little_data_exits_2(tmp_path):
    pytest.importorskip("metarec_core.methods.meta")
    rows = [f"{u},{i},{1 + (u + i) % 5}" for u in range(30) for i in range(5)]
    small = write(tmp_path, "user,item,rating\n" + "\n".join(rows) + "\n", "small.csv")
    out = tmp_path / "m.pt"
    # A real process: no logging set up, so nothing but our message may reach stderr.
    run = subprocess.run(
        [sys.executable, "-m", "metarec_core", "train", str(small), "--out", str(out)]
        + ["--steps", "2", "--device", "cpu"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: training failed: ") and "ratings" in last
    assert "Traceback" not in run.stderr and not out.exists()


def test_train_failure_is_reported_not_raised(tmp_path, capsys, monkeypatch):
    learners = pytest.importorskip("metarec_core.methods.meta")
    _need_sample()
    real = learners.make_learner

    def diverging(name, **kw):
        learner = real(name, **kw)

        def fit(*a, **k):
            raise FloatingPointError("non-finite meta-train loss (nan) at step 1")

        learner.fit = fit
        return learner

    monkeypatch.setattr(learners, "make_learner", diverging)
    out = tmp_path / "m.pt"
    assert main(["train", str(SAMPLE_RATINGS), "--out", str(out), "--steps", "2"]) == 1
    err = capsys.readouterr().err
    assert "error: training failed: training diverged: non-finite" in err
    assert "Traceback" not in err and not out.exists()


def test_module_entry_point(model, tmp_path):
    """The real `python -m metarec_core` process (recommend; train runs in-process above)."""
    ratings = write(tmp_path, "item,rating\n244,5\n769,1\nbogus,3\n")
    cmd = [sys.executable, "-m", "metarec_core", "recommend", str(model)]
    rec = subprocess.run(
        [*cmd, "--ratings", str(ratings), "--top", "3", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rec.returncode == 0, rec.stderr
    assert "ignored 1 rating(s)" in rec.stderr
    assert len(json.loads(rec.stdout)["recommendations"]) == 3
    bad = write(tmp_path, "item,rating\n244,9\n", "bad.csv")
    rec = subprocess.run(
        [*cmd, "--ratings", str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert rec.returncode == 2 and "Traceback" not in rec.stderr
    assert rec.stderr.strip() == (
        "error: bad.csv: column 'rating': 1 rating outside the model's scale 1 to 5 at line 2: "
        "found '9'"
    )
