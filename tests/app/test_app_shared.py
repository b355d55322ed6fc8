"""What sessions share to keep page loads cheap under load (docs/load.md): the shipped sample
checkpoint is read once per process and the playground's map of its training users is fitted
once per dataset, yet every session adapts with its own learner, and nothing derived from one
dataset or model serves another."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import new_app, tiny_dataset, tiny_model_bytes

import app_state

# the app on a tiny sample folder with a model, Streamlit caches cleared (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("small_sample", "one_torch_thread")


def _count_calls(monkeypatch, module, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_two_sessions_read_the_sample_model_once_and_map_its_users_once(monkeypatch):
    import metarec_core.checkpoint as checkpoint

    loads = _count_calls(monkeypatch, checkpoint, "load_checkpoint")
    fits = _count_calls(monkeypatch, app_state, "fit_projection")
    a, b = new_app(), new_app()
    for at in (a, b):
        at.switch_page("pages/playground.py").run()
        assert not at.exception
    ea = a.session_state[app_state.K_MODELS]["sample model"]
    eb = b.session_state[app_state.K_MODELS]["sample model"]
    assert len(loads) == 1 and len(fits) == 1
    assert ea.projection is not None and ea.projection is eb.projection
    assert not ea.projection.points.flags.writeable  # shared, so read-only
    # each session adapts with its own learner (adapting swaps parameters in place)
    assert ea.model is not eb.model
    pa = dict(ea.model.model_.named_parameters())
    pb = dict(eb.model.model_.named_parameters())
    assert pa.keys() == pb.keys()
    assert all(pa[k].data_ptr() != pb[k].data_ptr() for k in pa)
    # and one session's ratings stay its own
    a.button(key="pg_rate").click().run()
    b.run()
    assert len(a.session_state["mr_playground"].items) == 1
    assert b.session_state["mr_playground"].items == []


def _entry(data, shared_key: str | None) -> app_state.ModelEntry:
    from metarec_core.checkpoint import load_checkpoint

    loaded = load_checkpoint(tiny_model_bytes(), data)
    entry = app_state.entry_from_checkpoint(
        loaded, app_state.ActiveData(data, "tiny", False), "m", "test"
    )
    if shared_key is not None:
        entry.extra[app_state.K_SHARED] = shared_key
    return entry


def test_a_shared_map_serves_only_the_same_data_and_model_file(monkeypatch):
    fits = _count_calls(monkeypatch, app_state, "fit_projection")
    one, other = tiny_dataset(), tiny_dataset(seed=7)  # same catalogue, other ratings
    assert one.fingerprint() != other.fingerprint()
    p1 = app_state.projection_for(_entry(one, "file-A"), one)
    assert app_state.projection_for(_entry(one, "file-A"), one) is p1
    assert len(fits) == 1
    # other ratings, another checkpoint file, or a model only this session holds: its own map
    p2 = app_state.projection_for(_entry(other, "file-A"), other)
    p3 = app_state.projection_for(_entry(one, "file-B"), one)
    p4 = app_state.projection_for(_entry(one, None), one)
    assert len(fits) == 4
    assert len({id(p) for p in (p1, p2, p3, p4)}) == 4
    assert not np.array_equal(p1.points, p2.points)
