"""`python -m metarec_core validate`: summary and exit 0, or one error line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from metarec_core import cli

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "metarec_core", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_validate_sample_subprocess_exit_0():
    r = run_cli("validate", str(SAMPLE / "ratings.csv"), "--items", str(SAMPLE / "items.csv"))
    assert r.returncode == 0, r.stderr
    assert "ratings.csv: 1,000 users, 1,500 items, 100,000 ratings" in r.stdout
    assert "18 genres" in r.stdout
    assert r.stderr == ""


def test_validate_bad_file_subprocess_exit_2_no_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,rating\n1,2,3\n1,3,lots\n")
    r = run_cli("validate", str(bad))
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.strip() == (
        "error: bad.csv: column 'rating': 1 rating is not a finite number at line 3: "
        "found 'lots'; expected numbers such as 4 or 3.5"
    )
    assert "Traceback" not in r.stderr


def test_validate_json(capsys):
    rc = cli.main(["validate", str(SAMPLE / "ratings.csv"), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_users"] == 1000 and out["n_ratings"] == 100_000
    assert out["scale"] == {"low": 1.0, "high": 5.0, "step": 1.0}
    assert out["has_items"] is False


def test_validate_good_small_file_direct(tmp_path, capsys):
    p = tmp_path / "r.csv"
    p.write_text("user,item,rating\na,x,4\na,y,5\nb,x,3\na,x,2\n")
    assert cli.main(["validate", str(p)]) == 0
    out = capsys.readouterr().out
    assert "r.csv: 2 users, 2 items, 3 ratings" in out
    assert "note: dropped 1 duplicate (user, item) rating" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"user,item,rating\n", "no data rows"),
        (b"\x00\x01\x02\x03binary", "binary data"),
        (b"user,uid,item,rating\n1,1,1,1\n", "ambiguous columns"),
        (b"user,item,rating\n1,1,3\n1,2\n", "malformed row: line 3 has 2 fields"),
    ],
)
def test_validate_bad_inputs_direct(tmp_path, capsys, content, message):
    p = tmp_path / "in.csv"
    p.write_bytes(content)
    assert cli.main(["validate", str(p)]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err.startswith("error: in.csv: ")
    assert message in cap.err
    assert cap.err.count("\n") == 1  # one line, no traceback


def test_validate_size_limit(tmp_path, capsys):
    p = tmp_path / "r.csv"
    p.write_text("user,item,rating\n" + "1,2,3\n" * 300)
    assert cli.main(["validate", str(p), "--max-mb", "0.001"]) == 2
    assert "over the size limit" in capsys.readouterr().err


def test_validate_missing_file_and_bad_items(tmp_path, capsys):
    assert cli.main(["validate", str(tmp_path / "nope.csv")]) == 2
    assert "No such file" in capsys.readouterr().err
    items = tmp_path / "items.csv"
    items.write_text("item,genres\n1,Drama\n")
    assert cli.main(["validate", str(SAMPLE / "ratings.csv"), "--items", str(items)]) == 2
    assert "items.csv: no title column" in capsys.readouterr().err


def test_validate_ml100k(ml100k_dir, capsys):
    rc = cli.main(["validate", str(ml100k_dir / "u.data"), "--items", str(ml100k_dir / "u.item")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "u.data: 943 users, 1,682 items, 100,000 ratings" in out
    assert "19 genres" in out
