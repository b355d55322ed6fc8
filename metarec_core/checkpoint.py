"""Safe, self-describing model checkpoints: one file, loadable with ``weights_only=True``.

A checkpoint is a ``torch.save``d dict of tensors and plain Python values only (no pickled
classes), so `torch.load(..., weights_only=True)` can read it without running code from the
file. It holds the method's state (`Recommender.to_state()`: weights or fitted arrays, and
configuration) under its registry name, the item index (raw item ids, plus titles and genres
for display), the rating scale, the training dataset's fingerprint and size, the users it was
trained and validated on (format 2 on), a format name and version, and the creation time. Any
registered method can be saved; a file of format 1 (meta-learners only, no users) still loads.

Every way a file can be wrong -- missing, empty, truncated, corrupt, someone else's torch file,
a newer format, a model for another catalogue -- is a `CheckpointError` with a message that
says which file and what to do.

A file is untrusted input (the app lets any visitor upload one), so everything it declares is
bounded before it is used (`CheckpointLimits`, derived from the active dataset where there is
one): the zip members' uncompressed sizes before PyTorch reads them, then the nesting, element
count and text size of what was unpickled before any ``str()`` or array of it, then the model's
declared dimensions against what the file stores before the model is built, and its weights'
finiteness. A file that declares something huge is refused in well under a second.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.files import atomic_write

if TYPE_CHECKING:
    from metarec_core.methods.base import Recommender

FORMAT_NAME = "metarec-checkpoint"
# 1: meta-learners only. 2: any registered method ("method" names it), and the user split.
FORMAT_VERSION = 2  # and every older one is read
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
_SHOW = 5  # ids / rows quoted in a message

CheckpointSource = str | Path | bytes | bytearray | IO[bytes]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


# What a checkpoint may declare. A real one is far below each: the shipped sample (1,500 items)
# has a 95 KB pickle and 0.5 MB of tensors; 64-dimensional layers; 5 inner steps.
MAX_ITEMS = 1_000_000  # items of a checkpoint read without a dataset (the CLI)
MAX_USERS = 10_000_000  # users of the dataset a checkpoint was trained on (its stored split)
MAX_GENRES = 1_000
MAX_FACTORS = 1_024
MAX_EMBEDDING_DIM = 4_096
MAX_HIDDEN_WIDTH = 4_096
MAX_LAYERS = 16
MAX_INNER_STEPS = 100
MAX_TEXT_CHARS = 10_000  # one item id, title or genre name
MAX_DEPTH = 32  # nesting of lists and dicts (a checkpoint needs 5)
MAX_MEMBERS = 10_000  # parts of the zip archive (one per tensor, plus 6)
MAX_ABS_WEIGHT = 1e9  # |weight|: float32 products overflow to inf/NaN from ~1e19
# The pickle (the archive's data.pkl: ids, titles, config, history) and the tensors, per item
# of the catalogue plus a base (a training history of ~35k steps at 55 bytes a step; dense
# layers of 4,096 x 4,096). The sample's pickle takes 64 bytes an item with its history.
# Unpickling (weights-only, in Python) costs ~0.7 us and up to ~100 bytes of memory per byte
# of pickle, so these caps are what bound a crafted pickle's time and memory: a 10M-id list
# (20 MB of references to one string) is over them and refused before it is read.
PICKLE_BASE_BYTES = 2 * 2**20
PICKLE_BYTES_PER_ITEM = 256
MAX_PICKLE_BYTES = 16 * 2**20
TENSOR_BASE_BYTES = 64 * 2**20
TENSOR_BYTES_PER_ITEM = 64 * 2**10
# A new-item model ("cold": "items") scores users: its per-user tables and the raw user ids.
TENSOR_BYTES_PER_USER = 4 * 2**10
PICKLE_BYTES_PER_USER = 64


@dataclass(frozen=True)
class CheckpointLimits:
    """Bounds on what a checkpoint file may declare; checked before anything is built."""

    max_items: int = MAX_ITEMS
    max_users: int = MAX_USERS
    max_uncompressed_bytes: int = DEFAULT_MAX_BYTES  # all zip members together, unpacked
    max_pickle_bytes: int = MAX_PICKLE_BYTES
    max_genres: int = MAX_GENRES
    max_factors: int = MAX_FACTORS
    max_embedding_dim: int = MAX_EMBEDDING_DIM
    max_hidden_width: int = MAX_HIDDEN_WIDTH
    max_layers: int = MAX_LAYERS
    max_inner_steps: int = MAX_INNER_STEPS
    max_text_chars: int = MAX_TEXT_CHARS
    max_depth: int = MAX_DEPTH
    max_members: int = MAX_MEMBERS
    max_abs_weight: float = MAX_ABS_WEIGHT
    # the active dataset's item count, in messages ("for the active dataset's 1,682 items")
    for_items: int | None = None

    @classmethod
    def for_dataset(
        cls, data: RatingsDataset | None, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> CheckpointLimits:
        """Limits for a checkpoint of `data`'s catalogue (or of any, without `data`)."""
        if data is None:
            items, users, for_items = MAX_ITEMS, 0, None
        else:
            # A model of another, not much larger catalogue still reads far enough to be told
            # apart by its item count; the bases cover that.
            items, for_items = int(data.n_items), int(data.n_items)
            users = int(data.n_users)  # a new-item model stores per-user tables and user ids
        tensors = min(
            max_bytes,
            TENSOR_BASE_BYTES + items * TENSOR_BYTES_PER_ITEM + users * TENSOR_BYTES_PER_USER,
        )
        pickled = min(
            MAX_PICKLE_BYTES,
            PICKLE_BASE_BYTES + items * PICKLE_BYTES_PER_ITEM + users * PICKLE_BYTES_PER_USER,
        )
        return cls(
            max_items=MAX_ITEMS,
            max_uncompressed_bytes=tensors + pickled,
            max_pickle_bytes=pickled,
            for_items=for_items,
        )


