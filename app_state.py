"""Per-workspace state of the app: the active dataset, models, reports and background jobs.

It names every `st.session_state` key that more than one page uses. A browser session works in
one workspace (`metarec_core.workspace`), named by an unguessable token in the page's URL
(``?ws=…``): the session restores the workspace's dataset, models and report on its first run
and saves them on every change, and the workspace's background jobs live in a process-wide
registry keyed by the token, so a reload, or the same link in a new tab, finds all of it again,
running trainings included. A workspace expires after an idle time (its jobs are cancelled then)
and has a disk cap. Nothing one workspace holds is visible in another. Only read-only derived
objects are shared: the shipped sample dataset, the shipped sample checkpoint as read from disk
(each session adapts with its own copy of the learner), the playground's map of training users for
that shipped model, and the playground's fitted baselines (cached in
`metarec_core.interactive.session` by dataset fingerprint, so a session only gets those of data it
holds). A model trained or uploaded in a session is never shared.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import html
import os
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from metarec_core.data.dataset import RatingsDataset
from metarec_core.evaluation.report import EvaluationReport
from metarec_core.interactive.projection import Projection, fit_projection
from metarec_core.interactive.session import PLAYGROUND_BASELINES
from metarec_core.jobs import poll_seconds
from metarec_core.methods.base import Recommender
from metarec_core.methods.registry import BASELINE, available_methods, display_name, method_class
from metarec_core.runtime import limit_torch_threads
from metarec_core.workspace import (
    Workspace,
    WorkspaceError,
    WorkspaceFull,
    WorkspaceSettings,
    WorkspaceStore,
    megabytes,
)

ROOT = Path(__file__).resolve().parent


limit_torch_threads()


K_ROUTED = "mr_routed"
K_WHOLE_RUN = "mr_whole_run"


def begin_whole_run() -> None:
    """app.py calls this after `st.navigation` on every whole run (a fragment's own rerun does
    not): it counts the runs (`polling_fragment`) and marks the run as routed (`require_router`)."""
    st.session_state[K_WHOLE_RUN] = st.session_state.get(K_WHOLE_RUN, 0) + 1
    st.session_state[K_ROUTED] = True


def polling_fragment(run_every: float | None) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """`st.fragment(run_every=...)` whose fragment id is new on every whole run.

    Why: in Streamlit 1.67 a poll from the previous run's timer that arrives after a whole run
    finished, but before the server flushed that run's last messages, starts a new script
    runner, and the finished run's last deltas and its ``script_finished`` are dropped ("Ignoring
    event from non-current ScriptRunner"; docs/load.md, "cut off" runs; Streamlit issue #9921).
    Streamlit drops a poll for a fragment the current run does not have, and a fragment's id is
    its function's qualified name and place: a name new on every whole run makes the stale poll
    one for an unknown fragment. A fragment's own reruns keep its id.
    """

    def decorate(func: Callable[[], None]) -> Callable[[], None]:
        func.__qualname__ = f"{func.__qualname__}.run{st.session_state.get(K_WHOLE_RUN, 0)}"
        return st.fragment(run_every=run_every)(func)

    return decorate


def job_pace(slot: str) -> tuple[Any, bool, float | None]:
    """The job in `slot` (None: none), whether it is active, and how often a progress fragment
    polls it meanwhile (`poll_seconds`; None: it is not active, nothing to poll)."""
    job = jobs().get(slot)
    running = job is not None and job.is_active
    return job, running, poll_seconds(job.snapshot()) if running else None


def require_router() -> None:
    """First line of every page: run pages only through app.py's `st.navigation` router.

    Streamlit treats a `pages/` folder next to the entry script as its legacy multipage app
    until some session calls `st.navigation`: the first visitor of a fresh server who lands on
    e.g. ``/data`` (and every AppTest run) gets ``pages/data.py`` run on its own, without the
    frame. Such a run switches the legacy mode off for the process and reruns, and the rerun
    goes through app.py to the same page (both modes hash a page by its name).
    """
    if st.session_state.pop(K_ROUTED, False):
        return
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()


def sample_dir() -> Path:
    """The sample folder (ratings.csv, items.csv, optional model.pt). Tests and screenshots may
    point METAREC_SAMPLE_DIR at a smaller one."""
    return Path(os.environ.get("METAREC_SAMPLE_DIR", ROOT / "sample_data"))


def quick_train_steps() -> int:
    """Meta-steps of the background model trained when the sample ships no checkpoint."""
    return int(os.environ.get("METAREC_QUICK_STEPS", "300"))


K_DATA = "mr_data"
K_MODELS = "mr_models"
K_ACTIVE_MODEL = "mr_active_model"
K_PLAYGROUND = "mr_playground"
K_ITEM_SESSION = "mr_item_session"  # the new-item page's item (its page, What-if)
K_EVAL_REPORT = "mr_eval_report"
K_INIT = "mr_initialised"
K_TOKEN = "mr_workspace_token"
K_WS_NOTES = "mr_workspace_notes"  # what could not be saved or restored, for the sidebar
QUERY_KEY = "ws"  # the workspace token's name in the URL
K_LABELS = "mr_data_labels"  # dataset fingerprint -> the label it was made active with
# Set by the home page's demo button to a number n: the playground (pages/playground.py) pops it,
# makes the most active held-out user its persona with only their first n ratings
# (`metarec_core.demo.demo_persona`) and plays them by itself.
K_DEMO = "mr_demo"


@dataclass(eq=False)
class ActiveData:
    """The dataset this session works on."""

    data: RatingsDataset
    label: str
    is_sample: bool


@dataclass(eq=False)
class ModelEntry:
    """A model usable in the playground and what-if pages, with the users it was trained on."""

    name: str
    model: Recommender
    fingerprint: str  # of the dataset it is used with
    train_users: np.ndarray
    val_users: np.ndarray  # early stopping only: never trained on
    heldout_users: np.ndarray  # users it never trained on (validation users included)
    source: str  # how it got here, for the sidebar
    config: Any = None
    checkpoint: bytes | None = None  # for download
    # computed on first use in the playground (the baselines: metarec_core.interactive.session's cache)
    projection: Projection | None = None
    projection_done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- workspace


@st.cache_resource(show_spinner=False, on_release=WorkspaceStore.close)
def _workspace_store(root: str, ttl_seconds: float, max_bytes: int) -> WorkspaceStore:
    """The server's workspaces (one store per settings); dropping it cancels their jobs."""
    return WorkspaceStore(WorkspaceSettings(Path(root), ttl_seconds, max_bytes))


