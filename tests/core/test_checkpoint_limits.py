"""Crafted checkpoints: small files that declare huge or absurd things are refused, in time.

Each file here is small on disk but declares something big (an embedding of 1e6 dimensions,
1e9 items, a deflate bomb, shared lists that expand under ``str()``, 10M ids, a zero-stride
view) or absurd (NaN weights, a reversed scale, genres that are not a tensor). The guard must
refuse it with a clear `CheckpointError` *before* the expensive step: the tests patch that step
(unpickling, building the model) to fail, so a missing guard fails the test at once instead of
allocating gigabytes.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch

from metarec_core import checkpoint
from metarec_core.checkpoint import (
    MAX_EMBEDDING_DIM,
    MAX_ITEMS,
    CheckpointError,
    CheckpointLimits,
    load_checkpoint,
    to_bytes,
)
from metarec_core.data.dataset import ItemInfo, RatingScale, RatingsDataset
from metarec_core.methods.meta import MetaLearner, learner_class, preset
from tests.helpers import edited_checkpoint as edited

N_ITEMS = 20


def make_data(n_items: int = N_ITEMS, scale: RatingScale | None = None) -> RatingsDataset:
    rng = np.random.default_rng(0)
    n_users, per_user = 12, 6
    genres = np.zeros((n_items, 3), dtype=bool)
    genres[np.arange(n_items), np.arange(n_items) % 3] = True
    return RatingsDataset(
        user=np.repeat(np.arange(n_users), per_user).astype(np.int64),
        item=np.concatenate(
            [rng.choice(n_items, per_user, replace=False) for _ in range(n_users)]
        ).astype(np.int64),
        rating=rng.integers(1, 6, size=n_users * per_user).astype(np.float32),
        timestamp=None,
        user_ids=np.asarray([f"u{u}" for u in range(n_users)]),
        item_ids=np.asarray([f"m{i}" for i in range(n_items)]),
        scale=scale or RatingScale(1.0, 5.0, 1.0),
        items=ItemInfo(
            titles=np.asarray([f"Film {i}" for i in range(n_items)]),
            genre_names=("Action", "Comedy", "Drama"),
            genres=genres,
        ),
        source="tiny.csv",
    )


def built_learner(data: RatingsDataset, **overrides) -> MetaLearner:
    """A real MetaLearner, built with its initial weights (training is not the point here)."""
    small = {"device": "cpu", "factors": 4, "embedding_dim": 4, "hidden": (8,), "inner_steps": 2}
    cfg = dataclasses.replace(preset("metasgd"), **{**small, **overrides})
    learner = learner_class(cfg)(cfg)
    genres = torch.as_tensor(data.items.genres).float() if data.items is not None else None
    learner._build(data.n_items, genres, data.scale, torch.device("cpu"))
    learner.fitted_ = True
    return learner


@pytest.fixture(scope="module")
def data() -> RatingsDataset:
    return make_data()


@pytest.fixture(scope="module")
def good(data) -> bytes:
    return to_bytes(built_learner(data), data)


@pytest.fixture
def never_built(monkeypatch):
    """Building the model fails the test: a refusal must come before it."""

    def build(state, device="cpu"):
        raise AssertionError("the model was built from a checkpoint that should be refused")

    monkeypatch.setattr(checkpoint, "_learner_from_state", build)


@pytest.fixture
def never_unpickled(monkeypatch):
    """Unpickling fails the test: a refusal must come from the archive's declared sizes."""

    def unpickle(raw, label):
        raise AssertionError("torch.load ran on a checkpoint that should be refused")

    monkeypatch.setattr(checkpoint, "_torch_load", unpickle)


def refused(raw: bytes, match: str, data: RatingsDataset | None = None) -> str:
    with pytest.raises(CheckpointError, match=match) as e:
        load_checkpoint(raw, data, name="crafted.pt")
    msg = str(e.value)
    assert msg.startswith("crafted.pt: ")
    return msg


# ---------------------------------------------------------------------------- a sane file
def test_a_real_checkpoint_still_loads(good, data):
    for ck in (load_checkpoint(good, data), load_checkpoint(good)):
        assert ck.n_items == N_ITEMS and ck.learner.n_items_ == N_ITEMS
        assert ck.scale == data.scale and ck.genres.shape == (N_ITEMS, 3)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"adapt": "head"},
        {"adapt": "all", "implicit": True},
        {"hidden": (), "outer_loss": "mse"},
        {"hidden": (8, 6, 4), "use_genres": False},
        {"per_step_lr": False, "inner_steps": 0},
    ],
)
def test_declared_size_is_what_a_built_learner_holds(data, overrides):
    """The size computed from a config before building equals what building allocates."""
    learner = built_learner(data, **overrides)
    held = sum(t.numel() for t in learner.model_.state_dict().values())
    held += sum(t.numel() for t in learner.inner_.state_dict().values())
    cfg = learner.config.to_dict()
    levels = learner.model_.ordinal.levels if learner.model_.ordinal is not None else 0
    assert checkpoint._declared_numel(cfg, N_ITEMS, 3, levels) == held
    load_checkpoint(to_bytes(learner, data), data)