def _count(n: int) -> str:
    """An integer for a message; a crafted one may have more digits than str() allows."""
    return f"{n:,}" if abs(n) < 10**30 else ("more than 10^30" if n > 0 else "less than -10^30")


@dataclass(frozen=True, eq=False)
class LoadedCheckpoint:
    """A checkpoint read back: the fitted method and what it was trained on."""

    learner: Recommender
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
    # The inner user indices it was trained and validated on (None: format 1, not stored).
    train_users: np.ndarray | None = None
    val_users: np.ndarray | None = None
    # What the model takes new: "users" (a `Recommender`) or "items" (an `ItemRecommender`,
    # which scores users: `user_ids` are the raw user ids in its inner order).
    cold: str = "users"
    user_ids: np.ndarray | None = None

    def user_index(self) -> dict[str, int]:
        """Raw user id -> inner index (an item model's; {} for a user model)."""
        return {} if self.user_ids is None else {str(u): i for i, u in enumerate(self.user_ids)}

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


def _users(users: np.ndarray | None, data: RatingsDataset, what: str) -> Any:
    import torch

    if users is None:
        return None
    u = np.asarray(users, dtype=np.int64).ravel()
    if len(u) and (u.min() < 0 or u.max() >= data.n_users):
        raise ValueError(f"{what} users must be inner user indices in [0, {data.n_users:,})")
    return torch.from_numpy(np.ascontiguousarray(u))


def _payload(
    learner: Recommender,
    data: RatingsDataset,
    train_users: np.ndarray | None = None,
    val_users: np.ndarray | None = None,
) -> dict[str, Any]:
    if not learner.fitted_:
        raise ValueError(f"{type(learner).__name__} is not fitted; train it before saving")
    if learner.capabilities.cold == "items":
        return _item_payload(learner, data)
    if learner.n_items != data.n_items:
        raise ValueError(
            f"the model scores {learner.n_items:,} items but the dataset has {data.n_items:,}; "
            "save it with the dataset it was trained on"
        )
    meta = learner.capabilities.meta_learned
    # a meta-learner is saved under its preset's name and with its settings and best check
    config = learner.config if meta else None
    state = learner.to_state()
    history = state.get("history") or [] if meta else []
    maes = [h["val_mae"] for h in history if h.get("val_mae") is not None]
    return _payload_common(
        learner,
        data,
        state,
        algorithm=config.algorithm if meta else None,
        method=config.name if meta else learner.name,
        config=_plain(config, "config") if meta else {},
        best_val_mae=float(min(maes)) if maes else None,
        users={
            "train": _users(train_users, data, "training"),
            "validation": _users(val_users, data, "validation"),
        },
    )


def _item_payload(learner: Any, data: RatingsDataset) -> dict[str, Any]:
    """The payload of an item cold-start method (``"cold": "items"``): as a user model's, with
    the raw user ids (the model scores users) and no user split."""
    if (learner.n_items_, learner.n_users_) != (data.n_items, data.n_users):
        raise ValueError(
            f"the model was fitted on {learner.n_users_:,} users and {learner.n_items_:,} items "
            f"but the dataset has {data.n_users:,} and {data.n_items:,}; save it with the "
            "dataset it was trained on"
        )
    out = _payload_common(learner, data)
    inner = getattr(learner, "learner_", None)  # an item meta-learner's transposed learner
    out.update(
        cold="items",
        algorithm=getattr(learner, "algorithm", None),
        method=learner.name,
        config={"seed": int(learner.seed)},
        best_val_mae=None if inner is None else getattr(inner, "best_val_mae_", None),
        users={"train": None, "validation": None},
        user_ids=[str(x) for x in data.user_ids],
    )
    return out


def _payload_common(
    learner: Any, data: RatingsDataset, state: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    """What every payload holds: header, state (`learner.to_state()` unless given), the
    method's own `fields`, dataset, scale and item index."""
    from metarec_core import __version__

    items = data.items
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "library_version": __version__,
        "learner": learner.to_state() if state is None else state,
        **fields,
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
            "genres": None if items is None else _genres(items.genres),
        },
    }


def _genres(genres: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(genres, dtype=bool))


def to_bytes(
    learner: Recommender,
    data: RatingsDataset,
    *,
    train_users: np.ndarray | None = None,
    val_users: np.ndarray | None = None,
) -> bytes:
    """The checkpoint file's bytes (for a download button); see `save_checkpoint`."""
    import torch

    buf = io.BytesIO()
    torch.save(_payload(learner, data, train_users, val_users), buf)
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


