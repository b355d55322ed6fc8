"""Loading ratings and item metadata: formats, bad input, duplicates, from_arrays, summary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metarec_core.data import (
    ML100K_GENRES,
    DataError,
    RatingScale,
    RatingsDataset,
    from_arrays,
    load_ratings,
    summarize,
)


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
