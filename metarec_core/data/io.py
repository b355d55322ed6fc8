"""The one tabular reader: ratings, item metadata and a new user's ratings, from paths or bytes.

Every reader shares the decoding, line splitting, delimiter and header detection, the caps
(MAX_LINE_BYTES, MAX_COLUMNS, MAX_ID_CHARS, MAX_GENRES) and the error messages: any bad input
is a `DataError` naming the file, the rows or column and what was expected.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from metarec_core.data.dataset import DataError, ItemInfo, RatingScale, RatingsDataset, _fmt

DEFAULT_MAX_BYTES = 200 * 1024 * 1024

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
_SNIFF_CHARS = 512 * 1024  # the sample also ends here (after 2 lines): wide files sniff fast
_SHOW = 5  # rows / values quoted in an error message
_SHOW_CHARS = 40  # a value quoted in an error message is cut after this many characters

# Caps that keep any file to seconds and bounded memory; each refusal names its cap.
MAX_LINE_BYTES = 65_536  # longest line, in UTF-8 bytes
MAX_COLUMNS = 1_000  # fields per line
MAX_ID_CHARS = 64  # a user or item id (ids become fixed-width numpy strings: 4 bytes a char)
MAX_GENRES = 1_000  # distinct genres in an items file (a dense items x genres matrix)
MAX_GENRE_CHARS = 100  # one genre name
MAX_TITLE_CHARS = 300  # longer titles are shortened, with a note
# Every field fits the csv module's default field limit, so `csv` never raises on its size.
assert MAX_LINE_BYTES < 131_072


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


def _cut(value: object) -> str:
    text = str(value)
    return text if len(text) <= _SHOW_CHARS else f"{text[:_SHOW_CHARS]}… ({len(text):,} characters)"


def _examples(values: object) -> str:
    return ", ".join(repr(_cut(v)) for v in list(values)[:_SHOW])  # type: ignore[call-overload]


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
# Control bytes that do not occur in text tables: all but tab, LF, CR and the other line
# separators below (VT, FF, FS, GS, RS).
_CTRL = bytes([*range(1, 9), *range(14, 28), 31, 127])
# Byte-order marks, UTF-32 before UTF-16 (the UTF-32-LE mark starts with UTF-16-LE's).
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32", "UTF-32"),
    (b"\x00\x00\xfe\xff", "utf-32", "UTF-32"),
    (b"\xff\xfe", "utf-16", "UTF-16"),
    (b"\xfe\xff", "utf-16", "UTF-16"),
)
# Line separators besides \n, \r\n and \r that str.splitlines() honours: read as line breaks
# (noted). NEL only in Unicode text: in the latin-1 fallback byte 0x85 is cp1252's "…".
_OTHER_BREAKS = {
    "\v": "vertical tab",
    "\f": "form feed",
    "\x1c": "file separator (U+001C)",
    "\x1d": "group separator (U+001D)",
    "\x1e": "record separator (U+001E)",
    "\u2028": "line separator (U+2028)",
    "\u2029": "paragraph separator (U+2029)",
}
_NEL = "\x85"


def _check_binary(data: bytes, label: str) -> None:
    """Refuse a NUL byte anywhere, or many control bytes in the first 64 KiB."""
    nul = data.find(b"\x00")  # a memchr scan: cheap on the whole file
    head = data[:65536]
    n_ctrl = len(head) - len(head.translate(None, _CTRL))
    if nul >= 0 or n_ctrl > max(2, len(head) // 200):
        found = (
            f"a NUL byte at offset {nul:,}"
            if nul >= 0
            else f"{n_ctrl} control bytes in the first 64 KiB"
        )
        raise DataError(
            f"{label}: this is binary data (a binary file), not a text table (found {found}); "
            "expected CSV/TSV text"
        )


def _wide_text(head: bytes) -> str | None:
    """'UTF-16 (little-endian)' etc. when NUL bytes fall in the lanes of ASCII text in that
    encoding (a file saved without a byte-order mark); None otherwise."""
    n = len(head) // 4 * 4
    if n < 8:
        return None
    lanes = (np.frombuffer(head[:n], np.uint8) == 0).reshape(-1, 4).mean(axis=0)
    if lanes[1:].min() > 0.9 and lanes[0] < 0.1:
        return "UTF-32 (little-endian)"
    if lanes[:3].min() > 0.9 and lanes[3] < 0.1:
        return "UTF-32 (big-endian)"
    odd, even = (lanes[1] + lanes[3]) / 2, (lanes[0] + lanes[2]) / 2
    if odd > 0.9 and even < 0.1:
        return "UTF-16 (little-endian)"
    if even > 0.9 and odd < 0.1:
        return "UTF-16 (big-endian)"
    return None


def _decode(raw: bytes, label: str, notes: list[str]) -> tuple[str, bool]:
    """Bytes to text: UTF-8 (BOM allowed), UTF-16/32 with a BOM, else latin-1 (noted); binary
    is refused. Also says whether the text was decoded as Unicode (not the latin-1 fallback)."""
    for bom, codec, what in _BOMS:
        if raw.startswith(bom):
            try:
                text = raw.decode(codec)
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{label}: the file starts with a {what} byte-order mark but is not valid "
                    f"{what} (at byte {e.start:,}); expected UTF-8 or {what} text"
                ) from None
            _check_binary(text.encode("utf-8", "replace"), label)
            return text, True
    for magic, what in _MAGIC.items():
        if raw.startswith(magic):
            raise DataError(
                f"{label}: this looks like {what}, not a text table; expected CSV/TSV text"
            )
    head = raw[:65536]
    if b"\x00" in head and (wide := _wide_text(head)):
        raise DataError(
            f"{label}: this looks like {wide} text without a byte-order mark; save it as "
            "UTF-8 (or UTF-16 with a byte-order mark)"
        )
    _check_binary(raw, label)
    try:
        return raw.decode("utf-8-sig"), True
    except UnicodeDecodeError as e:
        notes.append(f"{label} is not valid UTF-8 (byte {e.start:,}); decoded it as latin-1")
        return raw.decode("latin-1"), False


def _line_breaks(text: str, unicode: bool, label: str, notes: list[str]) -> str:
    """Every line break as "\\n": \\r\\n and \\r (old Mac files), and the rarer separators."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    seps = {**_OTHER_BREAKS, _NEL: "next line (U+0085)"} if unicode else _OTHER_BREAKS
    found = []
    for ch, what in seps.items():
        # `in` is a memchr scan; count() is several times slower: count only what is there.
        if (ch > "\x7f" and text.isascii()) or ch not in text:
            continue
        n = text.count(ch)
        if n:
            text = text.replace(ch, "\n")
            found.append(f"{n:,} {what}")
    if found:
        notes.append(f"{label}: read {', '.join(found)} as line breaks")
    return text


