"""Server-side workspaces (metarec_core.workspace): tokens, isolation, expiry, disk cap, round trips."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_LEARNER, tiny_dataset, tiny_model_bytes

from metarec_core.checkpoint import load_checkpoint
from metarec_core.workspace import (
    LAST_USED,
    WorkspaceError,
    WorkspaceFull,
    WorkspaceSettings,
    WorkspaceStore,
    dataset_bytes,
    dataset_from_bytes,
    new_token,
    valid_token,
)

HOUR = 3600.0


def store(tmp_path: Path, **kw) -> WorkspaceStore:
    return WorkspaceStore(WorkspaceSettings(tmp_path / "ws", **kw))


def files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_tokens_are_unguessable_and_checked_before_any_path():
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200 and all(valid_token(t) for t in tokens)
    for bad in [
        None,
        "",
        "abc",
        "../" * 15,
        "../../etc/passwd",
        "a" * 42,
        "a" * 44,
        "a" * 42 + "/",
        "a" * 42 + ".",
        "a" * 42 + "\x00",
        "a" * 42 + "é",
        ["a" * 43],
        43,
    ]:
        assert not valid_token(bad), bad


@pytest.mark.parametrize(
    "token",
    ["../../../../../../../../../../../../../tmp/x", "..%2F..%2Fetc", "/etc/passwd", "a" * 500, ""],
)
def test_a_bad_token_opens_a_fresh_workspace_and_builds_no_path_from_it(tmp_path, token):
    s = store(tmp_path)
    ws = s.open(token)
    assert ws.token != token and valid_token(ws.token)
    ws.write_state({"x": 1})
    # the only folder is the new workspace's, named by a hash inside the root
    (folder,) = (tmp_path / "ws").iterdir()
    assert folder == ws.folder and ws.token not in str(folder)
    assert not token or token not in str(folder)
    assert {p.name for p in tmp_path.iterdir()} == {"ws"}


def test_an_unknown_token_of_good_form_gets_a_new_token(tmp_path):
    s = store(tmp_path)
    guess = new_token()
    ws = s.open(guess)
    assert ws.token != guess
    assert s.get(guess) is None


def test_reopening_a_token_gives_the_same_workspace_and_jobs_other_tokens_see_nothing(tmp_path):
    s = store(tmp_path)
    a, b = s.open(None), s.open(None)
    assert a.token != b.token and a.folder != b.folder
    a.jobs["train"] = job = object()
    a.write_state({"who": "a"})
    assert s.open(a.token) is a and s.open(a.token).jobs["train"] is job
    assert b.jobs == {} and b.read_state() == {}
    # a new process (a new store on the same root) finds the files, not the jobs
    again = store(tmp_path).open(a.token)
    assert again.token == a.token and again.read_state() == {"who": "a"} and again.jobs == {}


class FakeJob:
    def __init__(self) -> None:
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()


def test_an_idle_workspace_expires_its_jobs_are_cancelled_and_its_files_deleted(tmp_path):
    s = store(tmp_path, ttl_seconds=HOUR)
    t0 = time.time()
    old, recent = s.open(None, now=t0), s.open(None, now=t0)
    for ws in (old, recent):
        ws.write_state({"k": ws.token})
        ws.jobs["train"] = FakeJob()
    recent.touch(now=t0 + 0.9 * HOUR)
    assert s.open(old.token, now=t0 + 0.5 * HOUR) is old  # a visit within the TTL keeps it
    old.last_used = t0  # as if that visit had not happened
    assert s.sweep(now=t0 + 1.1 * HOUR, force=True) == 1
    assert old.jobs["train"].cancelled.is_set() and not old.folder.exists()
    assert not recent.jobs["train"].cancelled.is_set() and recent.folder.exists()
    fresh = s.open(old.token, now=t0 + 1.1 * HOUR)
    assert fresh.token != old.token and fresh.read_state() == {}


def test_an_expired_folder_left_by_an_earlier_process_is_swept_and_not_reopened(tmp_path):
    import os

    first = store(tmp_path, ttl_seconds=HOUR)
    ws = first.open(None)
    ws.write_state({"k": 1})
    stranger = tmp_path / "ws" / "not-a-workspace"
    stranger.mkdir()
    past = time.time() - 2 * HOUR
    for p in (ws.folder / LAST_USED, stranger):
        os.utime(p, (past, past))
    later = store(tmp_path, ttl_seconds=HOUR)
    assert later.open(ws.token).token != ws.token
    assert not ws.folder.exists()
    assert stranger.exists()  # the sweep deletes workspace folders only


def test_the_disk_cap_refuses_a_write_clearly_and_keeps_what_was_there(tmp_path):
    data = tiny_dataset()
    size = len(dataset_bytes(data))
    s = store(tmp_path, max_bytes=size + 300)
    ws = s.open(None)
    ws.write_state({"a": 1})
    ws.save_dataset(data)
    with pytest.raises(WorkspaceFull, match=r"the evaluation report .* over its cap of"):
        ws.save_report(data.fingerprint(), {"rows": ["x" * 1000]})
    with pytest.raises(WorkspaceFull, match="over its cap"):
        ws.save_model("m1", b"x" * 500, {"train": np.arange(3)})
    assert ws.load_report(data.fingerprint()) is None
    assert not (ws.folder / "models").exists() or files(ws.folder / "models") == []
    assert ws.usage() <= s.settings.max_bytes
    assert ws.load_dataset(data.fingerprint()).fingerprint() == data.fingerprint()
    assert not [p for p in files(ws.folder) if p.name.startswith(".tmp-")]


def test_settings_from_the_environment(tmp_path):
    s = WorkspaceSettings.from_env(
        {
            "METAREC_WORKSPACE_DIR": str(tmp_path),
            "METAREC_WORKSPACE_TTL_HOURS": "0.5",
            "METAREC_WORKSPACE_MAX_MB": "10",
        }
    )
    assert (s.root, s.ttl_seconds, s.max_bytes) == (tmp_path, 1800, 10_000_000)
    assert s.ttl_text == "30 minutes"
    d = WorkspaceSettings.from_env({})
    assert d.ttl_seconds == 24 * HOUR and d.ttl_text == "24 hours" and d.max_bytes == 256_000_000
    with pytest.raises(ValueError, match="METAREC_WORKSPACE_MAX_MB must be a positive number"):
        WorkspaceSettings.from_env({"METAREC_WORKSPACE_MAX_MB": "-1"})


def test_round_trip_of_a_dataset_a_model_and_a_report(tmp_path):
    data = tiny_dataset()
    ckpt = tiny_model_bytes()
    report = {"protocol": {"name": "kshot"}, "rows": [{"method": "mean", "mae": 0.9}], "paired": []}
    ws = store(tmp_path).open(None)
    fp = ws.save_dataset(data)
    ws.save_model("metasgd", ckpt, {"train_users": np.arange(5), "val_users": np.array([7])})
    ws.save_report(fp, report)
    ws.write_state({"active": fp})

    again = store(tmp_path).open(ws.token)  # a new process
    assert again.read_state() == {"active": fp}
    back = again.load_dataset(fp)
    assert back.fingerprint() == fp and back.source == data.source
    np.testing.assert_array_equal(back.rating, data.rating)
    np.testing.assert_array_equal(back.items.titles, data.items.titles)
    np.testing.assert_array_equal(back.items.genres, data.items.genres)
    assert back.items.genre_names == data.items.genre_names and back.scale == data.scale
    saved = again.load_model("metasgd")
    np.testing.assert_array_equal(saved.arrays["train_users"], np.arange(5))
    model = load_checkpoint(saved.checkpoint, back, strict=True).learner
    assert model.config.factors == TINY_LEARNER["factors"]
    assert again.load_report(fp) == report


def test_damaged_files_are_a_clear_error_not_a_crash(tmp_path):
    data = tiny_dataset()
    ws = store(tmp_path).open(None)
    fp = ws.save_dataset(data)
    (ws.folder / "data" / f"{fp}.npz").write_bytes(b"not an npz")
    with pytest.raises(WorkspaceError, match="damaged"):
        ws.load_dataset(fp)
    with pytest.raises(WorkspaceError, match="damaged"):
        dataset_from_bytes(b"PK\x03\x04 nonsense")
    with pytest.raises(WorkspaceError, match="missing"):
        ws.load_model("nope")
    (ws.folder / "state.json").write_text("{broken")
    assert ws.read_state() == {}
    for bad in ("../x", "a/b", "", "x" * 65):
        with pytest.raises(WorkspaceError, match="not a valid"):
            ws.load_model(bad)
        with pytest.raises(WorkspaceError, match="not a valid"):
            ws.load_report(bad)


class DoneJob:
    def __init__(self, job_id: str, active: bool = False) -> None:
        self.id, self.is_active = job_id, active

    def cancel(self) -> None:
        pass


def test_an_idle_workspace_gives_back_saved_finished_jobs_and_keeps_the_rest(tmp_path):
    s = store(tmp_path, ttl_seconds=HOUR, release_seconds=600)
    t0 = time.time()
    ws, empty = s.open(None, now=t0), s.open(None, now=t0)
    ws.jobs.update(train=DoneJob("t"), eval=DoneJob("e"), sample=DoneJob("s", active=True))
    ws.saved_jobs.update({"t", "s"})  # the evaluation's report could not be saved
    s.sweep(now=t0 + 300, force=True)
    assert set(ws.jobs) == {"train", "eval", "sample"}  # not idle long enough
    s.sweep(now=t0 + 700, force=True)
    assert set(ws.jobs) == {"eval", "sample"}  # the unsaved result and the running job stay
    assert s.open(ws.token, now=t0 + 700) is ws  # with jobs left, its token still opens it
    # a workspace with nothing left (no job, no file) is forgotten: its token opens a fresh one
    assert s.open(empty.token, now=t0 + 700).token != empty.token
