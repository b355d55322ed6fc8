"""A seeded corpus of bad, odd and valid ratings/items/new-user files for the loader's fuzz test.

`corpus(seed)` yields `Case`s one at a time (a 20 MB file is built only when its turn comes):
the kinds of issue 12 item 8 (line endings, encodings, header/field count mismatches,
unbalanced quotes, mixed delimiters, huge lines/fields/ids, many columns/genres, odd ids and
timestamps) and random mutations (truncation, bit flips, byte insertions, delimiter swaps,
huge fields, line-ending swaps, quote insertions) of valid MovieLens-style files; then a new
user's ratings files (`read_user_ratings`): a few named kinds and random mutations of valid ones.

Run as a script (`python tests/loader_corpus.py SEED`), it loads every case in this process and
prints one JSON line per file: kind, size, outcome ("ok", "refused" or "crash" with the
traceback), CPU and wall seconds, and the process's peak RSS after it (ru_maxrss).
"""

from __future__ import annotations

import json
import random
import re
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

MB = 1024 * 1024


@dataclass
class Case:
    name: str
    kind: str  # "ratings", "items" or "user" (a new user's ratings)
    make: Callable[[], bytes]


# ------------------------------------------------------------------------------ valid bases


def _u_data(rng: random.Random, n: int = 400, users: int = 40, items: int = 60) -> str:
    rows = {(rng.randint(1, users), rng.randint(1, items)) for _ in range(n)}
    return "".join(
        f"{u}\t{i}\t{rng.randint(1, 5)}\t{rng.randint(874724710, 893286638)}\n"
        for u, i in sorted(rows)
    )


def _ratings_dat(rng: random.Random, n: int = 400) -> str:
    return _u_data(rng, n).replace("\t", "::")


def _ratings_csv(rng: random.Random, n: int = 400) -> str:
    body = "".join(
        f"{u},{i},{rng.randint(1, 10) / 2:g},{rng.randint(964982000, 1537799250)}\n"
        for u, i in sorted({(rng.randint(1, 40), rng.randint(1, 60)) for _ in range(n)})
    )
    return "userId,movieId,rating,timestamp\n" + body


GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Drama")
WORDS = ("Star", "Love", "Night", "City", "Lost", "Return", "King", "Día", "Café", "Blue")


def _title(rng: random.Random, i: int) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
    if rng.random() < 0.3:
        words += ", The"
    return f"{words} ({rng.randint(1930, 1998)})"


def _u_item(rng: random.Random, items: int = 60) -> str:
    lines = []
    for i in range(1, items + 1):
        flags = "|".join(rng.choice("0001") for _ in range(19))
        lines.append(f"{i}|{_title(rng, i)}|01-Jan-1995||http://x/{i}|{flags}\n")
    return "".join(lines)


def _movies_csv(rng: random.Random, items: int = 60) -> str:
    lines = ["movieId,title,genres\n"]
    for i in range(1, items + 1):
        title = _title(rng, i)
        title = f'"{title}"' if "," in title else title
        genres = "|".join(rng.sample(GENRES, rng.randint(1, 3))) if i % 9 else "(no genres listed)"
        lines.append(f"{i},{title},{genres}\n")
    return "".join(lines)


def _movies_dat(rng: random.Random, items: int = 60) -> str:
    return "".join(
        f"{i}::{_title(rng, i)}::{'|'.join(rng.sample(GENRES, 2))}\n" for i in range(1, items + 1)
    )


BASES: dict[str, tuple[str, Callable[[random.Random], str]]] = {
    "u.data": ("ratings", _u_data),
    "ratings.dat": ("ratings", _ratings_dat),
    "ratings.csv": ("ratings", _ratings_csv),
    "u.item": ("items", _u_item),
    "movies.csv": ("items", _movies_csv),
    "movies.dat": ("items", _movies_dat),
}

# The ratings every items file is attached to: users 1-3 rated items 1-60.
ITEMS_RATINGS = "".join(f"{u}\t{i}\t{1 + (u + i) % 5}\n" for u in (1, 2, 3) for i in range(1, 61))


# A new user's ratings are read against this catalogue (items 1-60) and scale.
USER_ITEMS = tuple(str(i) for i in range(1, 61))
USER_SCALE = (0.5, 5.0, 0.5)


def _user_csv(rng: random.Random, n: int = 30) -> str:
    """item,rating with a header; some ids outside the catalogue, some items rated twice."""
    rows = "".join(f"{rng.randint(1, 70)},{rng.randint(1, 10) / 2:g}\n" for _ in range(n))
    return rng.choice(("item,rating\n", "movieId,rating\n", "item_id,score\n")) + rows


