"""The persistence both baseline families share (users' `common._Baseline`, items'
`items._ItemBaseline`): a fitted baseline's declared arrays and numbers to and from a
weights-only-loadable state, and the checks of a state against what its class declares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

MAX_LIST = 4  # a setting or fitted value saved as a list holds a few numbers (fold_reg: 2)


def real(v: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and bool(np.isfinite(v))


def need(cond: bool, what: str) -> None:
    """ValueError(`what`) unless `cond`."""
    if not cond:
        raise ValueError(what)


def check_header(state: Any, name: str, fmt: str, version: int, not_fmt: str) -> None:
    """The checks every saved method's state starts with: a dictionary in the format `fmt`
    (else `not_fmt`), of the class named `name`, at `version`."""
    need(isinstance(state, dict), "the state is not a dictionary")
    need(state.get("format") == fmt, not_fmt)
    need(state.get("name") == name, f"the state is of {str(state.get('name'))[:60]!r}")
    need(
        state.get("version") == version,
        f"state version {state.get('version')!r} (this code reads version {version})",
    )


def plain(v: Any) -> Any:
    """A number or tuple as plain Python (numpy scalars and tuples are not weights-only
    loadable)."""
    if isinstance(v, tuple | list):
        return [float(x) for x in v]
    return v if v is None or isinstance(v, bool | int) else float(v)


def state_arrays(arrays: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """(name, array or None) pairs as float64 tensors by name."""
    import torch

    return {
        key: None if a is None else torch.from_numpy(np.array(a, dtype=np.float64))
        for key, a in arrays
    }


def check_seed(seed: Any) -> None:
    need(
        isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**63,
        "seed is not a non-negative integer",
    )


def check_values_and_arrays(
    cls: Any,
    values: Any,
    arrays: Any,
    want: Mapping[str, int | None],
    max_width: int,
) -> None:
    """Check a state's `values` and `arrays` against `cls.STATE_VALUES`, `cls.STATE_ARRAYS`
    (axis name -> its size in `want`; "width": 1 to `max_width`) and `cls.OPTIONAL_ARRAYS`."""
    import torch

    need(
        isinstance(values, dict) and set(values) == set(cls.STATE_VALUES),
        f"values are not {', '.join(cls.STATE_VALUES)}",
    )
    for k, v in values.items():
        ok = real(v) or (isinstance(v, list) and len(v) <= MAX_LIST and all(map(real, v)))
        need(ok, f"values.{k} is not a finite number")
    need(
        isinstance(arrays, dict) and set(arrays) == set(cls.STATE_ARRAYS),
        f"arrays are not {', '.join(cls.STATE_ARRAYS)}",
    )
    for k, axes in cls.STATE_ARRAYS.items():
        t = arrays[k]
        if t is None and k in cls.OPTIONAL_ARRAYS:
            continue
        need(
            isinstance(t, torch.Tensor) and t.is_floating_point(),
            f"arrays.{k} is not a float tensor",
        )
        need(t.dim() == len(axes), f"arrays.{k} has {t.dim()} axes, expected {len(axes)}")
        for size, axis in zip(t.shape, axes, strict=True):
            if axis == "width":
                need(
                    1 <= size <= max_width,
                    f"arrays.{k} declares {size:,} factors, over the limit of {max_width:,}",
                )
            else:
                need(
                    size == want[axis],
                    f"arrays.{k} has shape {tuple(t.shape)}, expected {want[axis]} along "
                    f"its {axis} axis",
                )
        need(bool(torch.isfinite(t).all()), f"arrays.{k} holds NaN or infinite values")


def restore(obj: Any, state: Mapping[str, Any]) -> Any:
    """Set `obj`'s declared arrays (float64 numpy) and values from a checked `state`, derive
    the rest (`obj._loaded()`) and mark it fitted."""
    for key in type(obj).STATE_ARRAYS:
        t = state["arrays"][key]
        setattr(obj, key, None if t is None else t.numpy().astype(np.float64, copy=True))
    for key, v in state["values"].items():
        setattr(obj, key, tuple(map(float, v)) if isinstance(v, list) else float(v))
    obj._loaded()
    obj.fitted_ = True
    return obj