def workspace_store() -> WorkspaceStore:
    """The store of the settings in the environment (METAREC_WORKSPACE_DIR, _TTL_HOURS, _MAX_MB)."""
    s = WorkspaceSettings.from_env()
    return _workspace_store(str(s.root), s.ttl_seconds, s.max_bytes)


def workspace() -> Workspace:
    """This session's workspace. The session's first run opens the one named by the URL's token
    (a fresh one when the token is missing, malformed, unknown or expired); every run puts its
    token back in the URL (switching pages drops query parameters), so a reload returns here."""
    store = workspace_store()
    ws = store.get(st.session_state.get(K_TOKEN))
    if ws is None:
        ws = store.open(st.query_params.get(QUERY_KEY))
        st.session_state[K_TOKEN] = ws.token
    if st.query_params.get(QUERY_KEY) != ws.token:
        st.query_params[QUERY_KEY] = ws.token
    return ws


def _note(text: str) -> None:
    notes = st.session_state.setdefault(K_WS_NOTES, [])
    if text not in notes:
        notes.append(text)


# ----------------------------------------------------------------------------- jobs


def jobs() -> dict[str, Any]:
    """This workspace's background jobs by slot ("train", "eval", "sample"): shared by every
    session of the workspace, kept over reloads, cancelled when the workspace expires."""
    return workspace().jobs


# ----------------------------------------------------------------------------- data


@st.cache_resource(show_spinner="Loading the sample data…")
def _sample_dataset(folder: str) -> RatingsDataset:
    from metarec_core.data.io import load_ratings

    items = Path(folder) / "items.csv"
    return load_ratings(Path(folder) / "ratings.csv", items=items if items.exists() else None)


def sample_dataset() -> RatingsDataset:
    """The shipped sample (shared read-only by every session)."""
    return _sample_dataset(str(sample_dir()))


