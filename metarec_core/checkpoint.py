"""Safe, self-describing model checkpoints: one file, loadable with ``weights_only=True``.

A checkpoint is a ``torch.save``d dict of tensors and plain Python values only (no pickled
classes), so `torch.load(..., weights_only=True)` can read it without running code from the
file. It holds the learner's exported state (weights and configuration), the item index (raw
item ids, plus titles and genres for display), the rating scale, the training dataset's
fingerprint and size, a format name and version, and the creation time.

Every way a file can be wrong -- missing, empty, truncated, corrupt, someone else's torch file,
a newer format, a model for another catalogue -- is a `CheckpointError` with a message that
says which file and what to do.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from metarec_core.data import (
    ITEM_COLUMNS,
    RATING_COLUMNS,
    DataError,
    RatingScale,
    RatingsDataset,
    read_text,
)

if TYPE_CHECKING:
    from metarec_core.learners import MetaLearner

FORMAT_NAME = "metarec-checkpoint"
FORMAT_VERSION = 1
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
NEW_USER_MAX_BYTES = 10 * 1024 * 1024
_SHOW = 5  # ids / rows quoted in a message

CheckpointSource = str | Path | bytes | bytearray | IO[bytes]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, eq=False)
class LoadedCheckpoint:
    """A checkpoint read back: the fitted learner and what it was trained on."""

    learner: MetaLearner
    item_ids: np.ndarray  # (n_items,) str raw ids, in the model's inner item order
    titles: np.ndarray | None  # (n_items,) str, or None without item metadata
    genre_names: tuple[str, ...]
    genres: np.ndarray | None  # (n_items, n_genres) bool
    scale: RatingScale
    fingerprint: str
    dataset_name: str
    n_users: int
    n_ratings: int
    config: dict[str, Any]
    algorithm: str | None  # the training algorithm (maml, fomaml, reptile, metasgd, finetune)
    method: str | None  # the preset / method name (e.g. melu, which trains with maml)
    created: str
    format_version: int
    library_version: str
    best_val_mae: float | None = None
    # Things the caller may want to show (e.g. "trained on a different ratings file").
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def item_index(self) -> dict[str, int]:
        """Raw item id -> inner index."""
        return {str(raw): i for i, raw in enumerate(self.item_ids)}

    def title(self, item: int) -> str:
        return str(self.titles[item]) if self.titles is not None else str(self.item_ids[item])

    def genre_list(self, item: int) -> list[str]:
        if self.genres is None:
            return []
        return [g for g, flag in zip(self.genre_names, self.genres[item], strict=True) if flag]


# ------------------------------------------------------------------------------------ saving
def _plain(value: Any, where: str) -> Any:
    """`value` as tensors and plain Python values (what weights_only loading accepts)."""
    import torch

    if value is None or isinstance(value, bool | int | float | str | torch.Tensor):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.device | torch.dtype | Path):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value), where)
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"cannot store {type(value).__name__} at {where} in a checkpoint")


def _payload(learner: Any, data: RatingsDataset) -> dict[str, Any]:
    import torch

    from metarec_core import __version__

    n_model = getattr(learner, "n_items_", None)
    if n_model is not None and int(n_model) != data.n_items:
        raise ValueError(
            f"the model scores {int(n_model):,} items but the dataset has {data.n_items:,}; "
            "save it with the dataset it was trained on"
        )
    if not getattr(learner, "fitted_", True):
        raise ValueError(f"{type(learner).__name__} is not fitted; train it before saving")
    items = data.items
    history = getattr(learner, "history_", None) or []
    maes = [p.val_mae for p in history if getattr(p, "val_mae", None) is not None]
    config = getattr(learner, "config", None)
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "library_version": __version__,
        "learner": learner.export_state(),
        "algorithm": None if config is None else getattr(config, "algorithm", None),
        "method": None if config is None else getattr(config, "name", None),
        "config": {} if config is None else _plain(config, "config"),
        "best_val_mae": float(min(maes)) if maes else None,
        "dataset": {
            "name": str(data.source),
            "fingerprint": data.fingerprint(),
            "n_users": int(data.n_users),
            "n_items": int(data.n_items),
            "n_ratings": int(data.n_ratings),
        },
        "scale": {
            "low": float(data.scale.low),
            "high": float(data.scale.high),
            "step": float(data.scale.step),
        },
        "items": {
            "ids": [str(x) for x in data.item_ids],
            "titles": None if items is None else [str(t) for t in items.titles],
            "genre_names": [] if items is None else [str(g) for g in items.genre_names],
            "genres": None
            if items is None
            else torch.from_numpy(np.ascontiguousarray(items.genres, dtype=bool)),
        },
    }


def to_bytes(learner: Any, data: RatingsDataset) -> bytes:
    """The checkpoint file's bytes (for a download button); see `save_checkpoint`."""
    import torch

    buf = io.BytesIO()
    torch.save(_payload(learner, data), buf)
    raw = buf.getvalue()
    # Refuse to write what could not be read back safely (e.g. a numpy array in the state).
    try:
        torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
    except Exception as e:
        raise TypeError(
            "the learner's exported state holds objects other than tensors and plain values, "
            f"so it could not be loaded safely: {_first_line(e)}"
        ) from e
    return raw


