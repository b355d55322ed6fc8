"""bench/compare_checkpoints.py: the before/after check of docs/scale.md can fail."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("compare_ckpt", ROOT / "bench/compare_checkpoints.py")
cc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cc)


def _state(w: float = 1.0, seconds: float = 3.0, **config) -> dict:
    return {
        "model": {"w": torch.tensor([w, 2.0]), "b": torch.zeros(3)},
        "config": {"seed": 0, **config},
        "history": [{"step": 1, "loss": 0.5, "seconds": seconds}],
        "created": "2026-12-02T22:00:00",
    }


def test_equal_states_pass_and_wall_clock_values_are_left_out():
    later = {**_state(seconds=9.0), "created": "2026-12-02T23:00:00"}
    assert cc.compare(_state(), later) == (2 + 3 + 1 + 2, [], [])


def test_a_changed_weight_a_changed_value_and_a_new_key_are_reported(tmp_path: Path):
    n, bad, only = cc.compare(_state(), _state(w=1.0 + 1e-7))
    assert bad == [".model.w"]
    assert cc.compare(_state(), {**_state(), "history": []})[1] == [".history (length)"]
    assert cc.compare(_state(), _state(max_val_users=2000))[2] == [".config.max_val_users"]
    assert cc.compare({"x": 1}, {"x": 1.0})[1] == [".x"]  # another type is another value
    torch.save(_state(), tmp_path / "a.pt")
    torch.save(_state(w=0.0), tmp_path / "b.pt")
    assert cc.main([str(tmp_path / "a.pt"), str(tmp_path / "a.pt")]) == 0
    assert cc.main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt")]) == 1