def get_data() -> ActiveData | None:
    return st.session_state.get(K_DATA)


def require_data() -> ActiveData:
    """The active dataset; without one, a pointer to the Data page and the page stops here."""
    active = get_data()
    if active is None:
        st.info("Choose a dataset on the Data page first.")
        st.stop()
    return active


def set_data(data: RatingsDataset, label: str, *, is_sample: bool) -> ActiveData:
    """Make `data` active; models of other datasets stay listed but cannot be used with it.
    An upload is saved in the workspace (the one saved before it is dropped)."""
    active = ActiveData(data, label, is_sample)
    st.session_state[K_DATA] = active
    st.session_state.setdefault(K_LABELS, {})[data.fingerprint()] = label
    st.session_state.pop(K_PLAYGROUND, None)
    st.session_state.pop(K_EVAL_REPORT, None)
    st.session_state[K_ACTIVE_MODEL] = default_model_name(data.fingerprint())
    if not is_sample:
        _persist(f"the dataset {label}", lambda ws: ws.save_dataset(data))
    _persist("", lambda ws: ws.keep_datasets(set() if is_sample else {data.fingerprint()}))
    save_workspace()
    return active


def is_active_data(data: RatingsDataset) -> bool:
    """Whether `data` (a job's, say) is the active dataset's content."""
    active = get_data()
    return active is not None and active.data.fingerprint() == data.fingerprint()


def data_label(data: RatingsDataset) -> str:
    """The label `data` was active under in this session (its source when never active)."""
    return st.session_state.get(K_LABELS, {}).get(data.fingerprint(), data.source)


# ----------------------------------------------------------------------------- models


def models() -> dict[str, ModelEntry]:
    return st.session_state.setdefault(K_MODELS, {})


def is_worse(entry: ModelEntry) -> bool:
    """Whether `entry` was found worse than the plain baselines on its validation users."""
    return bool(entry.extra.get("worse"))


def default_model_name(fingerprint: str) -> str | None:
    """The model made active with a dataset: the latest of its models that is not worse than
    the plain baselines (a worse one only ever becomes active by the person's choice)."""
    usable = [n for n, m in models().items() if m.fingerprint == fingerprint and not is_worse(m)]
    return usable[-1] if usable else None


def models_for_active_data() -> dict[str, ModelEntry]:
    d = get_data()
    if d is None:
        return {}
    fp = d.data.fingerprint()
    return {n: m for n, m in models().items() if m.fingerprint == fp}


def active_model() -> ModelEntry | None:
    name = st.session_state.get(K_ACTIVE_MODEL)
    entry = models_for_active_data().get(name) if name else None
    return entry


def unique_name(base: str) -> str:
    """`base`, or `base #k`, unused by this session's models and by the baselines the
    playground and what-if pages put beside them."""
    names = {*models(), *available_methods(BASELINE), *PLAYGROUND_BASELINES}
    if base not in names:
        return base
    k = 2
    while f"{base} #{k}" in names:
        k += 1
    return f"{base} #{k}"


def add_model(
    entry: ModelEntry, *, activate: bool = True, data: RatingsDataset | None = None
) -> ModelEntry:
    """Register `entry` and save it in the workspace; `data` is the dataset it was trained on
    (default: the active one, when it is of that data)."""
    models()[entry.name] = entry
    if activate:
        st.session_state[K_ACTIVE_MODEL] = entry.name
        st.session_state.pop(K_PLAYGROUND, None)
    _save_model(entry, data)
    save_workspace()
    return entry


def set_active_model(name: str) -> None:
    if st.session_state.get(K_ACTIVE_MODEL) != name:
        st.session_state[K_ACTIVE_MODEL] = name
        st.session_state.pop(K_PLAYGROUND, None)
        save_workspace()


def entry_from_training(job: Any, name: str) -> ModelEntry:
    """A model entry for a finished TrainingJob, usable with the data it was trained on."""
    val = np.asarray(job.val_users if job.val_users is not None else [], dtype=np.int64)
    return ModelEntry(
        name=name,
        model=job.result,
        fingerprint=job.data.fingerprint(),
        train_users=np.asarray(job.train_users, dtype=np.int64),
        val_users=val,
        # validation users only steered early stopping: they were never trained on
        heldout_users=np.setdiff1d(np.arange(job.data.n_users), job.train_users),
        source="trained in this session",
        config=job.config,
    )