def save_checkpoint(learner: Any, data: RatingsDataset, path: str | Path) -> Path:
    """Write one checkpoint file for a fitted learner trained on `data`; returns the path.

    The file is written to a temporary name and renamed, so a crash never leaves a half file.
    """
    path = Path(path)
    raw = to_bytes(learner, data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ----------------------------------------------------------------------------------- loading
def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def _read_source(source: CheckpointSource, label: str, max_bytes: int) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        raw = bytes(source)
    elif isinstance(source, str | Path):
        p = Path(source)
        if not p.exists():
            raise CheckpointError(f"{label}: no such file")
        if p.is_dir():
            raise CheckpointError(f"{label}: is a directory, not a checkpoint file")
        size = p.stat().st_size
        if size > max_bytes:
            raise CheckpointError(
                f"{label}: the file is {size:,} bytes, over the limit of {max_bytes:,} bytes"
            )
        raw = p.read_bytes()
    elif hasattr(source, "getvalue"):  # BytesIO, streamlit's UploadedFile
        raw = bytes(source.getvalue())
    elif hasattr(source, "read"):
        raw = bytes(source.read())
    else:
        raise TypeError(f"cannot read a checkpoint from {type(source).__name__}")
    if len(raw) > max_bytes:
        raise CheckpointError(
            f"{label}: the file is {len(raw):,} bytes, over the limit of {max_bytes:,} bytes"
        )
    if not raw:
        raise CheckpointError(f"{label}: the file is empty (0 bytes); it is not a checkpoint")
    return raw


def _check_container(raw: bytes, label: str) -> None:
    """Tell apart 'not a torch file', 'truncated' and 'damaged' before torch sees the bytes."""
    if not raw.startswith(b"PK\x03\x04"):
        head = raw[:64]
        if head.startswith(b"\x80") and len(raw) > 2:
            what = "an old-style (non-zip) PyTorch/pickle file"
        elif all(32 <= b < 127 or b in b"\t\r\n" for b in head):
            what = "a text file"
        else:
            what = f"unrecognised binary data (it starts with {head[:8].hex(' ')})"
        raise CheckpointError(
            f"{label}: not a MetaRec checkpoint: it is {what}, not a checkpoint saved by "
            "MetaRec (`python -m metarec_core train` or the app's download button)"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            bad = zf.testzip()  # reads every member and checks its CRC-32
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        detail = (
            "its archive index is missing" if isinstance(e, zipfile.BadZipFile) else _first_line(e)
        )
        raise CheckpointError(
            f"{label}: the file is truncated or damaged ({detail}; {len(raw):,} bytes); it was "
            "probably cut off while saving or downloading -- save or download it again"
        ) from None
    except Exception as e:  # zlib and friends: damaged content
        raise CheckpointError(f"{label}: the file is damaged ({_first_line(e)})") from None
    if bad is not None:
        raise CheckpointError(
            f"{label}: the file is damaged: its part {bad!r} fails the CRC check "
            "(the bytes changed after saving); save or download it again"
        )


def _torch_load(raw: bytes, label: str) -> Any:
    import pickle

    import torch

    try:
        return torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower() or "weights_only" in str(e):
            raise CheckpointError(
                f"{label}: the file holds Python objects other than tensors and plain values; "
                "refusing to load it, since that could run code from the file "
                "(MetaRec checkpoints never need this)"
            ) from None
        raise CheckpointError(f"{label}: the file is damaged ({_first_line(e)})") from None
    except Exception as e:
        raise CheckpointError(
            f"{label}: the file is damaged: PyTorch could not read it ({_first_line(e)})"
        ) from None


def _require(d: dict, key: str, kind: type | tuple[type, ...], label: str, where: str = "") -> Any:
    if key not in d:
        raise CheckpointError(f"{label}: the checkpoint is damaged: {where}{key!r} is missing")
    value = d[key]
    if not isinstance(value, kind):
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: {where}{key!r} is a {type(value).__name__}"
        )
    return value


def _check_header(obj: Any, label: str) -> int:
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{label}: not a MetaRec checkpoint: it holds a {type(obj).__name__}, not a "
            "MetaRec checkpoint dictionary"
        )
    if "format" not in obj:
        bare = obj and all(_is_tensor(v) for v in obj.values())
        hint = " (it looks like a bare PyTorch state_dict)" if bare else ""
        raise CheckpointError(
            f"{label}: not a MetaRec checkpoint: a PyTorch file without MetaRec's 'format' "
            f"entry{hint}"
        )
    fmt = obj["format"]
    if fmt != FORMAT_NAME:
        raise CheckpointError(
            f"{label}: not a MetaRec checkpoint: its format is {str(fmt)[:60]!r}, "
            f"expected {FORMAT_NAME!r}"
        )
    version = obj.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{label}: the checkpoint is damaged: bad format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{label}: the checkpoint has format version {version}, written by a newer MetaRec; "
            f"this version reads format {FORMAT_VERSION} and older -- upgrade MetaRec to load it"
        )
    return version


