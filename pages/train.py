"""Train page: configure a learner, meta-train it in the background, watch it live, save/load.

Any registered method can be chosen: a meta-learner gets the full form (its preset fills it
in); a method without meta-learning settings (declared in its capabilities) gets what applies
to it (seed, and device if it declares one) and is fitted as a background job the same way.
"""

from __future__ import annotations

import dataclasses

import plotly.graph_objects as go
import streamlit as st

import app_state as state
from app_support import widgets
from app_support.charts import min_span_range, model_check_figure
from metarec_core import checkpoint, glossary
from metarec_core.jobs import TrainingJob, poll_seconds
from metarec_core.methods import registry
from metarec_core.methods.meta import ADAPT_GROUPS, LearnerConfig, preset, resolve_device
from metarec_core.methods.registry import describe, display_name
from metarec_core.methods.tuning import SearchConfig, TunedFactory

state.require_router()


# form widget key -> (config field, label in plain words, help with the technical term)
FIELDS = {
    f"train_{key}": (name, *registry.SETTINGS[name])
    for key, name in (
        ("factors", "factors"),
        ("embedding", "embedding_dim"),
        ("hidden", "hidden"),
        ("dropout", "dropout"),
        ("adapt", "adapt"),
        ("inner_steps", "inner_steps"),
        ("inner_lr", "inner_lr"),
        ("outer_lr", "outer_lr"),
        ("meta_batch", "meta_batch"),
        ("steps", "steps"),
        ("eval_every", "eval_every"),
        ("patience", "patience"),
        ("seed", "seed"),
        ("pretrain", "pretrain"),
    )
}


DEFAULT_STEPS = 300
FLOAT_KEYS = {"train_dropout", "train_inner_lr", "train_outer_lr"}


def _is_meta(name: str) -> bool:
    return registry.method_class(name).capabilities.meta_learned


def _load_preset() -> None:
    if not _is_meta(st.session_state["train_preset"]):
        return  # its form has only the seed (and device): they keep their values
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


def _config_from_form() -> LearnerConfig | registry.FitConfig:
    chosen = st.session_state["train_preset"]
    if not _is_meta(chosen):
        seed, device = st.session_state["train_seed"], st.session_state.get("train_device", "auto")
        return registry.FitConfig(chosen, seed=seed, device=device)
    base = preset(chosen)
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


VAL_MIN_SPAN = 0.05  # rating units: smaller changes of the validation MAE are drawn flat-ish


def _fig(x, y, title: str, ytitle: str, color: str, *, min_span: float | None = None) -> go.Figure:
    """A training curve; `min_span`: the y axis shows at least that range, so a change of
    0.004 does not fill the chart as if it were large."""
    fig = go.Figure(go.Scatter(x=list(x), y=list(y), mode="lines+markers", line_color=color))
    fig.update_layout(
        # the title sits left, above the plot, and the y-axis title is short enough to stay
        # beside the plot (a long one ran up into the title)
        title=dict(text=title, x=0, xanchor="left", y=0.97, yanchor="top"),
        xaxis_title="Training step",
        yaxis_title=ytitle,
        height=320,
        margin=dict(t=56, b=44, l=64, r=10),
    )
    if min_span is not None and (rng := min_span_range(y, min_span)) is not None:
        fig.update_yaxes(range=rng)
    return fig


def _chart(col, x, y, empty: str, *args, key: str, **kw) -> None:
    """The curve, or a caption saying when it will appear (no empty axes before data)."""
    if len(x) == 0:
        col.caption(empty)
        return
    col.plotly_chart(_fig(x, y, *args, **kw), key=key, width="stretch")


def _curves(snap) -> None:
    """The training error and the check users' error of a (meta-)training, step by step."""
    c1, c2 = st.columns(2)
    _chart(
        c1,
        snap.train_steps,
        snap.train_loss,
        "The training error appears here after the first training step.",
        "Training error",
        "Loss on hidden ratings",
        "#4c6ef5",
        key="train_loss_chart",
    )
    _chart(
        c2,
        [s for s, _ in snap.val_mae],
        [m for _, m in snap.val_mae],
        "The check users' error appears here after the first check.",
        "Error on the check users",
        "Average error (MAE)",
        "#e8590c",
        key="train_val_chart",
        min_span=VAL_MIN_SPAN,
    )
    if len(snap.train_steps) or len(snap.val_mae):
        st.caption(
            "Training error: the outer loss (error on the training users' hidden ratings "
            "after adapting). Check users: validation users, never trained on; the weights "
            "with their lowest average error are kept.",
            help=glossary.help_text("outer loss"),
        )


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "estimating…"
    if s < 1:  # never "0 s" while the job runs
        return "under 1 s"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def _progress_text(snap) -> str:
    """The phase and its own progress, e.g. "Pre-training (phase 2 of 3): step 40/300 · …"."""
    what = snap.phase.describe() if snap.phase is not None else f"step {snap.step}/{snap.total}"
    if snap.status != "running":
        what = f"{snap.status}: {what}"
    eta = "ETA of this phase" if snap.phase is not None and snap.phase.count > 1 else "ETA"
    return f"{what} · {snap.elapsed:.0f} s elapsed · {eta} {_fmt_seconds(snap.eta)}"


