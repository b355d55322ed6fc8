"""The one reader (metarec_core.data.io) loads real files to the same arrays as before issue 13.

The checksums were taken with the readers of main before the split (data/dataset.py's
load_ratings/attach_items and checkpoint.read_user_ratings): every array, id, title, genre
flag, the scale and the notes go into them, so any change in what a file loads to fails here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from metarec_core.data.dataset import RatingsDataset
from metarec_core.data.io import NewUserRatings, load_ratings, read_user_ratings

ROOT = Path(__file__).resolve().parents[2]
ML100K = ROOT.parent / "shared" / "datasets" / "ml-100k"
SAMPLE = ROOT / "sample_data"

needs_ml100k = pytest.mark.skipif(
    not (ML100K / "u.data").is_file(),
    reason=f"MovieLens-100K not found at {ML100K} (the shared datasets folder is absent)",
)


def digest(d: RatingsDataset) -> str:
    h = hashlib.sha256()
    timestamp = d.timestamp if d.timestamp is not None else np.zeros(0)
    for a in (d.user, d.item, d.rating, timestamp):
        h.update(np.ascontiguousarray(a).tobytes())
        h.update(str(a.dtype).encode())
    for ids in (d.user_ids, d.item_ids):
        h.update("\x1f".join(map(str, ids)).encode())
        h.update(b"\x1e")
    h.update(repr((d.scale.low, d.scale.high, d.scale.step)).encode())
    if d.items is not None:
        h.update("\x1f".join(map(str, d.items.titles)).encode())
        h.update("\x1f".join(d.items.genre_names).encode())
        h.update(np.ascontiguousarray(d.items.genres).tobytes())
        h.update(str(d.items.missing).encode())
    h.update("\n".join(d.notes).encode())
    return h.hexdigest()[:16]


def user_digest(u: NewUserRatings) -> str:
    h = hashlib.sha256()
    h.update(u.items.tobytes())
    h.update(u.ratings.tobytes())
    h.update("\x1f".join(u.unknown_ids).encode())
    h.update(f"{u.duplicates} {u.rows}".encode())
    return h.hexdigest()[:16]


@needs_ml100k
def test_ml100k_loads_to_the_same_arrays():
    data = load_ratings(ML100K / "u.data", items=ML100K / "u.item")
    assert data.n_ratings == 100_000
    assert digest(data) == "5370af77f720a498"
    assert digest(load_ratings(ML100K / "u.data")) == "3194de22041e4418"


@needs_ml100k
def test_a_new_users_ratings_map_to_the_same_items():
    """User 1's rows of u.data as a new user's file (with a header, plus an unknown item and a
    repeat; and the first 30 as a headerless TSV), against ML-100K's catalogue."""
    data = load_ratings(ML100K / "u.data")
    rows = [
        ln.split("\t")
        for ln in (ML100K / "u.data").read_text().splitlines()
        if ln.split("\t")[0] == "1"
    ]
    text = "item,rating\n" + "".join(f"{r[1]},{r[2]}\n" for r in rows)
    text += f"99999,3\n{rows[0][1]},1\n"
    u = read_user_ratings(text.encode(), data.item_ids, data.scale, name="me.csv")
    assert (u.rows, u.duplicates, u.unknown_ids, len(u.items)) == (274, 1, ("99999",), 272)
    assert user_digest(u) == "3c88f842ce5346f6"
    tsv = "".join(f"{r[1]}\t{r[2]}\n" for r in rows[:30])
    u = read_user_ratings(tsv.encode(), data.item_ids, data.scale, name="me.tsv")
    assert user_digest(u) == "2a0bfe94c8d3ede5"


def test_the_sample_loads_to_the_same_arrays():
    if not (SAMPLE / "ratings.csv").is_file():
        pytest.skip(
            "sample_data/ratings.csv not generated yet (python -m metarec_core make-sample)"
        )
    data = load_ratings(SAMPLE / "ratings.csv", items=SAMPLE / "items.csv")
    assert digest(data) == "d999edd30ce279b0"
