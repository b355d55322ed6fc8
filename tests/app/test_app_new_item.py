"""AppTest: the page "A new item arrives" (k = 0 audience, ratings arriving, Play, reset, a
described item, the background fit of the item models)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import new_app, texts, wait_until

from metarec_core.data.io import load_ratings
from metarec_core.interactive import item_session as isn

# a few meta-steps of a small network (tests/core/test_item_session.py)
TINY_ITEM_LEARNER = dict(
    steps=10, eval_every=5, patience=1, factors=4, embedding_dim=8, hidden=(16,), meta_batch=16,
    val_repeats=1, device="cpu", pretrain=False,
)  # fmt: skip
_FITTED: dict[str, list[isn.ItemModels]] = {}


def fitted_parts() -> list[isn.ItemModels]:
    """The tiny sample's item models (baselines, learner), fitted once per test process."""
    import app_state

    folder = app_state.sample_dir()
    data = load_ratings(folder / "ratings.csv", items=folder / "items.csv")
    fp = data.fingerprint()
    if fp not in _FITTED:
        _FITTED[fp] = [
            isn.fit_item_models(data, names=names, settings=TINY_ITEM_LEARNER)
            for names in isn.playground_parts()
        ]
    return _FITTED[fp]


@pytest.fixture
def item_models(small_sample):
    """The tiny sample's item models, shared as the page shares the sample's."""
    parts = fitted_parts()
    isn.clear_shared_models()
    for part in parts:
        isn.share_models(part)
    yield isn.merge_models(parts)
    isn.clear_shared_models()


def item_page():
    at = new_app()
    at.switch_page("pages/new_item.py").run()
    assert not at.exception
    return at


# the page's tables in order (AppTest gives a keyed dataframe no key): the audience, the
# models side by side, then the ratings so far
AUDIENCE, MODELS, RATED = 0, 1, 2


def table(at, which: int):
    return at.dataframe[which].value


def audience_users(at) -> list[str]:
    return table(at, AUDIENCE)["user"].tolist()


def chart(at, title: str) -> dict | None:
    """The spec of the plotly chart whose title starts with `title` (None if not drawn)."""
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        if spec["layout"]["title"]["text"].startswith(title):
            return spec
    return None


CURVE, DIST, MAP = "Error on the hidden raters", "Predicted rating of every user", "Where it lands"


def test_k0_audience_from_the_description_alone(item_models):
    at = item_page()
    s = at.session_state["mr_item_session"]
    assert s.task is not None and s.item in set(item_models.fold.test_items.tolist())
    assert s.users == [] and s.view.n_ratings == 0
    assert len(audience_users(at)) == isn.AUDIENCE_N
    hidden = dict(zip(*s.task.query, strict=True))
    for user, shown in zip(audience_users(at), table(at, AUDIENCE)["hidden"], strict=True):
        u = s.data.user_ids.tolist().index(user)
        assert shown == (f"{hidden[u]:g} ★" if u in hidden else "")  # blank for other users
    assert any("0 ratings so far · from the description alone" in c.value for c in at.caption)
    # the default audience is the meta-learner's
    assert at.selectbox(key="ni_audience_model").value == isn.ITEM_PLAYGROUND_LEARNER
    side = table(at, MODELS)
    assert len(side) == len(item_models.names)
    assert side["mae"].notna().all()  # errors on the hidden raters, already at k = 0