def _user_tsv(rng: random.Random, n: int = 30) -> str:
    """item<TAB>rating without a header."""
    return "".join(f"{rng.randint(1, 70)}\t{rng.randint(1, 5)}\n" for _ in range(n))


def _user_ml(rng: random.Random, n: int = 30) -> str:
    """A MovieLens ratings.csv excerpt: the item and rating columns are found by name."""
    return _ratings_csv(rng, n)


USER_BASES: dict[str, Callable[[random.Random], str]] = {
    "me.csv": _user_csv,
    "me.tsv": _user_tsv,
    "me-ml.csv": _user_ml,
}


# ------------------------------------------------------------------------------ mutations

_DELIMS = ("\t", ",", "::", ";", "|", " ")
BREAK_NAMES = {
    "cr": "\r",
    "crlf": "\r\n",
    "ff": "\f",
    "vt": "\v",
    "nel": "\x85",
    "u2028": "\u2028",
    "u2029": "\u2029",
    "fs": "\x1c",
    "rs": "\x1e",
}
_BREAKS = tuple(BREAK_NAMES.values())


def _truncate(rng: random.Random, b: bytes) -> bytes:
    return b[: rng.randint(0, len(b))]


def _bit_flips(rng: random.Random, b: bytes) -> bytes:
    a = bytearray(b)
    for _ in range(rng.choice((1, 2, 5, 20))):
        if a:
            a[rng.randrange(len(a))] ^= 1 << rng.randrange(8)
    return bytes(a)


def _insert_bytes(rng: random.Random, b: bytes) -> bytes:
    a = bytearray(b)
    pool = b'",;|\t:\r\n\x00\x0b\x0c\x85\xff\xfe\\# -.e'
    for _ in range(rng.choice((1, 3, 10))):
        pos = rng.randint(0, len(a))
        ins = bytes(rng.choice(pool) for _ in range(rng.randint(1, 4)))
        a[pos:pos] = ins
    return bytes(a)


def _swap_delims(rng: random.Random, b: bytes) -> bytes:
    text = b.decode("utf-8")
    old = max(_DELIMS, key=text.count)
    new = rng.choice([d for d in _DELIMS if d != old])
    lines = text.split("\n")
    for _ in range(rng.choice((1, 3, len(lines)))):
        k = rng.randrange(len(lines))
        if rng.random() < 0.5:
            lines[k] = lines[k].replace(old, new)
        else:  # one delimiter of the line only: mixed delimiters in a line
            lines[k] = lines[k].replace(old, new, 1)
    return "\n".join(lines).encode()


def _line_endings(rng: random.Random, b: bytes) -> bytes:
    text = b.decode("utf-8")
    brk = rng.choice(_BREAKS)
    if rng.random() < 0.5:
        return text.replace("\n", brk).encode()
    parts = text.split("\n")  # mixed: each line its own ending
    return "".join(p + rng.choice(("\n", brk)) for p in parts).encode()


def _huge_field(rng: random.Random, b: bytes) -> bytes:
    text = b.decode("utf-8")
    lines = text.split("\n")
    k = rng.randrange(len(lines))
    size = rng.choice((300, 10_000, 200_000, MB))
    fill = rng.choice(("x", "9", "é", ",", "\t", '"'))
    fields = re.split(r"(::|[\t,|])", lines[k])
    j = rng.randrange(0, len(fields), 2)
    fields[j] = fill * size
    lines[k] = "".join(fields)
    return "\n".join(lines).encode()


def _quote(rng: random.Random, b: bytes) -> bytes:
    text = b.decode("utf-8")
    lines = text.split("\n")
    for _ in range(rng.choice((1, 2))):
        k = rng.randrange(len(lines))
        pos = rng.randint(0, len(lines[k]))
        lines[k] = lines[k][:pos] + '"' + lines[k][pos:]
    return "\n".join(lines).encode()


def _columns(rng: random.Random, b: bytes) -> bytes:
    """Drop or duplicate a field on line 1 (header or first row) or on a random line."""
    text = b.decode("utf-8")
    lines = text.split("\n")
    k = 0 if rng.random() < 0.5 else rng.randrange(len(lines))
    sep = max(_DELIMS, key=lines[k].count) if lines[k] else ","
    fields = lines[k].split(sep)
    if len(fields) > 1 and rng.random() < 0.5:
        del fields[rng.randrange(len(fields))]
    else:
        fields.insert(rng.randrange(len(fields) + 1), rng.choice(("extra", "7", "")))
    lines[k] = sep.join(fields)
    return "\n".join(lines).encode()