def _is_tensor(v: Any) -> bool:
    import torch

    return isinstance(v, torch.Tensor)


def _learner_from_state(state: dict[str, Any], device: str = "cpu") -> Any:
    from metarec_core.learners import MetaLearner

    return MetaLearner.from_state(state, device=device)


def _dataset_notes(
    label: str, ck_name: str, ck_fp: str, ids: np.ndarray, scale: RatingScale, data: RatingsDataset
) -> list[str]:
    """Refuse a dataset whose catalogue or scale differs; note a different ratings file."""
    active = data.source or "the active dataset"
    n_ck, n_data = len(ids), data.n_items
    if n_ck != n_data or not np.array_equal(ids, data.item_ids.astype(str)):
        trained = f"{label}: the checkpoint was trained on dataset {ck_name!r} with {n_ck:,} items"
        if n_ck != n_data:
            raise CheckpointError(
                f"{trained}; the active dataset {active!r} has {n_data:,} items. "
                "Load the dataset the model was trained on, or train a new model"
            )
        differ = np.flatnonzero(ids != data.item_ids.astype(str))
        shown = ", ".join(repr(str(ids[i])) for i in differ[:_SHOW])
        raise CheckpointError(
            f"{trained}; the active dataset {active!r} also has {n_data:,} items but "
            f"{len(differ):,} of their ids differ (checkpoint ids {shown}). "
            "Load the dataset the model was trained on, or train a new model"
        )
    ds = data.scale
    if (scale.low, scale.high) != (float(ds.low), float(ds.high)):
        raise CheckpointError(
            f"{label}: the model predicts ratings from {scale.low:g} to {scale.high:g}, but the "
            f"active dataset {active!r} uses {ds.low:g} to {ds.high:g}"
        )
    if ck_fp != data.fingerprint():
        return [
            f"the model was trained on {ck_name!r} (fingerprint {ck_fp}); the active dataset "
            f"{active!r} has the same {n_data:,} items but other ratings "
            f"(fingerprint {data.fingerprint()})"
        ]
    return []