def test_a_rating_reranks_the_audience_and_updates_the_errors_then_reset(item_models):
    at = item_page()
    s = at.session_state["mr_item_session"]
    # the MF fold-in's audience re-ranks with the ratings (item_bias's is each user's rating
    # habit plus one offset for the item: the same order whatever the item's ratings)
    at.selectbox(key="ni_audience_model").set_value("mf_foldin_levels").run()
    first = audience_users(at)
    predicted0 = dict(zip(first, table(at, AUDIENCE)["predicted"], strict=True))
    errors0 = table(at, MODELS)["mae"].tolist()
    for _ in range(3):
        at.button(key="ni_next").click().run()
        assert not at.exception
    assert len(s.users) == 3 and [p.n for p in s.curve] == [0, 1, 2, 3]
    after = audience_users(at)
    raters = {str(s.data.user_ids[u]) for u in s.users}
    assert not raters & set(after)  # raters leave the audience
    stayed = [u for u in first if u not in raters]
    assert after != stayed[: len(after)]  # re-ranked, not only the raters gone
    predicted = dict(zip(after, table(at, AUDIENCE)["predicted"], strict=True))
    assert any(predicted[u] != predicted0[u] for u in set(after) & set(first))
    assert table(at, MODELS)["mae"].tolist() != errors0
    assert any("3 ratings so far" in c.value for c in at.caption)
    assert table(at, RATED)["by"].tolist() == ["replay"] * 3
    curve = chart(at, CURVE)
    assert len(curve["data"]) == len(item_models.names)
    assert all(len(t["x"]) == 4 for t in curve["data"])
    at.button(key="ni_reset").click().run()
    assert s.users == [] and audience_users(at) == first
    assert table(at, MODELS)["mae"].tolist() == errors0


def test_play_adds_a_rating_per_run_and_pauses(item_models):
    at = item_page()
    s = at.session_state["mr_item_session"]
    assert at.button(key="ni_play").label == "Play"
    at.button(key="ni_play").click().run()
    assert at.session_state["mr_item_playing"] and at.button(key="ni_play").label == "Pause"
    assert len(s.users) == 1
    at.run()
    assert len(s.users) == 2
    at.button(key="ni_play").click().run()  # pause
    at.run()
    assert len(s.users) == 2 and at.button(key="ni_play").label == "Play"


def test_a_described_item_by_hand_with_its_title_as_text(item_models):
    at = item_page()
    at.radio(key="ni_mode").set_value("Describe a new item").run()
    title = "**Bold** <b>x</b> [link](http://example.com) (2024)"
    at.text_input(key="ni_title").set_value(title)
    at.multiselect(key="ni_genres").set_value(["Sci-Fi"])
    at.button(key="ni_use_described").click().run()
    assert not at.exception
    s = at.session_state["mr_item_session"]
    assert s.task is None and s.title == title and s.genres == ("Sci-Fi",)
    assert title in [t.value.split("\n")[0] for t in at.text]  # shown literally
    assert chart(at, CURVE) is None  # no hidden ratings: no error curve
    first = audience_users(at)
    at.selectbox(key="ni_rater").set_value(int(s.data.user_ids.tolist().index(first[0])))
    at.button(key="ni_rate").click().run()
    assert not at.exception and len(s.users) == 1
    assert first[0] not in audience_users(at)
    assert table(at, RATED)["by"].tolist() == ["you"]


def test_the_models_are_fitted_in_the_background_on_first_visit(small_sample, monkeypatch):
    isn.clear_shared_models()
    # baselines only: fast (the learner's fit is the same job, longer)
    monkeypatch.setattr(isn, "ITEM_PLAYGROUND_METHODS", ("content", "item_bias_levels"))
    at = new_app()
    at.switch_page("pages/new_item.py").run()
    assert not at.exception
    assert "Fitting the models for new items" in texts(at) and at.get("progress")
    wait_until(at, lambda a: "mr_item_session" in a.session_state, tries=300)
    assert not at.exception
    assert len(audience_users(at)) == isn.AUDIENCE_N
    assert len(at.selectbox(key="ni_audience_model").options) == 2
    # another session on the sample finds the models shared: no second fit
    other = new_app()
    other.switch_page("pages/new_item.py").run()
    assert not other.exception and "mr_item_session" in other.session_state
    assert "Fitting the models" not in texts(other)
    isn.clear_shared_models()