def baseline_of(entry: ModelEntry | None) -> str | None:
    """The registry name of the baseline `entry`'s model is (None: not a baseline)."""
    if entry is None:
        return None
    name = getattr(type(entry.model), "name", None)
    if name not in available_methods(BASELINE):
        return None
    return name if method_class(name) is type(entry.model) else None


def beside(entry: ModelEntry | None, names: Sequence[str]) -> tuple[str, ...]:
    """The baselines `names` to show beside `entry`, without the one `entry` itself is."""
    own = baseline_of(entry)
    return tuple(n for n in names if n != own)


def baseline_entry_of(job: Any, name: str) -> ModelEntry | None:
    """The model entry made from baseline `name` of training `job`'s model check, if any."""
    for m in models().values():
        if m.extra.get("check_job") == job.id and m.extra.get("baseline") == name:
            return m
    return None


def use_baseline(job: Any, name: str) -> ModelEntry:
    """Make baseline `name`, as the model check of training `job` fitted it (same users, same
    seed), a model entry of `job`'s data and the active model (registered once per job)."""
    from metarec_core.evaluation.check import fit_check_baselines

    entry = baseline_entry_of(job, name)
    if entry is not None:
        set_active_model(entry.name)
        return entry
    check = job.baseline_check
    seed = 0 if check is None else check.baseline_seed
    model = fit_check_baselines(job.data, job.train_users, job.val_users, [name], seed=seed)[name]
    entry = entry_from_training(job, unique_name(f"{display_name(name)} (baseline)"))
    entry.model = model
    entry.config = None
    entry.source = "a baseline the model check found better"
    entry.extra.update(check_job=job.id, baseline=name)
    return add_model(entry, data=job.data)


def checkpoint_bytes(entry: ModelEntry, data: RatingsDataset) -> bytes:
    """`entry`'s checkpoint file, with the users it was trained and validated on."""
    from metarec_core.checkpoint import to_bytes

    return to_bytes(entry.model, data, train_users=entry.train_users, val_users=entry.val_users)


def entry_from_checkpoint(loaded: Any, active: ActiveData, name: str, source: str) -> ModelEntry:
    """A model entry for a loaded checkpoint, with the users it was trained on.

    A checkpoint stores its training and validation users (format 2 on); they are used when
    it is loaded with the very ratings it was trained on. Otherwise (format 1, or the same
    catalogue with other ratings) the split is `TrainingJob`'s default one (CLI `train` and the
    Train page alike): seeded by the learner's seed, 90% train, 10% validation.
    """
    from metarec_core.protocol.splits import split_users

    same_data = loaded.fingerprint == active.data.fingerprint()
    if same_data and loaded.train_users is not None:
        train = loaded.train_users
        val = np.zeros(0, np.int64) if loaded.val_users is None else loaded.val_users
        # validation users only steered early stopping: they were never trained on
        heldout = np.setdiff1d(np.arange(active.data.n_users), train)
    else:
        train, val = split_users(active.data, int((loaded.config or {}).get("seed", 0)))
        heldout = val
    return ModelEntry(
        name=name,
        model=loaded.learner,
        fingerprint=active.data.fingerprint(),
        train_users=train,
        val_users=val,
        heldout_users=heldout,
        source=source,
        config=loaded.config,
    )


# Shared derived objects: at most this many per process (least recently used go first).
SHARED_MAX_ENTRIES = 8
K_SHARED = "shared_key"  # ModelEntry.extra: names a model that every session holds identically


def _users_digest(users: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(users, dtype=np.int64).tobytes()).hexdigest()


@st.cache_resource(show_spinner=False, max_entries=SHARED_MAX_ENTRIES)
def _shared_projection(
    fingerprint: str,
    model_key: str,
    users: str,
    _model: Recommender,
    _data: RatingsDataset,
    _train_users: np.ndarray,
) -> Projection | None:
    """The map of training users of a model every session holds alike (the shipped sample
    model), fitted once per process for the data of `fingerprint`; read-only."""
    proj = fit_projection(_model, _data, _train_users)
    if proj is not None:
        for a in (proj.mean, proj.components, proj.points, proj.users, proj.explained):
            a.setflags(write=False)
    return proj