def save_checkpoint(
    learner: Recommender,
    data: RatingsDataset,
    path: str | Path,
    *,
    train_users: np.ndarray | None = None,
    val_users: np.ndarray | None = None,
) -> Path:
    """Write one checkpoint file for a fitted method trained on `data`; returns the path.

    `train_users` and `val_users` (inner indices of `data`) are stored with it, so that the
    users it never trained on are known when it is loaded. The file is written to a temporary
    name and renamed, so a crash never leaves a half file.
    """
    path = Path(path)
    raw = to_bytes(learner, data, train_users=train_users, val_users=val_users)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, raw)
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


def _zip_entry_count(raw: bytes) -> int | None:
    """The entry count in the zip's end record (None if there is none), before parsing it all."""
    import struct

    at = raw.rfind(b"PK\x05\x06", max(0, len(raw) - 65_557))
    if at < 0 or at + 22 > len(raw):
        return None
    entries = struct.unpack_from("<H", raw, at + 10)[0]
    locator = at - 20
    if entries == 0xFFFF and locator >= 0 and raw[locator : locator + 4] == b"PK\x06\x07":
        record = struct.unpack_from("<Q", raw, locator + 8)[0]  # the zip64 end record
        if record + 40 <= len(raw) and raw[record : record + 4] == b"PK\x06\x06":
            entries = struct.unpack_from("<Q", raw, record + 32)[0]
    return int(entries)


def _check_sizes(
    zf: zipfile.ZipFile, raw: bytes, label: str, limits: CheckpointLimits
) -> tuple[int, int]:
    """Refuse members that would unpack to more than the limits.

    Returns the pickle's (data.pkl) and all members' unpacked sizes.

    The sizes are those the archive declares, which PyTorch trusts for its allocations and
    which no reader unpacks beyond, so a deflate bomb is refused without inflating a byte.
    """
    total, pickled = 0, 0
    for info in zf.infolist():
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CheckpointError(
                f"{label}: the file is damaged or was not saved by PyTorch: its part "
                f"{info.filename[:80]!r} uses compression method {info.compress_type}"
            )
        total += info.file_size
        if info.filename.endswith("/data.pkl") or info.filename == "data.pkl":
            pickled = max(pickled, info.file_size)
    for size, cap, what in (
        (pickled, limits.max_pickle_bytes, "its item list, settings and history (data.pkl)"),
        (total, limits.max_uncompressed_bytes, "its contents"),
    ):
        if size > cap:
            dataset = (
                ""
                if limits.for_items is None
                else f" for a model of the active dataset's {limits.for_items:,} items"
            )
            raise CheckpointError(
                f"{label}: refusing the checkpoint: {what} would unpack to {_count(size)} bytes "
                f"({len(raw):,} bytes in the file), over the limit of {cap:,} bytes{dataset}. "
                "A MetaRec checkpoint is far smaller; this file is not one, or it is damaged"
            )
    return pickled, total


def _check_container(
    raw: bytes, label: str, limits: CheckpointLimits | None = None
) -> tuple[int, int]:
    """Tell apart 'not a torch file', 'truncated' and 'damaged' before torch sees the bytes.

    Also refuses an archive that would unpack to more than `limits` allow (before reading any
    member); returns the unpacked sizes of its pickle (data.pkl; 0 if none) and of all members.
    """
    limits = limits or CheckpointLimits()
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
    entries = _zip_entry_count(raw)
    if entries is not None and entries > limits.max_members:
        raise CheckpointError(
            f"{label}: refusing the checkpoint: its archive declares {_count(entries)} parts, "
            f"over the limit of {limits.max_members:,} (a MetaRec checkpoint has a few dozen)"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            sizes = _check_sizes(zf, raw, label, limits)
            bad = zf.testzip()  # reads every member and checks its CRC-32
    except CheckpointError:
        raise
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
    return sizes


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


def _method_class(
    state: dict[str, Any], method: Any, version: int, label: str, cold: str = "users"
) -> type:
    """The class that rebuilds `state`: a meta-learner's state says so itself (format 1 has
    no other kind); any other is the registered method the checkpoint names (for `cold`)."""
    from metarec_core.methods import registry
    from metarec_core.methods.meta import STATE_FORMAT, MetaLearner

    if cold == "users" and (state.get("format") == STATE_FORMAT or version < 2):
        return MetaLearner
    if not isinstance(method, str):
        raise CheckpointError(f"{label}: the checkpoint is damaged: it names no method")
    try:
        return registry.method_class(method, cold)
    except ValueError:
        what = "method" if cold == "users" else "new-item method"
        raise CheckpointError(
            f"{label}: the checkpoint holds a {method[:60]!r} model, a {what} this MetaRec does "
            f"not know (it knows {', '.join(registry.available_methods(cold=cold))})"
        ) from None


def _learner_from_state(state: dict[str, Any], cls: type, device: str = "cpu") -> Any:
    return cls.from_state(state, device=device)


def _check_users(
    value: Any, label: str, what: str, n_users: int, limits: CheckpointLimits
) -> np.ndarray | None:
    """Stored user indices: a 1-D integer tensor of distinct users of the training dataset."""
    import torch

    if value is None:
        return None
    where = f"users.{what}"
    if not isinstance(value, torch.Tensor) or value.dtype != torch.int64 or value.dim() != 1:
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: {where} is not a list of user indices"
        )
    if value.numel() > min(n_users, limits.max_users):
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: {where} lists {value.numel():,} users, more "
            f"than its dataset's {n_users:,}"
        )
    u = value.numpy().astype(np.int64, copy=True)
    if len(u) and (u.min() < 0 or u.max() >= n_users or len(np.unique(u)) != len(u)):
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: {where} holds indices that are not distinct "
            f"users of its dataset (0 to {n_users - 1:,})"
        )
    return u