# ------------------------------------------------------------------ declared dimensions
@pytest.mark.usefixtures("never_built")
@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            {"embedding_dim": 1_000_000},
            rf"1,000,000 embedding dimensions .*over the limit of {MAX_EMBEDDING_DIM:,}",
        ),
        ({"factors": 10**7}, "10,000,000 user factors"),
        ({"hidden": [1_000_000]}, "hidden layer 1 has width 1,000,000"),
        ({"hidden": [8] * 1_000}, "1,000 hidden layers"),
        ({"inner_steps": 10**6}, "1,000,000 inner steps"),
        # within every limit, but far more than the file stores
        ({"embedding_dim": 4_000}, r"declare a model of [\d,]+ values, but the file stores only"),
        ({"hidden": [4_000, 4_000]}, r"declare a model of [\d,]+ values, but the file stores"),
    ],
)
def test_huge_model_settings_are_refused_before_building(good, data, edit, match):
    raw = edited(good, lambda o: o["learner"]["config"].update(edit))
    refused(raw, match)
    refused(raw, match, data)


@pytest.mark.usefixtures("never_built")
def test_a_billion_items_is_refused_before_building(good, data):
    raw = edited(good, lambda o: o["learner"].update(n_items=10**9))
    refused(raw, "1,000,000,000 items .*over the limit of 1,000,000")
    # the dataset entry too: against a dataset, before any item list is made
    raw = edited(good, lambda o: o["dataset"].update(n_items=10**9))
    msg = refused(raw, "with 1,000,000,000 items; the active dataset 'tiny.csv' has 20", data)
    assert "Load the dataset the model was trained on" in msg
    refused(raw, f"1,000,000,000 items .*over the limit of {MAX_ITEMS:,}")
    # too many digits to quote
    raw = edited(good, lambda o: o["dataset"].update(n_items=10**40))
    refused(raw, "more than 10\\^30 items")