def test_the_page_opens_with_the_baselines_and_the_learner_joins_when_fitted(
    small_sample, monkeypatch
):
    import threading

    base, learner = fitted_parts()
    isn.clear_shared_models()
    isn.share_models(base)
    release = threading.Event()

    def held_fit(job, ctx):
        """The learner's job ends when the test says so, with the models fitted above."""
        assert job.names == learner.names
        assert release.wait(300), "the test never released the learner's fit"
        return learner

    monkeypatch.setattr(isn.ItemFitJob, "_work", held_fit)
    at = item_page()
    assert "Still fitting" in [e.label for e in at.expander][0]
    assert at.get("progress")
    assert at.selectbox(key="ni_audience_model").value == "content"  # the learner is not there
    at.button(key="ni_next").click().run()
    at.button(key="ni_next").click().run()
    s = at.session_state["mr_item_session"]
    rated = list(s.users)
    assert len(table(at, MODELS)) == len(base.names)
    release.set()
    wait_until(at, lambda a: a.session_state["mr_item_session"].models.names != base.names)
    assert not at.exception
    s = at.session_state["mr_item_session"]
    assert s.users == rated  # the same item and ratings, now seen by every model
    assert set(s.models.names) == set(base.names) | set(learner.names)
    assert [p.n for p in s.curve] == [0, 1, 2]
    assert all(set(p.errors) == set(s.models.names) for p in s.curve)
    assert at.selectbox(key="ni_audience_model").value == isn.ITEM_PLAYGROUND_LEARNER
    assert len(table(at, MODELS)) == len(s.models.names)
    assert not [e for e in at.expander if "Still fitting" in e.label]
    isn.clear_shared_models()


def test_the_pages_url_is_its_file_name():
    # A fresh server's first visitor of a page's URL is served by Streamlit's legacy `pages/`
    # mode, which finds a page by its file name (app_state.require_router): a URL of another
    # name reads "Page not found" there.
    import re
    from pathlib import Path

    app = (Path(__file__).resolve().parents[2] / "app.py").read_text()
    pages = re.findall(r'st\.Page\(\s*"pages/(\w+)\.py".*?url_path="([^"]+)"', app, re.S)
    assert ("new_item", "new_item") in pages
    assert all(stem == url for stem, url in pages), pages


def test_a_described_item_takes_a_year_and_a_personas_ratings(item_models):
    at = item_page()
    at.radio(key="ni_mode").set_value("Describe a new item").run()
    at.text_input(key="ni_title").set_value("Space Opera")
    at.multiselect(key="ni_genres").set_value(["Sci-Fi"])
    at.number_input(key="ni_year").set_value(2024)
    at.button(key="ni_use_described").click().run()
    s = at.session_state["mr_item_session"]
    assert s.title == "Space Opera (2024)" and s.genres == ("Sci-Fi",)
    at.multiselect(key="ni_likes").set_value(["Sci-Fi"]).run()
    at.multiselect(key="ni_dislikes").set_value([]).run()
    before = audience_users(at)
    for n in range(1, 4):
        at.button(key="ni_persona").click().run()
        assert not at.exception and len(s.users) == n
    assert table(at, RATED)["by"].tolist() == ["persona: Loves Sci-Fi"] * 3
    raters = {str(s.data.user_ids[u]) for u in s.users}
    assert not raters & set(audience_users(at)) and audience_users(at) != before
    # a persona that cannot be: a message, not a traceback
    at.multiselect(key="ni_likes").set_value([]).run()
    at.button(key="ni_persona").click().run()
    assert not at.exception and len(s.users) == 3
    assert "at least one liked or disliked genre" in texts(at)


def test_the_distribution_and_the_map_follow_each_rating(item_models):
    at = item_page()
    s = at.session_state["mr_item_session"]
    dist = chart(at, DIST)
    assert len(dist["data"]) == len(item_models.names)
    for trace in dist["data"]:  # shares of every user, in percent
        assert sum(trace["y"]) == pytest.approx(100.0)
    # the map is the meta-learner's (the audience shown): the training items, then the item
    spec = chart(at, MAP)
    assert isn.ITEM_PLAYGROUND_LEARNER in s.models.mapped
    m = s.item_map(isn.ITEM_PLAYGROUND_LEARNER)
    points = [t for t in spec["data"] if t["mode"] == "markers" and t["type"] == "scattergl"]
    assert sum(len(t["x"]) for t in points) == len(m.items)
    path = next(t for t in spec["data"] if t["mode"] == "lines+markers")
    assert len(path["x"]) == 1
    first = chart(at, DIST)["data"][0]["y"]
    for _ in range(2):
        at.button(key="ni_next").click().run()
    path = next(t for t in chart(at, MAP)["data"] if t["mode"] == "lines+markers")
    assert len(path["x"]) == 3
    # the MF fold-in has a map of its own; the content baseline has none (it is the learner's)
    at.selectbox(key="ni_audience_model").set_value("mf_foldin_levels").run()
    assert "MF fold-in" in chart(at, MAP)["layout"]["title"]["text"]
    at.selectbox(key="ni_audience_model").set_value("content").run()
    assert "Meta-SGD" in chart(at, MAP)["layout"]["title"]["text"]
    assert chart(at, DIST)["data"][0]["y"] == first  # content ignores the ratings


