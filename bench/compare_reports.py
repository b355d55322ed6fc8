"""Compare two `evaluate --out` reports value by value (timings left out).

    python bench/compare_reports.py BEFORE.json AFTER.json [--tol 1e-6]

Exit 0 when every metric, count and CI in `rows` and `paired` agrees within `--tol`; exit 1
and list the first differences otherwise. Used to show that a refactor changed no result
(docs/refactor.md).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TIMINGS = frozenset({"seconds", "fit_seconds", "score_seconds"})
SECTIONS = ("rows", "paired")


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, leaf) pairs of nested dicts and lists, e.g. ``rows[3].mae_ci95[0]``."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix, value


def _is_timing(path: str) -> bool:
    return path.rsplit(".", 1)[-1].split("[")[0] in TIMINGS


def compare(before: dict, after: dict, tol: float = 1e-6) -> tuple[int, float, list[tuple]]:
    """(values compared, largest numeric difference, [(path, before, after)] over `tol`)."""
    a = dict(flatten({k: before.get(k) for k in SECTIONS}))
    b = dict(flatten({k: after.get(k) for k in SECTIONS}))
    n, worst, bad = 0, 0.0, []
    for path in sorted(set(a) | set(b)):
        if _is_timing(path):
            continue
        n += 1
        va, vb = a.get(path, "<missing>"), b.get(path, "<missing>")
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (va, vb))
        if numeric:
            d = 0.0 if (math.isnan(va) and math.isnan(vb)) else abs(va - vb)
            worst = max(worst, d)
            if not d <= tol:
                bad.append((path, va, vb))
        elif va != vb:
            bad.append((path, va, vb))
    return n, worst, bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--tol", type=float, default=1e-6)
    args = ap.parse_args(argv)
    before, after = (json.loads(p.read_text()) for p in (args.before, args.after))
    n, worst, bad = compare(before, after, args.tol)
    print(
        f"{n} values compared ({' and '.join(SECTIONS)}, timings left out); "
        f"largest difference {worst:.3g}; {len(bad)} over {args.tol:g}"
    )
    for path, va, vb in bad[:20]:
        print(f"  {path}: {va!r} -> {vb!r}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