def _odd_values(rng: random.Random, b: bytes) -> bytes:
    text = b.decode("utf-8")
    lines = text.split("\n")
    k = rng.randrange(1, max(2, len(lines)))
    k = min(k, len(lines) - 1)
    sep = max(_DELIMS, key=lines[k].count) if lines[k] else ","
    fields = lines[k].split(sep)
    odd = rng.choice(
        (
            "--3", "²", "٣", "1e5", "-0", "+7", "0x1F", "nan", "inf", "-inf", "1e39", "",
            " ", "<b>x</b>", "9999-12-31", "0001-01-01", "253402300800", "1e30", "4,5",
            "NULL", "€", "\u202e", "1" * 40, "a" * 300, "9" * 30,
        )
    )  # fmt: skip
    fields[rng.randrange(len(fields))] = odd
    lines[k] = sep.join(fields)
    return "\n".join(lines).encode()


def _encoding(rng: random.Random, b: bytes) -> bytes:
    text = b.decode("utf-8")
    enc = rng.choice(("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-8-sig"))
    return text.encode(enc)


MUTATIONS: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "truncate": _truncate,
    "bitflip": _bit_flips,
    "insert": _insert_bytes,
    "delims": _swap_delims,
    "endings": _line_endings,
    "hugefield": _huge_field,
    "quote": _quote,
    "columns": _columns,
    "values": _odd_values,
    "encoding": _encoding,
}


# ------------------------------------------------------------------------------ the named kinds