def _trained_on(label: str, ck_name: str, n_ck: int) -> str:
    return f"{label}: the checkpoint was trained on dataset {ck_name!r} with {_count(n_ck)} items"


def _dataset_notes(
    label: str, ck_name: str, ck_fp: str, ids: np.ndarray, scale: RatingScale, data: RatingsDataset
) -> list[str]:
    """Refuse a dataset whose catalogue or scale differs; note a different ratings file.

    The item counts are already known to agree (`_check_catalogue_size`).
    """
    active = data.source or "the active dataset"
    n_data = data.n_items
    if not np.array_equal(ids, data.item_ids.astype(str)):
        differ = np.flatnonzero(ids != data.item_ids.astype(str))
        shown = ", ".join(repr(str(ids[i])[:80]) for i in differ[:_SHOW])
        raise CheckpointError(
            f"{_trained_on(label, ck_name, len(ids))}; the active dataset {active!r} also has "
            f"{n_data:,} items but {len(differ):,} of their ids differ (checkpoint ids {shown}). "
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


def _check_catalogue_size(label: str, ck_name: str, n_ck: int, data: RatingsDataset) -> None:
    """Refuse a model for another number of items before its item list is even read."""
    if n_ck != data.n_items:
        active = data.source or "the active dataset"
        raise CheckpointError(
            f"{_trained_on(label, ck_name, n_ck)}; the active dataset {active!r} has "
            f"{data.n_items:,} items. Load the dataset the model was trained on, or train a new "
            "model"
        )


# ------------------------------------------------------------------- bounding what was read
_TENSOR_DTYPES = frozenset(
    (
        "torch.float16",
        "torch.bfloat16",
        "torch.float32",
        "torch.float64",
        "torch.bool",
        "torch.uint8",
        "torch.int8",
        "torch.int16",
        "torch.int32",
        "torch.int64",
    )
)


_TEXT = frozenset((str, bytes, bytearray))
_SCALARS = frozenset((int, float, bool, complex, type(None)))
_PLACE_DEPTH = 4  # places in messages name this many levels ("learner.model['x']"), then stop


def _key(where: str, k: Any, depth: int) -> str:
    """The place of d[k] inside the place `where` of d, for messages."""
    if depth > _PLACE_DEPTH:
        return where
    if isinstance(k, str) and len(k) <= 60:
        if k.isidentifier():
            return f"{where}.{k}" if where else k
        return f"{where}[{k!r}]"
    return f"{where}[…]"


def _check_structure(
    obj: Any, label: str, limits: CheckpointLimits, pickle_bytes: int, tensor_bytes: int
) -> list[tuple[str, Any]]:
    """Walk what was unpickled, iteratively and within bounds, before anything expands it.

    Every occurrence counts: a list referenced twice counts twice, as ``str()`` would print
    it, so shared references ("billion laughs") are refused here and not in ``str()``. A
    pickle of N bytes holds at most about N values and N characters unless it shares them.
    Tensors must be dense CPU tensors of plain types that store every value they declare (no
    zero-stride views of a few bytes declaring gigabytes). Returns the tensors with their
    places ("learner.model['head.out.weight']").
    """
    import torch

    max_nodes = 2 * pickle_bytes + 100_000
    max_chars = 4 * pickle_bytes + 100_000
    max_values = tensor_bytes + 2**20  # bytes of tensor values, every occurrence counted
    nodes, chars, values = 1, 0, 0
    tensors: list[tuple[str, Any]] = []
    stack: list[tuple[Any, int, str]] = [(obj, 0, "")]
    while stack:
        value, depth, where = stack.pop()
        place = where or "its top level"
        if type(value) in _TEXT:
            chars += len(value)
        elif isinstance(value, dict | list | tuple | set | frozenset):
            if depth >= limits.max_depth:
                raise CheckpointError(
                    f"{label}: refusing the checkpoint: {place} is nested more than "
                    f"{limits.max_depth} levels deep (a MetaRec checkpoint needs 5)"
                )
            is_dict = isinstance(value, dict)
            # Count the children before visiting them, so a shared list is refused at once.
            nodes += 2 * len(value) if is_dict else len(value)
            if nodes > max_nodes:
                raise CheckpointError(
                    f"{label}: refusing the checkpoint: it holds more than {max_nodes:,} values "
                    f"(its lists share and repeat parts; a {pickle_bytes:,}-byte MetaRec "
                    "checkpoint holds fewer); it is damaged or crafted"
                )
            named = depth < _PLACE_DEPTH
            for i, child in enumerate(value.items() if is_dict else value):
                for v in child if is_dict else (child,):
                    kind = type(v)
                    if kind in _TEXT:  # leaves are handled here: most children are leaves
                        chars += len(v)
                    elif kind not in _SCALARS:
                        if not named:
                            sub = where
                        elif is_dict:
                            sub = _key(where, child[0], depth + 1)
                        else:
                            sub = f"{where}[{i}]"
                        stack.append((v, depth + 1, sub))
        elif isinstance(value, torch.Tensor):
            if (
                value.layout != torch.strided
                or value.device.type != "cpu"
                or value.is_quantized
                or str(value.dtype) not in _TENSOR_DTYPES
            ):
                raise CheckpointError(
                    f"{label}: the checkpoint is damaged: {place} is a {value.dtype} tensor of "
                    f"layout {value.layout}; MetaRec checkpoints hold plain dense tensors"
                )
            n = value.numel()
            size = value.element_size()
            stored = (value.untyped_storage().nbytes() // size) - value.storage_offset()
            if n > max(stored, 0):
                raise CheckpointError(
                    f"{label}: refusing the checkpoint: {place} declares {_count(n)} values "
                    f"(shape {tuple(value.shape)}) but stores only {max(stored, 0):,}; it "
                    "repeats its values (a zero-stride view), which a saved model never does"
                )
            values += n * size
            if values > max_values:
                raise CheckpointError(
                    f"{label}: refusing the checkpoint: its tensors add up to more than "
                    f"{max_values:,} bytes (they repeat shared data); it is damaged or crafted"
                )
            tensors.append((where, value))
        if chars > max_chars:
            raise CheckpointError(
                f"{label}: refusing the checkpoint: its text adds up to more than "
                f"{max_chars:,} characters (it repeats shared text); it is damaged or crafted"
            )
    return tensors


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _int_field(d: dict, key: str, label: str, where: str, *, low: int, high: int, what: str) -> int:
    """d[key], an int in low..high; `what` names it in a message ("items", "factors")."""
    value = _require(d, key, int, label, where)
    if isinstance(value, bool):
        raise CheckpointError(f"{label}: the checkpoint is damaged: {where}{key!r} is a bool")
    if value > high:
        raise CheckpointError(
            f"{label}: refusing the checkpoint: it declares {_count(value)} {what} "
            f"({where}{key}), over the limit of {high:,}"
        )
    if value < low:
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: {where}{key} is {_count(value)}, "
            f"expected at least {low:,}"
        )
    return value


def _texts(
    values: Any, label: str, where: str, n: int | None, limits: CheckpointLimits
) -> np.ndarray:
    """A list of strings (ids, titles or genre names) as a str array, within the limits."""
    if not isinstance(values, list):
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: {where} is a {type(values).__name__}, "
            "expected a list of text"
        )
    if n is not None and len(values) != n:
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: it lists {len(values):,} {where} for {n:,} items"
        )
    longest = 0
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise CheckpointError(
                f"{label}: the checkpoint is damaged: {where}[{i}] is a {type(v).__name__}, "
                "expected text"
            )
        longest = max(longest, len(v))
    if longest > limits.max_text_chars:
        raise CheckpointError(
            f"{label}: refusing the checkpoint: one of its {where} has {longest:,} characters, "
            f"over the limit of {limits.max_text_chars:,}"
        )
    # numpy stores text at the longest entry's width: bound that product too
    if len(values) * max(longest, 1) * 4 > limits.max_uncompressed_bytes:
        raise CheckpointError(
            f"{label}: refusing the checkpoint: its {len(values):,} {where} of up to "
            f"{longest:,} characters would take {len(values) * longest * 4:,} bytes"
        )
    return np.asarray(values, dtype=str) if values else np.zeros(0, dtype=str)


