"""Data-parallel meta-training (metarec_core/methods/meta/distributed.py), gloo on CPU.

The process tests start two ranks as subprocesses (tests/core/dist_worker.py) or through
torchrun, and compare them with one process that draws both shards (`ShardSync(2, (0, 1))`).
Every launch has a wall-clock bound, so a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from metarec_core.cli import main
from metarec_core.methods.meta import distributed, make_learner
from tests.helpers import items_csv, ratings_csv, tiny_dataset, tiny_split

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("dist_worker.py")
BOUND_S = 240  # a launch that takes longer than this hangs (each takes seconds alone)

sys.path.insert(0, str(WORKER.parent))
import dist_worker  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}


def _launch(out: Path, *args: str, timeout: float = 20.0) -> list[subprocess.Popen]:
    """Two worker ranks on this machine; their stdout+stderr go to out/log<rank>."""
    port = str(_free_port())
    procs = []
    for rank in range(2):
        env = _env(RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        log = open(out / f"log{rank}", "w")  # noqa: SIM115 (closed with the process)
        cmd = [sys.executable, str(WORKER), str(out), "--timeout", str(timeout), *args]
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def _finish(procs: list[subprocess.Popen], out: Path) -> list[int]:
    """Exit codes of both ranks; kills what is still running after BOUND_S (then fails)."""
    deadline = time.monotonic() + BOUND_S
    codes = []
    try:
        for p in procs:
            codes.append(p.wait(timeout=max(1.0, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        pytest.fail(f"distributed run still going after {BOUND_S} s: {_logs(out)}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return codes


def _logs(out: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(out.glob("log*")))


# ---------------------------------------------------------------------- in one process
def test_shard_sizes_split_the_meta_batch_evenly():
    assert distributed.shard_sizes(9, 2) == [5, 4]
    assert distributed.shard_sizes(64, 4) == [16] * 4
    assert distributed.shard_sizes(3, 1) == [3]
    with pytest.raises(ValueError, match="meta-batch of 2 cannot be split over 3 processes"):
        distributed.shard_sizes(2, 3)


def test_ranks_draw_disjoint_shards_whose_union_is_the_one_process_batch():
    data = tiny_dataset()
    train, _ = tiny_split(data)
    learner = make_learner("metasgd", **{**dist_worker.CONFIG, "warm_start": False})
    learner.setup(data, train)
    eps = learner._episodes(data, train)

    def draw(sync):
        return sync.sample(learner, eps, np.random.default_rng(11))

    s0, q0 = draw(distributed.ShardSync(2, (0,)))
    s1, q1 = draw(distributed.ShardSync(2, (1,)))
    s, q = draw(distributed.ShardSync(2, (0, 1)))
    assert (len(s0), len(s1)) == (5, 4)  # meta_batch 9
    for got, want in ((s, s0 + s1), (q, q0 + q1)):
        assert len(got) == len(want)
        for (i, r), (wi, wr) in zip(got, want, strict=True):
            np.testing.assert_array_equal(i, wi)
            np.testing.assert_array_equal(r, wr)
    assert learner.config.meta_batch == 9  # the shard's config was only borrowed
    assert {tuple(i) for i, _ in q0}.isdisjoint({tuple(i) for i, _ in q1})


def test_a_learner_without_sync_trains_as_before():
    """The hooks are inert by default: sync_ is None on every new learner."""
    assert make_learner("metasgd", device="cpu").sync_ is None


def test_distributed_train_outside_torchrun_says_how_to_launch(tmp_path, monkeypatch, capsys):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "r.csv"
    data.write_bytes(ratings_csv())
    rc = main(["train", str(data), "--out", str(tmp_path / "m.pt"), "--distributed"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "RANK is missing" in err and "torchrun --nproc_per_node" in err


# ---------------------------------------------------------------------- two processes
@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Both ranks' results and the one-process reference over the same two shards."""
    out = tmp_path_factory.mktemp("ranks")
    codes = _finish(_launch(out), out)
    assert codes == [0, 0], _logs(out)
    torch.set_num_threads(1)
    reference = dist_worker.run(distributed.ShardSync(2, (0, 1)), "metasgd")
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    return ranks, reference


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.slow
def test_all_reduced_meta_gradient_equals_one_process_on_the_whole_batch(two_ranks):
    ranks, ref = two_ranks
    for got in ranks:
        assert got["loss"] == pytest.approx(ref["loss"], abs=1e-10)
        assert _max_diff(got["grads"], ref["grads"]) < 1e-6
    assert any(float(g.abs().max()) > 1e-3 for g in ref["grads"].values())  # not all zero