def projection_for(entry: ModelEntry, data: RatingsDataset) -> Projection | None:
    """`entry`'s map of training users (the playground's PCA), fitted on first use.

    A model only this session holds gets its own; the shipped sample model (`K_SHARED`) gets
    the process's one, keyed by the data's fingerprint, the checkpoint file and the users.
    """
    if not entry.projection_done:
        key = entry.extra.get(K_SHARED)
        if key is None or data.fingerprint() != entry.fingerprint:
            entry.projection = fit_projection(entry.model, data, entry.train_users)
        else:
            entry.projection = _shared_projection(
                data.fingerprint(), key, _users_digest(entry.train_users),
                entry.model, data, entry.train_users,
            )  # fmt: skip
        entry.projection_done = True
    return entry.projection


# ----------------------------------------------------------------------------- start-up


def _file_key(path: str) -> str:
    """A checkpoint file's identity for the shared caches: its path, size and change time."""
    s = os.stat(path)
    return f"{path}:{s.st_size}:{s.st_mtime_ns}"


@st.cache_resource(
    show_spinner="Loading the pre-trained sample model…", max_entries=SHARED_MAX_ENTRIES
)
def _shipped_checkpoint(file_key: str, fingerprint: str, _path: str, _data: RatingsDataset) -> Any:
    """The sample checkpoint as read (and checked) once per process for the data of
    `fingerprint`; never adapted with (sessions get copies)."""
    from metarec_core.checkpoint import load_checkpoint

    return load_checkpoint(_path, _data)


def _sample_checkpoint(path: str, data: RatingsDataset, file_key: str) -> Any:
    """This session's copy of the shipped checkpoint: adapting runs `torch.func.functional_call`,
    which swaps a module's parameters in place while it runs, so one learner must not serve two
    sessions' threads at once. The file is read once per process (a copy costs ~4 ms, reading
    it ~25 ms of the page load)."""
    from dataclasses import replace

    shared = _shipped_checkpoint(file_key, data.fingerprint(), path, data)
    return replace(shared, learner=copy.deepcopy(shared.learner))


@st.cache_resource(
    show_spinner="Loading the sample's new-item models…", max_entries=SHARED_MAX_ENTRIES
)
def _shipped_item_models(
    files_key: str, fingerprint: str, seed: int, names: tuple[str, ...], _data: RatingsDataset
) -> tuple[Any, str | None]:
    """(the sample's saved new-item models or None, why they could not be read), read once per
    process for the data of `fingerprint` and the files of `files_key`."""
    from metarec_core.interactive import item_session as isn

    try:
        models = isn.load_models(_data, sample_dir() / isn.SAMPLE_MODELS_DIR, seed, names)
    except Exception as e:  # a stale file must not break the page: it fits them instead
        return None, str(e)
    for name in models.mapped if models is not None else ():
        models.item_map(name, _data)  # once here, not in a visitor's first update
    return models, None


def sample_item_models(data: RatingsDataset, seed: int, names: tuple[str, ...]) -> Any:
    """The new-item page's models `names` of the shipped sample as saved in its folder
    (`item_session.load_models`), shared by every session; None when there are none (or they
    could not be read: the page fits them, and says why)."""
    from metarec_core.interactive import item_session as isn

    folder = sample_dir() / isn.SAMPLE_MODELS_DIR
    paths = [folder / f"{n}.pt" for n in names]
    if not all(p.is_file() for p in paths):
        return None
    key = "|".join(_file_key(str(p)) for p in paths)
    models, error = _shipped_item_models(key, data.fingerprint(), int(seed), names, data)
    if error is not None:
        st.session_state["mr_sample_item_models_error"] = error
    return models


def ensure_defaults() -> None:
    """Every run: this session's workspace (its token in the URL). First run of a session: what
    the workspace saved is restored; without a saved dataset the sample is active, with a model
    for the playground."""
    ws = workspace()
    if st.session_state.get(K_INIT):
        ws.touch()
        return
    st.session_state[K_INIT] = True
    restore_workspace(ws)
    if get_data() is None:
        data = sample_dataset()
        set_data(data, "sample data (synthetic)", is_sample=True)
    load_or_train_sample_model()