def _entry_of(job):
    """The registered model of a finished training job (None until it is registered)."""
    return next((m for m in state.models().values() if m.extra.get("job") is job), None)


def _done(job, snap, head: str, elsewhere: bool) -> None:
    """A finished training: the verdict of its model check, and when a plain baseline predicts
    the check users better, the offer to use that baseline (or the model anyway)."""
    entry = _entry_of(job)
    current = state.active_model()
    chosen = entry is not None and current is not None and current.name == entry.name
    check = snap.check
    if check is None or not check.worse:
        where = " It is kept for that dataset." if elsewhere else " The model is active."
        verdict = "" if check is None else f" {check.describe(display_name)}"
        st.success(f"{head}{verdict}{where}")
    else:
        winner = check.winner
        used = state.baseline_entry_of(job, winner)
        if chosen:
            then = "You chose to use it anyway."
        elif used is not None and current is not None and current.name == used.name:
            then = f"It was not made active: {display_name(winner)} is the active model."
        else:
            then = (
                "It was not made active: on this data a plain baseline predicts your users "
                f"better. Use {display_name(winner)} instead, or check the learning rates and "
                "train again."
            )
        st.warning(f"{head} {check.describe(display_name)} {then}")
        here = not elsewhere
        using = used is not None and current is not None and current.name == used.name
        offer_baseline = here and not using
        offer_model = here and entry is not None and not chosen
        label = f"Use {display_name(winner)} as the active model"
        if offer_baseline and st.button(label, key="train_use_baseline"):
            with st.spinner(f"Fitting {display_name(winner)}…"):
                state.use_baseline(job, winner)
            st.rerun()  # the whole app: the sidebar shows the new active model
        anyway = f"Use this model anyway ({state.plain(getattr(entry, 'name', ''))})"
        if offer_model and st.button(anyway, key="train_use_anyway"):
            state.set_active_model(entry.name)
            st.rerun()
    if check is not None:
        model = "this model" if entry is None else state.chart_text(entry.name)
        fig = model_check_figure(check, lambda n: state.chart_text(display_name(n)), model)
        st.plotly_chart(fig, key="train_check_chart", width="stretch")
        st.caption(
            f"The check users: the {check.users:,} validation users, never trained on. Each "
            "point is the average error on 10 hidden ratings of each user after the model (or "
            "baseline) adapted to k of their other ratings; the bars are 95% confidence "
            "intervals. The verdict compares each user's error under the model and a baseline "
            "(paired), at each k.",
            help=glossary.help_text("validation users"),
        )


SEARCH_HELP = (
    "Before the training, try a few settings that depend on the data (taste vector size, the "
    "warm start's regularisation, training step size, adaptation steps) in short trial "
    "trainings, each scored on the check users (never on anyone the model is tested on); the "
    "best is then trained in full. Each trial takes a fraction of a full training."
)


def _search_table(job, snap) -> None:
    """The trials of a finished training's search for this dataset's settings, if it ran one."""
    result = getattr(job.result, "search_", None) if snap.status == "done" else None
    if result is None or not result.trials:
        return
    st.markdown(f"**Settings tried for this dataset** ({len(result.trials)} trial trainings)")
    st.dataframe(result.rows(), hide_index=True, key="train_search_trials_table")
    st.caption(
        f"Chosen: {result.to_text().splitlines()[-1].removeprefix('chosen: ')}. Each trial "
        f"trained for the steps shown and was scored on the {result.n_val_users:,} check users "
        "(lower is better); successive halving gave the better half longer trials.",
        help=glossary.help_text("validation users"),
    )


st.title("Train a meta-learner")
active = state.require_data()
st.caption(
    "Training learns a starting point from which a brand-new user's model adapts in a few small "
    "steps. It runs in the background: you can switch pages meanwhile. Users are split 90% for "
    "training and 10% kept aside to check progress (seeded); those check users are never "
    "trained on and become the playground's held-out users.",
    help=glossary.help_text("meta-learning") + " " + glossary.help_text("validation users"),
)

if "train_preset" not in st.session_state:
    st.session_state["train_preset"] = "metasgd"
    _load_preset()

job = state.jobs().get("train")
running = job is not None and job.is_active