@pytest.mark.slow
def test_weights_after_training_equal_one_process_and_ranks_agree(two_ranks):
    """Warm start, pretraining and meta-steps, early stopping decided on rank 0's scores."""
    ranks, ref = two_ranks
    for got in ranks:
        assert _max_diff(got["model"], ref["model"]) < 1e-6
        assert _max_diff(got["inner"], ref["inner"]) < 1e-6
        assert got["best_step"] == ref["best_step"]
        assert len(got["history"]) == len(ref["history"]) > 0
        for (step, loss, mae), (rstep, rloss, rmae) in zip(
            got["history"], ref["history"], strict=True
        ):
            assert step == rstep and loss == pytest.approx(rloss, abs=1e-9)
            assert (mae is None) == (rmae is None)
            assert mae is None or mae == pytest.approx(rmae, abs=1e-9)
    # the weights moved: the comparison is not between two untrained models
    fresh = make_learner("metasgd", **dist_worker.CONFIG).setup(*_data_and_split())
    moved = {k: v for k, v in fresh.model_.state_dict().items() if k in ref["model"]}
    assert _max_diff(moved, {k: ref["model"][k] for k in moved}) > 1e-4


def _data_and_split():
    data = tiny_dataset()
    train, val = tiny_split(data)
    return data, train, val


@pytest.mark.slow
def test_a_rank_that_raises_ends_the_run_with_its_error(tmp_path):
    codes = _finish(_launch(tmp_path, "--fail-step", "2"), tmp_path)
    logs = _logs(tmp_path)
    assert codes[1] != 0 and "rank 1 failed on purpose at meta-step 2" in logs
    assert codes[0] != 0, logs  # rank 0 does not wait for it forever
    assert not list(tmp_path.glob("rank*.pt"))


@pytest.mark.slow
def test_a_rank_that_stalls_ends_the_others_by_the_timeout(tmp_path):
    procs = _launch(tmp_path, "--stall-step", "2", timeout=3.0)
    try:
        code0 = procs[0].wait(timeout=BOUND_S)
    except subprocess.TimeoutExpired:
        code0 = None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert code0 not in (None, 0), _logs(tmp_path)
    assert "timed out" in (tmp_path / "log0").read_text().lower(), _logs(tmp_path)


@pytest.mark.slow
def test_torchrun_train_rank_zero_alone_reports_and_writes_the_model(tmp_path):
    from metarec_core.checkpoint import load_checkpoint

    (tmp_path / "r.csv").write_bytes(ratings_csv())
    (tmp_path / "i.csv").write_bytes(items_csv())
    model, logs = tmp_path / "model.pt", tmp_path / "logs"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(_free_port()), "--log-dir", str(logs), "--redirects", "3",
        "-m", "metarec_core", "train", str(tmp_path / "r.csv"), "--items",
        str(tmp_path / "i.csv"), "--out", str(model), "--steps", "2", "--distributed",
        "--no-check",
    ]  # fmt: skip
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=BOUND_S)
    assert done.returncode == 0, done.stderr[-3000:]
    out = {p.parent.name: p.read_text() for p in logs.rglob("stdout.log")}
    assert "model written to" in out["0"] and "2 processes" in out["0"]
    assert out["1"] == ""  # rank 1 trains its shard and says nothing
    ck = load_checkpoint(model)
    assert ck.learner.fitted_ and ck.learner.sync_ is None
    assert ck.learner.adapt(np.array([0, 1]), np.array([4.0, 2.0])).scores.shape == (60,)
