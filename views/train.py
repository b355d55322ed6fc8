"""Train page: configure a learner, meta-train it in the background, watch it live, save/load."""

from __future__ import annotations

import dataclasses

import plotly.graph_objects as go
import streamlit as st

import app_state as state
from metarec_core import checkpoint
from metarec_core.jobs import TrainingJob
from metarec_core.learners import ADAPT_GROUPS, PRESETS, LearnerConfig, preset, resolve_device

PRESET_HELP = {
    "metasgd": "Meta-SGD: MAML with learned per-parameter inner learning rates (the default).",
    "maml": "MAML, second order: the outer gradient flows through the inner updates.",
    "fomaml": "First-order MAML: drops the second-order terms (faster, usually close).",
    "reptile": "Reptile: moves the start towards each user's adapted weights.",
    "melu": "MeLU's set-up (Lee et al., 2019): only the decision layers adapt, tiny learning rates.",
    "finetune": "Ablation: the same network trained by plain regression, adapted at test time.",
}

# form widget key -> (config field, label, help)
FIELDS = {
    "train_factors": (
        "factors",
        "User-state size",
        "Size of the user vector p_u (and item factors q_i).",
    ),
    "train_embedding": (
        "embedding_dim",
        "Item embedding size",
        "Item and genre embeddings fed to the decision layers.",
    ),
    "train_hidden": (
        "hidden",
        "Decision layers",
        "Hidden sizes, comma-separated (e.g. 64,64); empty = plain biased MF.",
    ),
    "train_dropout": ("dropout", "Dropout", "On the decision layers, outer loop only."),
    "train_adapt": (
        "adapt",
        "Adapted parameters",
        "What adapts per user: the user vector, the decision layers, or all.",
    ),
    "train_inner_steps": ("inner_steps", "Inner steps", "Gradient steps on a new user's ratings."),
    "train_inner_lr": (
        "inner_lr",
        "Inner learning rate",
        "Step size of the inner loop (Meta-SGD learns it).",
    ),
    "train_outer_lr": ("outer_lr", "Outer learning rate", "Adam learning rate of the meta-update."),
    "train_meta_batch": ("meta_batch", "Meta-batch (users)", "Users per meta-step."),
    "train_steps": (
        "steps",
        "Meta-steps (max)",
        "Early stopping on the validation users (query log-loss) usually ends sooner.",
    ),
    "train_eval_every": (
        "eval_every",
        "Validate every (steps)",
        "Meta-steps between validation runs.",
    ),
    "train_patience": (
        "patience",
        "Patience",
        "Validation runs without improvement before stopping.",
    ),
    "train_seed": (
        "seed",
        "Seed",
        "Seeds the model, the episodes and the train/validation user split.",
    ),
    "train_pretrain": (
        "pretrain",
        "Start from the finetune solution",
        "Fit the same network by plain regression first (early-stopped on the validation "
        "users), then meta-train from there. On for the MAML family, off for MeLU (which "
        "trains from scratch); finetune ignores it.",
    ),
}


DEFAULT_STEPS = 300
FLOAT_KEYS = {"train_dropout", "train_inner_lr", "train_outer_lr"}


def _load_preset() -> None:
    cfg = preset(st.session_state["train_preset"])
    for key, (name, _, _) in FIELDS.items():
        v = getattr(cfg, name)
        if name == "hidden":
            v = ",".join(map(str, v))
        elif key in FLOAT_KEYS:
            v = float(v)
        st.session_state[key] = v
    # A demo-sized run by default (early stopping may end it sooner); the preset's maximum is
    # in the help text.
    st.session_state["train_steps"] = min(cfg.steps, DEFAULT_STEPS)
    st.session_state["train_device"] = "auto"


def _number(col, key: str, low, high, **kw) -> None:
    """A number input of the form, labelled and explained from FIELDS."""
    col.number_input(FIELDS[key][1], low, high, key=key, help=FIELDS[key][2], **kw)