def load_checkpoint(
    source: CheckpointSource,
    data: RatingsDataset | None = None,
    *,
    name: str | None = None,
    strict: bool = False,
    device: str = "cpu",
    max_bytes: int = DEFAULT_MAX_BYTES,
    learner_from_state: Callable[[dict[str, Any]], Any] | None = None,
) -> LoadedCheckpoint:
    """Read a checkpoint from a path, bytes or a file object, safely (weights only).

    With `data`, the checkpoint's item catalogue (ids, in order) and rating scale must match
    it; a different ratings file over the same catalogue is allowed and noted in `notes`,
    unless `strict`, which requires the same dataset fingerprint. The model is rebuilt on
    `device`. `name` labels bytes in messages. Raises `CheckpointError`.
    """
    if name:
        label = name
    elif isinstance(source, str | Path):
        label = str(source)
    else:
        label = str(getattr(source, "name", "") or "the uploaded checkpoint")
    raw = _read_source(source, label, max_bytes)
    _check_container(raw, label)
    obj = _torch_load(raw, label)
    version = _check_header(obj, label)

    state = _require(obj, "learner", dict, label)
    ds = _require(obj, "dataset", dict, label)
    sc = _require(obj, "scale", dict, label)
    it = _require(obj, "items", dict, label)
    ids_list = _require(it, "ids", list, label, "items.")
    ck_name = str(ds.get("name", "") or "(unnamed)")
    ck_fp = str(_require(ds, "fingerprint", str, label, "dataset."))
    n_items = int(_require(ds, "n_items", int, label, "dataset."))
    ids = np.asarray([str(x) for x in ids_list], dtype=str)
    if len(ids) != n_items:
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: it lists {len(ids):,} item ids for "
            f"{n_items:,} items"
        )
    try:
        scale = RatingScale(float(sc["low"]), float(sc["high"]), float(sc["step"]))
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{label}: the checkpoint is damaged: bad rating scale") from None
    titles_list = it.get("titles")
    titles = None if titles_list is None else np.asarray([str(t) for t in titles_list], dtype=str)
    genres_t = it.get("genres")
    genres = None if genres_t is None else genres_t.numpy().astype(bool)
    genre_names = tuple(str(g) for g in it.get("genre_names") or ())
    if (titles is not None and len(titles) != n_items) or (
        genres is not None and genres.shape != (n_items, len(genre_names))
    ):
        raise CheckpointError(f"{label}: the checkpoint is damaged: item metadata misaligned")

    notes: list[str] = []
    if data is not None:
        notes = _dataset_notes(label, ck_name, ck_fp, ids, scale, data)
        if notes and strict:
            raise CheckpointError(f"{label}: {notes[0]}")

    try:
        if learner_from_state is None:
            learner = _learner_from_state(state, device=device)
        else:
            learner = learner_from_state(state)
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(
            f"{label}: the checkpoint could not be turned back into a model: {_first_line(e)}"
        ) from None
    n_model = getattr(learner, "n_items_", None)
    if n_model is not None and int(n_model) != n_items:
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: its model scores {int(n_model):,} items but "
            f"its item index has {n_items:,}"
        )
    best = obj.get("best_val_mae")
    config = obj.get("config")
    return LoadedCheckpoint(
        learner=learner,
        item_ids=ids,
        titles=titles,
        genre_names=genre_names,
        genres=genres,
        scale=scale,
        fingerprint=ck_fp,
        dataset_name=ck_name,
        n_users=int(ds.get("n_users", 0) or 0),
        n_ratings=int(ds.get("n_ratings", 0) or 0),
        config=config if isinstance(config, dict) else {},
        algorithm=None if obj.get("algorithm") is None else str(obj["algorithm"]),
        method=None if obj.get("method") is None else str(obj["method"]),
        created=str(obj.get("created", "")),
        format_version=version,
        library_version=str(obj.get("library_version", "")),
        best_val_mae=float(best) if isinstance(best, int | float) else None,
        notes=tuple(notes),
    )


# ------------------------------------------------------------------- a new user's ratings
@dataclass(frozen=True, eq=False)
class NewUserRatings:
    """A new user's ratings mapped onto a model's catalogue."""

    items: np.ndarray  # (n,) int64 inner item indices, in file order (duplicates removed)
    ratings: np.ndarray  # (n,) float32
    unknown_ids: tuple[str, ...]  # raw ids the model does not know (dropped)
    duplicates: int  # repeated items dropped (the last rating of an item is kept)
    rows: int  # data rows read

    def warnings(self) -> list[str]:
        out = []
        if self.unknown_ids:
            shown = ", ".join(repr(x) for x in self.unknown_ids[:_SHOW])
            more = (
                ""
                if len(self.unknown_ids) <= _SHOW
                else f" and {len(self.unknown_ids) - _SHOW} more"
            )
            out.append(
                f"ignored {len(self.unknown_ids):,} rating(s) of items the model does not know: "
                f"{shown}{more}"
            )
        if self.duplicates:
            out.append(
                f"{self.duplicates:,} item(s) were rated more than once; kept the last rating"
            )
        return out


