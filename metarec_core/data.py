"""Ratings and item metadata: loading, validation, inner ids, summary.

CONTRACT (shared by every module; do not change field names or meanings):
- Users and items get dense inner indices 0..n-1; raw ids are kept as strings.
- `RatingsDataset` arrays are aligned, one entry per (user, item) rating, duplicates removed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_MAX_BYTES = 200 * 1024 * 1024


class DataError(ValueError):
    """Bad input: the message names the file, the rows/columns and what was expected."""


@dataclass(frozen=True)
class RatingScale:
    """The rating scale of a dataset: lowest and highest value and the step between values."""

    low: float
    high: float
    step: float

    @property
    def relevant_threshold(self) -> float:
        """Ratings >= this are in the top 20% of the scale (used by recall@10)."""
        return self.high - 0.2 * (self.high - self.low)

    def clip(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, self.low, self.high)


@dataclass(frozen=True, eq=False)
class ItemInfo:
    """Display metadata aligned with the dataset's inner item indices."""

    titles: np.ndarray  # (n_items,) str; the raw id when an item has no metadata
    genre_names: tuple[str, ...]  # column names of `genres`
    genres: np.ndarray  # (n_items, n_genres) bool
    missing: int = 0  # rated items with no metadata row

    def genre_list(self, item: int) -> list[str]:
        return [g for g, flag in zip(self.genre_names, self.genres[item], strict=True) if flag]


