"""AppTest: the cold-start playground (rating, personas, Play, remove, reset, first-use model)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import (
    check_only_against,
    clear_streamlit_caches,
    new_app,
    texts,
    wait_until,
    write_sample_dir,
    write_sample_dir_with_model,
)

from app_state import plain
from metarec_core.interactive import session as pg
from metarec_core.methods.registry import display_name


@pytest.fixture(autouse=True)
def clean_caches():
    clear_streamlit_caches()
    pg.clear_baseline_cache()
    yield
    clear_streamlit_caches()
    pg.clear_baseline_cache()


@pytest.fixture
def with_model(tmp_path, monkeypatch):
    monkeypatch.setenv("METAREC_SAMPLE_DIR", str(write_sample_dir_with_model(tmp_path / "sample")))


def playground():
    at = new_app()
    at.switch_page("pages/playground.py").run()
    assert not at.exception
    return at


def top_titles(at) -> list[str]:
    return at.dataframe[0].value["title"].tolist()


def test_shipped_model_is_ready_at_once(with_model):
    at = playground()
    assert at.session_state["mr_active_model"] == "sample model"
    assert len(top_titles(at)) == 10
    assert any("0 ratings so far" in c.value for c in at.caption)


def test_rating_items_changes_the_recommendations(with_model):
    at = playground()
    first = top_titles(at)
    at.text_input(key="pg_search").set_value("Sci-Fi").run()
    rated = []
    for _ in range(3):
        # the first search hit, as the page lists it (already rated items drop out)
        at.selectbox(key="pg_item").select_index(0)
        at.select_slider(key="pg_rating").set_value(5.0)
        at.button(key="pg_rate").click().run()
        assert not at.exception
        rated.append(at.session_state["mr_playground"].items[-1])
    data = at.session_state["mr_data"].data
    assert all("Sci-Fi" in data.items.genre_list(i) for i in rated)
    s = at.session_state["mr_playground"]
    assert s.items == rated and s.ratings == [5.0, 5.0, 5.0]
    after = top_titles(at)
    assert after != first
    assert not {s.data.items.titles[i] for i in rated} & set(after)  # rated items leave the list
    assert any("3 ratings so far" in c.value for c in at.caption)
    moves = at.dataframe[0].value["movement"].tolist()
    assert all(m == "new" or m == "=" or m[0] in "↑↓" for m in moves)
    assert at.dataframe[1].value.shape[0] == 3
    # remove one rating, then reset
    at.selectbox(key="pg_remove_pick").set_value(rated[0])
    at.button(key="pg_remove").click().run()
    assert at.session_state["mr_playground"].items == rated[1:]
    at.button(key="pg_reset").click().run()
    assert at.session_state["mr_playground"].items == []
    assert top_titles(at) == first


def test_heldout_persona_next_play_and_curves(with_model):
    at = playground()
    at.radio(key="pg_mode").set_value("A held-out real user").run()
    at.button(key="pg_use_heldout").click().run()
    s = at.session_state["mr_playground"]
    assert s.persona is not None and s.persona.kind == "heldout"
    # the persona is a user the model never trained on
    entry = at.session_state["mr_models"]["sample model"]
    assert s.persona.user not in set(entry.train_users.tolist())
    at.button(key="pg_next").click().run()
    at.button(key="pg_next").click().run()
    assert len(s.items) == 2 and [p.n for p in s.curve] == [0, 1, 2]
    at.button(key="pg_play").click().run()  # each (full or timer) run adds one while playing
    assert len(s.items) == 3 and at.session_state["mr_pg_playing"]
    at.run()
    assert len(s.items) == 4
    at.button(key="pg_play").click().run()  # pause
    n = len(s.items)
    at.run()
    assert len(s.items) == n
    charts = {c.key: c for c in at.get("plotly_chart")}
    # the intervals, adaptation, learning curve (MAE), projection, nDCG
    assert set(charts) == {f"pg_{k}_chart" for k in ("band", "adapt", "curve", "proj", "ndcg")}
    import json

    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in charts.values()]
    assert any("Learning curve" in t for t in titles) and any("PCA" in t for t in titles)
    curve = json.loads(charts["pg_curve_chart"].proto.spec)
    names = {tr["name"] for tr in curve["data"]}
    baselines = {display_name("mf_foldin_levels"), display_name("user_bias_levels")}
    assert baselines <= names and any("meta-learner" in x for x in names)
    assert len(curve["data"][0]["x"]) == n + 1


def test_taste_persona_and_hidden_items_not_searchable(with_model):
    at = playground()
    at.radio(key="pg_mode").set_value("A taste persona").run()
    at.multiselect(key="pg_likes").set_value(["Sci-Fi"])
    at.multiselect(key="pg_dislikes").set_value(["Romance"])
    at.button(key="pg_use_taste").click().run()
    s = at.session_state["mr_playground"]
    assert s.persona.kind == "taste" and s.persona.likes == ("Sci-Fi",)
    shown = texts(at).replace("\\", "")  # persona text is shown literally (markdown-escaped)
    assert "Loves Sci-Fi, dislikes Romance: generated ratings (30 to reveal, 20 hidden)" in shown
    hidden = set(s.persona.hidden_items.tolist())
    listed = at.selectbox(key="pg_item").options  # labels: "title (genres)"
    assert len(listed) > 0
    titles = {str(s.data.items.titles[i]) for i in hidden}
    assert not {o.split(" (")[0] for o in listed} & titles
    at.button(key="pg_next").click().run()
    assert len(s.items) == 1 and s.items[0] == int(s.persona.reveal_items[0])
    # switching back to "Me" drops the persona
    at.radio(key="pg_mode").set_value("Me").run()
    assert at.session_state["mr_playground"].persona is None


def test_without_a_shipped_model_one_is_trained_in_the_background(tmp_path, monkeypatch):
    check_only_against(monkeypatch, "user_bias")  # a tiny training passes this model check
    monkeypatch.setenv("METAREC_SAMPLE_DIR", str(write_sample_dir(tmp_path / "bare")))
    monkeypatch.setenv("METAREC_QUICK_STEPS", "2")
    at = new_app()
    at.switch_page("pages/playground.py").run()
    assert at.session_state["mr_active_model"] is None
    assert len(at.get("progress")) == 2  # in the sidebar and on the page, while it trains
    wait_until(at, lambda a: a.session_state["mr_active_model"] is not None, tries=300)
    at.run()
    assert at.session_state["mr_active_model"] == "sample model (quick)"
    assert len(top_titles(at)) == 10
    assert np.isfinite(at.dataframe[0].value["predicted"]).all()


def heldout_persona_page():
    at = playground()
    at.radio(key="pg_mode").set_value("A held-out real user").run()
    at.button(key="pg_use_heldout").click().run()
    assert not at.exception
    return at, at.session_state["mr_playground"]


def test_play_button_reads_pause_while_playing(with_model):
    at, s = heldout_persona_page()
    assert at.button(key="pg_play").label == "Play"
    at.button(key="pg_play").click().run()
    assert at.session_state["mr_pg_playing"]
    assert at.button(key="pg_play").label == "Pause"  # read "Play" while playing
    at.button(key="pg_play").click().run()
    assert not at.session_state["mr_pg_playing"]
    assert at.button(key="pg_play").label == "Play"


def test_reset_after_the_persona_ran_out_enables_next_and_play_at_once(with_model):
    at, s = heldout_persona_page()
    while s.has_next():
        s.add_next()
    at.run()
    assert at.button(key="pg_next").disabled and at.button(key="pg_play").disabled
    at.button(key="pg_reset").click().run()
    assert s.items == [] and s.has_next()
    # one Reset is enough: both were drawn disabled in the Reset's own run
    assert not at.button(key="pg_next").disabled
    assert not at.button(key="pg_play").disabled
    at.button(key="pg_next").click().run()
    assert len(s.items) == 1


def test_who_is_rating_survives_a_visit_to_another_page(with_model):
    at, s = heldout_persona_page()
    at.button(key="pg_next").click().run()
    at.switch_page("pages/whatif.py").run()
    at.switch_page("pages/playground.py").run()
    assert not at.exception
    assert at.session_state["mr_playground"].persona is not None
    assert at.radio(key="pg_mode").value == "A held-out real user"  # was "Me"
    # and "Me" works from there: the persona goes, the next rating is the only one
    at.radio(key="pg_mode").set_value("Me").run()
    s = at.session_state["mr_playground"]
    assert s.persona is None and s.items == []
    at.selectbox(key="pg_item").select_index(0)
    at.button(key="pg_rate").click().run()
    assert len(s.items) == 1


def test_first_open_shows_its_stages_and_fits_baselines_only_for_a_persona(with_model):
    at = playground()
    boxes = at.status
    assert len(boxes) == 1 and boxes[0].state == "complete"
    assert boxes[0].label.startswith("Preparing the playground: done in")
    steps = " ".join(m.value for m in boxes[0].markdown)
    assert "Mapping training users (projection)" in steps and "Adapting the model" in steps
    entry = at.session_state["mr_models"]["sample model"]
    data = at.session_state["mr_data"].data
    split = (data, entry.train_users, entry.val_users)
    # nothing on the page needs the baselines yet: none was fitted
    assert pg.missing_baselines(*split) == list(pg.PLAYGROUND_BASELINES)
    assert at.session_state["mr_playground"].baselines == {}
    at.run()
    assert not at.status  # prepared once
    at.radio(key="pg_mode").set_value("A held-out real user").run()
    at.button(key="pg_use_heldout").click().run()
    assert not at.exception
    labels = [b.label for b in at.status]
    assert len(labels) == 1 and labels[0].startswith("Preparing the learning curve: done in")
    steps = " ".join(m.value for m in at.status[0].markdown)
    assert all(f"Fitting the baseline {n}" in steps for n in pg.PLAYGROUND_BASELINES)
    assert pg.missing_baselines(*split) == []
    assert tuple(at.session_state["mr_playground"].baselines) == pg.PLAYGROUND_BASELINES
    # another session on the same data and split finds them fitted: no stage to show
    other = new_app()
    other.switch_page("pages/playground.py").run()
    other.radio(key="pg_mode").set_value("A held-out real user").run()
    other.button(key="pg_use_heldout").click().run()
    assert not other.exception and not other.status
    assert tuple(other.session_state["mr_playground"].baselines) == pg.PLAYGROUND_BASELINES


def test_since_last_column_is_not_clipped(with_model):
    at = playground()
    table = at.dataframe[0]
    width = json.loads(table.proto.columns)["movement"]["width"]
    # the header "Since last" (+ its help icon) needs ~100 px; an auto width fits "new" / "↑ 2"
    assert (isinstance(width, int) and width >= 100) or width in ("medium", "large")
    # and it is not the last column, which a table wider than the page column cuts off
    order = list(table.proto.column_order)
    assert order.index("movement") < order.index("title") < order.index("genres")
    assert order[-1] == "genres"


def test_a_personas_ratings_are_not_listed_as_yours(with_model):
    at = playground()
    at.selectbox(key="pg_item").select_index(0)
    at.button(key="pg_rate").click().run()
    assert "Your ratings" in [h.value for h in at.subheader]
    at.radio(key="pg_mode").set_value("A held-out real user").run()
    at.button(key="pg_use_heldout").click().run()
    at.button(key="pg_next").click().run()
    at.button(key="pg_next").click().run()
    heads = [h.value for h in at.subheader]
    assert "Your ratings" not in heads and "The persona's ratings" in heads
    # a rating by hand beside the persona's: the table says who gave which
    at.selectbox(key="pg_item").select_index(0)
    at.button(key="pg_rate").click().run()
    heads = [h.value for h in at.subheader]
    assert "Your ratings" not in heads and "Ratings so far" in heads
    assert at.dataframe[1].value["by"].tolist() == ["persona", "persona", "you"]


def test_recommendations_say_why_and_how_sure(with_model):
    """The table's "Because you rated" names a rated item (as text) and the interval column and
    the band chart come from the model's distribution, calibrated on its validation users."""
    at = playground()
    assert set(at.dataframe[0].value["because"]) == {""}  # no rating yet: nothing moved them
    at.text_input(key="pg_search").set_value("Sci-Fi").run()
    for r in (5.0, 1.0):
        at.selectbox(key="pg_item").select_index(0)
        at.select_slider(key="pg_rating").set_value(r)
        at.button(key="pg_rate").click().run()
        assert not at.exception
    s = at.session_state["mr_playground"]
    table = at.dataframe[0].value
    rated = {s.title(i) for i in s.items}
    named = [b for b in table["because"] if b]
    assert named and all(any(b.startswith(t) for t in rated) for b in named)
    assert all("★" in b for b in named)
    why = [c.value for c in at.caption if c.value.startswith(plain("Why #1"))]
    top = f"Why #1, {table['title'][0]}: because you rated {table['because'][0]}"
    assert why == [plain(top)]  # the top item's reasons, markdown-escaped (user strings)
    assert s.view.band is not None and s.view.band.source == "calibrated distribution"
    for text, pred in zip(table["interval"], table["predicted"], strict=True):
        lo, hi = (float(x) for x in text.split("–"))
        assert lo <= pred + 0.05 and pred - 0.05 <= hi
    titles = [e.proto.spec for e in at.get("plotly_chart") if "How sure" in e.proto.spec]
    assert titles  # the band chart