def load_or_train_sample_model() -> None:
    """Load the shipped checkpoint of the sample, or train one quickly in the background."""
    active = get_data()
    if active is None or not active.is_sample or models_for_active_data():
        return
    path = sample_dir() / "model.pt"
    if path.exists():
        try:
            key = _file_key(str(path))
            loaded = _sample_checkpoint(str(path), active.data, key)
        except Exception as e:  # a stale checkpoint must not break the app: train instead
            st.session_state["mr_sample_model_error"] = str(e)
        else:
            entry = entry_from_checkpoint(
                loaded, active, "sample model", f"pre-trained ({path.name})"
            )
            entry.extra["shipped"] = True  # the workspace notes it; it reloads from the sample
            entry.extra[K_SHARED] = key
            add_model(entry)
            return
    start_sample_training(active)


def start_sample_training(active: ActiveData) -> None:
    from dataclasses import replace

    from metarec_core.jobs import TrainingJob

    try:
        from metarec_core.methods.meta import preset
    except ImportError:  # the meta-learners are not installed: the Train page says so
        return
    j = jobs()
    if "sample" in j and (j["sample"].is_active or j["sample"].status == "done"):
        return
    cfg = replace(preset("metasgd"), steps=quick_train_steps())
    j["sample"] = TrainingJob(active.data, cfg, split_seed=cfg.seed).start()


def is_collected(job: Any) -> bool:
    """Whether a finished training job's model is registered already (in this session, or
    restored from the workspace that saved it)."""
    return any(
        m.extra.get("job") is job or m.extra.get("job_id") == job.id for m in models().values()
    )


def collect_finished_jobs() -> list[ModelEntry]:
    """Register models of finished training jobs (called on every run, whatever the page).

    A job's model is registered for the data it was trained on, even when another dataset has
    been made active since (it is listed again when that data is). On the active data, the
    background sample model is activated only when no model is active; a model trained on the
    Train page becomes active unless it is worse than the plain baselines on its validation
    users (the Train page then offers to use it anyway).
    """
    added = []
    for slot in ("sample", "train"):
        job = jobs().get(slot)
        if job is None or job.status != "done" or job.result is None or is_collected(job):
            continue
        base = "sample model (quick)" if slot == "sample" else job.config.name
        entry = entry_from_training(job, unique_name(base))
        if slot == "sample":
            entry.source = "trained quickly in the background"
        entry.extra["job"] = job
        here = is_active_data(job.data)
        check = getattr(job, "baseline_check", None)
        worse = check is not None and check.worse  # never adopted without the person's choice
        if worse:
            entry.extra["worse"] = True
        added.append(
            add_model(
                entry,
                activate=here and not worse and (slot == "train" or active_model() is None),
                data=job.data,
            )
        )
    _save_finished_report()
    return added


def _save_finished_report() -> None:
    """Save a finished evaluation's report in the workspace (once per job), for its dataset."""
    job = jobs().get("eval")
    if job is None or job.status != "done" or job.result is None:
        return
    ws = workspace()
    tried = st.session_state.setdefault("mr_reports_tried", set())
    if job.id in ws.saved_jobs or job.id in tried:
        return
    tried.add(job.id)
    if _persist(
        f"the evaluation report of {data_label(job.data)}",
        lambda w: w.save_report(job.data.fingerprint(), job.result.to_dict()),
    ):
        ws.saved_jobs.add(job.id)  # from now on its memory may go back (the file stays)


# ----------------------------------------------------------------------------- saving, restoring


def _persist(what: str, write: Callable[[Workspace], object]) -> bool:
    """Run `write` on the workspace; when it cannot be saved, say so in the sidebar (the thing
    stays in this session) instead of failing the page."""
    try:
        write(workspace())
    except (WorkspaceError, OSError, TypeError, ValueError) as e:
        if what:
            # a full workspace's message names what was refused; other errors get it here
            why = str(e) if isinstance(e, WorkspaceFull) else f"{what} ({e})"
            _note(
                f"Not saved on the server: {why}. It stays in this tab, but a reload or "
                "another tab will not have it."
            )
        return False
    return True