def test_the_samples_saved_models_open_the_page_without_a_fit(small_sample, monkeypatch):
    import app_state

    data_dir = app_state.sample_dir()
    data = load_ratings(data_dir / "ratings.csv", items=data_dir / "items.csv")
    isn.clear_shared_models()
    isn.save_models(isn.merge_models(fitted_parts()), data, data_dir / isn.SAMPLE_MODELS_DIR)

    def no_fit(*a, **kw):
        raise AssertionError("the page fitted models it has saved")

    monkeypatch.setattr(isn.ItemFitJob, "start", no_fit)
    at = item_page()
    assert "Fitting the models" not in texts(at) and not at.get("progress")
    s = at.session_state["mr_item_session"]
    assert set(s.models.names) == set(isn.ITEM_PLAYGROUND_METHODS)
    assert isn.shared_models(data, 0, isn.ITEM_PLAYGROUND_BASELINES) is not None
    isn.clear_shared_models()


def test_a_broken_saved_model_is_said_and_the_models_are_fitted(small_sample, monkeypatch):
    import app_state

    folder = app_state.sample_dir() / isn.SAMPLE_MODELS_DIR
    folder.mkdir()
    for name in isn.ITEM_PLAYGROUND_METHODS:
        (folder / f"{name}.pt").write_bytes(b"not a checkpoint")
    isn.clear_shared_models()
    started = []
    monkeypatch.setattr(isn.ItemFitJob, "start", lambda job: started.append(job) or job)
    at = item_page()
    assert "could not be read" in texts(at) and "Fitting the models" in texts(at)
    assert started  # it fits them instead
    isn.clear_shared_models()


def test_what_if_compares_the_models_audiences_for_the_pages_item(item_models):
    at = new_app()
    at.switch_page("pages/whatif.py").run()
    at.radio(key="wi_subject").set_value("A new item").run()
    assert not at.exception and "Describe or pick a new item first" in texts(at)
    at.switch_page("pages/new_item.py").run()
    for _ in range(3):
        at.button(key="ni_next").click().run()
    s = at.session_state["mr_item_session"]
    at.switch_page("pages/whatif.py").run()
    at.radio(key="wi_subject").set_value("A new item").run()
    assert "its 3 ratings so far" in texts(at)
    at.button(key="wi_item_compare").click().run()
    assert not at.exception
    side, rows = at.dataframe[0].value, at.dataframe[1].value
    assert len(side) == isn.AUDIENCE_N and len(side.columns) == 1 + len(item_models.names)
    ids = s.data.user_ids
    for j, name in enumerate(item_models.names):  # each column is that model's audience
        shown = [cell.split(" ★")[0] for cell in side[f"m{j}"]]
        assert shown == [f"user {ids[m.user]}" for m in s.audience(name)]
    m = len(item_models.names)
    assert rows.shape == (m, 3 + m)
    overlap = rows[[f"o{j}" for j in range(m)]].to_numpy()
    assert np.allclose(np.diag(overlap), 1.0) and np.allclose(overlap, overlap.T)
    content = rows.set_index("model").loc[fmt_label("content"), "settles"]
    assert content == f"never adapts (same {isn.AUDIENCE_N} users as with no ratings)"


def fmt_label(name: str) -> str:
    from app_support.format import item_method_label

    return item_method_label(name)