def _named(rng: random.Random) -> list[Case]:
    """The kinds of files named in issue 12 item 8, each once (several of them large)."""
    u_data = _u_data(rng)
    csv_r = "user,item,rating,timestamp\n1,10,4,100\n2,10,5,101\n1,11,3,102\n"
    out: dict[str, tuple[str, Callable[[], bytes]]] = {}

    def add(name: str, make: Callable[[], bytes], kind: str = "ratings") -> None:
        out[name] = (kind, make)

    for nm, brk in BREAK_NAMES.items():
        add(f"csv-{nm}", lambda brk=brk: csv_r.replace("\n", brk).encode())
    add("csv-mixed-cr-lf", lambda: b"user,item,rating\r\n1,10,4\r2,10,5\n1,11,3\r")
    add("u.data-cr-only", lambda: u_data.replace("\n", "\r").encode())
    add("u.data-cr-only-20mb", lambda: _big_u_data(20 * MB, "\r"))
    add("csv-utf32", lambda: csv_r.encode("utf-32"))
    add("csv-utf32-no-bom", lambda: csv_r.encode("utf-32-le"))
    add("csv-utf16-bom", lambda: csv_r.encode("utf-16"))
    add("csv-utf16-no-bom", lambda: csv_r.encode("utf-16-le"))
    add(
        "csv-header-more-names", lambda: b"user,item,rating,timestamp,extra\n1,10,4,100\n2,10,5,1\n"
    )
    add("csv-header-fewer-names", lambda: b"user,item,rating\n1,10,4,100\n2,10,5,101\n3,11,2,9\n")
    add(
        "csv-unbalanced-quote",
        lambda: b'user,item,rating\n1,10,4\n2,"10,5\n3,10,5\n4,10,5\n5,10,1\n6,"11,2\n7,12,3\n',
    )
    add("csv-mixed-delims", lambda: b"1,10,4,100\n2,10,5,101\n3,10\t2\t102\n4,11,3,103\n")
    add("tsv-mixed-delims", lambda: b"1\t10\t4\t100\n2\t10,5\t101\n3\t10\t2\t102\n")
    add("csv-20mb-commas", lambda: b"," * (20 * MB))
    add("csv-20mb-tabs", lambda: b"\t" * (20 * MB))
    add("csv-20mb-one-line", lambda: b"user,item,rating\n" + b"1,2,3," * (20 * MB // 6))
    add("csv-10k-columns", lambda: _wide(10_000, 30))
    add("csv-100k-columns", lambda: _wide(100_000, 5))
    add("csv-10kb-id-100k-users", _long_id)
    add("csv-dash-dash-id", lambda: b"user,item,rating\n1,10,4\n--3,10,5\n2,11,3\n")
    add("csv-superscript-id", lambda: "user,item,rating\n1,10,4\n²,10,5\n2,11,3\n".encode())
    add(
        "csv-year-9999",
        lambda: b"user,item,rating,timestamp\n1,10,4,9999-12-31\n2,10,5,2000-01-01\n",
    )
    add(
        "csv-year-9999-secs", lambda: b"user,item,rating,timestamp\n1,10,4,253402300800\n2,10,5,0\n"
    )
    add("csv-distinct-ids-20mb", lambda: _distinct_ids(20 * MB))
    # The most rows (and line breaks) 24 MB can hold: memory per row, not per byte, counts.
    add("newlines-24mb", lambda: b"\n" * (24 * MB))
    add("csv-empty-fields-24mb", lambda: b"user,item,rating\n" + b",,\n" * (8 * MB))
    add("spaces-shortest-rows-24mb", lambda: b"1 2 3\n" * (4 * MB))
    add("movies-distinct-ids-24mb", lambda: _distinct_items(24 * MB), "items")
    add(
        "movies-1mb-title", lambda: b'movieId,title,genres\n1,"' + b"T" * MB + b'",Drama\n', "items"
    )
    add("movies-20k-genres", _many_genres, "items")
    add(
        "movies-200k-genre-name",
        lambda: b"movieId,title,genres\n1,A," + b"G" * 60_000 + b"\n",
        "items",
    )
    add("u.item-cr-only", lambda: _u_item(rng).replace("\n", "\r").encode("latin-1"), "items")
    return [Case(n, k, m) for n, (k, m) in out.items()]


def _big_u_data(size: int, brk: str) -> bytes:
    line = f"1\t2\t3\t881250949{brk}".encode()
    return line * (size // len(line))


def _wide(cols: int, rows: int) -> bytes:
    head = ",".join(["user", "item", "rating"] + [f"c{j}" for j in range(cols - 3)])
    row = ",".join(["1", "2", "3"] + ["0"] * (cols - 3))
    return (head + "\n" + (row + "\n") * rows).encode()


def _long_id() -> bytes:
    rows = [f"{u},{u % 500},{1 + u % 5}\n" for u in range(100_000)]
    rows[50_000] = "u" * 10_000 + ",7,4\n"
    return ("user,item,rating\n" + "".join(rows)).encode()


def _distinct_ids(size: int) -> bytes:
    """Every user and item distinct (ids up to 9 digits): the most ids a file this size holds."""
    out, n = [], 0
    i = 0
    while n < size:
        line = f"{100000000 + i},{200000000 + i},{1 + i % 5}\n"
        out.append(line)
        n += len(line)
        i += 1
    return ("user,item,rating\n" + "".join(out)).encode()


def _distinct_items(size: int) -> bytes:
    rows = (f"{1000000 + i},T,G{i % 1000}\n" for i in range(size // 16))
    return ("movieId,title,genres\n" + "".join(rows)).encode()


def _many_genres() -> bytes:
    lines = ["movieId,title,genres\n"]
    for i in range(1, 20_001):
        lines.append(f"{i},Film {i},G{i}|G{(i * 7) % 20000}\n")
    return "".join(lines).encode()


# ------------------------------------------------------------------------------ the corpus


def _mutate(rng: random.Random, text: str) -> tuple[str, bytes]:
    """1-3 random mutations of a valid file: their names joined by '+', and the bytes."""
    muts = rng.sample(list(MUTATIONS), rng.choice((1, 1, 2, 3)))
    data = text.encode("utf-8")
    for m in muts:
        try:
            data = MUTATIONS[m](rng, data)
        except UnicodeDecodeError:  # a text-level mutation after a byte-level one
            data = MUTATIONS["bitflip"](rng, data)
    return "+".join(muts), data


def _named_user(rng: random.Random) -> list[Case]:
    """A new user's ratings: the kinds that differ from a ratings file (two columns), and the
    large ones (the reader's own 10 MB size limit)."""
    out = {
        "user-no-header-3-fields": b"1,4,x\n2,3,y\n",
        "user-header-only": b"item,rating\n",
        "user-one-column": b"1\n2\n3\n",
        "user-unknown-header": b"film,grade\nA,4\nB,5\n",
        "user-all-unknown-items": b"item,rating\n999,4\n998,5\n",
        "user-off-scale": b"item,rating\n1,4\n2,9\n",
        "user-two-rating-columns": b"item,rating,score\n1,4,3\n",
        "user-empty-item": b"item,rating\n,4\n2,3\n",
        "user-utf16": "item,rating\n1,4\n2,5\n".encode("utf-16"),
        "user-cr-only": b"item\trating\r1\t4\r2\t5\r",
        "user-quoted-ids": b'item,rating\n"1",4\n"2, 3",5\n',
        "user-long-id": b"item,rating\n1,4\n" + b"7" * 100 + b",3\n",
    }
    cases = [Case(n, "user", lambda b=b: b) for n, b in out.items()]
    cases.append(Case("user-9mb", "user", lambda: b"item,rating\n" + b"17,4\n" * (9 * MB // 5)))
    cases.append(Case("user-11mb-over-limit", "user", lambda: b"1,4\n" * (11 * MB // 4)))
    cases.append(Case("user-20mb-one-line", "user", lambda: b"1,4," * (20 * MB // 4)))
    return cases


def corpus(seed: int = 12, n_random: int = 300, n_user: int = 40) -> Iterator[Case]:
    """The named kinds, then `n_random` random mutations (1-3 each) of the valid bases, then a
    new user's ratings: the named kinds and `n_user` random mutations of valid ones."""
    rng = random.Random(seed)
    yield from _named(rng)
    base_names = list(BASES)
    for j in range(n_random):
        base = base_names[j % len(base_names)]
        kind, build = BASES[base]
        muts, data = _mutate(rng, build(rng))
        yield Case(f"{j:03d}-{base}-{muts}", kind, lambda d=data: d)
    # After the ratings and items files, so that adding these left those byte for byte the same.
    yield from _named_user(rng)
    user_names = list(USER_BASES)
    for j in range(n_user):
        base = user_names[j % len(user_names)]
        muts, data = _mutate(rng, USER_BASES[base](rng))
        yield Case(f"user-{j:03d}-{base}-{muts}", "user", lambda d=data: d)


# ------------------------------------------------------------------------------ the runner

_DUPS = re.compile(r"dropped ([\d,]+) duplicate")
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
         (b"\xfe\xff", "utf-16"))  # fmt: skip


def data_lines(raw: bytes) -> int | None:
    """Lines with a value in them (not only spaces, delimiters and quotes), line breaks as in
    str.splitlines(); None where that is ambiguous (byte 0x85 in a non-UTF-8 file) or the file
    does not decode."""
    codec = next((c for bom, c in _BOMS if raw.startswith(bom)), "utf-8-sig")
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError:
        if b"\x85" in raw or codec != "utf-8-sig":
            return None
        text = raw.decode("latin-1")
    return sum(1 for ln in text.splitlines() if ln.strip().strip(" \t,;|:\"'"))


def run_one(case: Case, raw: bytes) -> dict:
    from metarec_core.data.dataset import DataError, RatingScale
    from metarec_core.data.io import attach_items, load_ratings, read_user_ratings

    row: dict = {"name": case.name, "kind": case.kind, "bytes": len(raw)}
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        if case.kind == "ratings":
            d = load_ratings(raw, name=case.name)
            lines = data_lines(raw)
            m = [_DUPS.search(n) for n in d.notes]
            dups = sum(int(x.group(1).replace(",", "")) for x in m if x)
            row["rows"] = d.n_ratings + dups
            row["lines"] = lines
        elif case.kind == "user":
            ids = np.asarray(USER_ITEMS)
            u = read_user_ratings(raw, ids, RatingScale(*USER_SCALE), name=case.name)
            # Every data row is mapped, dropped as unknown or counted as a repeat.
            assert len(u.items) + len(u.unknown_ids) + u.duplicates == u.rows, "rows lost"
            row["rows"] = u.rows
            row["lines"] = data_lines(raw)
        else:
            base = load_ratings(ITEMS_RATINGS.encode(), name="r.tsv")
            d = attach_items(base, raw, name=case.name)
            row["genres"] = len(d.items.genre_names)
        row["outcome"] = "ok"
    except DataError as e:
        row["outcome"] = "refused"
        row["message"] = str(e)[:300]
    except BaseException as e:  # noqa: BLE001 - anything else is what the test looks for
        row["outcome"] = "crash"
        row["message"] = "".join(traceback.format_exception(e))[-2000:]
    row["cpu_s"] = time.process_time() - c0
    row["wall_s"] = time.perf_counter() - t0
    row["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def main(argv: list[str]) -> None:
    seed = int(argv[0]) if argv else 12
    only = re.compile(argv[1]) if len(argv) > 1 else None
    for case in corpus(seed):
        if only and not only.search(case.name):
            continue
        print(json.dumps({"start": case.name}), flush=True)
        raw = case.make()
        print(json.dumps(run_one(case, raw)), flush=True)
        del raw


if __name__ == "__main__":
    main(sys.argv[1:])
