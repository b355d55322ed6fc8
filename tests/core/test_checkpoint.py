"""Checkpoints: round trip, weights-only loading, and every way a file can be wrong.

The format tests use a small fake learner that follows the MetaLearner contract
(to_state / from_state / adapt); the real learner's round trip is at the end, skipped
until learners.py exists.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from metarec_core.checkpoint import (
    FORMAT_NAME,
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    to_bytes,
)
from metarec_core.data.dataset import DataError, ItemInfo, RatingScale, RatingsDataset
from metarec_core.data.io import read_user_ratings
from metarec_core.methods.base import AdaptedUser, Capabilities, Recommender


def make_data(
    n_users: int = 30,
    n_items: int = 20,
    seed: int = 0,
    *,
    item_prefix: str = "m",
    with_items: bool = True,
    scale: RatingScale | None = None,
    source: str = "tiny.csv",
    per_user: int = 8,
) -> RatingsDataset:
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    ratings = rng.integers(1, 6, size=len(users)).astype(np.float32)
    info = None
    if with_items:
        genres = np.zeros((n_items, 3), dtype=bool)
        genres[np.arange(n_items), np.arange(n_items) % 3] = True
        info = ItemInfo(
            titles=np.asarray([f"Film {i} (1999)" for i in range(n_items)]),
            genre_names=("Action", "Comedy", "Drama"),
            genres=genres,
        )
    return RatingsDataset(
        user=users.astype(np.int64),
        item=items.astype(np.int64),
        rating=ratings,
        timestamp=None,
        user_ids=np.asarray([f"u{u}" for u in range(n_users)]),
        item_ids=np.asarray([f"{item_prefix}{i}" for i in range(n_items)]),
        scale=scale or RatingScale(1.0, 5.0, 1.0),
        items=info,
        source=source,
    )


@dataclass(frozen=True)
class TinyConfig:
    name: str = "tiny"
    algorithm: str = "tiny"
    dim: int = 4
    hidden: tuple[int, ...] = (8, 8)
    device: str = "cpu"


class TinyLearner(Recommender):
    """A fitted stand-in: item vectors; a user is the rating-weighted mean of rated items."""

    name = "tiny"
    capabilities = Capabilities(meta_learned=True)  # saved with its config, like a MetaLearner

    def __init__(self, config: TinyConfig, n_items: int, seed: int = 0):
        self.config = config
        g = torch.Generator().manual_seed(seed)
        self.weights = torch.randn(n_items, config.dim, generator=g, dtype=torch.float64)
        self.bias = torch.tensor(3.0, dtype=torch.float64)
        self.n_items_ = n_items
        self.fitted_ = True

    def fit(self, *args, **kwargs):
        raise NotImplementedError

    def to_state(self) -> dict:
        return {
            "config": asdict(self.config),
            "weights": self.weights.clone(),
            "bias": self.bias.clone(),
            "n_items": self.n_items_,
        }

    @classmethod
    def from_state(cls, state: dict, device: str = "cpu") -> TinyLearner:
        cfg = dict(state["config"])
        cfg["hidden"] = tuple(cfg["hidden"])
        obj = cls(TinyConfig(**cfg), int(state["n_items"]))
        obj.weights = state["weights"]
        obj.bias = state["bias"]
        return obj

    def adapt(self, items, ratings, **_) -> AdaptedUser:
        items = np.asarray(items, dtype=np.int64)
        w = torch.as_tensor(np.asarray(ratings, dtype=np.float64) - 3.0)
        user = (self.weights[items] * w[:, None]).mean(0)
        scores = (self.bias + self.weights @ user).numpy()
        return AdaptedUser(scores, items, np.asarray(ratings))


def load(source, data=None, **kw):
    return load_checkpoint(source, data, learner_from_state=TinyLearner.from_state, **kw)


@pytest.fixture
def data() -> RatingsDataset:
    return make_data()


@pytest.fixture
def learner(data) -> TinyLearner:
    return TinyLearner(TinyConfig(), data.n_items, seed=1)


@pytest.fixture
def saved(tmp_path, learner, data):
    return save_checkpoint(learner, data, tmp_path / "models" / "model.pt")


# ------------------------------------------------------------------------------ round trip
def test_round_trip_gives_identical_predictions(saved, learner, data):
    ck = load(saved, data)
    support = (np.array([0, 3, 7]), np.array([5.0, 1.0, 4.0]))
    before = learner.adapt(*support)
    after = ck.learner.adapt(*support)
    assert np.array_equal(before.scores, after.scores)
    assert np.array_equal(before.recommend(5)[0], after.recommend(5)[0])
    assert ck.learner.config == learner.config
    assert list(ck.item_ids) == list(data.item_ids)
    assert list(ck.titles) == list(data.items.titles)
    assert ck.genre_names == ("Action", "Comedy", "Drama")
    assert np.array_equal(ck.genres, data.items.genres) and ck.genre_list(4) == ["Comedy"]
    assert ck.scale == data.scale and ck.fingerprint == data.fingerprint()
    assert (ck.dataset_name, ck.n_users, ck.n_ratings) == ("tiny.csv", 30, 240)
    assert ck.config == {
        "name": "tiny",
        "algorithm": "tiny",
        "dim": 4,
        "hidden": [8, 8],
        "device": "cpu",
    }
    assert ck.algorithm == "tiny" and ck.method == "tiny" and ck.format_version == FORMAT_VERSION
    assert ck.created.endswith("+00:00") and ck.notes == ()
    assert ck.item_index()["m7"] == 7 and ck.title(2) == "Film 2 (1999)"


def test_round_trip_through_bytes_and_file_objects(learner, data):
    raw = to_bytes(learner, data)
    s = (np.array([1, 2]), np.array([2.0, 5.0]))
    for source in (raw, bytearray(raw), io.BytesIO(raw)):
        ck = load(source, data)
        assert np.array_equal(ck.learner.adapt(*s).scores, learner.adapt(*s).scores)


def test_dataset_without_item_metadata(tmp_path, learner):
    data = make_data(with_items=False)
    ck = load(save_checkpoint(learner, data, tmp_path / "m.pt"), data)
    assert ck.titles is None and ck.genres is None and ck.genre_list(0) == []
    assert ck.title(3) == "m3"


def test_file_is_plain_weights_only_torch(saved):
    obj = torch.load(saved, weights_only=True)
    assert obj["format"] == FORMAT_NAME and obj["version"] == FORMAT_VERSION
    assert isinstance(obj["learner"]["weights"], torch.Tensor)
    assert obj["items"]["ids"][:2] == ["m0", "m1"]
    assert obj["dataset"]["fingerprint"] and obj["scale"] == {"low": 1.0, "high": 5.0, "step": 1.0}


def test_loading_only_ever_uses_weights_only(saved, monkeypatch):
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load(saved)
    assert calls and all(c is True for c in calls)


EXECUTED: list[str] = []


def _side_effect(tag: str) -> str:
    EXECUTED.append(tag)
    return tag


class Evil:
    def __reduce__(self):
        return (_side_effect, ("pwned",))


def test_pickled_code_is_refused_and_never_run(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT_NAME, "version": 1, "payload": Evil()}, path)
    EXECUTED.clear()
    with pytest.raises(CheckpointError, match="refusing to load it"):
        load(path)
    assert EXECUTED == []


def test_save_is_atomic_and_rejects_unsafe_state(tmp_path, learner, data):
    class BadState(TinyLearner):
        def to_state(self):
            return {**super().to_state(), "extra": np.zeros(3)}

    bad = BadState(TinyConfig(), data.n_items)
    with pytest.raises(TypeError, match="could not be loaded safely"):
        save_checkpoint(bad, data, tmp_path / "bad.pt")
    assert list(tmp_path.iterdir()) == []
    save_checkpoint(learner, data, tmp_path / "ok.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["ok.pt"]  # no temporary left behind


def test_save_refuses_unfitted_or_mismatched_learner(tmp_path, data):
    unfitted = TinyLearner(TinyConfig(), data.n_items)
    unfitted.fitted_ = False
    with pytest.raises(ValueError, match="not fitted"):
        save_checkpoint(unfitted, data, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="scores 7 items but the dataset has 20"):
        save_checkpoint(TinyLearner(TinyConfig(), 7), data, tmp_path / "m.pt")


# ------------------------------------------------------------------------------ rejections
def test_missing_empty_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="is a directory"):
        load(tmp_path)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty.pt: the file is empty \(0 bytes\)"):
        load(tmp_path / "empty.pt")
    with pytest.raises(CheckpointError, match="the uploaded checkpoint: the file is empty"):
        load(b"")


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_file(saved, keep):
    raw = saved.read_bytes()
    cut = raw[: int(len(raw) * keep)]
    with pytest.raises(CheckpointError, match="truncated or damaged") as e:
        load(cut, name="model.pt")
    assert str(e.value).startswith("model.pt: ")
    assert "Traceback" not in str(e.value)


def test_random_bytes_and_text(tmp_path):
    rng = np.random.default_rng(0)
    noise = bytes([0xFF]) + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    with pytest.raises(CheckpointError, match="not a MetaRec checkpoint: it is unrecognised"):
        load(noise)
    with pytest.raises(CheckpointError, match="it is a text file"):
        load(b"user,item,rating\n1,2,3\n")


def test_flipped_bytes_fail_the_integrity_check(saved, learner):
    raw = bytearray(saved.read_bytes())
    weights = learner.weights.numpy().tobytes()
    at = bytes(raw).find(weights)
    assert at > 0  # tensors are stored uncompressed: the weights are in the file as is
    raw[at + 17] ^= 0x40
    with pytest.raises(CheckpointError, match="damaged.*CRC"):
        load(bytes(raw))


def test_zip_that_is_not_torch(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match="damaged: PyTorch could not read it"):
        load(buf.getvalue())


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"weight": torch.zeros(2)}, "without MetaRec's 'format' entry .*bare PyTorch state_dict"),
        ({"epoch": 3}, "without MetaRec's 'format' entry$"),
        ([1, 2, 3], "it holds a list"),
        ({"format": "nanogpt", "version": 1}, "its format is 'nanogpt'"),
        ({"format": FORMAT_NAME, "version": "1"}, "bad format version '1'"),
        ({"format": FORMAT_NAME, "version": 1}, "damaged: 'learner' is missing"),
    ],
)
def test_foreign_torch_files(obj, message):
    buf = io.BytesIO()
    torch.save(obj, buf)
    with pytest.raises(CheckpointError, match=message):
        load(buf.getvalue())


def _edited(saved, edit) -> bytes:
    obj = torch.load(saved, weights_only=True)
    edit(obj)
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_newer_format_version(saved):
    raw = _edited(saved, lambda o: o.update(version=FORMAT_VERSION + 1))
    with pytest.raises(CheckpointError, match="newer MetaRec.*upgrade"):
        load(raw)


def test_damaged_payloads(saved):
    raw = _edited(saved, lambda o: o["items"]["ids"].pop())
    with pytest.raises(CheckpointError, match="lists 19 item ids for 20 items"):
        load(raw)
    raw = _edited(saved, lambda o: o["items"].update(titles=["x"]))
    with pytest.raises(CheckpointError, match="item metadata misaligned"):
        load(raw)

    def broken(state):
        raise KeyError("weights")

    with pytest.raises(CheckpointError, match="could not be turned back into a model: 'weights'"):
        load_checkpoint(saved, learner_from_state=broken)


def test_mismatched_dataset_size(saved):
    other = make_data(n_items=25, source="u.data")
    with pytest.raises(CheckpointError) as e:
        load(saved, other)
    msg = str(e.value)
    assert "trained on dataset 'tiny.csv' with 20 items" in msg
    assert "the active dataset 'u.data' has 25 items" in msg


def test_mismatched_item_ids(saved):
    other = make_data(item_prefix="x", source="other.csv")
    with pytest.raises(CheckpointError, match="also has 20 items but 20 of their ids differ"):
        load(saved, other)


def test_same_items_other_ratings_is_noted_or_strict(saved, data):
    other = make_data(seed=5, source="again.csv")
    ck = load(saved, other)
    assert len(ck.notes) == 1 and "trained on 'tiny.csv'" in ck.notes[0]
    with pytest.raises(CheckpointError, match="same 20 items but other ratings"):
        load(saved, other, strict=True)
    assert load(saved, data, strict=True).notes == ()


def test_scale_mismatch(saved):
    other = make_data(scale=RatingScale(0.5, 5.0, 0.5))
    with pytest.raises(CheckpointError, match="predicts ratings from 1 to 5.*uses 0.5 to 5"):
        load(saved, other)


# ------------------------------------------------------------------- new user's ratings
IDS = np.asarray([f"m{i}" for i in range(10)])
SCALE = RatingScale(1.0, 5.0, 1.0)


def read(text: str | bytes, **kw):
    raw = text.encode() if isinstance(text, str) else text
    return read_user_ratings(raw, IDS, SCALE, name="me.csv", **kw)


@pytest.mark.parametrize(
    "text",
    [
        "item,rating\nm3,5\nm1,2\n",
        "movieId;score\nm3;5\nm1;2\n",
        "Item_ID\tRating\r\nm3\t5\r\nm1\t2\r\n",
        "\ufeffrating,item\n5,m3\n2,m1\n",
        "m3,5\nm1,2\n",  # no header
        'item,rating\n"m3",5.0\n\nm1,2\n',
    ],
)
def test_new_user_formats(text):
    r = read(text)
    assert list(r.items) == [3, 1] and list(r.ratings) == [5.0, 2.0]
    assert r.unknown_ids == () and r.duplicates == 0 and r.warnings() == []


def test_new_user_unknown_and_duplicate_items_are_counted():
    r = read("item,rating\nm3,5\nzz,4\nm1,2\nm3,1\nyy,3\n")
    assert list(r.items) == [1, 3] and list(r.ratings) == [2.0, 1.0]  # last rating of m3 kept
    assert r.unknown_ids == ("zz", "yy") and r.duplicates == 1 and r.rows == 5
    w = r.warnings()
    assert "ignored 2 rating(s) of items the model does not know: 'zz', 'yy'" in w[0]
    assert "1 item(s) were rated more than once" in w[1]


def test_new_user_rows_the_reader_skips_are_said():
    r = read("item,rating\nm3,5\n,\nm1,2\n")
    assert list(r.items) == [3, 1]
    assert any("skipped 1 row with only empty fields at line 3" in w for w in r.warnings())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("\n \n", "the file is empty"),
        ("item,rating\n", r"a header \('item', 'rating'\) but no data rows"),
        ("item,rating\nzz,4\nyy,5\n", "none of the 2 rated items is in the model's catalogue"),
        (
            "item,rating\nm1,4\nm2,7\nm3,0\n",
            "column 'rating': 2 ratings outside the model's scale 1 to 5 at lines 3, 4: "
            "found '7', '0'",
        ),
        (
            "item,rating\nm1,good\nm2,nan\n",
            "column 'rating': 2 ratings are not a finite number at lines 2, 3: found 'good', 'nan'",
        ),
        (
            "title,year\nX,1999\n",
            r"line 1 looks like a header \(title, year\) but none of its columns is recognised",
        ),
        ("item,rating\nm1\nm2,4\nm3,5\n", "line 2 has 1 field; expected 2 fields separated by ','"),
        ("movie,stars\nm1,4\n", "no item column: found columns 'movie', 'stars'"),
        ("m1,4,3\nm2,3,3\n", "3 fields per line and no header; .* must be item, rating"),
        ("item,rating\n,4\n", "column 'item': 1 empty item id at line 2"),
        (b"\x00\x01\x02binary", "binary file"),
    ],
)
def test_new_user_bad_files(text, message):
    with pytest.raises(DataError, match=message) as e:
        read(text)
    assert str(e.value).startswith("me.csv: ")


def test_new_user_file_size_limit(tmp_path):
    p = tmp_path / "big.csv"
    p.write_text("item,rating\n" + "m1,4\n" * 100)
    with pytest.raises(
        DataError, match="big.csv: the file is .* bytes, over the size limit of 50 bytes"
    ):
        read_user_ratings(p, IDS, SCALE, max_bytes=50)
    assert len(read_user_ratings(p, IDS, SCALE).items) == 1


# ------------------------------------------------------------------------- real learner
def test_real_learner_round_trip(tmp_path):
    learners = pytest.importorskip("metarec_core.methods.meta")
    data = make_data(n_users=40, n_items=30, per_user=16)
    learner = learners.make_learner("fomaml", seed=0, device="cpu", steps=3, eval_every=1)
    learner.fit(data, np.arange(32), np.arange(32, 40))
    path = save_checkpoint(learner, data, tmp_path / "real.pt")
    ck = load_checkpoint(path, data)
    assert type(ck.learner) is type(learner) and ck.algorithm == learner.config.algorithm
    assert ck.method == "fomaml" and ck.learner.device_.type == "cpu"
    support = (np.array([0, 5, 9]), np.array([5.0, 2.0, 4.0], dtype=np.float32))
    a, b = learner.adapt(*support), ck.learner.adapt(*support)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert os.path.getsize(path) > 0


# ------------------------------------------------------------------ any method, the split
DATA_DIR = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize("name", ["user_bias_levels", "popularity"])
def test_a_baseline_is_saved_and_loaded_like_any_method(tmp_path, name):
    from metarec_core.methods.registry import make_method

    data = make_data(n_users=40, n_items=30, per_user=16)
    train, val = np.arange(30), np.arange(30, 36)
    method = make_method(name, seed=0).fit(data, train, val)
    path = save_checkpoint(method, data, tmp_path / "b.pt", train_users=train, val_users=val)
    ck = load_checkpoint(path, data)  # the registry finds the class: no learner_from_state
    assert type(ck.learner) is type(method) and ck.method == name and ck.algorithm is None
    support = (np.array([0, 5, 9]), np.array([5.0, 2.0, 4.0]))
    np.testing.assert_array_equal(ck.learner.adapt(*support).scores, method.adapt(*support).scores)
    np.testing.assert_array_equal(ck.train_users, train)
    np.testing.assert_array_equal(ck.val_users, val)
    assert ck.format_version == FORMAT_VERSION == 2


def test_a_baseline_state_is_checked_before_it_is_built(tmp_path, monkeypatch):
    from metarec_core import checkpoint
    from metarec_core.methods.registry import make_method

    data = make_data(n_users=40, n_items=30, per_user=16)
    method = make_method("mf_foldin", seed=0).fit(data, np.arange(30), np.arange(30, 36))
    obj = torch.load(io.BytesIO(to_bytes(method, data)), weights_only=True)
    obj["learner"]["arrays"]["item_factors_"] = torch.zeros(30, 5000, dtype=torch.float64)
    monkeypatch.setattr(checkpoint, "_learner_from_state", lambda *a, **k: pytest.fail("built"))
    buf = io.BytesIO()
    torch.save(obj, buf)
    with pytest.raises(CheckpointError, match="5,000 factors, over the limit of 1,024"):
        load_checkpoint(buf.getvalue(), data)
    obj["method"] = "no_such_method"
    buf = io.BytesIO()
    torch.save(obj, buf)
    with pytest.raises(CheckpointError, match="'no_such_method' model, a method this MetaRec"):
        load_checkpoint(buf.getvalue(), data)


def test_a_stored_split_must_be_users_of_its_dataset(learner, data):
    saved = io.BytesIO(to_bytes(learner, data, train_users=np.arange(20)))
    obj = torch.load(saved, weights_only=True)
    for bad, match in (
        (torch.tensor([0, 0, 1]), "not distinct users"),
        (torch.tensor([0, 99]), "not distinct users"),
        (torch.tensor([0.5]), "not a list of user indices"),
    ):
        obj["users"]["train"] = bad
        buf = io.BytesIO()
        torch.save(obj, buf)
        with pytest.raises(CheckpointError, match=match):
            load(buf.getvalue(), data)
    obj["users"] = {"train": torch.arange(5), "validation": torch.arange(4, 8)}
    buf = io.BytesIO()
    torch.save(obj, buf)
    with pytest.raises(CheckpointError, match="both training and validation"):
        load(buf.getvalue(), data)


def test_a_checkpoint_of_format_1_still_loads_with_the_same_scores():
    """tests/data/checkpoint_v1.pt was written by the code before format 2 (see its README)."""
    import json

    pytest.importorskip("metarec_core.methods.meta")
    data = make_data(n_users=40, n_items=30, per_user=16)
    ck = load_checkpoint(DATA_DIR / "checkpoint_v1.pt", data)
    assert ck.format_version == 1 and ck.method == "fomaml"
    assert ck.train_users is None and ck.val_users is None  # format 1 stores no split
    want = json.loads((DATA_DIR / "checkpoint_v1_scores.json").read_text())
    got = ck.learner.adapt(
        np.array(want["support_items"]), np.array(want["support_ratings"], dtype=np.float32)
    )
    np.testing.assert_allclose(got.scores, want["scores"], rtol=0, atol=1e-6)