left, right = st.columns([2, 3])
with left:
    st.selectbox(
        "Method",
        [
            *registry.available_methods(registry.META_LEARNER),
            *registry.available_methods(registry.BASELINE),
        ],
        key="train_preset",
        on_change=_load_preset,
        help=registry.preset_help(),
        format_func=display_name,
    )
    chosen = st.session_state["train_preset"]
    st.caption(describe(chosen))
    meta = _is_meta(chosen)
    with st.form("train_form", border=True):
        c1, c2 = st.columns(2)
        if meta:
            _number(c1, "train_factors", 1, 512)
            _number(c2, "train_embedding", 1, 512)
            c1.text_input(
                FIELDS["train_hidden"][1], key="train_hidden", help=FIELDS["train_hidden"][2]
            )
            _number(c2, "train_dropout", 0.0, 0.9, step=0.05)
            c1.selectbox(
                FIELDS["train_adapt"][1],
                ADAPT_GROUPS,
                key="train_adapt",
                help=FIELDS["train_adapt"][2],
            )
            _number(c2, "train_inner_steps", 0, 50)
            _number(c1, "train_inner_lr", 0.0, 10.0, format="%.6g")
            _number(c2, "train_outer_lr", 0.0, 1.0, format="%.6g")
            _number(c1, "train_meta_batch", 1, 4096)
            _number(c2, "train_steps", 1, 100_000)
            _number(c1, "train_eval_every", 1, 10_000)
            _number(c2, "train_patience", 0, 1000)
        _number(c1, "train_seed", 0, 2**31 - 1)
        uses_device = meta or registry.method_class(chosen).capabilities.device
        if uses_device:
            c2.selectbox(
                "Device",
                registry.DEVICES,
                key="train_device",
                help=registry.DEVICE_HELP,
            )
        if meta:
            st.checkbox(
                FIELDS["train_pretrain"][1], key="train_pretrain", help=FIELDS["train_pretrain"][2]
            )
            c1, c2 = st.columns(2)
            c1.checkbox("Tune for this dataset", key="train_search", help=SEARCH_HELP)
            c2.number_input(
                "Trial trainings", 1, 50, SearchConfig.trials, key="train_search_trials",
                help=SEARCH_HELP,
            )  # fmt: skip
        submitted = st.form_submit_button(
            "Start training", type="primary", disabled=running, key="train_start"
        )
    device = st.session_state.get("train_device", "auto") if uses_device else "cpu"
    try:
        st.caption(f"Training will run on: {resolve_device(device)}")
    except ValueError as e:
        st.caption(state.plain(str(e)))

if submitted and not running:
    try:
        cfg = _config_from_form()
        resolve_device(cfg.device)
        tune = meta and st.session_state.get("train_search", False)
        trials = int(st.session_state.get("train_search_trials", SearchConfig.trials))
        factory = TunedFactory(trials) if tune else None
        state.jobs()["train"] = TrainingJob(
            active.data, cfg, split_seed=cfg.seed, learner_factory=factory
        ).start()
    except ValueError as e:
        st.error(state.plain(f"Cannot start training: {e}"))
    else:
        st.rerun()

with right:
    job, running, every = state.job_pace("train")

    @state.polling_fragment(every)
    def live() -> None:
        job = state.jobs().get("train")
        if job is None:
            st.info("Configure the learner and press **Start training**.")
            return
        snap = job.snapshot()
        if running and poll_seconds(snap) != every:
            st.rerun()  # it left the line (or ended): poll at the new pace
        elsewhere = not state.is_active_data(job.data)
        if elsewhere:
            widgets.elsewhere_note(job, "training is", "its model is listed")
        if snap.queue_position is not None:  # waiting for the server's job pool
            st.info(snap.status_line, icon=":material/hourglass_top:")
            if not snap.cancelling:
                st.button("Cancel training", key="train_cancel", on_click=job.cancel)
                return  # nothing else to draw until it starts
        if snap.active and snap.cancelling:
            # acknowledged at once; the worker stops at its next check (within a second or two)
            st.progress(snap.fraction, text=f"Cancelling… ({_progress_text(snap)})")
            st.button("Cancelling…", key="train_cancel", disabled=True)
        elif snap.active:
            st.progress(snap.fraction, text=_progress_text(snap))
            st.button("Cancel training", key="train_cancel", on_click=job.cancel)
        elif snap.status == "done":
            best = (
                ""
                if snap.best_val_mae is None
                else f"; validation MAE of the kept weights {snap.best_val_mae:.4f}"
            )
            head = f"Training done in {snap.elapsed:.1f} s ({snap.step} steps{best})."
            if isinstance(job.config, registry.FitConfig):  # one fit, no training steps
                head = f"Fitting {display_name(job.config.name)} done in {snap.elapsed:.1f} s."
            _done(job, snap, head, elsewhere)
        elif snap.status == "cancelled":
            st.warning(
                "Fitting cancelled."
                if isinstance(job.config, registry.FitConfig)
                else f"Training cancelled after {snap.step} steps."
            )
        else:
            st.error(state.plain(f"Training failed: {snap.error}"))
        st.caption(f"Device: {snap.device or 'unknown'} · {state.plain(snap.message)}")
        _search_table(job, snap)
        if not isinstance(job.config, registry.FitConfig):  # a fit has no training curves
            _curves(snap)
        if (running and snap.finished) or (snap.status == "done" and not state.is_collected(job)):
            st.rerun()  # a full rerun registers the model and stops the polling

    live()


st.divider()
st.subheader("Checkpoints", anchor=False)
usable = state.models_for_active_data()
dl, ul = st.columns(2)
with dl:
    metas = list(usable)  # every method can be saved
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
            data=lambda e=entry, d=active.data: state.checkpoint_bytes(e, d),
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
