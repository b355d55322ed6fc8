"""The loader against a seeded corpus of >= 300 bad, odd and valid files (tests/loader_corpus.py),
and the new user's ratings reader against >= 50 more.

Every file must give a dataset or the loader's own DataError: no other exception, no file over
10 s of CPU, peak RSS under 1 GiB (files up to 20 MB), and a loaded ratings file accounts for
every data line (no rows swallowed by a quote or merged silently).

The corpus runs in a subprocess so that its peak RSS (ru_maxrss) is the loader's alone and a
hang cannot take pytest with it; the subprocess prints one JSON line per file as it goes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import loader_corpus
import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parents[1] / "loader_corpus.py"
MAX_CPU_S = 10.0
MAX_RSS_MB = 1024
# A deadline for the whole corpus, far above its normal ~10-30 s: only a hang reaches it.
DEADLINE_S = 900


def _last_started(stdout: str) -> str:
    starts = [ln for ln in stdout.splitlines() if ln.startswith('{"start"')]
    return json.loads(starts[-1])["start"] if starts else "(none)"


def run_corpus(seed: int) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        out = subprocess.run(
            [sys.executable, str(CORPUS), str(seed)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
        )
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        pytest.fail(f"the corpus did not finish in {DEADLINE_S} s, at {_last_started(stdout)}")
    assert out.returncode == 0, (
        f"the corpus process died (exit {out.returncode}) at {_last_started(out.stdout)}: "
        f"{out.stderr[-3000:]}"
    )
    return [json.loads(ln) for ln in out.stdout.splitlines() if '"outcome"' in ln]


@pytest.mark.slow
def test_every_corpus_file_loads_or_is_refused_within_bounds():
    rows = run_corpus(seed=12)
    assert len(rows) >= 300
    named = [r for r in rows if not r["name"][:3].isdigit() and r["kind"] != "user"]
    assert len(named) >= 30  # the kinds of issue 12 item 8, each once
    assert sum(r["bytes"] >= 20 * 2**20 for r in rows) >= 4  # the 20 MB files were made

    crashes = [f"{r['name']}: {r['message']}" for r in rows if r["outcome"] == "crash"]
    assert not crashes, "\n\n".join(crashes)

    slow = [(r["name"], round(r["cpu_s"], 1)) for r in rows if r["cpu_s"] > MAX_CPU_S]
    assert not slow, slow
    peak = max(r["maxrss_mb"] for r in rows)
    assert peak < MAX_RSS_MB, f"peak RSS {peak:.0f} MB"

    # A loaded ratings file keeps (or counts as duplicates) every line with a value in it;
    # the header may be one of them.
    lost = [
        (r["name"], r["rows"], r["lines"])
        for r in rows
        if r["outcome"] == "ok" and r.get("lines") is not None
        if r["rows"] not in (r["lines"], r["lines"] - 1)
    ]
    assert not lost, lost

    # Both outcomes occur, for every valid base and every mutation.
    assert {r["outcome"] for r in rows} == {"ok", "refused"}
    for part in (*loader_corpus.BASES, *loader_corpus.MUTATIONS):
        assert any(part in r["name"] for r in rows if r["name"][:3].isdigit()), part

    # A new user's ratings files (read_user_ratings): the named kinds and 40 mutated ones.
    user = [r for r in rows if r["kind"] == "user"]
    assert len(user) >= 50 and sum(r["name"].startswith("user-0") for r in user) == 40
    assert {r["outcome"] for r in user} == {"ok", "refused"}
    assert any(r["name"] == "user-9mb" and r["outcome"] == "ok" for r in user)
    for part in (*loader_corpus.USER_BASES, *loader_corpus.MUTATIONS):
        assert any(part in r["name"] for r in user if r["name"].startswith("user-0")), part


def test_the_corpus_is_seeded():
    def random_part() -> list[tuple[str, bytes]]:
        cases = loader_corpus.corpus(seed=3, n_random=40)
        return [(c.name, c.make()) for c in cases if c.name[:3].isdigit()]

    first = random_part()
    assert first == random_part()
    assert len({name for name, _ in first}) == 40
