"""Tiny genre-driven datasets for the playground, what-if and app tests (fast, seeded)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from metarec_core.data.dataset import RatingsDataset
from metarec_core.data.io import from_arrays
from metarec_core.protocol.splits import split_users

GENRES = ("Sci-Fi", "Romance", "Comedy", "Drama")


def tiny_frames(
    n_users: int = 80, n_items: int = 60, per_user: int = 25, seed: int = 0
) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, str]]]:
    """(ratings rows (user, item, rating), item rows (item, title, genres)) with genre tastes:
    each user loves one genre and dislikes another, so a few ratings reveal the taste."""
    rng = np.random.default_rng(seed)
    item_genre = np.arange(n_items) % len(GENRES)
    quality = rng.normal(0, 0.4, n_items)
    items = [
        (f"i{j}", f"Film {j:03d} {GENRES[item_genre[j]]} story", GENRES[item_genre[j]])
        for j in range(n_items)
    ]
    rows = []
    for u in range(n_users):
        love, hate = rng.choice(len(GENRES), 2, replace=False)
        seen = rng.choice(n_items, per_user, replace=False)
        for j in seen:
            r = 3 + quality[j] + 1.5 * (item_genre[j] == love) - 1.5 * (item_genre[j] == hate)
            r = int(np.clip(np.rint(r + rng.normal(0, 0.3)), 1, 5))
            rows.append((f"u{u}", f"i{j}", r))
    return rows, items


def dataset_from_frames(rows: list, items: list, source: str) -> RatingsDataset:
    """The dataset of ratings rows (user, item, rating) and item rows (item, title, genre)."""
    return from_arrays(
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        item_titles={i: t for i, t, _ in items},
        genres={i: [g] for i, _, g in items},
        source=source,
    )


def tiny_dataset(**kw) -> RatingsDataset:
    return dataset_from_frames(*tiny_frames(**kw), source="tiny")


class Split(NamedTuple):
    train_users: np.ndarray
    val_users: np.ndarray


def tiny_split(data: RatingsDataset) -> Split:
    """The app's training/validation user split of `data` (seed 0)."""
    return Split(*split_users(data, seed=0))


