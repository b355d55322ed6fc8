"""Per-browser-session state of the app: the active dataset, models and background jobs.

It names every `st.session_state` key that more than one page uses. Everything here is per
session:
datasets, models and jobs live in `st.session_state` or in a session-scoped `st.cache_resource`
whose release cancels the session's jobs, so nothing one browser session uploads or trains is
visible in another and no training thread outlives its session. Only read-only derived objects
are shared: the shipped sample dataset, and the playground's fitted baselines (cached in
`metarec_core.playground` by dataset fingerprint, so a session only gets those of data it holds);
each session loads its own copy of the sample checkpoint.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from metarec_core.base import Recommender
from metarec_core.data import RatingsDataset
from metarec_core.methods import BASELINES
from metarec_core.playground import PLAYGROUND_BASELINES, Projection, fit_projection
from metarec_core.runtime import limit_torch_threads

ROOT = Path(__file__).resolve().parent


limit_torch_threads()


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
K_EVAL_REPORT = "mr_eval_report"
K_INIT = "mr_initialised"
K_TOKEN = "mr_session_token"
K_LABELS = "mr_data_labels"  # dataset fingerprint -> the label it was made active with
# Set by the home page's demo button to a number n: the playground (views/playground.py) pops it,
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
    # computed on first use in the playground (the baselines: metarec_core.playground's cache)
    projection: Projection | None = None
    projection_done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- jobs


def _cancel_all(jobs: dict[str, Any]) -> None:
    for job in list(jobs.values()):
        with contextlib.suppress(Exception):  # cleanup must not fail the session teardown
            job.cancel()


@st.cache_resource(scope="session", on_release=_cancel_all, show_spinner=False)
def _session_jobs(token: str) -> dict[str, Any]:
    """The jobs dict of the session holding `token`; released (jobs cancelled) when the
    session ends. The per-session token keeps sessions apart even where the session id is
    shared (AppTest gives every instance the same one)."""
    return {}


def jobs() -> dict[str, Any]:
    """This session's background jobs by slot ("train", "eval", "sample")."""
    token = st.session_state.get(K_TOKEN)
    if token is None:
        token = st.session_state[K_TOKEN] = uuid.uuid4().hex
    return _session_jobs(token)


# ----------------------------------------------------------------------------- data


@st.cache_resource(show_spinner="Loading the sample data…")
def _sample_dataset(folder: str) -> RatingsDataset:
    from metarec_core.data import load_ratings

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
    """Make `data` active; models of other datasets stay listed but cannot be used with it."""
    active = ActiveData(data, label, is_sample)
    st.session_state[K_DATA] = active
    st.session_state.setdefault(K_LABELS, {})[data.fingerprint()] = label
    st.session_state.pop(K_PLAYGROUND, None)
    st.session_state.pop(K_EVAL_REPORT, None)
    usable = [n for n, m in models().items() if m.fingerprint == data.fingerprint()]
    st.session_state[K_ACTIVE_MODEL] = usable[-1] if usable else None
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
    names = {*models(), *BASELINES, *PLAYGROUND_BASELINES}
    if base not in names:
        return base
    k = 2
    while f"{base} #{k}" in names:
        k += 1
    return f"{base} #{k}"


def add_model(entry: ModelEntry, *, activate: bool = True) -> ModelEntry:
    models()[entry.name] = entry
    if activate:
        st.session_state[K_ACTIVE_MODEL] = entry.name
        st.session_state.pop(K_PLAYGROUND, None)
    return entry


def set_active_model(name: str) -> None:
    if st.session_state.get(K_ACTIVE_MODEL) != name:
        st.session_state[K_ACTIVE_MODEL] = name
        st.session_state.pop(K_PLAYGROUND, None)


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


def entry_from_checkpoint(loaded: Any, active: ActiveData, name: str, source: str) -> ModelEntry:
    """A model entry for a loaded checkpoint.

    Checkpoints are trained by `TrainingJob`'s default split (CLI `train` and the Train page
    alike): seeded by the learner's seed, 90% train, 10% validation, so the validation users
    are the ones it never trained on.
    """
    from metarec_core.jobs import split_users

    seed = int((loaded.config or {}).get("seed", 0))
    train, val = split_users(active.data, seed)
    return ModelEntry(
        name=name,
        model=loaded.learner,
        fingerprint=active.data.fingerprint(),
        train_users=train,
        val_users=val,
        heldout_users=val,
        source=source,
        config=loaded.config,
    )


def projection_for(entry: ModelEntry, data: RatingsDataset) -> Projection | None:
    if not entry.projection_done:
        entry.projection = fit_projection(entry.model, data, entry.train_users)
        entry.projection_done = True
    return entry.projection


# ----------------------------------------------------------------------------- start-up


def _sample_checkpoint(path: str, data: RatingsDataset) -> Any:
    """Each session loads its own copy: adapting runs `torch.func.functional_call`, which swaps
    a module's parameters in place while it runs, so one learner must not serve two sessions'
    threads at once."""
    from metarec_core.checkpoint import load_checkpoint

    with st.spinner("Loading the pre-trained sample model…"):
        return load_checkpoint(path, data)


def ensure_defaults() -> None:
    """First run of a session: the sample dataset is active, with a model for the playground."""
    if st.session_state.get(K_INIT):
        return
    st.session_state[K_INIT] = True
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
            loaded = _sample_checkpoint(str(path), active.data)
        except Exception as e:  # a stale checkpoint must not break the app: train instead
            st.session_state["mr_sample_model_error"] = str(e)
        else:
            add_model(
                entry_from_checkpoint(loaded, active, "sample model", f"pre-trained ({path.name})")
            )
            return
    start_sample_training(active)


def start_sample_training(active: ActiveData) -> None:
    from dataclasses import replace

    from metarec_core.jobs import TrainingJob

    try:
        from metarec_core.learners import preset
    except ImportError:  # the meta-learners are not installed: the Train page says so
        return
    j = jobs()
    if "sample" in j and (j["sample"].is_active or j["sample"].status == "done"):
        return
    cfg = replace(preset("metasgd"), steps=quick_train_steps())
    j["sample"] = TrainingJob(active.data, cfg, split_seed=cfg.seed).start()


def is_collected(job: Any) -> bool:
    """Whether a finished training job's model is registered already."""
    return any(m.extra.get("job") is job for m in models().values())


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
        added.append(
            add_model(
                entry,
                activate=here and not worse and (slot == "train" or active_model() is None),
            )
        )
    return added


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
    from metarec_core.playground import heldout_candidates

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
