"""What the product benchmarks share: how a result is shown and kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def print_and_save(result: Any, path: str | Path | None) -> None:
    """Print `result` as indented JSON and, when `path` is given, write the same text there
    (its folder created if missing)."""
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