def _scale_of(sc: dict, label: str, where: str = "") -> RatingScale:
    """The checkpoint's rating scale; an impossible one is the checkpoint's fault."""
    parts = []
    for key in ("low", "high", "step"):
        v = sc.get(key)
        if not _is_real(v) or not math.isfinite(float(v)):
            shown = repr(v) if _is_real(v) or v is None else f"a {type(v).__name__}"
            raise CheckpointError(
                f"{label}: the checkpoint's rating scale is invalid: {where}{key} is {shown}"
            )
        parts.append(float(v))
    low, high, step = parts
    if not (low < high and 0 < step <= high - low):
        raise CheckpointError(
            f"{label}: the checkpoint's rating scale is invalid: from {low:g} to {high:g} in "
            f"steps of {step:g} (the lowest rating must be below the highest and the step "
            "positive, at most their difference); the checkpoint is damaged or was not saved "
            "by MetaRec"
        )
    return RatingScale(low, high, step)


def _genres_tensor(
    value: Any, label: str, where: str, n_items: int, n_genres: int | None, limits: CheckpointLimits
) -> Any:
    """A (n_items, n_genres) tensor of item genres, or None."""
    import torch

    if value is None:
        return None
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: {where} is a {type(value).__name__}, expected "
            "a tensor of item genres"
        )
    shape = tuple(value.shape)
    if len(shape) != 2 or shape[0] != n_items or (n_genres is not None and shape[1] != n_genres):
        want = f"({n_items:,}, {'genres' if n_genres is None else f'{n_genres:,}'})"
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: item metadata misaligned ({where} has shape "
            f"{shape}, expected {want})"
        )
    if shape[1] > limits.max_genres:
        raise CheckpointError(
            f"{label}: refusing the checkpoint: it declares {shape[1]:,} genres, over the limit "
            f"of {limits.max_genres:,}"
        )
    return value