_CHUNK_BYTES = 8 * 1024 * 1024  # bytes scanned at a time: temporaries stay small
_CHUNK_ROWS = 500_000  # rows parsed at a time
_INK = np.ones(256, dtype=bool)
_INK[[9, 10, 32]] = False  # tab, line break, space


def _count_lines(data: bytes, label: str) -> int:
    """The number of lines; a DataError when one is over MAX_LINE_BYTES. Scans in chunks so that
    a file of 25 million line breaks needs no array of 25 million offsets."""
    prev, seen = -1, 0  # offset of the last line break, line breaks before the chunk
    for start in range(0, len(data), _CHUNK_BYTES):
        chunk = np.frombuffer(data, np.uint8, min(_CHUNK_BYTES, len(data) - start), start)
        ends = np.flatnonzero(chunk == 10) + start
        if len(ends):
            lengths = np.diff(ends, prepend=prev) - 1
            long = np.flatnonzero(lengths > MAX_LINE_BYTES)
            if len(long):
                _too_long(label, seen + int(long[0]), int(lengths[long[0]]))
            prev, seen = int(ends[-1]), seen + len(ends)
    last = len(data) - prev - 1  # an unterminated last line
    if last > MAX_LINE_BYTES:
        _too_long(label, seen, last)
    return seen + (last > 0)


def _too_long(label: str, k: int, length: int) -> None:
    raise DataError(
        f"{label}: line {k + 1:,} is {length:,} bytes long, over the limit of "
        f"{MAX_LINE_BYTES:,} bytes per line; expected one short row per line (is a line break "
        "missing, or a field far too long?)"
    )


@dataclass
class _Text:
    """A decoded file with "\\n" line breaks: the text, its UTF-8 bytes and its line count."""

    text: str
    data: bytes
    n_lines: int

    def has_text(self) -> np.ndarray:
        """(n_lines,) bool: whether each line has a byte other than spaces and tabs."""
        out, start = [], 0
        while start < len(self.data):
            # Whole lines per chunk (a line is at most MAX_LINE_BYTES, far below a chunk).
            end = len(self.data)
            if start + _CHUNK_BYTES < end:
                end = self.data.rfind(b"\n", start, start + _CHUNK_BYTES) + 1 or end
            arr = np.frombuffer(self.data, np.uint8, end - start, start)
            starts = np.concatenate([[0], np.flatnonzero(arr == 10) + 1])
            starts = starts[starts < len(arr)]
            # An empty line's slice starts on its own "\\n", which is not ink: no special case.
            out.append(np.logical_or.reduceat(_INK[arr], starts))
            start = end
        return np.concatenate(out) if out else np.zeros(0, bool)


def _read_text(source: Source, label: str, max_bytes: int, notes: list[str]) -> _Text:
    raw = _read_bytes(source, label, max_bytes)
    decoded, unicode = _decode(raw, label, notes)
    text = _line_breaks(decoded, unicode, label, notes)
    if text is decoded and unicode and not raw.startswith(_ANY_BOM):
        # Valid UTF-8 without a mark and no line break replaced: the file's bytes are the text's
        # encoding already (a copy of the file less in memory; ~10% of a large load's peak).
        data = raw
    else:
        data = text.encode("utf-8", "surrogatepass")
    del raw, decoded
    return _Text(text, data, _count_lines(data, label))


_ANY_BOM = (b"\xef\xbb\xbf", *(bom for bom, _, _ in _BOMS))


