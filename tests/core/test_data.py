"""Loading ratings and item metadata: formats, bad input, duplicates, from_arrays, summary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metarec_core.data.dataset import DataError, RatingScale, RatingsDataset
from metarec_core.data.io import (
    MAX_COLUMNS,
    MAX_GENRES,
    MAX_LINE_BYTES,
    MAX_TITLE_CHARS,
    ML100K_GENRES,
    attach_items,
    from_arrays,
    load_ratings,
    read_text,
)
from metarec_core.data.summary import summarize


def write(tmp_path: Path, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return p


def triples(d: RatingsDataset) -> dict[tuple[str, str], float]:
    """(raw user, raw item) -> rating, for comparing datasets independently of inner ids."""
    return {
        (str(d.user_ids[u]), str(d.item_ids[i])): float(r)
        for u, i, r in zip(d.user, d.item, d.rating, strict=True)
    }


def check_invariants(d: RatingsDataset) -> None:
    assert d.user.dtype == np.int64 and d.item.dtype == np.int64
    assert d.rating.dtype == np.float32
    assert len(d.user) == len(d.item) == len(d.rating)
    # Inner ids are dense: every index 0..n-1 is used.
    assert set(np.unique(d.user)) == set(range(d.n_users))
    assert set(np.unique(d.item)) == set(range(d.n_items))
    assert len(set(zip(d.user.tolist(), d.item.tolist(), strict=True))) == d.n_ratings
    if d.timestamp is not None:
        assert d.timestamp.dtype == np.int64 and len(d.timestamp) == d.n_ratings


# --------------------------------------------------------------------------- formats


def test_csv_with_header_and_timestamp(tmp_path):
    p = write(tmp_path, "r.csv", "user_id,item_id,rating,timestamp\n1,10,4,100\n2,10,5,101\n")
    d = load_ratings(p)
    check_invariants(d)
    assert triples(d) == {("1", "10"): 4.0, ("2", "10"): 5.0}
    assert d.timestamp.tolist() == [100, 101]
    assert d.scale == RatingScale(4.0, 5.0, 1.0)
    assert d.source == "r.csv"
    assert d.notes == ()


@pytest.mark.parametrize(
    "header",
    [
        "user,item,rating",
        "userId,movieId,rating",
        "USERID,ITEMID,SCORE",
        "UserID,movie_id,Rating",
        "userid,itemId,score",
        '"user","item","rating"',
    ],
)
def test_header_names_recognised(header):
    d = load_ratings(f"{header}\n7,8,3\n7,9,2\n".encode(), name="h.csv")
    assert triples(d) == {("7", "8"): 3.0, ("7", "9"): 2.0}


def test_columns_found_in_any_order_and_extra_columns_ignored():
    d = load_ratings(b"score,comment,movieId,userId\n4,nice,m1,u1\n2,meh,m2,u1\n", name="x.csv")
    assert triples(d) == {("u1", "m1"): 4.0, ("u1", "m2"): 2.0}
    assert d.timestamp is None


def test_movielens_u_data_tab_no_header(tmp_path):
    p = write(tmp_path, "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t1\n")
    d = load_ratings(p)
    check_invariants(d)
    assert triples(d) == {("196", "242"): 3.0, ("186", "302"): 3.0, ("22", "377"): 1.0}
    assert d.timestamp.tolist() == [881250949, 891717742, 1]
    # Integer ids are ordered numerically: "22" before "186" before "196".
    assert d.user_ids.tolist() == ["22", "186", "196"]


def test_movielens_ratings_dat_double_colon(tmp_path):
    p = write(
        tmp_path, "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::1\n"
    )
    d = load_ratings(p)
    assert triples(d) == {("1", "1193"): 5.0, ("1", "661"): 3.0, ("2", "1193"): 4.0}
    assert d.item_ids.tolist() == ["661", "1193"]


def test_movielens_latest_ratings_csv_half_stars(tmp_path):
    p = write(
        tmp_path,
        "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,0.5,964981247\n2,1,5.0,1\n",
    )
    d = load_ratings(p)
    assert d.scale == RatingScale(0.5, 5.0, 0.5)
    assert triples(d)[("1", "3")] == 0.5


def test_headerless_three_columns_without_timestamp():
    d = load_ratings(b"1,2,3\n1,3,4\n", name="r.csv")
    assert d.timestamp is None
    assert triples(d) == {("1", "2"): 3.0, ("1", "3"): 4.0}


@pytest.mark.parametrize("sep", [";", "|", " ", "  "])
def test_other_delimiters(sep):
    text = f"user{sep}item{sep}rating\n1{sep}2{sep}3\n4{sep}5{sep}1\n"
    d = load_ratings(text.encode(), name="r.txt")
    assert triples(d) == {("1", "2"): 3.0, ("4", "5"): 1.0}


def test_scale_one_to_ten():
    rows = "".join(f"u{i % 3},i{i},{1 + i % 10}\n" for i in range(30))
    d = load_ratings(("user,item,rating\n" + rows).encode(), name="ten.csv")
    assert d.scale == RatingScale(1.0, 10.0, 1.0)


def test_continuous_scale_has_step_zero():
    d = load_ratings(b"user,item,rating\n1,1,0.123\n1,2,0.5\n2,1,0.777\n", name="c.csv")
    assert d.scale == RatingScale(0.123, 0.777, 0.0)


def test_string_ids_are_kept_and_sorted():
    d = load_ratings(b"user,item,rating\nbob,Zoo,3\nalice,apple,4\nbob,apple,5\n", name="s.csv")
    assert d.user_ids.tolist() == ["alice", "bob"]
    assert d.item_ids.tolist() == ["Zoo", "apple"]
    assert triples(d) == {("bob", "Zoo"): 3.0, ("alice", "apple"): 4.0, ("bob", "apple"): 5.0}


def test_mixed_ids_sorted_as_strings_and_whitespace_stripped():
    d = load_ratings(b"user, item, rating\n 10 , a1, 3\n9,a1,4\n", name="m.csv")
    assert d.user_ids.tolist() == ["9", "10"]  # all-integer ids sort numerically
    assert d.item_ids.tolist() == ["a1"]


def test_crlf_line_endings(tmp_path):
    p = write(tmp_path, "crlf.csv", "user,item,rating\r\n1,2,3\r\n1,3,5\r\n")
    assert triples(load_ratings(p)) == {("1", "2"): 3.0, ("1", "3"): 5.0}


def test_crlf_tab_file(tmp_path):
    p = write(tmp_path, "u.data", "1\t2\t3\t9\r\n1\t3\t5\t10\r\n")
    d = load_ratings(p)
    assert triples(d) == {("1", "2"): 3.0, ("1", "3"): 5.0}
    assert d.timestamp.tolist() == [9, 10]


def test_utf8_bom_and_non_ascii_ids(tmp_path):
    p = write(tmp_path, "bom.csv", "\ufeffuser,item,rating\nzoë,Amélie,4\n")
    d = load_ratings(p)
    assert triples(d) == {("zoë", "Amélie"): 4.0}
    assert d.notes == ()


def test_latin1_fallback_is_noted(tmp_path):
    p = write(tmp_path, "lat.csv", "user,item,rating\nzoë,Amélie,4\n", encoding="latin-1")
    d = load_ratings(p)
    assert triples(d) == {("zoë", "Amélie"): 4.0}
    assert any("latin-1" in n for n in d.notes)


def test_utf16_with_bom():
    d = load_ratings("user,item,rating\nx,y,2\n".encode("utf-16"), name="w.csv")
    assert triples(d) == {("x", "y"): 2.0}


def test_blank_lines_skipped_and_line_numbers_still_right():
    text = b"\nuser,item,rating\n\n1,2,3\n\n1,3,oops\n"
    with pytest.raises(DataError, match=r"line 6\b"):
        load_ratings(text, name="blank.csv")
    d = load_ratings(b"\nuser,item,rating\n\n1,2,3\n\n1,3,4\n\n\n", name="blank.csv")
    assert d.n_ratings == 2


def test_iso_dates_as_timestamps():
    d = load_ratings(b"user,item,rating,date\n1,1,5,2020-01-01\n1,2,3,1970-01-02\n", name="d.csv")
    assert d.timestamp.tolist() == [1577836800, 86400]


def test_bytes_source_labelled_with_name():
    with pytest.raises(DataError, match=r"^upload\.csv: "):
        load_ratings(b"", name="upload.csv")
    d = load_ratings(b"1,2,3\n", name="upload.csv")
    assert d.source == "upload.csv"


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_ratings(tmp_path / "nope.csv")


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("content", "patterns"),
    [
        (b"", ["empty.csv", "empty"]),
        (b"\n  \n\r\n", ["empty.csv", "empty"]),
        (b"user,item,rating\n", ["header", "no data rows"]),
        (b"user,item,rating\n\n\n", ["header", "no data rows"]),
        (b"user,userId,item,rating\n1,1,2,3\n", ["ambiguous", "'user' \\(column 1\\)", "userId"]),
        (b"user,item,score,rating\n1,2,3,4\n", ["ambiguous", "rating"]),
        (b"user,foo,rating\n1,2,3\n", ["no item column", "'foo'", "item"]),
        (b"user,item,stuff\n1,2,3\n", ["no rating column", "'stuff'"]),
        (b"a,b,c\n1,2,3\n", ["line 1 looks like a header", "a, b, c", "user"]),
        (b"1,2,3,4,5\n1,2,3,4,5\n", ["5 fields", "no header", "user, item, rating"]),
        (b"1,2\n3,4\n", ["could not split", "at least 3 fields"]),
    ],
)
def test_structural_errors(content, patterns):
    with pytest.raises(DataError) as e:
        load_ratings(content, name="empty.csv" if not content.strip() else "bad.csv")
    for pat in patterns:
        assert re.search(pat, str(e.value)), (pat, str(e.value))


@pytest.mark.parametrize(
    ("text", "start", "values"),
    [
        (
            b"user,item,rating\n1,1,4\n1,2,x\n1,3,NaN\n1,4,\n1,5,inf\n1,6,3\n",
            "column 'rating': 4 ratings are not a finite number at lines 3, 4, 5, 6",
            "'x', 'NaN', '', 'inf'",
        ),
        # kept as float32, these would become inf
        (
            b"user,item,rating\n1,1,4\n1,2,1e308\n2,1,-4e38\n",
            "column 'rating': 2 ratings too large at lines 3, 4",
            "'1e308', '-4e38'; ratings must lie within ±3.4e+38",
        ),
    ],
)
def test_unusable_ratings_name_column_lines_and_values(text, start, values):
    with pytest.raises(DataError) as e:
        load_ratings(text, name="bad.csv")
    msg = str(e.value)
    assert msg.startswith(f"bad.csv: {start}")
    assert values in msg


def test_the_largest_float32_rating_loads():
    assert load_ratings(b"user,item,rating\n1,1,3e38\n1,2,1\n", name="ok.csv").n_ratings == 2


def test_many_bad_rows_show_the_first_few_and_a_count():
    rows = "".join(f"1,{i},bad\n" for i in range(20))
    with pytest.raises(DataError, match=r"lines 2, 3, 4, 5, 6 \(and 15 more\)"):
        load_ratings(("user,item,rating\n" + rows).encode(), name="many.csv")


def test_headerless_bad_rating_names_column_position():
    with pytest.raises(DataError, match=r"column 3 \(rating\).*line 2"):
        load_ratings(b"1\t2\t3\n1\t3\tfive\n", name="u.data")


@pytest.mark.parametrize(
    ("text", "scale", "found"),
    [
        (b"user,item,rating\n1,1,3\n1,2,6\n1,3,0\n", RatingScale(1, 5, 1), "'6', '0'"),
        (b"user,item,rating\n1,1,3\n1,2,3.5\n", RatingScale(1, 5, 1), "'3.5'"),
        (b"user,item,rating\n1,1,0.5\n1,2,5.5\n", RatingScale(0.5, 5, 0.5), "'5.5'"),
    ],
)
def test_ratings_outside_declared_scale(text, scale, found):
    with pytest.raises(DataError) as e:
        load_ratings(text, name="s.csv", scale=scale)
    assert "outside the declared scale" in str(e.value)
    assert found in str(e.value)
    assert "line" in str(e.value)


def test_declared_scale_is_used_when_ratings_fit():
    d = load_ratings(b"user,item,rating\n1,1,3\n1,2,4\n", name="s.csv", scale=RatingScale(1, 5, 1))
    assert d.scale == RatingScale(1, 5, 1)  # not the observed 3-4


def test_file_over_size_limit(tmp_path):
    p = write(tmp_path, "big.csv", "user,item,rating\n" + "1,2,3\n" * 100)
    with pytest.raises(DataError, match=r"big\.csv: .*over the size limit of 100 bytes"):
        load_ratings(p, max_bytes=100)
    with pytest.raises(DataError, match="over the size limit"):
        load_ratings(p.read_bytes(), name="big.csv", max_bytes=100)
    assert load_ratings(p, max_bytes=10_000).n_ratings == 1


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (bytes(range(256)) * 4, "binary data"),
        (b"user,item,rating\n1,2,3\x00\x00\x00\n", "NUL byte at offset 22"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "gzip archive"),
        (b"PK\x03\x04\x14\x00", "zip archive"),
        (b"\x01\x02\x03\x04\x05\x06\x07\x08ab\x0e\x0f\x10\x11", "binary data"),
    ],
)
def test_binary_garbage(content, pattern):
    with pytest.raises(DataError, match=pattern):
        load_ratings(content, name="garbage.bin")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (b"1,2,3\n1,3,4\n1,4\n2,2,5,6\n", r"2 malformed rows: line 3 has 2 fields, line 4 has 4"),
        (b"user,item,rating\n1,2,3\n1,3\n", r"1 malformed row: line 3 has 2 fields.*expected 3"),
        (b"1\t2\t3\t4\n1\t3\t4\n", r"line 2 has 3 fields; expected 4 fields separated by tabs"),
        (b"1::2::3\n1::3::4::5::6\n1::4::5\n", r"line 2 has 5 fields"),
        (b"user,item,rating,timestamp\n1,2,3,4\n1,2,3\n", r"line 3 has 3 fields; expected 4"),
    ],
)
def test_malformed_rows_with_line_numbers(text, pattern):
    with pytest.raises(DataError, match=pattern):
        load_ratings(text, name="mal.csv")


def test_empty_ids():
    with pytest.raises(DataError, match=r"column 'user': 1 empty user id at line 3"):
        load_ratings(b"user,item,rating\n1,2,3\n ,2,3\n", name="e.csv")
    with pytest.raises(DataError, match=r"empty item id at line 2"):
        load_ratings(b"user,item,rating,timestamp\n1,,3,5\n", name="e.csv")


def test_bad_timestamps():
    with pytest.raises(
        DataError, match=r"column 'timestamp': 1 timestamp not understood at line 3"
    ):
        load_ratings(b"user,item,rating,timestamp\n1,2,3,5\n1,3,3,soon\n", name="t.csv")


# --------------------------------------------------------------------------- duplicates


def test_duplicates_keep_last_and_are_counted():
    text = b"user,item,rating\n1,1,1\n1,2,2\n1,1,3\n2,1,4\n1,1,5\n2,1,2\n"
    d = load_ratings(text, name="dup.csv")
    check_invariants(d)
    assert triples(d) == {("1", "1"): 5.0, ("1", "2"): 2.0, ("2", "1"): 2.0}
    assert len(d.notes) == 1
    assert "dropped 3 duplicate (user, item) ratings" in d.notes[0]
    assert "keeping the last" in d.notes[0]
    assert "lines 2, 4, 5" in d.notes[0]


def test_duplicates_keep_their_timestamps():
    d = load_ratings(b"1\t1\t1\t100\n1\t1\t4\t200\n", name="u.data")
    assert d.rating.tolist() == [4.0] and d.timestamp.tolist() == [200]


# --------------------------------------------------------------------------- item metadata


U_ITEM = (
    "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
    "2|GoldenEye (1995)|01-Jan-1995||http://x|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n"
    '3|Café "Noir" (1940)|01-Jan-1940||http://x|0|0|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0\n'
)


def test_u_item_latin1_with_standard_genres(tmp_path):
    ratings = write(tmp_path, "u.data", "1\t1\t5\t1\n1\t3\t4\t2\n2\t4\t3\t3\n")
    items = write(tmp_path, "u.item", U_ITEM, encoding="latin-1")
    d = load_ratings(ratings, items=items)
    info = d.items
    assert info.genre_names == ML100K_GENRES
    assert info.genres.shape == (3, 19)
    assert info.titles.tolist() == ["Toy Story (1995)", 'Café "Noir" (1940)', "4"]
    assert info.genre_list(0) == ["Animation", "Children's", "Comedy"]
    assert info.genre_list(1) == ["Film-Noir"]
    assert info.genre_list(2) == []
    assert info.missing == 1
    assert any("1 rated item without a row in u.item" in n for n in d.notes)
    assert any("ignored 1 row of items nobody rated" in n for n in d.notes)


def test_u_item_genre_names_from_u_genre_beside_it(tmp_path):
    ratings = write(tmp_path, "u.data", "1\t1\t5\t1\n")
    items = write(tmp_path, "u.item", "1|A (1990)|d||u|0|1|1\n")
    write(tmp_path, "u.genre", "Alpha|0\nBeta|1\nGamma|2\n\n")
    d = load_ratings(ratings, items=items)
    assert d.items.genre_names == ("Alpha", "Beta", "Gamma")
    assert d.items.genre_list(0) == ["Beta", "Gamma"]
    # From bytes there is no u.genre to read: generic names.
    d2 = load_ratings(ratings, items=items.read_bytes(), items_name="u.item")
    assert d2.items.genre_names == ("genre 1", "genre 2", "genre 3")


def test_u_item_bad_flags():
    bad = U_ITEM.replace("|0|1|1|0|0|0|0|0|0|0|0|", "|0|1|1|x|0|0|0|0|0|0|0|")
    with pytest.raises(DataError, match=r"u\.item: genre flags .* not 0/1 at line 2"):
        load_ratings(b"1,1,5\n", items=bad.encode(), items_name="u.item")


def test_movies_csv_with_quoted_titles_and_no_genres():
    movies = (
        b"movieId,title,genres\n"
        b"1,Toy Story (1995),Adventure|Animation|Children\n"
        b'2,"American President, The (1995)",Comedy|Drama\n'
        b"3,Nothing (2000),(no genres listed)\n"
    )
    d = load_ratings(b"userId,movieId,rating\n1,1,4\n1,2,3\n1,3,2\n", name="r.csv", items=movies)
    info = d.items
    assert info.titles.tolist() == [
        "Toy Story (1995)",
        "American President, The (1995)",
        "Nothing (2000)",
    ]
    assert info.genre_names == ("Adventure", "Animation", "Children", "Comedy", "Drama")
    assert info.genre_list(1) == ["Comedy", "Drama"]
    assert info.genre_list(2) == []
    assert info.missing == 0


def test_movies_dat(tmp_path):
    movies = write(
        tmp_path,
        "movies.dat",
        "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Heat (1995)::Action|Crime\n",
        encoding="latin-1",
    )
    d = load_ratings(b"1::2::5::1\n", name="ratings.dat", items=movies)
    assert d.items.titles.tolist() == ["Heat (1995)"]
    assert d.items.genre_list(0) == ["Action", "Crime"]


def test_generic_item_title_csv_without_header_and_without_genres():
    d = load_ratings(b"u,a,1\nu,b,2\n", name="r.csv", items=b"b,Bee\na,Ay\n")
    assert d.items.titles.tolist() == ["Ay", "Bee"]
    assert d.items.genre_names == () and d.items.genres.shape == (2, 0)


def test_generic_item_csv_with_header_names():
    items = b"item_id,name,genre\na,Ay,X|Y\nb,,Y\n"
    d = load_ratings(b"user,item,rating\nu,a,1\nu,b,2\n", name="r.csv", items=items)
    assert d.items.titles.tolist() == ["Ay", "b"]  # an empty title shows the raw id
    assert d.items.genre_names == ("X", "Y")
    assert d.items.genres.tolist() == [[True, True], [False, True]]


def test_duplicate_item_rows_keep_last_and_are_noted():
    d = load_ratings(b"u,a,1\n", name="r.csv", items=b"item,title\na,Old\na,New\n")
    assert d.items.titles.tolist() == ["New"]
    assert any("1 duplicate item row" in n for n in d.notes)


@pytest.mark.parametrize(
    ("items", "pattern"),
    [
        (b"", r"items\.csv: the file is empty"),
        (b"item,title\n", r"items\.csv: the file has a header .* but no data rows"),
        (b"item,genres\n1,Drama\n", r"items\.csv: no title column"),
        (b"movieId,itemId,title\n1,1,A\n", r"items\.csv: ambiguous columns"),
        (b"\x00\x01\x02binary", r"items\.csv: this is binary data"),
    ],
)
def test_bad_item_files(items, pattern):
    with pytest.raises(DataError, match=pattern):
        load_ratings(b"1,1,5\n", name="r.csv", items=items, items_name="items.csv")


def test_items_file_size_limit_applies(tmp_path):
    items = write(tmp_path, "items.csv", "item,title\n" + "1,A\n" * 50)
    with pytest.raises(DataError, match=r"items\.csv: .*over the size limit"):
        load_ratings(b"1,1,5\n", name="r.csv", items=items, max_bytes=100)


# --------------------------------------------------------------------------- from_arrays


def test_from_arrays_basic_and_metadata():
    d = from_arrays(
        [1, 1, 2],
        ["a", "b", "a"],
        [4, 5, 3],
        timestamps=[10, 20, 30],
        item_titles={"a": "Alpha"},
        genres={"a": ["X"], "b": ["Y", "X"]},
        source="mem",
    )
    check_invariants(d)
    assert d.source == "mem"
    assert triples(d) == {("1", "a"): 4.0, ("1", "b"): 5.0, ("2", "a"): 3.0}
    assert d.timestamp.tolist() == [10, 20, 30]
    assert d.items.titles.tolist() == ["Alpha", "b"]
    assert d.items.genre_names == ("X", "Y")
    assert d.items.genre_list(1) == ["X", "Y"]
    assert d.items.missing == 0
    assert d.scale == RatingScale(3, 5, 1)


def test_from_arrays_same_result_as_file(tmp_path):
    p = write(tmp_path, "r.csv", "user,item,rating\n3,x,1\n1,y,2\n3,y,5\n")
    a = load_ratings(p)
    b = from_arrays(["3", "1", "3"], ["x", "y", "y"], [1.0, 2.0, 5.0], source="r.csv")
    assert a.fingerprint() == b.fingerprint()
    assert a.scale == b.scale


def test_from_arrays_validation():
    with pytest.raises(DataError, match="different lengths"):
        from_arrays([1, 2], [1], [3, 4])
    with pytest.raises(DataError, match="no ratings"):
        from_arrays([], [], [])
    with pytest.raises(
        DataError, match=r"ratings: 2 ratings are not a finite number at positions 1, 2"
    ):
        from_arrays([1, 1, 2], [1, 2, 3], [3.0, np.nan, np.inf])
    with pytest.raises(DataError, match=r"not a finite number at position 0: found 'x'"):
        from_arrays([1], [1], ["x"])
    with pytest.raises(DataError, match=r"outside the declared scale 1 to 5.*position 1"):
        from_arrays([1, 1], [1, 2], [3, 9], scale=RatingScale(1, 5, 1))
    with pytest.raises(DataError, match=r"empty user id at position 0"):
        from_arrays([""], [1], [3])


def test_from_arrays_duplicates_keep_last():
    d = from_arrays([1, 1, 1], [2, 2, 3], [1, 4, 5])
    assert triples(d) == {("1", "2"): 4.0, ("1", "3"): 5.0}
    assert "dropped 1 duplicate" in d.notes[0] and "position 0" in d.notes[0]


# --------------------------------------------------------------------------- summary


def test_summarize_numbers_and_json():
    d = from_arrays(
        ["u1"] * 4 + ["u2"] * 2, ["a", "b", "c", "d", "a", "b"], [1, 2, 2, 5, 5, 5], source="t"
    )
    s = summarize(d)
    assert (s.n_users, s.n_items, s.n_ratings) == (2, 4, 6)
    assert s.density == pytest.approx(6 / 8)
    assert s.ratings_per_user == {
        "min": 2.0,
        "p25": 2.5,
        "median": 3.0,
        "p75": 3.5,
        "max": 4.0,
        "mean": 3.0,
    }
    assert s.ratings_per_item["max"] == 2.0 and s.ratings_per_item["min"] == 1.0
    assert s.rating_counts == {"1": 1, "2": 2, "5": 3}
    assert s.mean_rating == pytest.approx(20 / 6)
    assert s.users_fewer_than["11"] == 2
    assert s.has_items is False
    out = s.to_dict()
    assert json.loads(json.dumps(out)) == out
    assert out["scale"] == {"low": 1.0, "high": 5.0, "step": 1.0}
    assert out["n_ratings"] == 6 and out["notes"] == []
    text = s.to_text()
    assert "t: 2 users, 4 items, 6 ratings (density 75.00%)" in text
    assert "scale: 1 to 5, step 1" in text


def test_summary_rating_counts_for_half_stars_and_notes():
    d = load_ratings(b"user,item,rating\n1,1,0.5\n1,2,3.5\n1,2,4.5\n", name="h.csv")
    s = summarize(d)
    assert s.rating_counts == {"0.5": 1, "4.5": 1}
    assert s.notes == d.notes and len(s.notes) == 1
    assert "note: dropped 1 duplicate" in s.to_text()


def test_summary_continuous_ratings_are_binned():
    rng = np.random.default_rng(0)
    d = from_arrays(np.arange(200) % 7, np.arange(200), rng.random(200))
    counts = summarize(d).rating_counts
    assert len(counts) == 10 and sum(counts.values()) == 200


def test_summary_users_fewer_than_counts():
    users = np.repeat(np.arange(4), [5, 12, 14, 40])
    d = from_arrays(users, np.arange(len(users)), np.ones(len(users)))
    s = summarize(d)
    assert s.users_fewer_than == {"11": 1, "13": 2, "15": 3, "20": 3, "30": 3}


# --------------------------------------------------------------------------- property test


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(
            st.text("abcxyz019_-", min_size=1, max_size=4),
            st.integers(0, 30),
            st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0, 4.5, 5.0]),
        ),
        min_size=1,
        max_size=40,
    ),
    sep=st.sampled_from([",", "\t", ";"]),
    header=st.booleans(),
    crlf=st.booleans(),
)
def test_roundtrip_csv(rows, sep, header, crlf):
    """Whatever we write, we read back: the last rating of each (user, item) pair."""
    nl = "\r\n" if crlf else "\n"
    lines = [f"user{sep}item{sep}rating"] if header else []
    lines += [f"{u}{sep}i{i}{sep}{r}" for u, i, r in rows]
    d = load_ratings((nl.join(lines) + nl).encode(), name="prop.csv")
    check_invariants(d)
    expected = {(u, f"i{i}"): r for u, i, r in rows}
    assert triples(d) == expected
    n_dup = len(rows) - len(expected)
    assert any(f"dropped {n_dup:,} duplicate" in n for n in d.notes) == (n_dup > 0)


# --------------------------------------------------------------------------- hostile and odd files
# (issue 12 item 8: each loads where valid or is refused with a DataError naming file, line and
# cap; the seeded corpus in test_loader_fuzz.py keeps this true for random mutations)

CSV_ROWS = "user,item,rating\n1,10,4\n2,10,5\n1,11,3\n"
CSV_TRIPLES = {("1", "10"): 4.0, ("2", "10"): 5.0, ("1", "11"): 3.0}


@pytest.mark.parametrize(
    ("brk", "noted"),
    [
        ("\r", None),  # old Mac
        ("\r\n", None),
        ("\f", "form feed"),
        ("\v", "vertical tab"),
        ("\x85", "next line"),
        ("\u2028", "line separator"),
        ("\u2029", "paragraph separator"),
        ("\x1e", "record separator"),
    ],
)
def test_every_kind_of_line_break_loads(brk, noted):
    d = load_ratings(CSV_ROWS.replace("\n", brk).encode(), name="r.csv")
    assert triples(d) == CSV_TRIPLES
    assert any(noted in n and "as line breaks" in n for n in d.notes) == (noted is not None)


def test_mixed_cr_and_lf_and_cr_only_u_data():
    d = load_ratings(b"user,item,rating\r\n1,10,4\r2,10,5\n1,11,3\r", name="r.csv")
    assert triples(d) == CSV_TRIPLES
    u_data = "".join(
        f"{u}\t{i}\t{1 + (u * i) % 5}\t88125{u}{i}\r" for u in range(1, 30) for i in (1, 2)
    )
    d = load_ratings(u_data.encode(), name="u.data")
    assert d.n_ratings == 58 and d.timestamp is not None


def test_byte_0x85_of_a_latin1_file_stays_in_its_title():
    # Not valid UTF-8, so latin-1: 0x85 is Windows-1252's ellipsis there, not a line break.
    items = b"1|Wait\x85 What (1990)|d||u|0|1\n2|B (1991)|d||u|1|0\n"
    d = load_ratings(b"1\t1\t5\n1\t2\t3\n", name="u.data", items=items, items_name="u.item")
    assert d.items.titles.tolist() == ["Wait\x85 What (1990)", "B (1991)"]


@pytest.mark.parametrize("codec", ["utf-32", "utf-32-be", "utf-16", "utf-16-be"])
def test_utf16_and_utf32_with_a_byte_order_mark_load(codec):
    raw = CSV_ROWS.encode(codec)
    if codec.endswith("-be"):
        raw = "\ufeff".encode(codec) + raw
    assert triples(load_ratings(raw, name="r.csv")) == CSV_TRIPLES


@pytest.mark.parametrize(
    ("codec", "what"),
    [
        ("utf-16-le", "UTF-16 \\(little-endian\\)"),
        ("utf-16-be", "UTF-16 \\(big-endian\\)"),
        ("utf-32-le", "UTF-32 \\(little-endian\\)"),
    ],
)
def test_utf16_and_utf32_without_a_byte_order_mark_are_named(codec, what):
    with pytest.raises(DataError, match=f"^r.csv: this looks like {what} text without a byte"):
        load_ratings(CSV_ROWS.encode(codec), name="r.csv")


def test_a_nul_byte_far_into_the_file_is_binary():
    rows = "".join(f"{u},1,3\n" for u in range(20_000)) + "7,\x00,2\n"
    with pytest.raises(DataError, match=r"binary data .*a NUL byte at offset 1\d\d,\d\d\d"):
        load_ratings(("user,item,rating\n" + rows).encode(), name="r.csv")


def test_a_header_with_fewer_names_than_fields_is_refused_not_shifted():
    # On main this loaded with user = item and rating = timestamp.
    text = b"user,item,rating\n1,10,4,100\n2,10,5,101\n3,11,2,102\n"
    with pytest.raises(DataError) as e:
        load_ratings(text, name="short-header.csv")
    msg = str(e.value)
    assert msg.startswith("short-header.csv: the header on line 1 names 3 columns")
    assert "'user', 'item', 'rating'" in msg and "the data rows have 4 fields" in msg


def test_a_header_with_more_names_than_fields_is_refused():
    text = b"user,item,rating,timestamp,extra\n1,10,4,100\n2,10,5,101\n"
    with pytest.raises(DataError, match=r"names 5 columns .* data rows have 4 fields"):
        load_ratings(text, name="r.csv")


def test_a_first_row_with_an_extra_field_is_not_taken_as_an_index():
    with pytest.raises(DataError, match=r"line 2 has 4 fields; expected 3"):
        load_ratings(b"user,item,rating\n1,10,4,9\n2,10,5\n3,11,2\n3,12,2\n", name="r.csv")


def test_an_unbalanced_quote_is_refused_with_its_lines():
    # On main the quotes swallowed rows: 7 rows gave 3 ratings, with no note.
    text = b'user,item,rating\n1,10,4\n2,"10,5\n3,10,5\n4,10,5\n5,10,1\n6,"11,2\n7,12,3\n'
    with pytest.raises(DataError) as e:
        load_ratings(text, name="q.csv")
    assert str(e.value).startswith('q.csv: a quoted field (") is not closed on its line')
    assert "at lines 3, 7" in str(e.value)


def test_a_quote_left_open_in_a_large_file_swallows_nothing():
    rows = [f"{u},{u % 7},{1 + u % 5}\n" for u in range(3000)]
    rows[1500] = '1500,"3,4\n'
    with pytest.raises(DataError, match=r"not closed on its line at line 1502\b"):
        load_ratings(("user,item,rating\n" + "".join(rows)).encode(), name="q.csv")


def test_quoted_fields_that_close_on_their_line_still_load():
    text = b'user,item,rating\n"1","a,b",4\n"2", "c",5\n'
    d = load_ratings(text, name="q.csv")
    assert triples(d) == {("1", "a,b"): 4.0, ("2", "c"): 5.0}


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        # 4 fields each, but line 3's item holds a tab: its timestamp would be read as a rating
        (
            b"1,10,4,100\n2,10,5,101\n3,10\t2,102,7\n",
            r"column 2 \(item\): 1 item id holding .*tabs",
        ),
        (b"1\t10\t4\t100\n2\t10,5\t101\t9\n3\t10\t2\t102\n", r"1 item id holding .*','.* line 2"),
        (b"1,10,4,100\n2,10,5,101\n3,10\t2\t102\n", r"line 3 has 2 fields; expected 4"),
    ],
)
def test_mixed_delimiters_in_a_line_are_refused(text, pattern):
    with pytest.raises(DataError, match=pattern):
        load_ratings(text, name="mixed.csv")


@pytest.mark.parametrize(
    ("raw", "pattern"),
    [
        (b"," * (20 * 2**20), r"line 1 is 20,971,520 bytes long, .*limit of 65,536 bytes per line"),
        (b"\t" * (20 * 2**20), r"line 1 is 20,971,520 bytes long"),
        (b"user,item,rating\n1,2,3\n" + b"9" * 100_000 + b",1,1\n", r"line 3 is 100,004 bytes"),
    ],
)
def test_overlong_lines_are_refused_by_the_line_cap(raw, pattern):
    with pytest.raises(DataError, match=pattern):
        load_ratings(raw, name="long.csv")


def test_a_1_mb_title_is_refused_and_a_long_one_shortened():
    data = load_ratings(b"1,1,4\n1,2,3\n", name="r.csv")
    big = b'movieId,title,genres\n1,"' + b"T" * 2**20 + b'",Drama\n'
    with pytest.raises(DataError, match=r"^m\.csv: line 2 is 1,048,5\d\d bytes long"):
        attach_items(data, big, name="m.csv")
    long = b"movieId,title,genres\n1," + b"T" * 5000 + b",Drama\n2,Short,Drama\n"
    d = attach_items(data, long, name="m.csv")
    assert d.items.titles[0] == "T" * (MAX_TITLE_CHARS - 1) + "…"
    assert d.items.titles[1] == "Short"
    assert any("shortened 1 title longer than 300 characters at line 2" in n for n in d.notes)


@pytest.mark.parametrize("cols", [1_001, 10_000, 100_000])
def test_too_many_columns_are_refused(cols):
    head = ",".join(["user", "item", "rating"] + [f"c{j}" for j in range(cols - 3)])
    row = ",".join(["1", "2", "3"] + ["0"] * (cols - 3))
    raw = (head + "\n" + row + "\n").encode()
    pattern = "limit of 1,000 columns" if len(head) < MAX_LINE_BYTES else "bytes per line"
    with pytest.raises(DataError, match=pattern):
        load_ratings(raw, name="wide.csv")


def test_many_columns_up_to_the_cap_load():
    head = ",".join(["user", "item", "rating"] + [f"c{j}" for j in range(MAX_COLUMNS - 3)])
    row = ",".join(["1", "2", "3"] + ["0"] * (MAX_COLUMNS - 3))
    assert load_ratings(f"{head}\n{row}\n".encode(), name="wide.csv").n_ratings == 1


def test_genres_are_capped_before_any_dense_matrix():
    data = load_ratings(b"1,1,4\n1,2,3\n", name="r.csv")
    rows = "".join(f"{i},Film {i},G{i}|G{(i * 7) % 20000}\n" for i in range(1, 20_001))
    with pytest.raises(DataError, match=r"20,001 distinct genres, over the limit of 1,000"):
        attach_items(data, ("movieId,title,genres\n" + rows).encode(), name="m.csv")
    rows = "".join(f"{i},Film {i},G{i % MAX_GENRES}\n" for i in range(1, 3000))
    d = attach_items(data, ("movieId,title,genres\n" + rows).encode(), name="m.csv")
    assert len(d.items.genre_names) == MAX_GENRES
    assert d.items.genre_list(0) == ["G1"] and d.items.genre_list(1) == ["G2"]
    with pytest.raises(DataError, match=r"genre name over the limit of 100 characters at line 3"):
        attach_items(data, b"id,title,genres\n1,A,Drama\n2,B," + b"G" * 500 + b"\n", name="m")


def test_a_10_kb_id_among_many_users_is_refused_cheaply():
    rows = [f"{u},{u % 500},{1 + u % 5}\n" for u in range(100_000)]
    rows[50_000] = "u" * 10_000 + ",7,4\n"
    with pytest.raises(DataError) as e:
        load_ratings(("user,item,rating\n" + "".join(rows)).encode(), name="ids.csv")
    msg = str(e.value)
    assert msg.startswith("ids.csv: column 'user': 1 user id over the limit of 64 characters")
    assert "at line 50002" in msg and "(10,000 characters)" in msg and len(msg) < 300
    with pytest.raises(DataError, match=r"1 item id over the limit of 64 characters at line 2"):
        attach_items(load_ratings(b"1,1,4\n", name="r"), b"1,A\n" + b"9" * 99 + b",B\n", name="i")


def test_odd_ids_among_numeric_ids_load_as_strings():
    # On main: "invalid literal for int()" (str.isdigit() is True for "²").
    for odd in ("--3", "²", "٣", "+7", "1e5"):
        text = f"user,item,rating\n1,10,4\n{odd},10,5\n2,11,3\n".encode()
        d = load_ratings(text, name="r.csv")
        assert triples(d) == {("1", "10"): 4.0, (odd, "10"): 5.0, ("2", "11"): 3.0}
        assert list(d.user_ids) == sorted(["1", "2", odd])  # as strings


def test_integer_ids_that_tie_as_numbers_keep_both():
    d = load_ratings(b"user,item,rating\n7,1,4\n07,1,5\n-0,1,3\n0,1,2\n", name="r.csv")
    assert list(d.user_ids) == ["-0", "0", "07", "7"]
    assert d.n_users == 4


def test_year_9999_dates_load_and_huge_unix_seconds_are_refused():
    d = load_ratings(
        b"user,item,rating,timestamp\n1,10,4,9999-12-31\n2,10,5,1970-01-02\n", name="t.csv"
    )
    assert d.timestamp.tolist() == [253402214400, 86400]
    with pytest.raises(DataError, match=r"column 'timestamp': 1 timestamp too large at line 3"):
        load_ratings(b"user,item,rating,timestamp\n1,1,4,5\n1,2,4,1e30\n", name="t.csv")


def test_rows_of_only_empty_fields_are_counted():
    d = load_ratings(b"user,item,rating\n1,10,4\n,,\n\n2,10,5\n , ,\n", name="r.csv")
    assert d.n_ratings == 2
    assert any("skipped 2 rows with only empty fields at lines 3, 6" in n for n in d.notes)


def test_a_short_items_file_with_commas_in_titles_is_split_on_bars():
    items = (
        b"1|Lost, The (1990)|d||u|0|1\n2|City, The (1991)|d||u|1|0\n"
        b"3|Blue (1992)|d||u|1|1\n4|King (1993)|d||u|0|0\n"
    )
    d = load_ratings(b"1\t1\t5\n1\t4\t3\n", name="u.data", items=items, items_name="u.item")
    assert d.items.titles.tolist() == ["Lost, The (1990)", "King (1993)"]


def test_read_text_normalises_breaks_and_applies_the_caps():
    assert read_text(b"a,b\r\nc,d\re,f\x0bg", "x.csv") == "a,b\nc,d\ne,f\ng"
    assert read_text("a\u2028b".encode("utf-16"), "x.csv") == "a\nb"
    with pytest.raises(DataError, match=r"x\.csv: line 2 is 70,000 bytes long"):
        read_text(b"a\n" + b"b" * 70_000, "x.csv")
    with pytest.raises(DataError, match=r"over the size limit of 10 bytes"):
        read_text(b"a" * 11, "x.csv", max_bytes=10)


# --------------------------------------------------------------------------- real MovieLens


def test_ml100k_u_data_and_u_item(ml100k_dir):
    d = load_ratings(ml100k_dir / "u.data", items=ml100k_dir / "u.item")
    check_invariants(d)
    assert (d.n_users, d.n_items, d.n_ratings) == (943, 1682, 100_000)
    assert d.scale == RatingScale(1, 5, 1)
    assert d.item_ids[0] == "1" and d.items.titles[0] == "Toy Story (1995)"
    assert d.items.genre_names == ML100K_GENRES
    assert d.items.genre_list(0) == ["Animation", "Children's", "Comedy"]
    assert d.items.missing == 0
    assert d.counts_per_user().min() == 20
    s = summarize(d)
    assert s.rating_counts == {"1": 6110, "2": 11370, "3": 27145, "4": 34174, "5": 21201}
    assert s.mean_rating == pytest.approx(3.52986)


def test_new_user_ratings_use_the_same_reader():
    # read_user_ratings reads like load_ratings: on main a 200 KB field raised
    # _csv.Error ("field larger than field limit") and UTF-32 was "a binary file".
    from metarec_core.data.io import read_user_ratings

    ids, scale = np.array(["m1", "m2"]), RatingScale(1, 5, 1)
    with pytest.raises(DataError, match=r"^me\.csv: line 3 is 200,002 bytes long"):
        read_user_ratings(
            b"item,rating\nm1,4\n" + b"x" * 200_000 + b",3\n", ids, scale, name="me.csv"
        )
    r = read_user_ratings("item,rating\rm1,4\rm2,5\r".encode("utf-32"), ids, scale, name="me.csv")
    assert r.items.tolist() == [0, 1] and r.ratings.tolist() == [4.0, 5.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # The caps of the ratings reader (on main: an unknown id, or a 1,000-column row read).
        ("item,rating\nm1,4\n" + "m" * 65 + ",3\n", "1 item id over the limit of 64 characters"),
        (
            "item,rating," + ",".join(f"c{j}" for j in range(1_000)) + "\n",
            "over the limit of 1,000",
        ),
        # A row is never shifted or cut: on main the extra field was dropped silently.
        ("item,rating\nm1,4\nm2,5,9\n", "line 3 has 3 fields; expected 2 fields separated by ','"),
        ("item,rating\nm1,4\nm2;x,5\n", "1 item id holding '::' or tabs or ';' or '|' at line 3"),
        ('item,rating\nm1,4\n"m2,5\nm3,4\n', r"a quoted field \(\"\) is not closed on its line"),
        ("m1 4\nm2 5\nm3 1 7\n", "line 3 has 3 fields; expected 2 fields separated by spaces"),
    ],
)
def test_new_user_ratings_get_the_ratings_readers_checks(text, message):
    from metarec_core.data.io import read_user_ratings

    ids, scale = np.array(["m1", "m2", "m3"]), RatingScale(1, 5, 1)
    with pytest.raises(DataError, match=message) as e:
        read_user_ratings(text.encode(), ids, scale, name="me.csv")
    assert str(e.value).startswith("me.csv: ")


def test_fingerprint_is_hashed_once_per_dataset_object(tmp_path, monkeypatch):
    """The app's pages ask for the active data's fingerprint on every poll of a job."""
    import dataclasses
    import hashlib

    from metarec_core.data import dataset as data_module

    ds = load_ratings(write(tmp_path, "r.csv", "user,item,rating\na,x,1\nb,y,5\n"))
    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(data_module.hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    first = ds.fingerprint()
    assert ds.fingerprint() == first and len(calls) == 1
    changed = dataclasses.replace(ds, rating=ds.rating[::-1].copy())
    assert changed.fingerprint() != first and len(calls) == 2