def _declared_numel(cfg: dict[str, Any], n_items: int, n_genres: int, levels: int) -> int:
    """The number of values the model and inner optimiser of `cfg` hold (models.py's layout).

    Used to refuse a configuration that declares far more than the file stores before the
    model is built; tests keep it equal to what a built learner holds.
    """
    f, e, hidden = cfg["factors"], cfg["embedding_dim"], tuple(cfg["hidden"])
    g = n_genres if cfg["use_genres"] else 0
    item_enc = 1 + n_items * (1 + f)
    head = 0
    if hidden:
        in_dim = e + (e if g else 0)
        item_enc += n_items * e + (n_items * g + g * e if g else 0) + in_dim * hidden[0] + hidden[0]
        head = (
            f * hidden[0]
            + sum(a * b + b for a, b in zip(hidden[:-1], hidden[1:], strict=True))
            + hidden[-1]
            + 1
        )
    model = item_enc + head + (f + 1) + (n_items * (f + 1) + 1 if cfg["implicit"] else 0)
    model += levels if levels else 0  # ordinal: cut0, levels - 2 gaps, spread
    adapted = f + 1
    if cfg["adapt"] in ("head", "all"):
        adapted += head
    if cfg["adapt"] == "all":
        adapted += item_enc - (n_items * g if hidden and g else 0)  # genre_weights: a buffer
    per_step = cfg["per_step_lr"] and cfg["algorithm"] == "metasgd"
    return model + adapted * ((max(cfg["inner_steps"], 1) if per_step else 1) + 2)


def _check_learner_state(
    state: dict[str, Any],
    label: str,
    n_items: int,
    scale: RatingScale,
    limits: CheckpointLimits,
) -> None:
    """Bound a MetaLearner state's declared sizes by the limits and by what the file stores."""
    import torch

    from metarec_core.methods.baselines import level_grid

    where = "learner."
    cfg = _require(state, "config", dict, label, where)
    w = "learner.config."
    _int_field(cfg, "factors", label, w, low=1, high=limits.max_factors, what="user factors")
    _int_field(
        cfg,
        "embedding_dim",
        label,
        w,
        low=1,
        high=limits.max_embedding_dim,
        what="embedding dimensions",
    )
    hidden = _require(cfg, "hidden", list | tuple, label, w)
    if len(hidden) > limits.max_layers:
        raise CheckpointError(
            f"{label}: refusing the checkpoint: it declares {len(hidden):,} hidden layers, over "
            f"the limit of {limits.max_layers}"
        )
    for i, h in enumerate(hidden):
        if not _is_int(h) or not 1 <= h <= limits.max_hidden_width:
            shown = _count(h) if _is_int(h) else type(h).__name__
            raise CheckpointError(
                f"{label}: refusing the checkpoint: hidden layer {i + 1} has width {shown}; "
                f"widths must be 1 to {limits.max_hidden_width:,}"
            )
    _int_field(cfg, "inner_steps", label, w, low=0, high=limits.max_inner_steps, what="inner steps")
    for key in ("use_genres", "implicit", "per_step_lr"):
        _require(cfg, key, bool, label, w)
    for key in ("algorithm", "adapt", "outer_loss"):
        _require(cfg, key, str, label, w)
    for key, v in cfg.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise CheckpointError(f"{label}: the checkpoint is damaged: {w}{key} is {v}")
    n_state = _int_field(state, "n_items", label, where, low=0, high=limits.max_items, what="items")
    if n_state != n_items:
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: its model scores {n_state:,} items but its "
            f"item index has {n_items:,}"
        )
    sc = _require(state, "scale", list | tuple, label, where)
    if (
        len(sc) != 3
        or _scale_of(dict(zip(("low", "high", "step"), sc, strict=True)), label, where + "scale.")
        != scale
    ):
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: its model's rating scale {list(sc)[:3]} is not "
            f"the checkpoint's ({scale.low:g} to {scale.high:g})"
        )
    genres = _genres_tensor(state.get("genres"), label, "learner.genres", n_items, None, limits)
    stored = 0
    for part in ("model", "inner"):
        tensors = _require(state, part, dict, label, where)
        for k, v in tensors.items():
            if not isinstance(v, torch.Tensor):
                key = repr(k[:60]) if isinstance(k, str) else "…"
                raise CheckpointError(
                    f"{label}: the checkpoint is damaged: learner.{part}[{key}] is a "
                    f"{type(v).__name__}, not a tensor"
                )
            stored += v.numel()
    n_genres = 0 if genres is None else int(genres.shape[1])
    grid = level_grid(scale) if cfg["outer_loss"] == "ordinal" else None
    declared = _declared_numel(cfg, n_items, n_genres, 0 if grid is None else grid[2])
    if declared > 2 * stored + 4096:
        dims = (
            f"{n_items:,} items, {cfg['factors']:,} factors, embedding "
            f"{cfg['embedding_dim']:,}, layers {list(hidden)}, {cfg['inner_steps']} inner steps"
        )
        raise CheckpointError(
            f"{label}: refusing the checkpoint: its settings ({dims}) declare a model of "
            f"{_count(declared)} values, but the file stores only {stored:,}; it is damaged "
            "or crafted"
        )