def _save_model(entry: ModelEntry, data: RatingsDataset | None) -> None:
    """Write `entry`'s checkpoint and user splits to the workspace (once)."""
    if entry.extra.get("shipped") or "ws_key" in entry.extra:
        return
    if data is None:
        active = get_data()
        data = active.data if active is not None else None
    if data is None or data.fingerprint() != entry.fingerprint:
        return
    job = entry.extra.get("job")
    key = job.id if job is not None else uuid.uuid4().hex
    arrays = {
        "train_users": entry.train_users,
        "val_users": entry.val_users,
        "heldout_users": entry.heldout_users,
    }
    if _persist(
        f"the model {entry.name}",
        lambda ws: ws.save_model(key, checkpoint_bytes(entry, data), arrays),
    ):
        entry.extra["ws_key"] = key
        if job is not None:
            workspace().saved_jobs.add(job.id)  # from now on its memory may go back


def _model_record(entry: ModelEntry) -> dict[str, Any] | None:
    if not entry.extra.get("shipped") and "ws_key" not in entry.extra:
        return None  # not saved (over the cap, or not exportable): not listed either
    job = entry.extra.get("job")
    return {
        "key": entry.extra.get("ws_key"),
        "name": entry.name,
        "fingerprint": entry.fingerprint,
        "source": entry.source,
        "job": job.id if job is not None else entry.extra.get("job_id"),
        "shipped": bool(entry.extra.get("shipped")),
        "worse": is_worse(entry),
    }


def _record_id(rec: dict[str, Any]) -> str:
    return str(rec.get("key") or "shipped:" + str(rec.get("name")))


def save_workspace() -> None:
    """Write this session's index to its workspace: the active dataset, the labels, the saved
    models and the active model. Models another tab of the workspace saved are kept."""
    ws = workspace()
    active = get_data()
    with ws.lock:
        mine = [r for r in map(_model_record, models().values()) if r is not None]
        ids = {_record_id(r) for r in mine}
        old = ws.read_state().get("models")
        others = [
            r
            for r in (old if isinstance(old, list) else [])
            if isinstance(r, dict) and _record_id(r) not in ids
        ]
        state = {
            "version": 1,
            "active": None
            if active is None
            else {
                "sample": active.is_sample,
                "fingerprint": active.data.fingerprint(),
                "label": active.label,
            },
            "labels": dict(st.session_state.get(K_LABELS, {})),
            "models": others + mine,
            "active_model": st.session_state.get(K_ACTIVE_MODEL),
        }
        worth = (active is not None and not active.is_sample) or any(
            not r["shipped"] for r in state["models"]
        )
        if worth or ws.folder.exists():  # a visit that only saw the sample leaves no folder
            _persist("the workspace's index", lambda w: w.write_state(state))


def restore_workspace(ws: Workspace) -> None:
    """Bring back what `ws` saved: the active dataset, the models, the active model and the
    active dataset's evaluation report. What cannot be restored is said in the sidebar."""
    state = ws.read_state()
    if not state:
        return
    labels = state.get("labels")
    if isinstance(labels, dict):
        st.session_state[K_LABELS] = {str(k): str(v) for k, v in labels.items()}
    active = state.get("active") if isinstance(state.get("active"), dict) else {}
    label = str(active.get("label") or "")
    data: RatingsDataset | None = None
    if active.get("sample"):
        data = sample_dataset()
    elif active.get("fingerprint"):
        try:
            data = ws.load_dataset(str(active["fingerprint"]))
        except WorkspaceError as e:
            _note(f"The saved dataset {label} could not be restored ({e}); the sample is active.")
    if data is not None:
        st.session_state[K_DATA] = ActiveData(
            data, label or data.source, bool(active.get("sample"))
        )
    records = state.get("models")
    for rec in records if isinstance(records, list) else []:
        name = str(rec.get("name", "")) if isinstance(rec, dict) else ""
        try:
            entry = _restore_model(ws, rec, data)
        except Exception as e:  # a damaged file must not cost the rest of the workspace
            _note(f"The saved model {name} could not be restored: {e}")
            continue
        if entry is not None:
            if entry.name in models():
                entry.name = unique_name(entry.name)
            models()[entry.name] = entry
    usable = models_for_active_data()
    name = state.get("active_model")
    st.session_state[K_ACTIVE_MODEL] = (
        name
        if name in usable
        else (None if data is None else default_model_name(data.fingerprint()))
    )
    eval_job = ws.jobs.get("eval")
    if data is not None and not (eval_job is not None and eval_job.is_active):
        report = ws.load_report(data.fingerprint())
        # one this version cannot read (e.g. damaged) is not restored, as a missing one
        with contextlib.suppress(ValueError):
            if report is not None:
                st.session_state[K_EVAL_REPORT] = EvaluationReport.from_dict(report)


