"""Server-side workspaces: what one person's work (data, models, reports, jobs) survives a reload on.

A workspace is named by a token, `secrets.token_urlsafe(32)` (43 URL-safe characters, 256 random
bits), which the app keeps in the page's URL: whoever holds the link holds the workspace, and
nothing lists tokens. On disk a workspace is one folder under the store's root, named by a hash
of the token (so even a listing of the root does not reveal a token), holding:

- ``state.json``: what the app needs to rebuild its session (the app decides its content);
- ``data/<fingerprint>.npz``: a dataset, compact (numpy arrays, no pickle);
- ``models/<key>.pt`` + ``models/<key>.npz``: a checkpoint (`checkpoint.to_bytes`) and the user
  splits that go with it;
- ``reports/<fingerprint>.json``: an evaluation report of that dataset;
- ``last-used``: its modification time is the last visit.

A workspace expires `ttl_seconds` after its last visit (its running jobs are cancelled and its
folder deleted) and holds at most `max_bytes` on disk: a write that would pass the cap raises
`WorkspaceFull` and leaves the workspace as it was. Running jobs are kept in memory, per workspace
(`Workspace.jobs`), so a new browser session with the same token finds them again.

Tokens are checked (charset and length) before any path is built from them; a token of the wrong
form, an unknown one or an expired one opens a fresh workspace with a new token.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metarec_core.data.dataset import ItemInfo, RatingScale, RatingsDataset
from metarec_core.files import atomic_write

TOKEN_BYTES = 32
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 43 characters, no padding
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # fingerprints and model keys in file names
_FOLDER_RE = re.compile(r"[0-9a-f]{32}")  # a workspace folder: the sweep deletes nothing else
DEFAULT_TTL_HOURS = 24.0
DEFAULT_MAX_MB = 256
STATE = "state.json"
LAST_USED = "last-used"
_TOUCH_EVERY_S = 30.0  # a visit rewrites the last-use time at most this often
_SWEEP_EVERY_S = 60.0


class WorkspaceError(Exception):
    """A workspace file that cannot be read or written; the message says which and why."""


class WorkspaceFull(WorkspaceError):
    """A write that would take the workspace past its disk cap."""


def new_token() -> str:
    """A fresh, unguessable workspace token (URL-safe)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def valid_token(token: object) -> bool:
    """Whether `token` has the form of a token (43 URL-safe characters); says nothing of whether
    such a workspace exists."""
    return isinstance(token, str) and TOKEN_RE.fullmatch(token) is not None


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise WorkspaceError(f"not a valid {what}: {name!r:.80}")
    return name


def megabytes(n: float) -> str:
    """`n` bytes as a short human-readable size ("840 kB", "1.2 MB", "256 MB")."""
    if n < 1e6:
        return f"{n / 1e3:.3g} kB"
    mb = n / 1e6
    return f"{mb:.1f} MB" if mb < 100 else f"{mb:,.0f} MB"


@dataclass(frozen=True)
class WorkspaceSettings:
    """Where workspaces live, how long an idle one is kept and how much disk each may use."""

    root: Path
    ttl_seconds: float = DEFAULT_TTL_HOURS * 3600
    max_bytes: int = DEFAULT_MAX_MB * 1_000_000
    # after this idle time, finished jobs whose results are saved leave memory (files stay)
    release_seconds: float = 600.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> WorkspaceSettings:
        """From METAREC_WORKSPACE_DIR (default: a folder in the system temp dir),
        METAREC_WORKSPACE_TTL_HOURS (default 24) and METAREC_WORKSPACE_MAX_MB (default 256)."""
        env = os.environ if env is None else env
        root = env.get("METAREC_WORKSPACE_DIR") or os.path.join(
            tempfile.gettempdir(), "metarec-studio-workspaces"
        )
        ttl_h = _positive(env, "METAREC_WORKSPACE_TTL_HOURS", DEFAULT_TTL_HOURS)
        max_mb = _positive(env, "METAREC_WORKSPACE_MAX_MB", DEFAULT_MAX_MB)
        return cls(Path(root), ttl_h * 3600, int(max_mb * 1_000_000))

    @property
    def ttl_text(self) -> str:
        h = self.ttl_seconds / 3600
        return f"{h:g} hours" if h >= 1 else f"{self.ttl_seconds / 60:g} minutes"