def check_learner_state(
    state: dict[str, Any], n_items: int, scale: RatingScale, *, max_width: int = MAX_FACTORS
) -> None:
    """`_check_learner_state` for a MetaLearner state inside another method's state (the item
    learners'): its declared sizes against the limits and what it stores; `CheckpointError`
    (a ValueError)."""
    limits = CheckpointLimits(max_factors=min(max_width, MAX_FACTORS))
    _check_learner_state(state, "its learner", n_items, scale, limits)


def _check_weights(
    tensors: list[tuple[str, Any]], label: str, limits: CheckpointLimits, scale: RatingScale
) -> None:
    """Every learned number finite and of a sane size (NaN or 3e38 would make every score NaN)."""
    import torch

    bound = max(limits.max_abs_weight, 100 * max(abs(scale.low), abs(scale.high)))
    for where, t in tensors:
        if not where.startswith("learner") or not t.is_floating_point() or not t.numel():
            continue
        if not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(
                f"{label}: the checkpoint is damaged: {where} holds "
                f"{bad:,} NaN or infinite value(s); the model would score nothing"
            )
        top = float(t.abs().max())
        if top > bound:
            raise CheckpointError(
                f"{label}: the checkpoint is damaged: {where} holds a weight "
                f"of {top:.3g}, beyond ±{bound:.0e}; the model's scores would overflow"
            )


def load_checkpoint(
    source: CheckpointSource,
    data: RatingsDataset | None = None,
    *,
    name: str | None = None,
    strict: bool = False,
    device: str = "cpu",
    max_bytes: int = DEFAULT_MAX_BYTES,
    limits: CheckpointLimits | None = None,
    learner_from_state: Callable[[dict[str, Any]], Any] | None = None,
    cold: str | None = "users",
) -> LoadedCheckpoint:
    """Read a checkpoint from a path, bytes or a file object, safely (weights only).

    With `data`, the checkpoint's item catalogue (ids, in order) and rating scale must match
    it; a different ratings file over the same catalogue is allowed and noted in `notes`,
    unless `strict`, which requires the same dataset fingerprint. The model is rebuilt on
    `device`. `name` labels bytes in messages. Everything the file declares is bounded by
    `limits` (default: `CheckpointLimits.for_dataset(data, max_bytes)`) before it is unpacked,
    expanded or built. `cold`: the kind of model the caller can use ("users": a `Recommender`,
    the default; "items": a new-item model; None: either). Raises `CheckpointError`.
    """
    from metarec_core.methods.meta import STATE_FORMAT

    if name:
        label = name
    elif isinstance(source, str | Path):
        label = str(source)
    else:
        label = str(getattr(source, "name", "") or "the uploaded checkpoint")
    limits = limits or CheckpointLimits.for_dataset(data, max_bytes)
    raw = _read_source(source, label, max_bytes)
    pickled, unpacked = _check_container(raw, label, limits)
    obj = _torch_load(raw, label)
    tensors = _check_structure(obj, label, limits, pickled, unpacked)
    version = _check_header(obj, label)

    state = _require(obj, "learner", dict, label)
    ds = _require(obj, "dataset", dict, label)
    sc = _require(obj, "scale", dict, label)
    it = _require(obj, "items", dict, label)
    name_value = ds.get("name")
    ck_name = name_value[:200] if isinstance(name_value, str) and name_value else "(unnamed)"
    ck_fp = _require(ds, "fingerprint", str, label, "dataset.")[:200]
    declared = _require(ds, "n_items", int, label, "dataset.")
    if data is not None and _is_int(declared):  # the clearer message for another catalogue
        _check_catalogue_size(label, ck_name, declared, data)
    n_items = _int_field(
        ds, "n_items", label, "dataset.", low=0, high=limits.max_items, what="items"
    )
    ids = _texts(_require(it, "ids", list, label, "items."), label, "item ids", n_items, limits)
    scale = _scale_of(sc, label)
    titles_list = it.get("titles")
    titles = None if titles_list is None else _texts(titles_list, label, "titles", None, limits)
    genre_names = tuple(_texts(it.get("genre_names") or [], label, "genre names", None, limits))
    if len(genre_names) > limits.max_genres:
        raise CheckpointError(
            f"{label}: refusing the checkpoint: it declares {len(genre_names):,} genres, over "
            f"the limit of {limits.max_genres:,}"
        )
    if titles is not None and len(titles) != n_items:
        raise CheckpointError(f"{label}: the checkpoint is damaged: item metadata misaligned")
    genres_t = _genres_tensor(
        it.get("genres"), label, "items.genres", n_items, len(genre_names), limits
    )
    genres = None if genres_t is None else genres_t.numpy().astype(bool)
    want = cold
    cold = obj.get("cold", "users")
    if cold not in ("users", "items"):
        raise CheckpointError(f"{label}: the checkpoint is damaged: 'cold' is {str(cold)[:20]!r}")
    if want is not None and cold != want:
        raise CheckpointError(
            f"{label}: the checkpoint holds a model for new {cold}, not for new {want} "
            + (
                "(use it with `python -m metarec_core audience`)"
                if cold == "items"
                else "(a new-item model comes from `train --cold items`)"
            )
        )
    user_ids = None
    if cold == "items":
        n_users = _int_field(
            ds, "n_users", label, "dataset.", low=1, high=limits.max_users, what="users"
        )
        user_ids = _texts(
            _require(obj, "user_ids", list, label), label, "user ids", n_users, limits
        )
        if data is not None and not np.array_equal(user_ids, data.user_ids.astype(str)):
            raise CheckpointError(
                f"{_trained_on(label, ck_name, n_items)} and {n_users:,} users; the active "
                f"dataset {data.source or 'the active dataset'!r} has other users "
                f"({data.n_users:,}). A new-item model scores the users it was trained with: "
                "load that dataset, or train a new model"
            )
    cls = None
    if learner_from_state is None:
        cls = _method_class(state, obj.get("method"), version, label, cold)
    if state.get("format") == STATE_FORMAT:
        _check_learner_state(state, label, n_items, scale, limits)
    elif cls is not None:
        _check_method_state(cls, state, label, n_items, scale, limits)
    _check_weights(tensors, label, limits, scale)
    train_users, val_users = _stored_split(obj, ds, version, label, limits)

    notes: list[str] = []
    if data is not None:
        notes = _dataset_notes(label, ck_name, ck_fp, ids, scale, data)
        if notes and strict:
            raise CheckpointError(f"{label}: {notes[0]}")

    try:
        if cls is not None:
            learner = _learner_from_state(state, cls, device=device)
        else:
            learner = learner_from_state(state)
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(
            f"{label}: the checkpoint could not be turned back into a model: {_first_line(e)}"
        ) from None
    n_model = learner.n_items_ if cold == "items" else learner.n_items
    if cold == "items" and learner.n_users_ != len(user_ids):
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: its model scores {learner.n_users_:,} users "
            f"but it lists {len(user_ids):,} user ids"
        )
    if n_model != n_items:
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: its model scores {n_model:,} items but "
            f"its item index has {n_items:,}"
        )
    best = obj.get("best_val_mae")
    config = obj.get("config")
    config = config if isinstance(config, dict) else {}
    seed = config.get("seed", 0)
    if not _is_int(seed) or not 0 <= seed < 2**63:  # the app splits users by it
        shown = _count(seed) if _is_int(seed) else f"a {type(seed).__name__}"
        raise CheckpointError(f"{label}: the checkpoint is damaged: its config's seed is {shown}")

    def text(key: str) -> str | None:
        v = obj.get(key)
        return v[:200] if isinstance(v, str) else None

    def count(key: str) -> int:
        v = ds.get(key)
        return v if _is_int(v) and v >= 0 else 0

    return LoadedCheckpoint(
        learner=learner,
        item_ids=ids,
        titles=titles,
        genre_names=genre_names,
        genres=genres,
        scale=scale,
        fingerprint=ck_fp,
        dataset_name=ck_name,
        n_users=count("n_users"),
        n_ratings=count("n_ratings"),
        config=config,
        algorithm=text("algorithm"),
        method=text("method"),
        created=text("created") or "",
        format_version=version,
        library_version=text("library_version") or "",
        best_val_mae=float(best) if _is_real(best) and math.isfinite(best) else None,
        notes=tuple(notes),
        train_users=train_users,
        val_users=val_users,
        cold=cold,
        user_ids=user_ids,
    )