def read_text(source: Source, label: str, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """A text file (path or bytes) as a str with "\\n" line breaks, refused with a DataError
    when it is over `max_bytes`, binary, or has a line over MAX_LINE_BYTES.

    Decodes UTF-8 (BOM allowed), UTF-16/32 with a BOM, else latin-1; reads \\r\\n, \\r and the
    other Unicode line separators as line breaks.
    """
    return _read_text(source, label, max_bytes, []).text


def _iter_lines(text: str) -> Iterator[str]:
    """The lines of a "\\n"-separated text, without copying it (io.StringIO would, 4x)."""
    pos, n = 0, len(text)
    while pos < n:
        end = text.find("\n", pos)
        end = n if end < 0 else end
        yield text[pos:end]
        pos = end + 1


def _split_line(line: str, delim: str) -> list[str]:
    if delim == " ":
        return line.split()
    if delim in (",", ";"):
        try:
            return next(csv.reader([line], delimiter=delim, skipinitialspace=True), [])
        except csv.Error:  # only if another module lowered csv's field limit below our cap
            return line.split(delim)
    return line.split(delim)


def _n_fields(line: str, delim: str) -> int:
    if delim in (",", ";") and '"' in line:
        return len(_split_line(line, delim))
    if delim == " ":
        return len(line.split())
    return line.count(delim) + 1


def _open_quote(line: str, delim: str) -> bool:
    """Whether a quoted field opened on this line is still open at its end."""
    if '"' not in line:
        return False
    try:
        return len(list(csv.reader([line, "\x1f"], delimiter=delim, skipinitialspace=True))) < 2
    except csv.Error:
        return False


def _sniff(lines: list[str], min_fields: int) -> tuple[str, int] | None:
    """The delimiter that splits the most sample lines into the same number of fields, at
    least `min_fields` and on at least half the lines, with that number; on a tie the first in
    _DELIMITERS (a comma, not the space after it). None when no candidate does."""
    best: tuple[int, str, int] | None = None
    for delim in _DELIMITERS:
        if delim == "::" and not any("::" in ln for ln in lines):
            continue
        counts = Counter(_n_fields(ln, delim) for ln in lines)
        n, hits = counts.most_common(1)[0]
        # Half the lines, not all: a few malformed rows are reported later with line numbers.
        if n >= min_fields and hits >= 0.5 * len(lines) and (best is None or hits > best[0]):
            best = (hits, delim, n)
    return None if best is None else (best[1], best[2])


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


_INK_CHAR = re.compile(r"\S")


def _sample_lines(text: str) -> tuple[list[str], int]:
    """The first non-blank lines (up to _SNIFF_LINES and _SNIFF_CHARS), and the number of blank
    lines before them. Blank lines are jumped over by a regex search, not looped over."""
    lines: list[str] = []
    lead = size = pos = 0
    while len(lines) < _SNIFF_LINES and (size <= _SNIFF_CHARS or len(lines) < 2):
        m = _INK_CHAR.search(text, pos)
        if m is None:
            break
        start = text.rfind("\n", 0, m.start()) + 1
        end = text.find("\n", m.start())
        end = len(text) if end < 0 else end
        if not lines:
            lead = text.count("\n", 0, start)
        lines.append(text[start:end])
        size += end - start
        pos = end + 1
    return lines, lead


def _bad_field_counts(text: str, delim: str, expected: int, skip: int) -> list[tuple[int, int]]:
    """(line number, field count) of the non-blank data lines without `expected` fields."""
    bad = []
    for num, ln in enumerate(_iter_lines(text), start=1):
        if num > skip and ln.strip():
            n = _n_fields(ln, delim)
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


def _structure_error(
    label: str, text: str, delim: str, expected: int, skip: int, what: str
) -> DataError:
    """Why pandas could not split the data lines into `expected` fields each: a quote left open
    at the end of a line (it would swallow the lines after it), else the rows with another
    field count, else a general message."""
    if delim in (",", ";"):
        open_at = [
            num
            for num, ln in enumerate(_iter_lines(text), start=1)
            if num > skip and _open_quote(ln, delim)
        ]
        if open_at:
            shown = ", ".join(map(str, open_at[:_SHOW]))
            more = f" (and {len(open_at) - _SHOW:,} more)" if len(open_at) > _SHOW else ""
            return DataError(
                f'{label}: a quoted field (") is not closed on its line at '
                f"{'lines' if len(open_at) > 1 else 'line'} {shown}{more}; it would take the "
                "lines after it into one field. Close or remove the quote (a quoted field "
                "must end on the line it starts)"
            )
    bad = _bad_field_counts(text, delim, expected, skip)
    if bad:
        return _malformed(label, bad, expected, delim)
    return DataError(f"{label}: could not split the lines into fields; expected {what}")


def _parse_table(
    src: _Text, label: str, *, min_fields: int, header_fn, what: str, notes: list[str]
) -> _Table:
    """Split text into a DataFrame of strings, detecting the delimiter and the header.

    `header_fn(first_fields, second_fields) -> bool` decides whether line 1 is a header.
    Every data line must have the header's number of fields (or, without a header, the
    sample's usual number): a row is never shifted, padded, truncated or merged.
    """
    text = src.text
    lines, lead = _sample_lines(text)
    if not lines:
        raise DataError(f"{label}: the file is empty; expected {what}")
    sniffed = _sniff(lines, min_fields)
    if sniffed is None:
        raise DataError(
            f"{label}: could not split most lines into at least {min_fields} fields the same "
            "way with one delimiter (',', tabs, ';', '|', '::' or spaces); line "
            f"{lead + 1} is {_cut(lines[0])!r}; expected {what}"
        )
    delim, n_fields = sniffed
    first = _split_line(lines[0], delim)
    for n, where in ((len(first), f"line {lead + 1} has"), (n_fields, "most lines have")):
        if n > MAX_COLUMNS:
            raise DataError(
                f"{label}: {where} {n:,} fields, over the limit of {MAX_COLUMNS:,} columns; "
                f"expected {what}"
            )
    second = _split_line(lines[1], delim) if len(lines) > 1 else []
    header = [f.strip().strip("\"'") for f in first] if header_fn(first, second) else None
    if header is not None and len(lines) == 1:
        raise DataError(
            f"{label}: the file has a header ({_examples(header)}) but no data rows; "
            f"expected {what}"
        )
    skip = lead + (header is not None)  # physical lines before data row 0
    expected = len(header) if header is not None else n_fields
    sample = lines[1:] if header is not None else lines
    if header is not None and sample:
        counts = Counter(_n_fields(ln, delim) for ln in sample)
        usual, hits = counts.most_common(1)[0]
        if usual != expected and hits >= 0.5 * len(sample):
            # One count for all rows, another for the header: never load such columns shifted.
            raise DataError(
                f"{label}: the header on line {lead + 1} names {_plural(expected, 'column')} "
                f"({_examples(header)}{', …' if expected > _SHOW else ''}) but the data rows "
                f"have {usual} fields (separated by {_DELIM_NAMES[delim]}); every row needs "
                "one field per header name"
            )
    if any(_n_fields(ln, delim) != expected for ln in sample):
        raise _structure_error(label, text, delim, expected, skip, what)
    data, sep = src.data, delim
    if delim == "::":
        # The fast C parser takes one-character separators; \x1f cannot occur (binary check).
        data, sep = data.replace(b"::", b"\x1f"), "\x1f"
    elif delim == " ":
        sep = r"\s+"
    columns: list[list[pd.Series]] = [[] for _ in range(expected)]
    kept: list[np.ndarray] = []  # file line of each non-blank row
    blank_lines: list[np.ndarray] = []
    n_rows, short = 0, False
    try:
        with warnings.catch_warnings():
            # A first row with extra fields would be truncated with a warning: the sample check
            # above has refused it already; later ones raise ParserError.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            with pd.read_csv(
                io.BytesIO(data),
                encoding="utf-8",
                sep=sep,
                header=None,
                names=list(range(expected)),
                index_col=False,  # never take extra leading fields as an index (a shift)
                skiprows=skip,
                dtype=str,
                na_filter=False,
                skip_blank_lines=False,  # keeps row i on line skip + 1 + i
                skipinitialspace=delim != " ",
                quoting=csv.QUOTE_MINIMAL if delim in (",", ";") else csv.QUOTE_NONE,
                engine="c",
                chunksize=_CHUNK_ROWS,  # bounded parser memory on files of millions of rows
            ) as reader:
                for chunk in reader:
                    cols = [chunk[c].str.strip() for c in range(expected)]
                    filled = np.column_stack([(c != "").to_numpy() for c in cols])
                    blank = ~filled.any(axis=1)
                    # A short row is padded with empty fields by the parser: checked below.
                    short = short or bool((~filled[~blank]).any())
                    line_of = np.arange(n_rows, n_rows + len(chunk), dtype=np.int64) + skip + 1
                    n_rows += len(chunk)
                    keep = np.flatnonzero(~blank)
                    for j, c in enumerate(cols):
                        columns[j].append(c.iloc[keep] if blank.any() else c)
                    kept.append(line_of[keep])
                    if blank.any():
                        blank_lines.append(line_of[blank])
    except (ValueError, pd.errors.ParserWarning):  # ParserError, EmptyDataError, decoding
        raise _structure_error(label, text, delim, expected, skip, what) from None
    if n_rows != src.n_lines - skip:
        # A quoted field that spans lines merged them into one row.
        raise _structure_error(label, text, delim, expected, skip, what)
    if short:
        bad = _bad_field_counts(text, delim, expected, skip)
        if bad:
            raise _malformed(label, bad, expected, delim)
    if blank_lines:
        # Rows like ",,," carry no data but are not blank lines: count them.
        lines = np.concatenate(blank_lines)
        empty = lines[src.has_text()[lines - 1]]
        if len(empty):
            notes.append(
                f"{label}: skipped {_plural(len(empty), 'row')} with only empty fields "
                f"at {_Rows(empty)(np.arange(len(empty)))}"
            )
    line_of = np.concatenate(kept) if kept else np.zeros(0, np.int64)
    if len(line_of) == 0:
        raise DataError(f"{label}: the file has no data rows; expected {what}")
    frame = pd.DataFrame(
        {j: pd.concat(parts, ignore_index=True) for j, parts in enumerate(columns)}
    )
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
        big = np.flatnonzero(np.abs(nums) >= 2.0**63)
        if len(big):  # astype(int64) would wrap them silently
            raise DataError(
                f"{label}: column {name}: {_plural(len(big), 'timestamp')} too large at "
                f"{rows(big)}: found {_examples(col.iloc[big])}; expected Unix seconds "
                "(at most 9.2e18)"
            )
        return nums.astype(np.int64)
    if ok.mean() >= 0.5:  # mostly Unix seconds: the rest are the errors
        bad, expected = np.flatnonzero(~ok), "Unix seconds like the other rows"
    else:  # dates ("2020-01-31 12:00") become seconds since 1970
        expected = "dates (years 1 to 9999) or Unix seconds"
        try:
            when = pd.to_datetime(col, errors="coerce", utc=True, format="mixed")
        except (ValueError, OverflowError):  # a date out of the parser's range
            when = None
        bad = np.flatnonzero(~ok if when is None else when.isna().to_numpy())
        if when is not None and not len(bad):
            # Whole seconds from the parser's own unit: year 9999 would overflow nanoseconds.
            naive = when.dt.tz_localize(None).to_numpy()
            return naive.astype("datetime64[s]").astype(np.int64)
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
    values: np.ndarray,
    scale: RatingScale,
    name: str,
    label: str,
    rows: _Rows,
    whose: str = "the declared scale",
) -> None:
    eps = 1e-6 * max(1.0, abs(scale.high), abs(scale.low))
    bad = np.flatnonzero((values < scale.low - eps) | (values > scale.high + eps))
    expect = f"{whose} {_fmt(scale.low)} to {_fmt(scale.high)}"
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


