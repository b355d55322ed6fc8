"""The seeded synthetic sample dataset: shape, determinism, realism, committed files."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from metarec_core.data.dataset import RatingScale
from metarec_core.data.summary import summarize
from metarec_core.data.synthetic import (
    GENRES,
    SAMPLE_DIR,
    SAMPLE_ITEMS,
    SAMPLE_RATINGS,
    generate,
    load_sample,
    write_sample,
)
from metarec_core.protocol.splits import user_folds
from metarec_core.protocol.tasks import make_tasks

SMALL = {"n_users": 120, "n_items": 200, "n_ratings": 6000}


@pytest.fixture(scope="module")
def small():
    return generate(**SMALL, seed=3)


@pytest.fixture(scope="module")
def sample():
    return load_sample()


def test_generate_shape_and_constraints(small):
    ratings, items = small
    assert list(ratings.columns) == ["user", "item", "rating", "timestamp"]
    assert list(items.columns) == ["item", "title", "genres"]
    assert len(ratings) == SMALL["n_ratings"]
    assert not ratings.duplicated(["user", "item"]).any()
    assert set(ratings.user) == set(range(1, SMALL["n_users"] + 1))
    assert set(ratings.item) == set(range(1, SMALL["n_items"] + 1))  # every item rated
    assert ratings.groupby("user").size().min() >= 20
    assert set(ratings.rating.unique()) <= {1, 2, 3, 4, 5}
    assert ratings.rating.dtype.kind == "i"
    # Each user's ratings are in time order.
    assert (ratings.groupby("user").timestamp.diff().dropna() >= 0).all()


def test_titles_and_genres(small):
    _, items = small
    assert items.title.is_unique
    assert items.title.str.fullmatch(r"[A-Z][A-Za-z' ]+ \((19[2-9]\d)\)").all()
    n_genres = items.genres.str.split("|").map(len)
    assert n_genres.between(1, 3).all()
    used = set(items.genres.str.split("|").explode())
    assert used <= set(GENRES) and len(used) >= 12
    assert len(GENRES) == 18


def test_same_seed_same_data_other_seed_other_data(small):
    r1, i1 = small
    r2, i2 = generate(**SMALL, seed=3)
    r3, _ = generate(**SMALL, seed=4)
    pd.testing.assert_frame_equal(r1, r2)
    pd.testing.assert_frame_equal(i1, i2)
    assert not r1.equals(r3)


def test_generate_rejects_impossible_sizes():
    with pytest.raises(ValueError, match="20 ratings"):
        generate(n_users=100, n_items=200, n_ratings=1000)
    with pytest.raises(ValueError, match="half"):
        generate(n_users=30, n_items=40, n_ratings=700)


def test_write_sample_reproduces_committed_files_byte_for_byte(tmp_path):
    paths = write_sample(tmp_path, seed=0)
    assert [p.name for p in paths] == ["ratings.csv", "items.csv", "README.md"]
    for p in paths:
        committed = SAMPLE_DIR / p.name
        assert committed.exists(), f"{committed} is missing: run python -m metarec_core make-sample"
        assert p.read_bytes() == committed.read_bytes(), f"{p.name} differs from the committed file"


def test_sample_readme_says_how_to_regenerate():
    text = (SAMPLE_DIR / "README.md").read_text()
    assert "python -m metarec_core make-sample" in text
    assert "1,000 users, 1,500 items, 100,000 ratings" in text


def test_sample_files_small_enough_to_commit():
    assert SAMPLE_RATINGS.stat().st_size < 2.5 * 2**20
    assert SAMPLE_ITEMS.stat().st_size < 200 * 2**10


def test_load_sample_shape(sample):
    assert (sample.n_users, sample.n_items, sample.n_ratings) == (1000, 1500, 100_000)
    assert sample.scale == RatingScale(1, 5, 1)
    assert sample.items is not None and sample.items.missing == 0
    assert sample.items.genre_names == tuple(sorted(GENRES))
    assert re.fullmatch(r".+ \(\d{4}\)", str(sample.items.titles[0]))
    assert sample.notes == ()
    assert sample.timestamp is not None


def test_sample_distribution_is_movielens_like(sample):
    s = summarize(sample)
    assert 3.4 < s.mean_rating < 3.7
    assert max(s.rating_counts, key=s.rating_counts.get) == "4"
    assert s.rating_counts["1"] < s.rating_counts["2"] < s.rating_counts["3"]
    # Long tails: a few very active users and very popular items, many light ones.
    assert s.ratings_per_user["min"] >= 20
    assert s.ratings_per_user["max"] > 5 * s.ratings_per_user["median"]
    assert s.ratings_per_item["max"] > 10 * s.ratings_per_item["median"]
    assert s.ratings_per_item["min"] <= 3
    assert s.users_fewer_than["30"] > 50  # enough light users for the cold-start protocol


def test_sample_rewards_personalisation(sample):
    """Item means beat the global mean, and a user offset fitted on 10 support ratings beats
    item means on the same users' query ratings: knowing a few ratings helps."""
    fold = user_folds(sample, n_folds=5, seed=0)[0]
    train = np.isin(sample.user, fold.train_users)
    mu = float(sample.rating[train].mean())
    n_i = np.bincount(sample.item[train], minlength=sample.n_items)
    s_i = np.bincount(
        sample.item[train], weights=sample.rating[train] - mu, minlength=sample.n_items
    )
    b_i = s_i / (n_i + 5.0)
    tasks, _ = make_tasks(sample, fold.test_users, query=10, min_support=10, seed=0)
    err_global, err_item, err_user = [], [], []
    for t in tasks:
        qi, qr = t.query
        si, sr = t.support(10)
        b_u = float((sr - mu - b_i[si]).sum() / (len(sr) + 3.0))
        err_global.append(np.abs(mu - qr).mean())
        err_item.append(np.abs(mu + b_i[qi] - qr).mean())
        err_user.append(np.abs(np.clip(mu + b_i[qi] + b_u, 1, 5) - qr).mean())
    g, i, u = np.mean(err_global), np.mean(err_item), np.mean(err_user)
    assert len(tasks) > 150
    assert 0.75 < i < 0.88  # like MovieLens' item mean (~0.83)
    assert g - i > 0.08
    assert i - u > 0.03