def _positive(env: Any, name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a positive number, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {raw!r}")
    return value


@dataclass(frozen=True, eq=False)
class SavedModel:
    """A model read back from a workspace: its checkpoint bytes and the arrays saved with it."""

    key: str
    checkpoint: bytes
    arrays: dict[str, np.ndarray]


class Workspace:
    """One person's workspace: files under `folder` (created on the first write) and the
    background jobs by slot in `jobs` (in memory only). Thread-safe."""

    def __init__(self, token: str, folder: Path, settings: WorkspaceSettings) -> None:
        self.token = token
        self.folder = folder
        self.settings = settings
        self.jobs: dict[str, Any] = {}
        self.saved_jobs: set[str] = set()  # ids of jobs whose results are saved on disk
        self.lock = threading.RLock()
        self.last_used = time.time()
        self._disk_touched = 0.0

    # ------------------------------------------------------------------- bookkeeping
    def touch(self, now: float | None = None) -> None:
        """Record a visit (in memory, and on disk at most every 30 s)."""
        now = time.time() if now is None else now
        with self.lock:
            self.last_used = now
            if self.folder.is_dir() and now - self._disk_touched >= _TOUCH_EVERY_S:
                self._disk_touched = now
                with contextlib.suppress(OSError):  # a missed touch only shortens the stay
                    path = self.folder / LAST_USED
                    path.touch()
                    os.utime(path, (now, now))

    def usage(self) -> int:
        """Bytes this workspace holds on disk."""
        if not self.folder.is_dir():
            return 0
        total = 0
        for p in self.folder.rglob("*"):
            with contextlib.suppress(OSError):
                if p.is_file():
                    total += p.stat().st_size
        return total

    def release_saved_jobs(self) -> int:
        """Forget the finished jobs whose results are saved (their memory goes back); returns
        how many. Running jobs and unsaved results stay."""
        with self.lock:
            done = [
                slot
                for slot, job in self.jobs.items()
                if not getattr(job, "is_active", False)
                and getattr(job, "id", None) in self.saved_jobs
            ]
            for slot in done:
                del self.jobs[slot]
        return len(done)

    def cancel_jobs(self) -> None:
        for job in list(self.jobs.values()):
            with contextlib.suppress(Exception):  # cleanup must go on whatever one job does
                job.cancel()

    def delete(self) -> None:
        """Cancel the jobs and remove the folder."""
        self.cancel_jobs()
        with self.lock:
            shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------- files
    def _write(self, rel: str, raw: bytes, what: str) -> None:
        """Write `raw` at `rel` atomically, within the disk cap."""
        with self.lock:
            path = self.folder / rel
            old = path.stat().st_size if path.is_file() else 0
            after = self.usage() - old + len(raw)
            cap = self.settings.max_bytes
            if after > cap:
                raise WorkspaceFull(
                    f"{what} ({megabytes(len(raw))}) would bring this workspace to "
                    f"{megabytes(after)}, over its cap of {megabytes(cap)}"
                )
            # private folders: the root lists hashes only, and only to the server's user
            self.settings.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            for d in (self.folder, path.parent):
                d.mkdir(exist_ok=True, mode=0o700)
            atomic_write(path, raw)
            if not (self.folder / LAST_USED).exists():
                (self.folder / LAST_USED).touch()

    def _read(self, rel: str) -> bytes | None:
        try:
            return (self.folder / rel).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise WorkspaceError(f"{rel}: cannot be read ({e.strerror})") from None

    def read_state(self) -> dict[str, Any]:
        """The saved state, or {} when there is none or it is damaged."""
        raw = self._read(STATE)
        if raw is None:
            return {}
        try:
            state = json.loads(raw)
        except ValueError:
            return {}
        return state if isinstance(state, dict) else {}

    def write_state(self, state: dict[str, Any]) -> None:
        self._write(STATE, json.dumps(state).encode(), "the workspace's index")

    # ------------------------------------------------------------------- datasets
    def has_dataset(self, fingerprint: str) -> bool:
        return (self.folder / "data" / f"{_check_name(fingerprint, 'fingerprint')}.npz").is_file()

    def save_dataset(self, data: RatingsDataset) -> str:
        """Save `data` (unless saved already); returns its fingerprint."""
        fp = _check_name(data.fingerprint(), "fingerprint")
        if self.has_dataset(fp):
            return fp
        self._write(f"data/{fp}.npz", dataset_bytes(data), f"the dataset {data.source or fp}")
        return fp

    def load_dataset(self, fingerprint: str) -> RatingsDataset:
        raw = self._read(f"data/{_check_name(fingerprint, 'fingerprint')}.npz")
        if raw is None:
            raise WorkspaceError(f"no saved dataset {fingerprint}")
        data = dataset_from_bytes(raw)
        if data.fingerprint() != fingerprint:
            raise WorkspaceError(f"the saved dataset {fingerprint} is damaged")
        return data

    def keep_datasets(self, fingerprints: set[str]) -> None:
        """Delete the saved datasets other than `fingerprints`."""
        folder = self.folder / "data"
        if not folder.is_dir():
            return
        with self.lock:
            for p in folder.glob("*.npz"):
                if p.stem not in fingerprints:
                    p.unlink(missing_ok=True)

    # ------------------------------------------------------------------- models
    def save_model(self, key: str, checkpoint: bytes, arrays: dict[str, np.ndarray]) -> None:
        """Save a checkpoint and its arrays (e.g. the user splits) under `key`."""
        key = _check_name(key, "model key")
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
        extra = buf.getvalue()
        with self.lock:
            # one budget check for both files, so a refusal leaves neither
            path = self.folder / "models" / f"{key}.pt"
            old = path.stat().st_size if path.is_file() else 0
            after = self.usage() - old + len(checkpoint) + len(extra)
            if after > self.settings.max_bytes:
                raise WorkspaceFull(
                    f"the model ({megabytes(len(checkpoint) + len(extra))}) would bring this "
                    f"workspace to {megabytes(after)}, over its cap of "
                    f"{megabytes(self.settings.max_bytes)}"
                )
            self._write(f"models/{key}.npz", extra, "the model's user splits")
            self._write(f"models/{key}.pt", checkpoint, "the model")

    def load_model(self, key: str) -> SavedModel:
        key = _check_name(key, "model key")
        checkpoint = self._read(f"models/{key}.pt")
        extra = self._read(f"models/{key}.npz")
        if checkpoint is None or extra is None:
            raise WorkspaceError(f"the saved model {key} is missing")
        try:
            with np.load(io.BytesIO(extra), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception:
            raise WorkspaceError(f"the saved model {key} is damaged") from None
        return SavedModel(key, checkpoint, arrays)

    def remove_model(self, key: str) -> None:
        key = _check_name(key, "model key")
        for ext in ("pt", "npz"):
            (self.folder / "models" / f"{key}.{ext}").unlink(missing_ok=True)

    # ------------------------------------------------------------------- reports
    def save_report(self, fingerprint: str, report: dict[str, Any]) -> None:
        """Save the evaluation report of the dataset `fingerprint` (replacing an older one)."""
        fp = _check_name(fingerprint, "fingerprint")
        self._write(f"reports/{fp}.json", json.dumps(report).encode(), "the evaluation report")

    def load_report(self, fingerprint: str) -> dict[str, Any] | None:
        raw = self._read(f"reports/{_check_name(fingerprint, 'fingerprint')}.json")
        if raw is None:
            return None
        try:
            report = json.loads(raw)
        except ValueError:
            return None
        return report if isinstance(report, dict) else None


# --------------------------------------------------------------------------- datasets as bytes
def dataset_bytes(data: RatingsDataset) -> bytes:
    """`data` as a compressed .npz (plain arrays and one JSON string; no pickle)."""
    meta = {
        "scale": [float(data.scale.low), float(data.scale.high), float(data.scale.step)],
        "source": str(data.source),
        "notes": [str(n) for n in data.notes],
        "genre_names": None if data.items is None else [str(g) for g in data.items.genre_names],
        "missing": 0 if data.items is None else int(data.items.missing),
    }
    arrays = {
        "user": np.asarray(data.user, dtype=np.int64),
        "item": np.asarray(data.item, dtype=np.int64),
        "rating": np.asarray(data.rating, dtype=np.float32),
        "user_ids": np.asarray(data.user_ids).astype(str),
        "item_ids": np.asarray(data.item_ids).astype(str),
        "meta": np.array(json.dumps(meta)),
    }
    if data.timestamp is not None:
        arrays["timestamp"] = np.asarray(data.timestamp, dtype=np.int64)
    if data.items is not None:
        arrays["titles"] = np.asarray(data.items.titles).astype(str)
        arrays["genres"] = np.asarray(data.items.genres, dtype=bool)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def dataset_from_bytes(raw: bytes) -> RatingsDataset:
    """The dataset saved by `dataset_bytes`; WorkspaceError when the bytes are not one."""
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        meta = json.loads(str(a["meta"]))
        low, high, step = (float(x) for x in meta["scale"])
        items = None
        if "titles" in a:
            items = ItemInfo(
                a["titles"], tuple(meta["genre_names"]), a["genres"], int(meta["missing"])
            )
        return RatingsDataset(
            user=a["user"],
            item=a["item"],
            rating=a["rating"],
            timestamp=a.get("timestamp"),
            user_ids=a["user_ids"],
            item_ids=a["item_ids"],
            scale=RatingScale(low, high, step),
            items=items,
            source=str(meta["source"]),
            notes=tuple(str(n) for n in meta["notes"]),
        )
    except WorkspaceError:
        raise
    except Exception:
        raise WorkspaceError("a saved dataset is damaged") from None


# --------------------------------------------------------------------------- the store
class WorkspaceStore:
    """All workspaces of one server process: the folders under `settings.root` and, in memory,
    the workspaces opened since the process started (with their jobs). Thread-safe."""

    def __init__(self, settings: WorkspaceSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._open: dict[str, Workspace] = {}
        self._last_sweep = 0.0

    def _folder(self, token: str) -> Path:
        # Built only from a validated token, and named by its hash: a token is never a path.
        assert valid_token(token)
        return self.settings.root / hashlib.sha256(token.encode()).hexdigest()[:32]

    def _expired(self, ws: Workspace, now: float) -> bool:
        return now - ws.last_used > self.settings.ttl_seconds

    def _disk_last_used(self, folder: Path) -> float | None:
        for p in (folder / LAST_USED, folder):
            with contextlib.suppress(OSError):
                return p.stat().st_mtime
        return None

    def get(self, token: object) -> Workspace | None:
        """The workspace of `token` if it is open in this process and not expired."""
        if not valid_token(token):
            return None
        with self._lock:
            ws = self._open.get(token)  # type: ignore[arg-type]
        if ws is None or self._expired(ws, time.time()):
            return None
        return ws

    def open(self, token: object, now: float | None = None) -> Workspace:
        """The workspace of `token` when it exists and has not expired, else a fresh one with a
        new token (never the one given: only the store makes tokens)."""
        now = time.time() if now is None else now
        self.sweep(now)
        with self._lock:
            if valid_token(token):
                ws = self._open.get(token)  # type: ignore[arg-type]
                if ws is None:
                    folder = self._folder(token)  # type: ignore[arg-type]
                    last = self._disk_last_used(folder) if folder.is_dir() else None
                    if last is not None and now - last <= self.settings.ttl_seconds:
                        ws = Workspace(token, folder, self.settings)  # type: ignore[arg-type]
                        self._open[ws.token] = ws
                if ws is not None and not self._expired(ws, now):
                    ws.touch(now)
                    return ws
            token = new_token()
            ws = Workspace(token, self._folder(token), self.settings)
            ws.last_used = now
            self._open[token] = ws
            return ws

    def sweep(self, now: float | None = None, *, force: bool = False) -> int:
        """Expire the workspaces idle for longer than the TTL: cancel their jobs, delete their
        folders. Those idle for `release_seconds` give back the memory of their finished, saved
        jobs, and are forgotten when nothing is left of them (no job, no folder). Runs at most
        once a minute unless `force`; returns how many it expired."""
        now = time.time() if now is None else now
        ttl = self.settings.ttl_seconds
        with self._lock:
            if not force and now - self._last_sweep < _SWEEP_EVERY_S:
                return 0
            self._last_sweep = now
            gone = [ws for ws in self._open.values() if self._expired(ws, now)]
            for ws in gone:
                del self._open[ws.token]
            for ws in list(self._open.values()):
                if now - ws.last_used > self.settings.release_seconds:
                    ws.release_saved_jobs()
                    if not ws.jobs and not ws.folder.exists():
                        del self._open[ws.token]  # nothing to come back to
            alive = {ws.folder for ws in self._open.values()}
        for ws in gone:
            ws.delete()
        n = len(gone)
        root = self.settings.root
        if root.is_dir():
            for folder in root.iterdir():
                # only what looks like a workspace: never a stranger's folder under a shared root
                if (
                    folder in alive
                    or _FOLDER_RE.fullmatch(folder.name) is None
                    or not (folder / LAST_USED).is_file()
                ):
                    continue
                last = self._disk_last_used(folder)
                if last is not None and now - last > ttl:
                    shutil.rmtree(folder, ignore_errors=True)
                    n += 1
        return n

    def close(self) -> None:
        """Cancel every job (the server or the store is going away); files stay."""
        with self._lock:
            spaces = list(self._open.values())
        for ws in spaces:
            ws.cancel_jobs()