def _norm(name: str) -> str:
    return "".join(ch for ch in name.strip().strip("\"'").lower() if ch not in "_- .")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_user_ratings(
    source: str | Path | bytes,
    item_ids: np.ndarray,
    scale: RatingScale,
    *,
    name: str | None = None,
    max_bytes: int = NEW_USER_MAX_BYTES,
) -> NewUserRatings:
    """Read a new user's `item,rating` CSV and map raw item ids onto `item_ids`.

    Columns are found by header name (item/item_id/movieId..., rating/score...); a file without
    a header must have exactly two columns, item then rating. Unknown item ids are dropped and
    counted; every other problem (no ratings, non-numeric or off-scale ratings, no known item at
    all) is a `DataError` naming the file and rows.
    """
    label = name or (Path(source).name if isinstance(source, str | Path) else "new user ratings")
    if isinstance(source, bytes | bytearray):
        raw = bytes(source)
    else:
        size = Path(source).stat().st_size
        if size > max_bytes:
            raise DataError(f"{label}: the file is {size:,} bytes, over {max_bytes:,} bytes")
        raw = Path(source).read_bytes()
    if len(raw) > max_bytes:
        raise DataError(f"{label}: the file is {len(raw):,} bytes, over {max_bytes:,} bytes")
    # The ratings loader's reader: encodings, all line breaks, binary files, the line cap.
    text = read_text(raw, label, max_bytes)
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if not lines:
        raise DataError(f"{label}: the file is empty; expected a CSV with item,rating rows")
    try:
        dialect = csv.Sniffer().sniff(lines[0][1], delimiters=",;\t|")
        delim = dialect.delimiter
    except csv.Error:
        delim = ","
    rows = [(n, [c.strip() for c in next(csv.reader([ln], delimiter=delim))]) for n, ln in lines]
    header = [_norm(c) for c in rows[0][1]]
    item_col = next((header.index(c) for c in ITEM_COLUMNS if c in header), None)
    rating_col = next((header.index(c) for c in RATING_COLUMNS if c in header), None)
    if item_col is not None and rating_col is not None:
        body = rows[1:]
    elif len(rows[0][1]) == 2 and _is_float(rows[0][1][1]):
        item_col, rating_col, body = 0, 1, rows  # no header: item,rating
    else:
        raise DataError(
            f"{label}: line {rows[0][0]}: could not find the item and rating columns in "
            f"{', '.join(repr(c) for c in rows[0][1][:8])}; expected a header with an item "
            "column (item, item_id, movieId) and a rating column (rating, score)"
        )
    if not body:
        raise DataError(f"{label}: the file has a header but no ratings")
    width = max(item_col, rating_col) + 1
    short = [n for n, r in body if len(r) < width]
    if short:
        raise DataError(
            f"{label}: {_lines(short)} have fewer than {width} columns (expected item,rating)"
        )
    raw_items = [r[item_col].strip("\"'") for _, r in body]
    values, bad = [], []
    for n, r in body:
        try:
            v = float(r[rating_col])
        except ValueError:
            v = math.nan
        if not math.isfinite(v):
            bad.append(n)
        values.append(v)
    if bad:
        raise DataError(f"{label}: {_lines(bad)}: the rating is not a number")
    off = [n for (n, _), v in zip(body, values, strict=True) if v < scale.low or v > scale.high]
    if off:
        raise DataError(
            f"{label}: {_lines(off)}: rating outside the model's scale {scale.low:g} to "
            f"{scale.high:g}"
        )
    index = {str(raw): i for i, raw in enumerate(item_ids)}
    last: dict[int, float] = {}
    unknown: list[str] = []
    duplicates = 0
    for raw_id, v in zip(raw_items, values, strict=True):
        inner = index.get(raw_id)
        if inner is None:
            unknown.append(raw_id)
            continue
        if inner in last:
            duplicates += 1
            del last[inner]  # re-insert so the order is that of the last rating
        last[inner] = v
    if not last:
        shown = ", ".join(repr(x) for x in unknown[:_SHOW])
        raise DataError(
            f"{label}: none of the {len(unknown):,} rated items is in the model's catalogue "
            f"(for example {shown}); use the raw item ids of the dataset the model was "
            "trained on"
        )
    return NewUserRatings(
        items=np.fromiter(last.keys(), dtype=np.int64, count=len(last)),
        ratings=np.fromiter(last.values(), dtype=np.float32, count=len(last)),
        unknown_ids=tuple(unknown),
        duplicates=duplicates,
        rows=len(body),
    )


def _lines(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:_SHOW])
    more = f" (and {len(numbers) - _SHOW:,} more)" if len(numbers) > _SHOW else ""
    return ("line " if len(numbers) == 1 else "lines ") + shown + more
