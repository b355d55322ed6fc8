"""Two checkpoints compared value by value: the before/after check of a change that must not
change a training (docs/scale.md).

    python bench/compare_checkpoints.py BEFORE.pt AFTER.pt

Walks both files (`torch.load(weights_only=True)`) and compares every tensor to the bit and
every other value for equality; wall-clock values (`seconds`, `created`) are left out, and keys
that only one file has are listed (a new configuration field). Exit status 1 when a compared
value differs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch

TIMINGS = ("seconds", "created")  # wall clock: differs between any two runs


def compare(a: Any, b: Any, path: str = "") -> tuple[int, list[str], list[str]]:
    """(values compared, paths that differ, paths only one side has); tensors count their
    elements."""
    if isinstance(a, dict) and isinstance(b, dict):
        n, bad, only = 0, [], sorted(f"{path}.{k}" for k in set(a) ^ set(b))
        for k in a:
            if k in b and k not in TIMINGS:
                m, d, o = compare(a[k], b[k], f"{path}.{k}")
                n, bad, only = n + m, bad + d, only + o
        return n, bad, only
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        n, bad, only = 0, [] if len(a) == len(b) else [f"{path} (length)"], []
        for i, (x, y) in enumerate(zip(a, b)):  # noqa: B905 (lengths compared above)
            m, d, o = compare(x, y, f"{path}[{i}]")
            n, bad, only = n + m, bad + d, only + o
        return n, bad, only
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        same = a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
        return a.numel(), [] if same else [path], []
    return 1, [] if type(a) is type(b) and a == b else [path], []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    args = ap.parse_args(argv)
    a = torch.load(args.before, weights_only=True)
    b = torch.load(args.after, weights_only=True)
    n, bad, only = compare(a, b)
    print(f"{n:,} values compared (wall-clock values left out); {len(bad)} differ")
    for p in bad[:20]:
        print(f"  differs: {p}")
    for p in only:
        print(f"  only in one file: {p}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