def _restore_model(
    ws: Workspace, rec: dict[str, Any], data: RatingsDataset | None
) -> ModelEntry | None:
    from metarec_core.checkpoint import load_checkpoint

    name, fp, source = str(rec["name"]), str(rec["fingerprint"]), str(rec["source"])
    if rec.get("shipped"):  # the sample's checkpoint: loaded from the sample folder again
        sample = sample_dataset()
        path = sample_dir() / "model.pt"
        if sample.fingerprint() != fp or not path.exists():
            return None
        key = _file_key(str(path))
        loaded = _sample_checkpoint(str(path), sample, key)
        entry = entry_from_checkpoint(loaded, ActiveData(sample, "", True), name, source)
        entry.extra["shipped"] = True
        entry.extra[K_SHARED] = key
        return entry
    saved = ws.load_model(str(rec["key"]))
    same = data if data is not None and data.fingerprint() == fp else None
    loaded = load_checkpoint(saved.checkpoint, same, name=name)
    a = saved.arrays
    return ModelEntry(
        name=name,
        model=loaded.learner,
        fingerprint=fp,
        train_users=np.asarray(a["train_users"], dtype=np.int64),
        val_users=np.asarray(a["val_users"], dtype=np.int64),
        heldout_users=np.asarray(a["heldout_users"], dtype=np.int64),
        source=source,
        config=loaded.config,
        extra={"ws_key": saved.key, "job_id": rec.get("job"), "worse": bool(rec.get("worse"))},
    )


def show_workspace_info() -> None:
    """How long the workspace is kept, its disk cap and use, and anything not saved."""
    ws = workspace()
    s = ws.settings
    st.caption(
        f"Your data, models and reports are kept on this server for {s.ttl_text} after your "
        f"last visit, up to {megabytes(s.max_bytes)} ({megabytes(ws.usage())} used). This "
        "page's address brings them back: bookmark it to return, share it only with whom may "
        "see them."
    )
    for note in st.session_state.get(K_WS_NOTES, []):
        st.warning(plain(note), icon=":material/cloud_off:")


# ----------------------------------------------------------------------------- text


_MD_SPECIAL = set("\\`*_{}[]()#+-.!|<>~$:")
# Markdown turns bare URLs, www. names and e-mail addresses into links even when their
# characters are escaped; a zero-width space after these marks breaks the match, invisibly.
_NO_AUTOLINK = re.compile(r"(?<=://)|(?<=\bwww)(?=\.)|(?<=@)", re.IGNORECASE)


def plain(text: object) -> str:
    """`text` with every markdown character escaped and bare links broken, so user strings show
    literally in st.markdown / st.error / st.info (which render markdown, never HTML here)."""
    text = _NO_AUTOLINK.sub("\u200b", str(text))
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in text)


def chart_text(text: object) -> str:
    """`text` for a Plotly label (legend, axis, hover): Plotly renders a subset of HTML in
    them (links, bold), so user strings get their <, > and & escaped."""
    return html.escape(str(text), quote=False)


def heldout_user_picker(data: RatingsDataset, heldout_users: np.ndarray, *, label: str, key: str):
    """A select box of held-out users (never trained on) with enough ratings; None if there are none."""
    from metarec_core.interactive.personas import heldout_candidates

    cands = heldout_candidates(data, heldout_users)[:60]
    if len(cands) == 0:
        st.warning("No held-out user of this model has enough ratings (it needs 15).")
        return None
    counts = data.counts_per_user()
    return st.selectbox(
        label,
        [int(u) for u in cands],
        format_func=lambda u: f"user {data.user_ids[u]} · {counts[u]} ratings",
        key=key,
    )