def rows_csv(rows: list) -> bytes:
    """A ratings file of (user, item, rating) rows."""
    return ("user,item,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in rows)).encode()


def item_rows_csv(items: list) -> bytes:
    """An items file of (item, title, genres) rows."""
    return ("item,title,genres\n" + "".join(f"{i},{t},{g}\n" for i, t, g in items)).encode()


def write_frames(folder: Path, rows: list, items: list) -> tuple[Path, Path]:
    """r.csv and i.csv of these rows in `folder`: (their paths)."""
    (folder / "r.csv").write_bytes(rows_csv(rows))
    (folder / "i.csv").write_bytes(item_rows_csv(items))
    return folder / "r.csv", folder / "i.csv"


def edited_checkpoint(raw: bytes, edit) -> bytes:
    """The checkpoint `raw` with `edit(obj)` applied to its loaded object, saved again."""
    import io

    import torch

    obj = torch.load(io.BytesIO(raw), weights_only=True)
    edit(obj)
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def ratings_csv(**kw) -> bytes:
    return rows_csv(tiny_frames(**kw)[0])


def items_csv(**kw) -> bytes:
    return item_rows_csv(tiny_frames(**kw)[1])


def write_sample_dir(folder: Path, **kw) -> Path:
    """A stand-in for sample_data/: ratings.csv and items.csv (no model.pt)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_bytes(ratings_csv(**kw))
    (folder / "items.csv").write_bytes(items_csv(**kw))
    return folder


__all__ = ["GENRES", "items_csv", "ratings_csv", "tiny_dataset", "tiny_frames", "write_sample_dir"]


# ---------------------------------------------------------------------------------------------
# AppTest helpers

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def clear_streamlit_caches() -> None:
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()


def new_app(timeout: float = 30):
    """A fresh AppTest of the whole app (a new browser session), run once."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    return at


def texts(at) -> str:
    """Every text-like element of the last run, joined (for assertions on what a user sees)."""
    parts = []
    for kind in (
        "markdown",
        "text",
        "caption",
        "title",
        "header",
        "subheader",
        "error",
        "warning",
        "info",
        "success",
        "metric",
    ):
        for el in getattr(at, kind):
            parts.append(str(getattr(el, "value", "")) + " " + str(getattr(el, "label", "")))
    return "\n".join(parts)


TINY_LEARNER = dict(
    steps=4, eval_every=2, meta_batch=8, factors=4, embedding_dim=4, hidden=(8,), inner_steps=2
)
_MODEL_BYTES: dict[str, bytes] = {}


def tiny_model_bytes(name: str = "metasgd") -> bytes:
    """A checkpoint of a tiny learner trained on `tiny_dataset()` the way the CLI trains (the
    default seeded 90/10 user split); trained once per test process."""
    if name not in _MODEL_BYTES:
        from metarec_core.checkpoint import to_bytes
        from metarec_core.methods.meta import make_learner
        from metarec_core.protocol.splits import split_users

        data = tiny_dataset()
        train, val = split_users(data, 0)
        learner = make_learner(name, seed=0, device="cpu", **TINY_LEARNER).fit(data, train, val)
        _MODEL_BYTES[name] = to_bytes(learner, data)
    return _MODEL_BYTES[name]


def write_sample_dir_with_model(folder: Path) -> Path:
    write_sample_dir(folder)
    (folder / "model.pt").write_bytes(tiny_model_bytes())
    return folder


TINY_FORM = {
    "train_factors": 4,
    "train_embedding": 4,
    "train_hidden": "8",
    "train_inner_steps": 2,
    "train_meta_batch": 8,
    "train_steps": 4,
    "train_eval_every": 2,
}


def train_page(**form):
    """A fresh app on the Train page with the tiny form settings (overridden by `form`)."""
    at = new_app()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    for key, value in {**TINY_FORM, **form}.items():
        widget = at.text_input(key=key) if key == "train_hidden" else at.number_input(key=key)
        widget.set_value(value)
    return at


def run_evaluation(at, suffix: str, methods, support: str, folds: int = 2, tries: int = 150):
    """Fill the Evaluate page's form (`suffix`: the "Who is new?" choice's widget keys, "" for
    users), run it and wait for its report (returned)."""
    at.multiselect(key=f"eval_methods{suffix}").set_value(list(methods))
    at.text_input(key=f"eval_support{suffix}").set_value(support)
    at.number_input(key="eval_folds").set_value(folds)
    at.button(key="eval_start").click().run()
    wait_until(at, lambda a: any("Evaluation done" in s.value for s in a.success), tries=tries)
    assert not at.exception and not at.error
    return at.session_state["mr_eval_report"]


def check_report(at, report, protocol: type, methods, ks, label, unit: str) -> None:
    """The Evaluate page's report is of `protocol`, holds a row per (method, k) and its table
    names the methods by `label` and counts `unit` ("Users", "Items")."""
    import json

    assert isinstance(report.protocol, protocol)
    assert {(r.method, r.support) for r in report.rows} == {(m, k) for m in methods for k in ks}
    assert set(at.dataframe[0].value["method"]) == {label(m) for m in methods}
    assert json.loads(at.dataframe[0].proto.columns)["users"]["label"] == unit


def wait_until(at, predicate, tries: int = 150, pause: float = 0.1):
    """Re-run the app until `predicate(at)` holds (background threads run between runs)."""
    import time

    for _ in range(tries):
        if predicate(at):
            return at
        time.sleep(pause)
        at.run()
    raise AssertionError("the app never reached the expected state")


# ---------------------------------------------------------------------------------------------
# trainings held by the test (no wall-clock luck)

HOLD_WAIT = 300.0  # generous bound for a held job to be reached / to end; never a speed claim


class HeldTrainings:
    """Trainings the app starts wait for `release()`: before fitting, or after reporting
    `hold_at` = (phase, step). Patches the learner factory and records the TrainingJobs
    started (`jobs`)."""

    def __init__(self, monkeypatch, hold_at: tuple[str, int] | None = None) -> None:
        import threading

        from metarec_core import jobs
        from metarec_core.methods.meta import learner_class

        self._release, self._reached = threading.Event(), threading.Event()
        self.jobs: list = []
        held = self

        def held_learner(config):
            """The config's real learner, holding as described above."""

            class Held(learner_class(config)):
                def fit(self, *a, callback=None, **k):
                    def cb(p):
                        if callback is not None:
                            callback(p)
                        if hold_at is not None and (p.phase, p.step) == hold_at:
                            held._hold()

                    if hold_at is None:
                        held._hold()
                    return super().fit(*a, callback=cb, **k)

            return Held(config)

        start = jobs.TrainingJob.start

        def recording_start(job):
            self.jobs.append(job)
            return start(job)

        monkeypatch.setattr(jobs, "_default_learner_factory", held_learner)
        monkeypatch.setattr(jobs.TrainingJob, "start", recording_start)

    def _hold(self) -> None:
        self._reached.set()
        assert self._release.wait(HOLD_WAIT), "the test never released the training"

    def wait_reached(self) -> None:
        assert self._reached.wait(HOLD_WAIT), "no training reached the hold"

    def release(self) -> None:
        self._release.set()

    def wait_finished(self) -> None:
        """Release, then block until every recorded training has ended."""
        self.release()
        for job in self.jobs:
            assert job.wait(HOLD_WAIT).finished, "a held training never ended"


def check_only_against(monkeypatch, *names: str) -> None:
    """Trainings' model check compares with the baselines `names` only (the real check).

    Why: a tiny training of a few steps loses to the MF fold-in baselines (the check says so
    and the model is not made active); tests of the training flow that need a model passing
    the check compare it with `user_bias`, which even a tiny training beats.
    """
    from metarec_core import jobs
    from metarec_core.evaluation.check import CheckConfig, run_model_check

    def check(learner, data, train_users, val_users, config, **hooks):
        cfg = CheckConfig(seed=int(getattr(config, "seed", 0)), baselines=names)
        return run_model_check(learner, data, train_users, val_users, config=cfg, **hooks)

    monkeypatch.setattr(jobs, "_model_check", check)
