"""The synthetic generator's options (rating scale, ratings per user, popularity skew) and the
`make-sample` flags that expose them; the defaults stay the sample data's, byte for byte."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from metarec_core import cli
from metarec_core.data import synthetic
from metarec_core.data.io import load_ratings
from metarec_core.data.synthetic import SCALES, SyntheticSpec, _csv_bytes, generate

SMALL = {"n_users": 120, "n_items": 200, "n_ratings": 6000}
# sha256 of generate(...)'s CSV bytes before the options existed (commit 325ed02): the second
# case leaves items nobody chose, so it also pins the donor search.
BEFORE = {
    (120, 200, 6000, 3): "dbd86d6826c7405684767f7e26a73a6c598840ded4eaf2f05e42477f03871f9c",
    (300, 2000, 9000, 1): "eff9cc4fdc60d65118b97d55f246a44a87c38cb8065ffc1976aee3a7741b119a",
}


def _digest(frames: tuple[pd.DataFrame, pd.DataFrame]) -> str:
    return hashlib.sha256(_csv_bytes(frames[0]) + _csv_bytes(frames[1])).hexdigest()


@pytest.mark.parametrize("key", list(BEFORE))
def test_defaults_give_the_same_bytes_as_before(key):
    n_users, n_items, n_ratings, seed = key
    assert _digest(generate(n_users, n_items, n_ratings, seed)) == BEFORE[key]


def test_affinity_chunking_does_not_change_the_bytes(monkeypatch):
    monkeypatch.setattr(synthetic, "_AFFINITY_CELLS", 500)  # one user per chunk
    assert _digest(generate(**SMALL, seed=3)) == BEFORE[(120, 200, 6000, 3)]


@pytest.mark.parametrize(
    ("scale", "levels", "kind"),
    [
        ("0.5-5", [x / 2 for x in range(1, 11)], "f"),
        ("1-10", list(range(1, 11)), "i"),
        ("1-5", [1, 2, 3, 4, 5], "i"),
    ],
)
def test_scale_levels_and_their_shares(scale, levels, kind):
    ratings, _ = generate(**SMALL, seed=3, scale=scale)
    assert sorted(ratings.rating.unique()) == levels
    assert ratings.rating.dtype.kind == kind
    shares = ratings.rating.value_counts(normalize=True).sort_index().to_numpy()
    want = np.array(SCALES[scale].shares) / sum(SCALES[scale].shares)
    assert np.abs(shares - want).max() < 0.002  # cut at the scale's quantiles


def test_half_star_file_loads_with_its_scale(tmp_path):
    paths = synthetic.write_sample(tmp_path, seed=2, spec=SyntheticSpec(**SMALL, scale="0.5-5"))
    data = load_ratings(paths[0], items=paths[1])
    assert (data.scale.low, data.scale.high, data.scale.step) == (0.5, 5.0, 0.5)


def test_ratings_per_user_within_bounds():
    ratings, _ = generate(
        n_users=400, n_items=300, n_ratings=6000, seed=5, min_ratings=10, max_ratings=20
    )
    per_user = ratings.groupby("user").size()
    assert len(per_user) == 400 and per_user.min() == 10 and per_user.max() == 20
    assert per_user.nunique() > 5  # spread over the range, not all on one bound
    assert not ratings.duplicated(["user", "item"]).any()


def test_small_catalogue_with_many_users():
    ratings, items = generate(n_users=2000, n_items=40, n_ratings=40_000, seed=0)
    per_user = ratings.groupby("user").size()
    assert per_user.min() == 20 and per_user.max() == 20  # the default cap: half of 40 items
    assert set(ratings.item) == set(items.item)
    ratings, _ = generate(
        n_users=2000, n_items=40, n_ratings=30_000, seed=0, min_ratings=10, max_ratings=30
    )
    assert ratings.groupby("user").size().between(10, 30).all()


def test_popularity_skew_makes_a_longer_tail():
    def top_share(skew: float) -> float:
        r, _ = generate(n_users=300, n_items=1000, n_ratings=9000, seed=1, popularity_skew=skew)
        counts = r.groupby("item").size().sort_values()
        return counts.iloc[-10:].sum() / len(r)  # share of the 10 most rated items

    assert top_share(2.0) > 1.5 * top_share(1.0)


def test_same_options_same_data_other_seed_other_data():
    kw = {**SMALL, "scale": "1-10", "min_ratings": 15, "popularity_skew": 1.5}
    a, b, c = generate(**kw, seed=7), generate(**kw, seed=7), generate(**kw, seed=8)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert not a[0].equals(c[0])


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"scale": "1-7"}, r"unknown rating scale '1-7'; expected one of 1-5, 0.5-5, 1-10"),
        ({"min_ratings": 0}, "min_ratings must be a positive integer, got 0"),
        ({"min_ratings": 30, "max_ratings": 20}, r"max_ratings must be an integer >= min_ratings"),
        ({"max_ratings": 500}, "max_ratings 500 exceeds the catalogue: a user can rate at most"),
        ({"min_ratings": 120}, "min_ratings 120 exceeds the default cap of 100"),
        ({"popularity_skew": 0.0}, r"popularity_skew must be in \(0, 5\], got 0.0"),
        ({"popularity_skew": float("nan")}, r"popularity_skew must be in \(0, 5\]"),
        ({"n_users": 0}, "n_users must be a positive integer, got 0"),
        ({"n_ratings": 1000}, "1000 ratings cannot give 120 users 20 ratings each"),
        ({"max_ratings": 30}, "6000 ratings do not fit 120 users of at most 30 ratings each"),
        ({"n_ratings": 13_000}, "n_ratings must be at most half of n_users"),
    ],
)
def test_bad_options_give_specific_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        generate(**{**SMALL, **kw})


def test_too_many_items_for_the_ratings():
    with pytest.raises(ValueError, match="5000 items cannot each get a rating from 2000"):
        generate(n_users=100, n_items=5000, n_ratings=2000)


def test_make_sample_flags_write_a_variant_and_its_command(tmp_path, capsys):
    out = tmp_path / "v"
    argv = ["make-sample", "--out", str(out), "--seed", "4", "--users", "150", "--items", "100"]
    argv += ["--ratings", "3000", "--scale", "1-10", "--min-ratings", "12", "--max-ratings", "40"]
    assert cli.main(argv) == 0
    spec = SyntheticSpec(150, 100, 3000, "1-10", 12, 40)
    expected = generate(**{**spec.__dict__}, seed=4)
    assert (out / "ratings.csv").read_bytes() == _csv_bytes(expected[0])
    readme = (out / "README.md").read_text()
    assert synthetic.make_sample_command(out, 4, spec) in readme
    assert "--scale 1-10 --min-ratings 12 --max-ratings 40" in readme
    assert SyntheticSpec().cli_flags() == []


def test_make_sample_bad_option_exits_2_with_the_reason(tmp_path, capsys):
    argv = ["make-sample", "--out", str(tmp_path / "x"), "--items", "30"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "error: min_ratings 20 exceeds the default cap of 15 ratings per user" in err
    assert not (tmp_path / "x").exists()