def _sorted_ids(codes: np.ndarray, uniques: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Renumber factorized ids so that inner order follows the raw ids: numerically when every
    id is an integer (MovieLens item "2" before "10"), else as strings."""
    ids = pd.Series(uniques, dtype=str)
    # ASCII digits only: "²" and "--3" are not integers for int64 (str.isdigit says "²" is).
    ints = ids.str.fullmatch(r"-?[0-9]{1,18}").to_numpy(dtype=bool)
    text = np.asarray(uniques, dtype=str)  # fixed width: ids are at most MAX_ID_CHARS long
    if len(text) and ints.all():
        nums = ids.astype(np.int64).to_numpy()
        order = np.argsort(nums, kind="stable")
        if (np.diff(nums[order]) == 0).any():  # "7" and "07": the string breaks the tie
            order = np.lexsort((text, nums))
    else:
        order = np.argsort(text, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], text[order]


def _check_ids(
    uniques: pd.Index,
    codes: np.ndarray,
    role: str,
    name: str,
    label: str,
    rows: _Rows,
    delim: str | None,
) -> None:
    """Refuse ids over MAX_ID_CHARS and, in a file, ids holding another delimiter than its own
    (a line with mixed delimiters would shift its fields: a timestamp read as a rating)."""
    ids = pd.Series(uniques, dtype=str)
    long = np.flatnonzero((ids.str.len() > MAX_ID_CHARS).to_numpy())
    if len(long):
        raise DataError(
            f"{label}: column {name}: {_plural(len(long), f'{role} id')} over the limit of "
            f"{MAX_ID_CHARS} characters at {rows(np.flatnonzero(np.isin(codes, long)))}: "
            f"found {_examples(ids.iloc[long])}"
        )
    if delim is None:
        return
    others = [d for d in _DELIMITERS if d not in (delim, " ")]
    pattern = "|".join(re.escape(d) for d in others)
    mixed = np.flatnonzero(ids.str.contains(pattern, regex=True).to_numpy(dtype=bool))
    if len(mixed):
        raise DataError(
            f"{label}: column {name}: {_plural(len(mixed), f'{role} id')} holding "
            f"{' or '.join(_DELIM_NAMES[d] for d in others)} at "
            f"{rows(np.flatnonzero(np.isin(codes, mixed)))}: found {_examples(ids.iloc[mixed])}; "
            f"expected fields separated by {_DELIM_NAMES[delim]} only (mixed delimiters in a "
            "line?)"
        )


def _id_column(col: pd.Series, role: str, name: str, label: str, rows: _Rows) -> pd.Series:
    """Stripped ids as strings; a DataError naming the rows of empty ones."""
    col = col.astype(str).str.strip()
    bad = np.flatnonzero((col == "").to_numpy())
    if len(bad):
        raise DataError(
            f"{label}: column {name}: {_plural(len(bad), f'empty {role} id')} at "
            f"{rows(bad)}; every rating needs {'an' if role == 'item' else 'a'} {role}"
        )
    return col


def _rating_values(ratings: pd.Series, name: str, label: str, rows: _Rows) -> np.ndarray:
    """Ratings as float64; a DataError naming the rows of values that are not finite numbers
    or do not fit float32."""
    values = _to_numeric(ratings.str.strip() if ratings.dtype != np.float64 else ratings)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise DataError(
            f"{label}: column {name}: {_plural(len(bad), 'rating')} "
            f"{'is' if len(bad) == 1 else 'are'} not a finite number at {rows(bad)}: "
            f"found {_examples(ratings.iloc[bad])}; expected numbers such as 4 or 3.5"
        )
    # ratings are kept as float32, where a larger number would become inf
    top = float(np.finfo(np.float32).max)
    bad = np.flatnonzero(np.abs(values) > top)
    if len(bad):
        raise DataError(
            f"{label}: column {name}: {_plural(len(bad), 'rating')} too large at "
            f"{rows(bad)}: found {_examples(ratings.iloc[bad])}; ratings must lie within "
            f"±{top:.3g}"
        )
    return values


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
    delim: str | None = None,
) -> RatingsDataset:
    """Validate aligned raw columns and turn them into a RatingsDataset (no item metadata).

    `delim`: the file's delimiter; an id holding another candidate delimiter is refused.
    """
    n_user, n_item, n_rating, n_time = names
    users = _id_column(users, "user", n_user, label, rows)
    items = _id_column(items, "item", n_item, label, rows)
    values = _rating_values(ratings, n_rating, label, rows)
    if scale is not None:
        _check_scale(values, scale, n_rating, label, rows)
    ts = None if timestamps is None else _parse_timestamps(timestamps, n_time, label, rows)

    ucodes, uuniq = pd.factorize(users)
    icodes, iuniq = pd.factorize(items)
    ucodes = np.asarray(ucodes, dtype=np.int64)
    icodes = np.asarray(icodes, dtype=np.int64)
    _check_ids(uuniq, ucodes, "user", n_user, label, rows, delim)
    _check_ids(iuniq, icodes, "item", n_item, label, rows, delim)
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
    user, user_ids = _sorted_ids(ucodes, uuniq)
    item, item_ids = _sorted_ids(icodes, iuniq)
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


def _check_headerless(label: str, n: int, most: int, columns: str) -> None:
    """Refuse a headerless table of more than `most` fields: its columns would be guessed."""
    if n > most:
        raise DataError(
            f"{label}: {n} fields per line and no header; without a header the columns "
            f"must be {columns}; add a header line naming them"
        )


_RATING_HEADER_NAMES = frozenset(
    (*USER_COLUMNS, *ITEM_COLUMNS, *RATING_COLUMNS, *TIMESTAMP_COLUMNS)
)


def _header_test(
    label: str, *, rating_at: int, expected: str
) -> Callable[[list[str], list[str]], bool]:
    """`header_fn` for _parse_table on a ratings table whose headerless rating is field
    `rating_at`: line 1 is a header when it names a known column; `expected` lists the column
    names the message suggests for an unknown header."""

    def is_header(first: list[str], second: list[str]) -> bool:
        if any(_norm(f) in _RATING_HEADER_NAMES for f in first):
            return True
        # No number at all on line 1 above a numeric rating on line 2: an unknown header.
        if (
            len(second) > rating_at
            and _is_number(second[rating_at])
            and not any(map(_is_number, first))
        ):
            raise DataError(
                f"{label}: line 1 looks like a header ({', '.join(first)}) but none of its "
                f"columns is recognised; expected names like {expected}"
            )
        return False

    return is_header


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
    (UTF-8, UTF-8 with BOM, UTF-16/32 with BOM, else latin-1) are detected; \\r\\n, \\r and the
    other Unicode line separators are line breaks. Every data line must have one field per
    header name (or the usual count without a header) and a quoted field must end on its line.
    Files beyond the caps (MAX_LINE_BYTES, MAX_COLUMNS, MAX_ID_CHARS, MAX_GENRES) are refused.
    `name`/`items_name` label bytes sources in error messages (default: the path's name).
    `scale`, when given, is the declared scale: ratings outside it or off its step are a
    DataError; otherwise low, high and step are detected from the ratings.
    Duplicate (user, item) pairs keep the last rating; the count goes into `notes`.
    Raises DataError for any bad input; a missing path raises FileNotFoundError.
    """
    label = _label(source, name, "ratings")
    notes: list[str] = []
    src = _read_text(source, label, max_bytes, notes)
    what = "columns user, item, rating[, timestamp], with or without a header"
    is_header = _header_test(
        label,
        rating_at=2,
        expected="user/user_id/userId, item/item_id/movieId and rating/score",
    )
    table = _parse_table(src, label, min_fields=3, header_fn=is_header, what=what, notes=notes)
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
        _check_headerless(label, n, 4, "user, item, rating[, timestamp]")
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
        delim=table.delim,
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
    # The genre flags, sparse: row `flag_rows[k]` has genre `flag_cols[k]` (a dense rows x
    # genres matrix of a large file would be huge; only rated items get one).
    flag_rows: np.ndarray
    flag_cols: np.ndarray
    rows: _Rows


_NO_FLAGS = (np.zeros(0, np.int64), np.zeros(0, np.int64))


def _genre_lists(
    col: pd.Series, label: str, rows: _Rows
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """'|'-separated genre lists to (sorted genre names, row and genre index of each flag)."""
    parts = col.astype(str).str.split("|").explode().str.strip()
    parts = parts[(parts != "") & (parts != NO_GENRES)]
    codes, uniq = pd.factorize(parts)
    if len(uniq) > MAX_GENRES:
        raise DataError(
            f"{label}: {len(uniq):,} distinct genres, over the limit of {MAX_GENRES:,}; "
            "expected a few genre names per item separated by '|' (e.g. Action|Comedy)"
        )
    names = np.asarray(uniq, dtype=object)
    long = np.flatnonzero(pd.Series(names, dtype=object).str.len().to_numpy() > MAX_GENRE_CHARS)
    if len(long):
        at = np.flatnonzero(np.isin(codes, long))
        raise DataError(
            f"{label}: {_plural(len(long), 'genre name')} over the limit of "
            f"{MAX_GENRE_CHARS} characters at {rows(np.unique(parts.index.to_numpy()[at]))}: "
            f"found {_examples(names[long])}"
        )
    order = np.argsort(names.astype(str), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    flag_rows = parts.index.to_numpy(dtype=np.int64)
    return tuple(str(g) for g in names[order]), flag_rows, rank[codes]


def _genre_file(path: Path) -> list[str] | None:
    """Genre names from MovieLens' u.genre (``name|index`` lines), or None if unusable."""
    try:
        if path.stat().st_size > 1024 * 1024:  # a real u.genre is 200 bytes
            return None
        text = path.read_text(encoding="latin-1")
    except OSError:
        return None
    pairs = []
    for ln in text.splitlines():
        if "|" in ln:
            g, _, idx = ln.rpartition("|")
            if idx.strip().isdigit() and len(idx.strip()) < 6:
                pairs.append((int(idx), g.strip()[:MAX_GENRE_CHARS]))
    return [g for _, g in sorted(pairs)] or None


def _item_table(
    ids: pd.Series,
    titles: pd.Series,
    names: tuple[str, ...],
    flags: tuple[np.ndarray, np.ndarray],
    rows: _Rows,
    label: str,
    notes: list[str],
) -> _ItemTable:
    """Strip ids and titles, refuse ids over MAX_ID_CHARS, shorten titles over MAX_TITLE_CHARS."""
    ids, titles = ids.str.strip(), titles.str.strip()
    long = np.flatnonzero((ids.str.len() > MAX_ID_CHARS).to_numpy())
    if len(long):
        raise DataError(
            f"{label}: {_plural(len(long), 'item id')} over the limit of {MAX_ID_CHARS} "
            f"characters at {rows(long)}: found {_examples(ids.iloc[long])}"
        )
    long = np.flatnonzero((titles.str.len() > MAX_TITLE_CHARS).to_numpy())
    if len(long):
        cut = titles.iloc[long].str.slice(0, MAX_TITLE_CHARS - 1) + "…"
        titles = titles.copy()
        titles.iloc[long] = cut
        notes.append(
            f"{label}: shortened {_plural(len(long), 'title')} longer than "
            f"{MAX_TITLE_CHARS} characters at {rows(long)}"
        )
    return _ItemTable(ids, titles, names, flags[0], flags[1], rows)


def _read_items(source: Source, label: str, max_bytes: int, notes: list[str]) -> _ItemTable:
    src = _read_text(source, label, max_bytes, notes)
    what = "item metadata: u.item, movies.csv, movies.dat or item,title[,genres]"
    known = {*ITEM_COLUMNS, "id", *TITLE_COLUMNS, *GENRE_COLUMNS}

    def is_header(first: list[str], second: list[str]) -> bool:
        return any(_norm(f) in known for f in first)

    table = _parse_table(src, label, min_fields=2, header_fn=is_header, what=what, notes=notes)
    frame, rows = table.frame, table.rows
    n = frame.shape[1]
    if table.header is not None:
        h = table.header
        c_id = _find_column(h, (*ITEM_COLUMNS, "id"), "item", label, True)
        c_title = _find_column(h, TITLE_COLUMNS, "title", label, True)
        c_genre = _find_column(h, GENRE_COLUMNS, "genres", label, False)
        names, *flags = ((), *_NO_FLAGS)
        if c_genre is not None:
            names, *flags = _genre_lists(frame[c_genre], label, rows)
        return _item_table(frame[c_id], frame[c_title], names, flags, rows, label, notes)
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
        dense = np.column_stack([(flags[c].str.strip() == "1").to_numpy() for c in flags])
        fr, fc = np.nonzero(dense)
        return _item_table(
            frame[0], frame[1], tuple(names_list), (fr.astype(np.int64), fc.astype(np.int64)),
            rows, label, notes,
        )  # fmt: skip
    if n > 3:
        notes.append(f"{label}: ignored {n - 3} columns after item, title, genres (no header)")
    names, *flags = ((), *_NO_FLAGS)
    if n >= 3:
        names, *flags = _genre_lists(frame[2], label, rows)
    return _item_table(frame[0], frame[1], names, flags, rows, label, notes)


# The dense (rated items x genres) flag matrix of ItemInfo is refused above this many cells.
MAX_GENRE_CELLS = 100_000_000


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
    ids = table.ids  # kept as pandas strings: a numpy copy of millions of rows is large
    empty = np.flatnonzero((ids == "").to_numpy(dtype=bool))
    if len(empty):
        raise DataError(
            f"{label}: {_plural(len(empty), 'empty item id')} at {table.rows(empty)}; "
            "every metadata row needs an item id"
        )
    n_genres = len(table.genre_names)
    if data.n_items * n_genres > MAX_GENRE_CELLS:
        raise DataError(
            f"{label}: {data.n_items:,} rated items x {n_genres:,} genres is over the limit "
            f"of {MAX_GENRE_CELLS:,} genre flags; use fewer genres"
        )
    dup = ids.duplicated(keep="last").to_numpy(dtype=bool)
    if dup.any():
        notes.append(
            f"{label}: {_plural(int(dup.sum()), 'duplicate item row')} ignored, keeping the "
            f"last of each (ignored copies at {table.rows(np.flatnonzero(dup))})"
        )
    # The kept rows of rated items: only these become numpy strings.
    rated = np.flatnonzero(~dup & ids.isin(data.item_ids).to_numpy(dtype=bool))
    where = pd.Index(ids.iloc[rated].to_numpy(dtype=str)).get_indexer(data.item_ids)
    found = where >= 0
    titles = table.titles.iloc[rated].to_numpy(dtype=str)
    out_titles = np.array(data.item_ids, dtype=object)
    out_titles[found] = titles[where[found]]
    no_title = found & (out_titles == "")
    out_titles[no_title] = np.asarray(data.item_ids, dtype=object)[no_title]
    # Table row -> rated item (-1: a dropped duplicate or an unrated item), then the flags.
    item_of_row = np.full(len(ids), -1, dtype=np.int64)
    item_of_row[rated[where[found]]] = np.flatnonzero(found)
    flag_item = item_of_row[table.flag_rows]
    on = flag_item >= 0
    genres = np.zeros((data.n_items, n_genres), dtype=bool)
    genres[flag_item[on], table.flag_cols[on]] = True
    missing = int((~found).sum())
    if missing:
        notes.append(
            f"{_plural(missing, 'rated item')} without a row in {label}: "
            f"shown by raw id (e.g. {_examples(data.item_ids[~found])})"
        )
    unrated = int((~dup).sum()) - int(found.sum())
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
# In-memory datasets
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


# ---------------------------------------------------------------------------------------------
# A new user's ratings
# ---------------------------------------------------------------------------------------------

NEW_USER_MAX_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, eq=False)
class NewUserRatings:
    """A new user's ratings mapped onto a model's catalogue."""

    items: np.ndarray  # (n,) int64 inner item indices, in file order (duplicates removed)
    ratings: np.ndarray  # (n,) float32
    unknown_ids: tuple[str, ...]  # raw ids the model does not know (dropped)
    duplicates: int  # repeated items dropped (the last rating of an item is kept)
    rows: int  # data rows read
    notes: tuple[str, ...] = ()  # what the reader did to read the file (as the ratings reader's)
    label: str = "new user ratings"  # the file's name in messages

    def warnings(self) -> list[str]:
        """Everything dropped or changed on the way in, each line naming the file."""
        out = list(self.notes)
        if self.unknown_ids:
            shown = ", ".join(repr(x) for x in self.unknown_ids[:_SHOW])
            more = (
                ""
                if len(self.unknown_ids) <= _SHOW
                else f" and {len(self.unknown_ids) - _SHOW} more"
            )
            out.append(
                f"{self.label}: ignored {len(self.unknown_ids):,} rating(s) of items the model "
                f"does not know: {shown}{more}"
            )
        if self.duplicates:
            out.append(
                f"{self.label}: {self.duplicates:,} item(s) were rated more than once; kept the "
                "last rating"
            )
        return out


def read_user_ratings(
    source: Source,
    item_ids: np.ndarray,
    scale: RatingScale,
    *,
    name: str | None = None,
    max_bytes: int = NEW_USER_MAX_BYTES,
) -> NewUserRatings:
    """Read a new user's `item,rating` table and map raw item ids onto `item_ids`.

    Read like `load_ratings` (encodings, line breaks, delimiter and header detection, the
    caps): columns are found by header name (item/item_id/movieId..., rating/score...; other
    columns are ignored); a file without a header has exactly two columns, item then rating.
    Unknown item ids are dropped and counted; a repeated item keeps its last rating. Every
    other problem (no ratings, non-numeric ratings or ratings outside the model's scale, no
    known item at all) is a `DataError` naming the file and rows.
    """
    label = _label(source, name, "new user ratings")
    notes: list[str] = []
    src = _read_text(source, label, max_bytes, notes)
    what = "columns item, rating, with or without a header"
    is_header = _header_test(label, rating_at=1, expected="item/item_id/movieId and rating/score")
    table = _parse_table(src, label, min_fields=2, header_fn=is_header, what=what, notes=notes)
    frame, rows = table.frame, table.rows
    if table.header is not None:
        h = table.header
        c_item = _find_column(h, ITEM_COLUMNS, "item", label, True)
        c_rating = _find_column(h, RATING_COLUMNS, "rating", label, True)
        n_item, n_rating = repr(h[c_item]), repr(h[c_rating])
    else:
        _check_headerless(label, frame.shape[1], 2, "item, rating")
        c_item, c_rating, n_item, n_rating = 0, 1, "1 (item)", "2 (rating)"
    ids = _id_column(frame[c_item], "item", n_item, label, rows)
    values = _rating_values(frame[c_rating], n_rating, label, rows)
    # Any value within the model's range: predictions are continuous, the step is not enforced.
    _check_scale(values, replace(scale, step=0.0), n_rating, label, rows, "the model's scale")
    codes, uniques = pd.factorize(ids)
    _check_ids(uniques, np.asarray(codes, np.int64), "item", n_item, label, rows, table.delim)

    catalogue = pd.Index(np.asarray(item_ids).astype(str))
    last_of = np.flatnonzero(~catalogue.duplicated(keep="last"))  # a repeated id: its last index
    where = catalogue[last_of].get_indexer(ids)
    known = where >= 0
    unknown = tuple(ids[~known].tolist())
    inner, kept = last_of[where[known]], values[known]
    repeat = pd.Series(inner).duplicated(keep="last").to_numpy()  # file order of last ratings
    if not len(inner):
        shown = ", ".join(repr(x) for x in unknown[:_SHOW])
        raise DataError(
            f"{label}: none of the {len(unknown):,} rated items is in the model's catalogue "
            f"(for example {shown}); use the raw item ids of the dataset the model was "
            "trained on"
        )
    return NewUserRatings(
        items=inner[~repeat].astype(np.int64),
        ratings=kept[~repeat].astype(np.float32),
        unknown_ids=unknown,
        duplicates=int(repeat.sum()),
        rows=len(frame),
        notes=tuple(notes),
        label=label,
    )