def _stored_split(
    obj: dict, ds: dict, version: int, label: str, limits: CheckpointLimits
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The training and validation users a checkpoint stores (format 2 on; None before)."""
    users = obj.get("users") if version >= 2 else None
    if users is None:
        return None, None
    if not isinstance(users, dict):
        raise CheckpointError(f"{label}: the checkpoint is damaged: 'users' is not a dictionary")
    n_users = _int_field(
        ds, "n_users", label, "dataset.", low=0, high=limits.max_users, what="users"
    )
    train = _check_users(users.get("train"), label, "train", n_users, limits)
    val = _check_users(users.get("validation"), label, "validation", n_users, limits)
    if train is not None and val is not None and len(np.intersect1d(train, val)):
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: some users are both training and validation users"
        )
    return train, val


def _check_method_state(
    cls: type,
    state: dict[str, Any],
    label: str,
    n_items: int,
    scale: RatingScale,
    limits: CheckpointLimits,
) -> None:
    """A registered method's state against what its class declares, before it is built."""
    try:
        cls.check_state(state, max_width=limits.max_factors)
    except ValueError as e:
        raise CheckpointError(
            f"{label}: refusing the checkpoint: its {cls.__name__} model is damaged or crafted: "
            f"{_first_line(e)}"
        ) from None
    n_state, sc = state.get("n_items"), state.get("scale")
    if _is_int(n_state) and n_state != n_items:
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: its model scores {_count(n_state)} items but "
            f"its item index has {n_items:,}"
        )
    if isinstance(sc, list) and list(sc) != [scale.low, scale.high, scale.step]:
        raise CheckpointError(
            f"{label}: the checkpoint is damaged: its model's rating scale {list(sc)[:3]} is not "
            f"the checkpoint's ({scale.low:g} to {scale.high:g})"
        )