@dataclass(frozen=True, eq=False)
class RatingsDataset:
    """A validated ratings table with dense inner ids."""

    user: np.ndarray  # (n,) int64 inner user index
    item: np.ndarray  # (n,) int64 inner item index
    rating: np.ndarray  # (n,) float32
    timestamp: np.ndarray | None  # (n,) int64 or None
    user_ids: np.ndarray  # (n_users,) str raw id of each inner user
    item_ids: np.ndarray  # (n_items,) str raw id of each inner item
    scale: RatingScale
    items: ItemInfo | None = None
    source: str = ""
    # Human-readable notes about what loading changed, each with a count
    # (e.g. "dropped 12 duplicate (user, item) pairs, keeping the last").
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_ratings(self) -> int:
        return len(self.rating)

    def fingerprint(self) -> str:
        """A stable hash of the ratings and ids (to match checkpoints to data)."""
        h = hashlib.sha256()
        for a in (self.user, self.item, self.rating):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update("\x1f".join(map(str, self.user_ids)).encode())
        h.update("\x1e".join(map(str, self.item_ids)).encode())
        return h.hexdigest()[:16]

    def user_index(self) -> tuple[np.ndarray, np.ndarray]:
        """(order, indptr): ratings of user u are `order[indptr[u]:indptr[u+1]]`, stable order."""
        order = np.argsort(self.user, kind="stable")
        counts = np.bincount(self.user, minlength=self.n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return order, indptr

    def counts_per_user(self) -> np.ndarray:
        return np.bincount(self.user, minlength=self.n_users)

    def counts_per_item(self) -> np.ndarray:
        return np.bincount(self.item, minlength=self.n_items)


@dataclass(frozen=True)
class DatasetSummary:
    """What the Data page and `validate` show."""

    source: str
    n_users: int
    n_items: int
    n_ratings: int
    scale: RatingScale
    density: float
    ratings_per_user: dict[str, float]  # min, p25, median, p75, max, mean
    ratings_per_item: dict[str, float]
    rating_counts: dict[str, int]  # rating value (as str) -> count
    notes: tuple[str, ...]
    has_items: bool
    mean_rating: float = float("nan")
    # Users with fewer than N ratings (str(N) -> count) for the thresholds the protocols use
    # (support k + query 10 for k = 1, 3, 5, 10, 20; MeLU's 13): what each protocol leaves out.
    users_fewer_than: dict[str, int] = field(default_factory=dict)
    n_genres: int = 0
    items_missing: int = 0  # rated items with no metadata row

    def to_dict(self) -> dict:
        """JSON-ready dict (the `dataset` block of evaluation reports)."""
        return {
            "source": self.source,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_ratings": self.n_ratings,
            "scale": {"low": self.scale.low, "high": self.scale.high, "step": self.scale.step},
            "density": self.density,
            "mean_rating": None if math.isnan(self.mean_rating) else self.mean_rating,
            "ratings_per_user": dict(self.ratings_per_user),
            "ratings_per_item": dict(self.ratings_per_item),
            "rating_counts": dict(self.rating_counts),
            "users_fewer_than": dict(self.users_fewer_than),
            "has_items": self.has_items,
            "n_genres": self.n_genres,
            "items_missing": self.items_missing,
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        """A few human-readable lines (what `validate` prints)."""
        s = self.scale
        step = f"step {_fmt(s.step)}" if s.step > 0 else "continuous"
        pu, pi = self.ratings_per_user, self.ratings_per_item
        lines = [
            f"{self.source}: {self.n_users:,} users, {self.n_items:,} items, "
            f"{self.n_ratings:,} ratings (density {100 * self.density:.2f}%)",
            f"scale: {_fmt(s.low)} to {_fmt(s.high)}, {step}; mean rating {self.mean_rating:.3f}",
            f"ratings per user: min {pu['min']:g}, median {pu['median']:g}, "
            f"mean {pu['mean']:.1f}, max {pu['max']:g}",
            f"ratings per item: min {pi['min']:g}, median {pi['median']:g}, "
            f"mean {pi['mean']:.1f}, max {pi['max']:g}",
            "rating counts: " + ", ".join(f"{k}: {v:,}" for k, v in self.rating_counts.items()),
        ]
        if self.users_fewer_than:
            lines.append(
                "users with fewer than N ratings: "
                + ", ".join(f"<{k}: {v:,}" for k, v in self.users_fewer_than.items())
            )
        if self.has_items:
            lines.append(
                f"item metadata: titles and {self.n_genres} genres; "
                f"{self.items_missing:,} rated items without metadata"
            )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _fmt(v: float) -> str:
    return f"{v:g}"


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

Source = str | Path | bytes

# Header names, compared after lower-casing and removing "_", "-", "." and spaces.
USER_COLUMNS = ("user", "userid", "uid", "users", "reviewerid", "customerid")
ITEM_COLUMNS = (
    "item",
    "itemid",
    "movieid",
    "iid",
    "items",
    "product",
    "productid",
    "asin",
    "bookid",
    "isbn",
)
RATING_COLUMNS = ("rating", "score", "ratings", "stars", "rate")
TIMESTAMP_COLUMNS = ("timestamp", "time", "ts", "unixtime", "datetime", "date")
TITLE_COLUMNS = ("title", "name", "movietitle", "itemtitle", "itemname", "moviename")
GENRE_COLUMNS = ("genres", "genre", "categories", "category")

# The 19 genre flags of MovieLens-100K's u.item, in column order (as in its u.genre).
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
NO_GENRES = "(no genres listed)"  # MovieLens' marker for an item without genres

# Delimiters tried in this order; the first that splits the sample consistently wins.
_DELIMITERS = ("::", "\t", ",", ";", "|", " ")
_DELIM_NAMES = {"::": "'::'", "\t": "tabs", ",": "','", ";": "';'", "|": "'|'", " ": "spaces"}
_SNIFF_LINES = 500
_SHOW = 5  # rows / values quoted in an error message


def _norm(name: str) -> str:
    return "".join(ch for ch in name.strip().strip("\"'").lower() if ch not in "_- .")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


class _Rows:
    """Names data rows in messages: 1-based file line numbers, or 0-based array positions."""

    def __init__(self, lines: np.ndarray | None) -> None:
        self.lines = lines  # file line of each data row; None for in-memory arrays

    def __call__(self, idx: np.ndarray) -> str:
        idx = np.asarray(idx)
        shown = idx[:_SHOW]
        if self.lines is None:
            head = "positions " if len(idx) > 1 else "position "
            nums = [str(int(i)) for i in shown]
        else:
            head = "lines " if len(idx) > 1 else "line "
            nums = [str(int(self.lines[i])) for i in shown]
        more = f" (and {len(idx) - len(shown):,} more)" if len(idx) > len(shown) else ""
        return head + ", ".join(nums) + more


def _examples(values: object) -> str:
    return ", ".join(repr(str(v)) for v in list(values)[:_SHOW])  # type: ignore[call-overload]


def _label(source: Source, name: str | None, default: str) -> str:
    if name:
        return name
    if isinstance(source, str | Path):
        return Path(source).name
    return default


def _read_bytes(source: Source, label: str, max_bytes: int) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        raw = bytes(source)
        size = len(raw)
    else:
        size = Path(source).stat().st_size  # a missing file is an OSError for the caller
        raw = b"" if size > max_bytes else Path(source).read_bytes()
    if size > max_bytes:
        raise DataError(
            f"{label}: the file is {size:,} bytes, over the size limit of {max_bytes:,} bytes; "
            "use a smaller file or raise the limit"
        )
    return raw


_MAGIC = {
    b"\x1f\x8b": "a gzip archive",
    b"PK\x03\x04": "a zip archive (or an Excel .xlsx file)",
    b"PAR1": "a Parquet file",
    b"\xd0\xcf\x11\xe0": "an old Excel/Office file",
    b"BZh": "a bzip2 archive",
    b"\xfd7zXZ": "an xz archive",
    b"\x89PNG": "a PNG image",
    b"%PDF": "a PDF document",
    b"\x80\x02": "a Python pickle",
    b"\x80\x04": "a Python pickle",
}
_CTRL = bytes([*range(1, 9), 11, *range(14, 32), 127])


def _decode(raw: bytes, label: str, notes: list[str]) -> str:
    """Bytes to text: UTF-8 (BOM allowed), UTF-16 with a BOM, else latin-1; binary is refused."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            pass
    for magic, what in _MAGIC.items():
        if raw.startswith(magic):
            raise DataError(
                f"{label}: this looks like {what}, not a text table; expected CSV/TSV text"
            )
    head = raw[:65536]
    nul = head.find(b"\x00")
    # Control bytes other than tab, CR, LF and form feed do not occur in text tables.
    n_ctrl = len(head) - len(head.translate(None, _CTRL))
    if nul >= 0 or n_ctrl > max(2, len(head) // 200):
        found = f"a NUL byte at offset {nul}" if nul >= 0 else f"{n_ctrl} control bytes"
        raise DataError(
            f"{label}: this is binary data, not a text table (found {found} in the first "
            "64 KiB); expected CSV/TSV text"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        notes.append(f"{label} is not valid UTF-8 (byte {e.start:,}); decoded it as latin-1")
        return raw.decode("latin-1")


def _split_line(line: str, delim: str) -> list[str]:
    if delim == " ":
        return line.split()
    if delim in (",", ";"):
        return next(csv.reader([line], delimiter=delim, skipinitialspace=True), [])
    return line.split(delim)


def _sniff(lines: list[str], min_fields: int) -> tuple[str, int] | None:
    """The first delimiter that splits most sample lines into the same number of fields, at
    least `min_fields`; with that number. None when no candidate does."""
    for delim in _DELIMITERS:
        if delim == "::" and not any("::" in ln for ln in lines):
            continue
        counts = Counter(len(_split_line(ln, delim)) for ln in lines)
        n, hits = counts.most_common(1)[0]
        # Half the lines, not all: a few malformed rows are reported later with line numbers.
        if n >= min_fields and hits >= 0.5 * len(lines):
            return delim, n
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass
class _Table:
    """A parsed text table: string columns, the header (or None) and each row's file line."""

    frame: pd.DataFrame
    header: list[str] | None
    delim: str
    rows: _Rows


def _sample_lines(text: str) -> tuple[list[str], int]:
    """The first non-blank lines, and the number of blank lines before them."""
    lines: list[str] = []
    lead = 0
    for ln in io.StringIO(text):
        if ln.strip():
            lines.append(ln.rstrip("\r\n"))
            if len(lines) >= _SNIFF_LINES:
                break
        elif not lines:
            lead += 1
    return lines, lead


def _bad_field_counts(text: str, delim: str, expected: int, skip: int) -> list[tuple[int, int]]:
    """(line number, field count) of the non-blank data lines without `expected` fields."""
    bad = []
    if delim in (",", ";"):
        reader = csv.reader(io.StringIO(text), delimiter=delim, skipinitialspace=True)
        for fields in reader:
            blank = not any(f.strip() for f in fields)
            if reader.line_num > skip and not blank and len(fields) != expected:
                bad.append((reader.line_num, len(fields)))
    else:
        for num, ln in enumerate(io.StringIO(text), start=1):
            if num > skip and ln.strip():
                n = len(_split_line(ln.rstrip("\r\n"), delim))
                if n != expected:
                    bad.append((num, n))
    return bad


def _malformed(label: str, bad: list[tuple[int, int]], expected: int, delim: str) -> DataError:
    shown = ", ".join(f"line {n} has {_plural(c, 'field')}" for n, c in bad[:_SHOW])
    more = f" (and {len(bad) - _SHOW:,} more)" if len(bad) > _SHOW else ""
    return DataError(
        f"{label}: {_plural(len(bad), 'malformed row')}: {shown}{more}; expected {expected} "
        f"fields separated by {_DELIM_NAMES[delim]} on every line"
    )


def _parse_table(text: str, label: str, *, min_fields: int, header_fn, what: str) -> _Table:
    """Split text into a DataFrame of strings, detecting the delimiter and the header.

    `header_fn(first_fields, second_fields) -> bool` decides whether line 1 is a header.
    """
    lines, lead = _sample_lines(text)
    if not lines:
        raise DataError(f"{label}: the file is empty; expected {what}")
    sniffed = _sniff(lines, min_fields)
    if sniffed is None:
        raise DataError(
            f"{label}: could not split line {lead + 1} ({lines[0][:80]!r}) into at least "
            f"{min_fields} fields with ',', tabs, ';', '|', '::' or spaces; expected {what}"
        )
    delim, n_fields = sniffed
    first = _split_line(lines[0], delim)
    second = _split_line(lines[1], delim) if len(lines) > 1 else []
    header = [f.strip().strip("\"'") for f in first] if header_fn(first, second) else None
    if header is not None and len(lines) == 1:
        raise DataError(
            f"{label}: the file has a header ({', '.join(header)}) but no data rows; "
            f"expected {what}"
        )
    skip = lead + (header is not None)  # physical lines before data row 0
    expected = len(header) if header is not None else n_fields
    body, sep = text, delim
    if delim == "::":
        # The fast C parser takes one-character separators; \x1f cannot occur (binary check).
        body, sep = text.replace("::", "\x1f"), "\x1f"
    elif delim == " ":
        sep = r"\s+"
    try:
        frame = pd.read_csv(
            io.StringIO(body),
            sep=sep,
            header=None,
            names=list(range(expected)),
            skiprows=skip,
            dtype=str,
            na_filter=False,
            skip_blank_lines=False,  # keeps row i on line skip + 1 + i
            skipinitialspace=delim != " ",
            quoting=csv.QUOTE_MINIMAL if delim in (",", ";") else csv.QUOTE_NONE,
            engine="c",
        )
    except pd.errors.ParserError as e:
        bad = _bad_field_counts(text, delim, expected, skip)
        if bad:
            raise _malformed(label, bad, expected, delim) from None
        raise DataError(f"{label}: could not parse the file ({e}); expected {what}") from None
    frame = pd.DataFrame({c: frame[c].str.strip() for c in frame.columns})
    filled = np.column_stack([(frame[c] != "").to_numpy() for c in frame.columns])
    blank = ~filled.any(axis=1)
    # A short row is padded with empty fields by the parser: find it by its field count.
    if (~filled[~blank]).any():
        bad = _bad_field_counts(text, delim, expected, skip)
        if bad:
            raise _malformed(label, bad, expected, delim)
    line_of = np.arange(len(frame), dtype=np.int64) + skip + 1
    if blank.any():
        frame = frame.loc[~blank].reset_index(drop=True)
        line_of = line_of[~blank]
    if len(frame) == 0:
        raise DataError(f"{label}: the file has no data rows; expected {what}")
    return _Table(frame, header, delim, _Rows(line_of))


def _find_column(
    header: list[str], names: Sequence[str], role: str, label: str, required: bool
) -> int | None:
    hits = [i for i, h in enumerate(header) if _norm(h) in names]
    if len(hits) > 1:
        cols = " and ".join(f"{header[i]!r} (column {i + 1})" for i in hits)
        raise DataError(
            f"{label}: ambiguous columns: {cols} could each be the {role}; "
            "rename or remove all but one"
        )
    if not hits:
        if required:
            raise DataError(
                f"{label}: no {role} column: found columns {', '.join(map(repr, header))}; "
                f"expected one named like {'/'.join(names[:3])} (case, '_' and '-' ignored)"
            )
        return None
    return hits[0]


def _to_numeric(col: pd.Series) -> np.ndarray:
    """Numbers from strings; NaN where a value is not a number."""
    try:  # fast path: pyarrow's cast, ~20x faster than to_numeric; raises on any bad value
        fast = col.astype("float64[pyarrow]")
        return np.asarray(fast.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    except Exception:  # no pyarrow, or a bad value: the slow path finds it
        num = pd.to_numeric(col, errors="coerce")
        return np.asarray(num.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _parse_timestamps(col: pd.Series, name: str, label: str, rows: _Rows) -> np.ndarray:
    col = col.astype(str).str.strip()
    nums = _to_numeric(col)
    ok = np.isfinite(nums)
    if ok.all():
        return nums.astype(np.int64)
    if ok.mean() >= 0.5:  # mostly Unix seconds: the rest are the errors
        bad, expected = np.flatnonzero(~ok), "Unix seconds like the other rows"
    else:  # dates ("2020-01-31 12:00") become seconds since 1970
        when = pd.to_datetime(col, errors="coerce", utc=True, format="mixed")
        bad, expected = np.flatnonzero(when.isna().to_numpy()), "dates or Unix seconds"
        if not len(bad):
            secs = (when - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
            return secs.to_numpy().astype(np.int64)
    raise DataError(
        f"{label}: column {name}: {_plural(len(bad), 'timestamp')} not understood at "
        f"{rows(bad)}: found {_examples(col.iloc[bad])}; expected {expected}"
    )


def _detect_scale(values: np.ndarray) -> RatingScale:
    uniq = np.unique(values)
    low, high = float(uniq[0]), float(uniq[-1])
    for step in (1.0, 0.5, 0.25, 0.2, 0.1, 0.05, 0.01):
        q = uniq / step
        if np.all(np.abs(q - np.round(q)) < 1e-6):
            return RatingScale(low, high, step)
    return RatingScale(low, high, 0.0)  # continuous ratings


def _check_scale(
    values: np.ndarray, scale: RatingScale, name: str, label: str, rows: _Rows
) -> None:
    eps = 1e-6 * max(1.0, abs(scale.high), abs(scale.low))
    bad = np.flatnonzero((values < scale.low - eps) | (values > scale.high + eps))
    expect = f"the declared scale {_fmt(scale.low)} to {_fmt(scale.high)}"
    if scale.step > 0:
        expect += f" in steps of {_fmt(scale.step)}"
        if not len(bad):
            q = (values - scale.low) / scale.step
            bad = np.flatnonzero(np.abs(q - np.round(q)) > 1e-6)
    if len(bad):
        raise DataError(
            f"{label}: column {name}: {_plural(len(bad), 'rating')} outside {expect} at "
            f"{rows(bad)}: found {_examples(_fmt(v) for v in values[bad])}"
        )


def _sorted_ids(codes: np.ndarray, uniques: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber factorized ids so that inner order follows the raw ids: numerically when every
    id is an integer (MovieLens item "2" before "10"), else as strings."""
    uniques = np.asarray(uniques, dtype=str)
    digits = np.char.isdigit(np.char.lstrip(uniques, "-")) & (np.char.str_len(uniques) < 18)
    if len(uniques) and digits.all():
        order = np.lexsort((uniques, uniques.astype(np.int64)))
    else:
        order = np.argsort(uniques, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], uniques[order]


def _build(
    users: pd.Series,
    items: pd.Series,
    ratings: pd.Series,
    timestamps: pd.Series | None,
    *,
    label: str,
    rows: _Rows,
    names: tuple[str, str, str, str],
    scale: RatingScale | None,
    notes: list[str],
) -> RatingsDataset:
    """Validate aligned raw columns and turn them into a RatingsDataset (no item metadata)."""
    n_user, n_item, n_rating, n_time = names
    users = users.astype(str).str.strip()
    items = items.astype(str).str.strip()
    for col, role, name in ((users, "user", n_user), (items, "item", n_item)):
        bad = np.flatnonzero((col == "").to_numpy())
        if len(bad):
            raise DataError(
                f"{label}: column {name}: {_plural(len(bad), f'empty {role} id')} at "
                f"{rows(bad)}; every rating needs a {role}"
            )
    values = _to_numeric(ratings.str.strip() if ratings.dtype != np.float64 else ratings)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise DataError(
            f"{label}: column {n_rating}: {_plural(len(bad), 'rating')} "
            f"{'is' if len(bad) == 1 else 'are'} not a finite number at {rows(bad)}: "
            f"found {_examples(ratings.iloc[bad])}; expected numbers such as 4 or 3.5"
        )
    # ratings are kept as float32, where a larger number would become inf
    top = float(np.finfo(np.float32).max)
    bad = np.flatnonzero(np.abs(values) > top)
    if len(bad):
        raise DataError(
            f"{label}: column {n_rating}: {_plural(len(bad), 'rating')} too large at "
            f"{rows(bad)}: found {_examples(ratings.iloc[bad])}; ratings must lie within "
            f"±{top:.3g}"
        )
    if scale is not None:
        _check_scale(values, scale, n_rating, label, rows)
    ts = None if timestamps is None else _parse_timestamps(timestamps, n_time, label, rows)

    ucodes, uuniq = pd.factorize(users)
    icodes, iuniq = pd.factorize(items)
    ucodes = np.asarray(ucodes, dtype=np.int64)
    icodes = np.asarray(icodes, dtype=np.int64)
    dup = pd.Series(ucodes * max(1, len(iuniq)) + icodes).duplicated(keep="last").to_numpy()
    if dup.any():
        notes.append(
            f"dropped {_plural(int(dup.sum()), 'duplicate (user, item) rating')}, keeping the "
            f"last of each pair (dropped copies at {rows(np.flatnonzero(dup))})"
        )
        # Every pair keeps its last copy, so no user or item disappears.
        keep = ~dup
        ucodes, icodes, values = ucodes[keep], icodes[keep], values[keep]
        ts = None if ts is None else ts[keep]
    user, user_ids = _sorted_ids(ucodes, np.asarray(uuniq))
    item, item_ids = _sorted_ids(icodes, np.asarray(iuniq))
    return RatingsDataset(
        user=user,
        item=item,
        rating=values.astype(np.float32),
        timestamp=ts,
        user_ids=user_ids,
        item_ids=item_ids,
        scale=scale if scale is not None else _detect_scale(values),
        source=label,
        notes=tuple(notes),
    )


def load_ratings(
    source: Source,
    *,
    name: str | None = None,
    items: Source | None = None,
    items_name: str | None = None,
    scale: RatingScale | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> RatingsDataset:
    """Load ratings and optional item metadata from paths or raw bytes (uploads).

    Reads a delimited text file with a header naming the user, item, rating (and optional
    timestamp) columns, or a headerless ``user item rating [timestamp]`` file such as
    MovieLens ``u.data`` (tabs) or ``ratings.dat`` (``::``). Delimiter, header and encoding
    (UTF-8, UTF-8 with BOM, UTF-16 with BOM, else latin-1) are detected.
    `name`/`items_name` label bytes sources in error messages (default: the path's name).
    `scale`, when given, is the declared scale: ratings outside it or off its step are a
    DataError; otherwise low, high and step are detected from the ratings.
    Duplicate (user, item) pairs keep the last rating; the count goes into `notes`.
    Raises DataError for any bad input; a missing path raises FileNotFoundError.
    """
    label = _label(source, name, "ratings")
    notes: list[str] = []
    text = _decode(_read_bytes(source, label, max_bytes), label, notes)
    what = "columns user, item, rating[, timestamp], with or without a header"

    def is_header(first: list[str], second: list[str]) -> bool:
        known = {*USER_COLUMNS, *ITEM_COLUMNS, *RATING_COLUMNS, *TIMESTAMP_COLUMNS}
        if any(_norm(f) in known for f in first):
            return True
        # No number at all on line 1 above a numeric rating on line 2: an unknown header.
        if len(second) > 2 and _is_number(second[2]) and not any(map(_is_number, first)):
            raise DataError(
                f"{label}: line 1 looks like a header ({', '.join(first)}) but none of its "
                "columns is recognised; expected names like user/user_id/userId, "
                "item/item_id/movieId and rating/score"
            )
        return False

    table = _parse_table(text, label, min_fields=3, header_fn=is_header, what=what)
    frame = table.frame
    if table.header is not None:
        h = table.header
        cols = [
            _find_column(h, USER_COLUMNS, "user", label, True),
            _find_column(h, ITEM_COLUMNS, "item", label, True),
            _find_column(h, RATING_COLUMNS, "rating", label, True),
            _find_column(h, TIMESTAMP_COLUMNS, "timestamp", label, False),
        ]
        names = tuple(repr(h[c]) if c is not None else "" for c in cols)
    else:
        n = frame.shape[1]
        if n > 4:
            raise DataError(
                f"{label}: {n} fields per line and no header; without a header the columns "
                "must be user, item, rating[, timestamp]; add a header line naming them"
            )
        cols = [0, 1, 2, 3 if n == 4 else None]
        names = ("1 (user)", "2 (item)", "3 (rating)", "4 (timestamp)")
    data = _build(
        frame[cols[0]],
        frame[cols[1]],
        frame[cols[2]],
        None if cols[3] is None else frame[cols[3]],
        label=label,
        rows=table.rows,
        names=names,  # type: ignore[arg-type]
        scale=scale,
        notes=notes,
    )
    if items is None:
        return data
    return attach_items(data, items, name=items_name, max_bytes=max_bytes)


# ---------------------------------------------------------------------------------------------
# Item metadata
# ---------------------------------------------------------------------------------------------


@dataclass
class _ItemTable:
    ids: pd.Series  # str, stripped
    titles: pd.Series  # str
    genre_names: tuple[str, ...]
    genres: np.ndarray  # (rows, n_genres) bool
    rows: _Rows


def _genre_lists(col: pd.Series) -> tuple[tuple[str, ...], np.ndarray]:
    """'|'-separated genre lists to (sorted genre names, bool matrix)."""
    clean = col.astype(str).str.replace(r"\s*\|\s*", "|", regex=True).str.strip()
    dummies = clean.str.get_dummies(sep="|")
    dummies = dummies.drop(columns=[c for c in dummies.columns if c in ("", NO_GENRES)])
    return tuple(str(c) for c in dummies.columns), dummies.to_numpy(dtype=bool)


def _genre_file(path: Path) -> list[str] | None:
    """Genre names from MovieLens' u.genre (``name|index`` lines), or None if unusable."""
    try:
        text = path.read_text(encoding="latin-1")
    except OSError:
        return None
    pairs = []
    for ln in text.splitlines():
        if "|" in ln:
            g, _, idx = ln.rpartition("|")
            if idx.strip().isdigit():
                pairs.append((int(idx), g.strip()))
    return [g for _, g in sorted(pairs)] or None


def _read_items(source: Source, label: str, max_bytes: int, notes: list[str]) -> _ItemTable:
    text = _decode(_read_bytes(source, label, max_bytes), label, notes)
    what = "item metadata: u.item, movies.csv, movies.dat or item,title[,genres]"
    known = {*ITEM_COLUMNS, "id", *TITLE_COLUMNS, *GENRE_COLUMNS}

    def is_header(first: list[str], second: list[str]) -> bool:
        return any(_norm(f) in known for f in first)

    table = _parse_table(text, label, min_fields=2, header_fn=is_header, what=what)
    frame, rows = table.frame, table.rows
    n = frame.shape[1]
    if table.header is not None:
        h = table.header
        c_id = _find_column(h, (*ITEM_COLUMNS, "id"), "item", label, True)
        c_title = _find_column(h, TITLE_COLUMNS, "title", label, True)
        c_genre = _find_column(h, GENRE_COLUMNS, "genres", label, False)
        ids, titles = frame[c_id], frame[c_title]
        names, genres = ((), np.zeros((len(frame), 0), bool))
        if c_genre is not None:
            names, genres = _genre_lists(frame[c_genre])
        return _ItemTable(ids.str.strip(), titles.str.strip(), names, genres, rows)
    flags = frame.iloc[:, 5:] if table.delim == "|" and n >= 6 else None
    if flags is not None and flags.iloc[0].str.strip().isin(["0", "1"]).all():
        # MovieLens u.item: id|title|release|video release|IMDb url|genre flags...
        ok = np.column_stack([flags[c].str.strip().isin(["0", "1"]).to_numpy() for c in flags])
        bad = np.flatnonzero(~ok.all(axis=1))
        if len(bad):
            raise DataError(
                f"{label}: genre flags (columns 6-{n}) that are not 0/1 at {rows(bad)}; "
                "expected u.item rows: id|title|release date|video date|url|flags"
            )
        k = flags.shape[1]
        names_list = None
        if isinstance(source, str | Path):
            names_list = _genre_file(Path(source).with_name("u.genre"))
            if names_list is not None and len(names_list) != k:
                names_list = None
        if names_list is None:
            names_list = list(ML100K_GENRES) if k == 19 else [f"genre {j + 1}" for j in range(k)]
        genres = np.column_stack([(flags[c].str.strip() == "1").to_numpy() for c in flags])
        return _ItemTable(
            frame[0].str.strip(), frame[1].str.strip(), tuple(names_list), genres, rows
        )
    if n > 3:
        notes.append(f"{label}: ignored {n - 3} columns after item, title, genres (no header)")
    names, genres = ((), np.zeros((len(frame), 0), bool))
    if n >= 3:
        names, genres = _genre_lists(frame[2])
    return _ItemTable(frame[0].str.strip(), frame[1].str.strip(), names, genres, rows)


def attach_items(
    data: RatingsDataset,
    items: Source,
    *,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> RatingsDataset:
    """A copy of `data` with item titles and genres from a metadata file (path or bytes).

    Rated items without a metadata row keep their raw id as title and are counted in
    `ItemInfo.missing` and `notes`; metadata rows of unrated items are ignored and counted.
    """
    label = _label(items, name, "items")
    notes = list(data.notes)
    table = _read_items(items, label, max_bytes, notes)
    ids = table.ids.to_numpy(dtype=str)
    empty = np.flatnonzero(ids == "")
    if len(empty):
        raise DataError(
            f"{label}: {_plural(len(empty), 'empty item id')} at {table.rows(empty)}; "
            "every metadata row needs an item id"
        )
    dup = pd.Series(ids).duplicated(keep="last").to_numpy()
    if dup.any():
        notes.append(
            f"{label}: {_plural(int(dup.sum()), 'duplicate item row')} ignored, keeping the "
            f"last of each (ignored copies at {table.rows(np.flatnonzero(dup))})"
        )
    keep = ~dup
    ids = ids[keep]
    titles = table.titles.to_numpy(dtype=str)[keep]
    flags = table.genres[keep]
    where = pd.Index(ids).get_indexer(data.item_ids)
    found = where >= 0
    out_titles = np.array(data.item_ids, dtype=object)
    out_titles[found] = titles[where[found]]
    no_title = found & (out_titles == "")
    out_titles[no_title] = np.asarray(data.item_ids, dtype=object)[no_title]
    genres = np.zeros((data.n_items, flags.shape[1]), dtype=bool)
    genres[found] = flags[where[found]]
    missing = int((~found).sum())
    if missing:
        notes.append(
            f"{_plural(missing, 'rated item')} without a row in {label}: "
            f"shown by raw id (e.g. {_examples(data.item_ids[~found])})"
        )
    unrated = len(ids) - int(found.sum())
    if unrated:
        notes.append(f"{label}: ignored {_plural(unrated, 'row')} of items nobody rated")
    info = ItemInfo(
        titles=out_titles.astype(str),
        genre_names=table.genre_names,
        genres=genres,
        missing=missing,
    )
    return replace(data, items=info, notes=tuple(notes))


# ---------------------------------------------------------------------------------------------
# In-memory datasets and the summary
# ---------------------------------------------------------------------------------------------


def from_arrays(
    users: Sequence[object] | np.ndarray,
    items: Sequence[object] | np.ndarray,
    ratings: Sequence[float] | np.ndarray,
    *,
    timestamps: Sequence[int] | np.ndarray | None = None,
    item_titles: Mapping[object, str] | None = None,
    genres: Mapping[object, Sequence[str]] | None = None,
    scale: RatingScale | None = None,
    source: str = "",
) -> RatingsDataset:
    """A dataset from aligned raw-id sequences, validated like `load_ratings`.

    Ids are converted to str. `item_titles` / `genres` map raw item ids to a title / a list of
    genre names; when either is given the dataset gets an ItemInfo (items absent from
    `item_titles` keep their raw id as title). Error messages name 0-based positions.
    """
    label = source or "arrays"
    n = len(users)
    lengths = {"users": n, "items": len(items), "ratings": len(ratings)}
    if timestamps is not None:
        lengths["timestamps"] = len(timestamps)
    if len(set(lengths.values())) > 1:
        raise DataError(f"{label}: sequences of different lengths: {lengths}")
    if n == 0:
        raise DataError(f"{label}: no ratings; expected at least one (user, item, rating)")
    r = np.asarray(ratings)
    r_col = pd.Series(r.astype(np.float64) if r.dtype.kind in "biuf" else r.astype(str))
    data = _build(
        pd.Series(np.asarray(users).astype(str)),
        pd.Series(np.asarray(items).astype(str)),
        r_col,
        None if timestamps is None else pd.Series(np.asarray(timestamps).astype(str)),
        label=label,
        rows=_Rows(None),
        names=("users", "items", "ratings", "timestamps"),
        scale=scale,
        notes=[],
    )
    if item_titles is None and genres is None:
        return data
    titles_map = {str(k): str(v) for k, v in (item_titles or {}).items()}
    genre_map = {str(k): [str(g) for g in v] for k, v in (genres or {}).items()}
    genre_names = tuple(sorted({g for gs in genre_map.values() for g in gs}))
    col = {g: j for j, g in enumerate(genre_names)}
    flags = np.zeros((data.n_items, len(genre_names)), dtype=bool)
    titles = []
    missing = 0
    for i, raw in enumerate(data.item_ids):
        titles.append(titles_map.get(raw) or raw)
        missing += raw not in titles_map and raw not in genre_map
        for g in genre_map.get(raw, ()):
            flags[i, col[g]] = True
    info = ItemInfo(np.array(titles, dtype=str), genre_names, flags, missing)
    return replace(data, items=info)


# Users with fewer than these many ratings are left out by the default protocols
# (k + query 10 for k = 1, 3, 5, 10, 20; MeLU needs 13).
FEWER_THAN = (11, 13, 15, 20, 30)


def _distribution(counts: np.ndarray) -> dict[str, float]:
    if len(counts) == 0:
        return dict.fromkeys(("min", "p25", "median", "p75", "max", "mean"), 0.0)
    q = np.percentile(counts, [0, 25, 50, 75, 100])
    keys = ("min", "p25", "median", "p75", "max")
    out = {k: float(v) for k, v in zip(keys, q, strict=True)}
    out["mean"] = float(np.mean(counts))
    return out


def _rating_counts(values: np.ndarray, scale: RatingScale) -> dict[str, int]:
    uniq, counts = np.unique(values, return_counts=True)
    if len(uniq) <= 50:
        return {_fmt(float(v)): int(c) for v, c in zip(uniq, counts, strict=True)}
    # Many distinct values (a continuous scale): ten equal-width bins labelled "lo-hi".
    edges = np.linspace(scale.low, scale.high, 11)
    hist, _ = np.histogram(values, bins=edges)
    return {
        f"{_fmt(round(a, 4))}-{_fmt(round(b, 4))}": int(c)
        for a, b, c in zip(edges[:-1], edges[1:], hist, strict=True)
    }


def summarize(data: RatingsDataset) -> DatasetSummary:
    """Counts, scale, density and distributions of a dataset (what `validate` prints)."""
    per_user = data.counts_per_user()
    cells = data.n_users * data.n_items
    return DatasetSummary(
        source=data.source,
        n_users=data.n_users,
        n_items=data.n_items,
        n_ratings=data.n_ratings,
        scale=data.scale,
        density=float(data.n_ratings / cells) if cells else 0.0,
        ratings_per_user=_distribution(per_user),
        ratings_per_item=_distribution(data.counts_per_item()),
        rating_counts=_rating_counts(data.rating.astype(np.float64), data.scale),
        notes=tuple(data.notes),
        has_items=data.items is not None,
        mean_rating=float(np.mean(data.rating, dtype=np.float64)) if data.n_ratings else math.nan,
        users_fewer_than={str(t): int((per_user < t).sum()) for t in FEWER_THAN},
        n_genres=0 if data.items is None else len(data.items.genre_names),
        items_missing=0 if data.items is None else data.items.missing,
    )