def _config_from_form() -> LearnerConfig:
    base = preset(st.session_state["train_preset"])
    values = {}
    for key, (name, _, _) in FIELDS.items():
        v = st.session_state[key]
        if name == "hidden":
            try:
                v = tuple(int(x) for x in str(v).replace(" ", "").split(",") if x)
            except ValueError:
                raise ValueError(
                    f"decision layers must be comma-separated integers, got {v!r}"
                ) from None
        values[name] = v
    return dataclasses.replace(base, device=st.session_state["train_device"], **values)


def _fig(x, y, title: str, ytitle: str, color: str) -> go.Figure:
    fig = go.Figure(go.Scatter(x=list(x), y=list(y), mode="lines+markers", line_color=color))
    fig.update_layout(
        title=title,
        xaxis_title="Meta-training step",
        yaxis_title=ytitle,
        height=300,
        margin=dict(t=50, b=40, l=60, r=10),
    )
    return fig


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "estimating…"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


st.title("Train a meta-learner")
active = state.require_data()
st.caption(
    "Meta-training learns a starting point from which a brand-new user's model adapts in a few "
    "gradient steps. Training runs in the background: you can switch pages meanwhile. Users are "
    "split 90% train / 10% validation (seeded); validation users are never trained on and "
    "become the held-out personas of the playground."
)

if "train_preset" not in st.session_state:
    st.session_state["train_preset"] = "metasgd"
    _load_preset()

job = state.jobs().get("train")
running = job is not None and job.is_active

left, right = st.columns([2, 3])
with left:
    st.selectbox(
        "Algorithm preset",
        list(PRESETS),
        key="train_preset",
        on_change=_load_preset,
        help="Choosing a preset fills in the form with its settings.",
        format_func=lambda n: n,
    )
    st.caption(PRESET_HELP.get(st.session_state["train_preset"], ""))
    with st.form("train_form", border=True):
        c1, c2 = st.columns(2)
        _number(c1, "train_factors", 1, 512)
        _number(c2, "train_embedding", 1, 512)
        c1.text_input(FIELDS["train_hidden"][1], key="train_hidden", help=FIELDS["train_hidden"][2])
        _number(c2, "train_dropout", 0.0, 0.9, step=0.05)
        c1.selectbox(
            FIELDS["train_adapt"][1], ADAPT_GROUPS, key="train_adapt", help=FIELDS["train_adapt"][2]
        )
        _number(c2, "train_inner_steps", 0, 50)
        _number(c1, "train_inner_lr", 0.0, 10.0, format="%.6g")
        _number(c2, "train_outer_lr", 0.0, 1.0, format="%.6g")
        _number(c1, "train_meta_batch", 1, 4096)
        _number(c2, "train_steps", 1, 100_000)
        _number(c1, "train_eval_every", 1, 10_000)
        _number(c2, "train_patience", 0, 1000)
        _number(c1, "train_seed", 0, 2**31 - 1)
        c2.selectbox(
            "Device",
            ["auto", "cpu", "cuda", "mps"],
            key="train_device",
            help="auto: CUDA, else Apple MPS, else CPU.",
        )
        st.checkbox(
            FIELDS["train_pretrain"][1], key="train_pretrain", help=FIELDS["train_pretrain"][2]
        )
        submitted = st.form_submit_button(
            "Start training", type="primary", disabled=running, key="train_start"
        )
    try:
        st.caption(
            f"Training will run on: {resolve_device(st.session_state.get('train_device', 'auto'))}"
        )
    except ValueError as e:
        st.caption(state.plain(str(e)))

if submitted and not running:
    try:
        cfg = _config_from_form()
        resolve_device(cfg.device)
        state.jobs()["train"] = TrainingJob(active.data, cfg, split_seed=cfg.seed).start()
    except ValueError as e:
        st.error(state.plain(f"Cannot start training: {e}"))
    else:
        st.rerun()

