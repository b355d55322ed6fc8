"""The generator's sampled draw for large sizes (above `DENSE_CELLS`) and its chunked writer."""

from __future__ import annotations

import numpy as np
import pytest

from metarec_core.data import synthetic
from metarec_core.data.synthetic import SyntheticSpec, _csv_bytes, generate, write_sample

SPEC = {"n_users": 300, "n_items": 400, "n_ratings": 15_000}


@pytest.fixture()
def sampled(monkeypatch):
    """Every size takes the sampled draw, in chunks of a few users."""
    monkeypatch.setattr(synthetic, "DENSE_CELLS", 0)
    monkeypatch.setattr(synthetic, "_SAMPLED_CELLS", 7 * SPEC["n_items"])


def test_sampled_draw_meets_the_constraints(sampled):
    ratings, items = generate(**SPEC, seed=2)
    assert len(ratings) == SPEC["n_ratings"]
    assert not ratings.duplicated(["user", "item"]).any()
    assert set(ratings.user) == set(range(1, SPEC["n_users"] + 1))
    assert set(ratings.item) == set(range(1, SPEC["n_items"] + 1))  # every item rated
    per_user = ratings.groupby("user").size()
    assert per_user.min() >= 20 and per_user.max() <= SPEC["n_items"] // 2
    assert (ratings.groupby("user").timestamp.diff().dropna() >= 0).all()
    assert len(items) == SPEC["n_items"] and items.title.is_unique


def test_sampled_draw_is_seeded(sampled):
    a, _ = generate(**SPEC, seed=2)
    b, _ = generate(**SPEC, seed=2)
    c, _ = generate(**SPEC, seed=3)
    assert a.equals(b) and not a.equals(c)


def test_sampled_draw_is_like_the_dense_one(monkeypatch):
    """Same distribution: popular items get the same share of ratings, stars the same shares."""
    dense, _ = generate(**SPEC, seed=4)
    monkeypatch.setattr(synthetic, "DENSE_CELLS", 0)
    sampled, _ = generate(**SPEC, seed=4)

    def top_share(r):
        counts = r.groupby("item").size().sort_values(ascending=False)
        return counts.iloc[:40].sum() / len(r)

    assert abs(top_share(dense) - top_share(sampled)) < 0.03
    shares = [
        r.rating.value_counts(normalize=True).sort_index().to_numpy() for r in (dense, sampled)
    ]
    np.testing.assert_allclose(shares[0], shares[1], atol=0.01)


def test_large_sizes_take_the_sampled_draw(monkeypatch):
    """Above DENSE_CELLS no (users x items) array is made (the dense draw is not called)."""

    def refuse(*a, **k):
        raise AssertionError("dense draw called")

    monkeypatch.setattr(synthetic, "_choose_dense", refuse)
    monkeypatch.setattr(synthetic, "DENSE_CELLS", SPEC["n_users"] * SPEC["n_items"] - 1)
    ratings, _ = generate(**SPEC, seed=1)
    assert len(ratings) == SPEC["n_ratings"]


def test_chunked_writer_writes_the_same_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "_CSV_CHUNK_ROWS", 1000)
    spec = SyntheticSpec(**SPEC, scale="0.5-5")  # float ratings too
    paths = write_sample(tmp_path, seed=5, spec=spec)
    ratings, items = synthetic._generate(spec, 5)
    assert paths[0].read_bytes() == _csv_bytes(ratings)
    assert paths[1].read_bytes() == _csv_bytes(items)


def test_summary_reads_a_file_over_the_loader_cap(tmp_path, monkeypatch):
    """make-sample's own summary is not refused by the upload size cap."""
    monkeypatch.setattr(synthetic, "DEFAULT_MAX_BYTES", 1000)
    paths = write_sample(tmp_path, seed=1, spec=SyntheticSpec(**SPEC))
    assert paths[0].stat().st_size > 1000
    assert "15,000" in paths[2].read_text()
