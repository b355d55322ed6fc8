"""Small file helpers shared by the checkpoint and workspace modules."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, raw: bytes) -> None:
    """Write `raw` to `path` through a temporary file in the same folder and a rename, so a
    crash never leaves a half-written file (the folder must exist)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