with right:
    job = state.jobs().get("train")
    running = job is not None and job.is_active

    @st.fragment(run_every=1.0 if running else None)
    def live() -> None:
        job = state.jobs().get("train")
        if job is None:
            st.info("Configure the learner and press **Start training**.")
            return
        snap = job.snapshot()
        elsewhere = not state.is_active_data(job.data)
        if elsewhere:
            st.info(
                state.plain(
                    f"This training is on {state.data_label(job.data)}, not on the active "
                    "dataset; its model is listed when that dataset is active again."
                )
            )
        if snap.queue_position is not None:  # waiting for the server's job pool
            st.info(snap.status_line, icon=":material/hourglass_top:")
        if snap.active:
            eta = _fmt_seconds(snap.eta)
            st.progress(
                snap.fraction,
                text=f"{snap.status}: step {snap.step}/{snap.total} · {snap.elapsed:.0f} s elapsed · ETA {eta}",
            )
            st.button("Cancel training", key="train_cancel", on_click=job.cancel)
        elif snap.status == "done":
            best = (
                ""
                if snap.best_val_mae is None
                else f"; validation MAE of the kept weights {snap.best_val_mae:.4f}"
            )
            where = " It is kept for that dataset." if elsewhere else " The model is active."
            st.success(f"Training done in {snap.elapsed:.1f} s ({snap.step} steps{best}).{where}")
        elif snap.status == "cancelled":
            st.warning(f"Training cancelled after {snap.step} steps.")
        else:
            st.error(state.plain(f"Training failed: {snap.error}"))
        st.caption(f"Device: {snap.device or 'unknown'} · {state.plain(snap.message)}")
        c1, c2 = st.columns(2)
        c1.plotly_chart(
            _fig(
                snap.train_steps,
                snap.train_loss,
                "Meta-training loss",
                "Outer loss on query ratings",
                "#4c6ef5",
            ),
            key="train_loss_chart",
            width="stretch",
        )
        c2.plotly_chart(
            _fig(
                [s for s, _ in snap.val_mae],
                [m for _, m in snap.val_mae],
                "Validation MAE",
                "MAE (rating units)",
                "#e8590c",
            ),
            key="train_val_chart",
            width="stretch",
        )
        if (running and snap.finished) or (snap.status == "done" and not state.is_collected(job)):
            st.rerun()  # a full rerun registers the model and stops the polling

    live()

st.divider()
st.subheader("Checkpoints", anchor=False)
usable = state.models_for_active_data()
dl, ul = st.columns(2)
with dl:
    metas = [n for n, m in usable.items() if hasattr(m.model, "export_state")]
    if metas:
        current = state.active_model()
        name = st.selectbox(
            "Model to download",
            metas,
            index=metas.index(current.name) if current is not None and current.name in metas else 0,
            key="ckpt_pick",
        )
        entry = usable[name]
        st.download_button(
            "Download checkpoint",
            data=lambda m=entry.model, d=active.data: checkpoint.to_bytes(m, d),
            file_name=f"{name.replace(' ', '_').replace('#', '')}.pt",
            mime="application/octet-stream",
            key="ckpt_download",
            on_click="ignore",
        )
    else:
        st.caption("No trained model for this dataset yet.")
with ul:
    up = st.file_uploader(
        "Upload a checkpoint (.pt)",
        key="upload_checkpoint",
        help="Loaded safely (weights only); it must match the active dataset's items and scale.",
    )
    if up is not None:
        seen = st.session_state.setdefault("mr_loaded_checkpoints", {})
        key = (up.file_id, active.data.fingerprint())
        if key not in seen:
            try:
                with st.spinner("Loading the checkpoint…"):
                    loaded = checkpoint.load_checkpoint(up.getvalue(), active.data, name=up.name)
            except checkpoint.CheckpointError as e:
                seen[key] = ("error", str(e))
            else:
                entry = state.entry_from_checkpoint(
                    loaded, active, state.unique_name(up.name), f"uploaded checkpoint {up.name}"
                )
                state.add_model(entry)
                seen[key] = ("ok", entry.name, tuple(loaded.notes))
        outcome = seen[key]
        if outcome[0] == "error":
            st.error(state.plain(outcome[1]), icon=":material/error:")
        else:
            st.success(state.plain(f"Loaded {up.name} as model “{outcome[1]}”; it is active."))
            for note in outcome[2]:
                st.warning(state.plain(note))