# ------------------------------------------------------------------------- deflate bomb
def _with_member(raw: bytes, name: str, size: int) -> bytes:
    """`raw` plus a member of `size` zero bytes, deflated (about 1,000:1)."""
    buf = io.BytesIO(raw)
    with (
        zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_DEFLATED) as zf,
        zf.open(name, "w", force_zip64=True) as f,
    ):
        chunk = bytes(2**20)
        for _ in range(size // len(chunk)):
            f.write(chunk)
    return buf.getvalue()


@pytest.mark.usefixtures("never_unpickled")
def test_a_deflate_bomb_is_refused_from_its_declared_size(good, data):
    size = 96 * 2**20  # over what a model of 20 items may unpack to (~70 MB)
    raw = _with_member(good, "archive/data/bomb", size)
    assert len(raw) < size / 200
    msg = refused(raw, r"its contents would unpack to [\d,]+ bytes", data)
    assert "for a model of the active dataset's 20 items" in msg
    assert f"({len(raw):,} bytes in the file)" in msg


def _declare_size(raw: bytes, member: str, size: int) -> bytes:
    """`raw` with `member`'s uncompressed size in the central directory set to `size`."""
    out = bytearray(raw)
    at = out.find(b"PK\x01\x02")
    while at >= 0:
        n = struct.unpack_from("<H", out, at + 28)[0]
        if out[at + 46 : at + 46 + n].decode().endswith(member):
            struct.pack_into("<I", out, at + 24, size)
            return bytes(out)
        at = out.find(b"PK\x01\x02", at + 46)
    raise AssertionError(f"{member} not in the archive")


@pytest.mark.usefixtures("never_unpickled")
def test_a_member_declaring_gigabytes_is_refused_without_a_dataset(good):
    # what torch would allocate for it: the CLI, with no dataset, allows about 1 GB in all
    raw = _declare_size(good, "data/0", 4_000_000_000)
    refused(raw, "would unpack to 4,0\\d\\d,\\d{3},\\d{3} bytes .*over the limit")


@pytest.mark.usefixtures("never_unpickled")
def test_an_archive_of_many_parts_is_refused_before_it_is_read():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(10_001):
            zf.writestr(f"archive/x{i}", b"")
    refused(buf.getvalue(), "declares 10,001 parts, over the limit of 10,000")


# ------------------------------------------------------------- nested and shared contents
def _laughs(levels: int) -> list:
    """A list that expands to 2**levels leaves under str(): each level references the last twice."""
    x: list = ["lol"]
    for _ in range(levels):
        x = [x, x]
    return x


@pytest.mark.parametrize(
    "edit",
    [
        lambda o: o["items"].update(ids=[_laughs(16)] * N_ITEMS),
        lambda o: o["items"].update(titles=[_laughs(16)] * N_ITEMS),
        lambda o: o["dataset"].update(name=_laughs(20)),
        lambda o: o["learner"].update(history=[_laughs(20)]),
    ],
    ids=["ids", "titles", "dataset name", "history"],
)
def test_shared_references_are_refused_before_str_expands_them(good, data, monkeypatch, edit):
    raw = edited(good, edit)
    assert len(raw) < len(good) + 10_000  # the pickle shares: a few bytes per level
    calls = []
    monkeypatch.setattr(checkpoint, "_learner_from_state", lambda *a, **k: calls.append(a))
    refused(raw, r"holds more than [\d,]+ values \(its lists share and repeat parts", data)
    assert not calls


@pytest.mark.usefixtures("never_built")
def test_shared_text_is_refused_before_it_is_joined(good, data):
    text = "x" * 9_000  # one title's worth, referenced 2,000 times: 18 MB when printed
    raw = edited(good, lambda o: o["dataset"].update(name=[text] * 2_000))
    assert len(raw) < len(good) + 20_000
    refused(
        raw, r"its text adds up to more than [\d,]+ characters \(it repeats shared text\)", data
    )


def test_deep_nesting_is_refused(good, data):
    def deep(o):
        x: list = ["t"]
        for _ in range(200):
            x = [x]
        o["items"]["titles"][3] = x

    refused(edited(good, deep), r"items.titles\[3\].* nested more than 32 levels deep", data)


def _archive(obj) -> bytes:
    """A torch.save-style archive of a tensor-free `obj` (pickled at C speed)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(obj, protocol=2))
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")
    return buf.getvalue()


@pytest.mark.usefixtures("never_unpickled")
def test_millions_of_ids_are_refused_before_unpickling(good, data):
    obj = torch.load(io.BytesIO(good), weights_only=True)
    del obj["learner"]
    obj["items"] = {"ids": ["x"] * 3_000_000, "titles": None, "genre_names": [], "genres": None}
    refused(_archive(obj), r"item list, settings and history \(data.pkl\) would unpack to", data)
    obj["items"]["ids"] = ["x"] * 10_000_000  # 20 MB of references to one string
    refused(_archive(obj), r"\(data.pkl\) would unpack to [\d,]+ bytes .*over the limit of 16,777")


def test_overlong_ids_are_refused(good):
    raw = edited(good, lambda o: o["items"]["ids"].__setitem__(5, "x" * 20_000))
    refused(raw, "one of its item ids has 20,000 characters, over the limit of 10,000")


# -------------------------------------------------------------------------------- tensors
@pytest.mark.usefixtures("never_built")
@pytest.mark.parametrize(
    "edit",
    [
        lambda o: o["items"].update(genres=torch.ones(1, dtype=torch.bool).expand(N_ITEMS, 10**6)),
        lambda o: o["learner"].update(genres=torch.ones(1, dtype=torch.bool).expand(N_ITEMS, 3)),
        lambda o: o["learner"]["model"].update({"item_enc.bias": torch.zeros(1).expand(N_ITEMS)}),
    ],
    ids=["items.genres", "learner.genres", "a weight"],
)
def test_zero_stride_tensors_are_refused(good, data, edit):
    raw = edited(good, edit)
    refused(raw, r"declares [\d,]+ values \(shape .*\) but stores only 1; it repeats its values")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            lambda o: o["items"].update(genres=[[True, False, False]] * N_ITEMS),
            "items.genres is a list, expected a tensor of item genres",
        ),
        (
            lambda o: o["items"].update(genres=torch.ones(N_ITEMS, 2, dtype=torch.bool)),
            r"item metadata misaligned \(items.genres has shape \(20, 2\), expected \(20, 3\)",
        ),
        (
            lambda o: o["items"].update(ids=list(range(N_ITEMS))),
            r"item ids\[0\] is a int, expected text",
        ),
        (
            lambda o: o["learner"]["model"].update({"head.out.bias": [0.0]}),
            r"learner.model\['head.out.bias'\] is a list, not a tensor",
        ),
        (lambda o: o["config"].update(seed="0"), "its config's seed is a str"),
        (lambda o: o["config"].update(seed=-1), "its config's seed is -1"),
    ],
)
def test_wrong_types_are_a_clear_error(good, data, edit, match):
    refused(edited(good, edit), match, data)


@pytest.mark.usefixtures("never_built")
@pytest.mark.parametrize(
    ("value", "match"),
    [
        (float("nan"), r"learner.model\['item_enc.bias'\] holds 1 NaN or infinite value"),
        (float("inf"), r"learner.model\['item_enc.bias'\] holds 1 NaN or infinite value"),
        (3e38, r"learner.model\['item_enc.bias'\] holds a weight of 3e\+38, beyond ±1e\+09"),
    ],
)
def test_non_finite_or_absurd_weights_are_refused(good, data, value, match):
    def poison(o):
        o["learner"]["model"]["item_enc.bias"][7] = value

    raw = edited(good, poison)
    refused(raw, match)
    refused(raw, match, data)


# ---------------------------------------------------------------------------------- scale
@pytest.mark.parametrize(
    ("scale", "match"),
    [
        ((5.0, 1.0, 1.0), "from 5 to 1 in steps of 1"),
        ((1.0, 5.0, 0.0), "from 1 to 5 in steps of 0"),
        ((1.0, 5.0, -1.0), "from 1 to 5 in steps of -1"),
        ((float("nan"), 5.0, 1.0), "low is nan"),
        (("1", 5.0, 1.0), "low is a str"),
    ],
)
def test_an_invalid_scale_is_the_checkpoints_fault(good, scale, match):
    def rescale(o):
        o["scale"] = dict(zip(("low", "high", "step"), scale, strict=True))
        o["learner"]["scale"] = list(scale)

    refused(edited(good, rescale), f"the checkpoint's rating scale is invalid: .*{match}")


def test_the_cli_blames_the_checkpoint_not_the_ratings(good, tmp_path, capsys):
    from metarec_core.cli import main

    def reverse(o):  # the model's own scale is left as it was
        o["scale"] = {"low": 5.0, "high": 1.0, "step": 1.0}

    def poison(o):
        o["learner"]["model"]["item_enc.bias"].fill_(float("nan"))

    ratings = tmp_path / "me.csv"
    ratings.write_text("item,rating\nm1,5\nm2,3\n")
    for name, edit, message in (
        ("reversed.pt", reverse, "rating scale is invalid: from 5 to 1"),
        ("nan.pt", poison, "learner.model['item_enc.bias'] holds 20 NaN"),
    ):
        (tmp_path / name).write_bytes(edited(good, edit))
        assert main(["recommend", str(tmp_path / name), "--ratings", str(ratings)]) == 2
        cap = capsys.readouterr()
        assert cap.out == "" and cap.err.startswith(f"error: {tmp_path / name}: ")
        assert message in cap.err and "me.csv" not in cap.err


def test_derived_limits_follow_the_dataset(data):
    small = CheckpointLimits.for_dataset(data)
    assert small.for_items == N_ITEMS
    assert small.max_pickle_bytes < 3 * 2**20 and small.max_uncompressed_bytes < 80 * 2**20
    bigger = CheckpointLimits.for_dataset(make_data(n_items=2_000))
    assert bigger.max_uncompressed_bytes > small.max_uncompressed_bytes
    cli = CheckpointLimits.for_dataset(None)
    assert cli.for_items is None and cli.max_uncompressed_bytes > bigger.max_uncompressed_bytes


# ------------------------------------------------------------------- the app's upload box
@pytest.mark.usefixtures("small_sample")
def test_the_train_page_refuses_crafted_uploads_with_a_message():
    from helpers import new_app, tiny_model_bytes

    good = tiny_model_bytes()
    bomb = _with_member(good, "archive/data/bomb", 96 * 2**20)
    laughs = edited(
        good, lambda o: o["items"].update(titles=[_laughs(18)] * len(o["items"]["ids"]))
    )
    at = new_app()
    at.switch_page("pages/train.py").run()
    for name, raw, message in (
        ("bomb.pt", bomb, "would unpack to"),
        ("laughs.pt", laughs, "its lists share and repeat parts"),
    ):
        at.file_uploader(key="upload_checkpoint").set_value(
            (name, raw, "application/octet-stream")
        ).run()
        assert not at.exception
        shown = [e.value.replace("\\", "") for e in at.error]
        assert len(shown) == 1 and name in shown[0] and message in shown[0], shown
        assert name not in at.session_state["mr_models"]
