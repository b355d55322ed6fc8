"""Elicitation strategies, their offline evaluation and `evaluate --elicit` (tiny data)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from helpers import tiny_dataset

from metarec_core.cli import main
from metarec_core.elicitation import (
    Answers,
    ElicitContext,
    Interview,
    ItemStats,
    available_strategies,
    make_strategy,
    state_view,
)
from metarec_core.evaluation import elicitation as ev
from metarec_core.evaluation.elicitation import ElicitConfig, interview, run_elicitation
from metarec_core.methods.baselines import MFFoldIn
from metarec_core.methods.meta import make_learner
from metarec_core.methods.registry import make_method
from metarec_core.protocol.splits import user_folds
from metarec_core.protocol.tasks import make_tasks

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STRATEGIES = available_strategies()


@pytest.fixture(scope="module")
def data():
    return tiny_dataset(n_users=60, n_items=40, per_user=30)


@pytest.fixture(scope="module")
def mf(data):
    fold = user_folds(data, 3, 0, 0.1)[0]
    # fixed penalties: no tuning grid (fast)
    method = MFFoldIn(seed=0, factors=5, reg=8.0, fold_reg=(8.0, 4.0), iters=4)
    return method.fit(data, fold.train_users, fold.val_users), fold


@pytest.fixture(scope="module")
def ctx(data, mf):
    method, fold = mf
    return ElicitContext.build(data, method, fold.train_users, seed=0)


def test_registry_has_the_issue_strategies():
    assert set(STRATEGIES) >= {
        "random",
        "popularity",
        "entropy",
        "logpop_entropy",
        "variance",
        "melu_evidence",
        "shrinkage",
    }
    with pytest.raises(ValueError, match="unknown elicitation strategy 'nope'"):
        make_strategy("nope", None)


@pytest.mark.parametrize("name", STRATEGIES)
def test_proposals_are_allowed_never_repeated_and_seeded(name, ctx):
    query = np.array([0, 1, 2, 3, 4])
    allowed = np.ones(ctx.n_items, bool)
    allowed[query] = False

    def run(seed_ctx):
        strat = make_strategy(name, seed_ctx)
        answers, asked = Answers(key=7), []
        for _ in range(12):
            p = strat.propose(answers, allowed)
            assert p is not None and p.reason and p.strategy == name
            assert allowed[p.item] and p.item not in answers.items
            asked.append(p.item)
            answers = answers.add(p.item, 4.0 if p.item % 2 else None)
        return asked

    first = run(ctx)
    assert len(set(first)) == 12 and not set(first) & set(query)
    assert run(ctx) == first  # deterministic for a seed


def test_random_depends_on_the_seed(data, mf):
    method, fold = mf
    a = ElicitContext.build(data, method, fold.train_users, seed=0)
    b = ElicitContext.build(data, method, fold.train_users, seed=1)
    pa = [make_strategy("random", a).propose(Answers(key=k)).item for k in range(8)]
    pb = [make_strategy("random", b).propose(Answers(key=k)).item for k in range(8)]
    assert pa != pb


def test_no_item_left_gives_none(ctx):
    strat = make_strategy("popularity", ctx)
    only = np.zeros(ctx.n_items, bool)
    only[5] = True
    first = strat.propose(Answers(), only)
    assert first.item == 5
    assert strat.propose(Answers().add(5, 3.0), only) is None


def test_reason_numbers_match_the_training_ratings(data, ctx):
    train = np.isin(data.user, ctx_users(data))
    pop = make_strategy("popularity", ctx).propose(Answers())
    counts = np.bincount(data.item[train], minlength=data.n_items)
    assert pop.item == int(np.argmax(counts))
    n_users = len(np.unique(data.user[train]))
    c = counts[pop.item]
    assert f"rated by {c} of {n_users} people ({round(100 * c / n_users)}%)" in pop.reason

    lp = make_strategy("logpop_entropy", ctx).propose(Answers())
    r = data.rating[train & (data.item == lp.item)]
    high, low = round(100 * np.mean(r >= 4)), round(100 * np.mean(r <= 2))
    assert f"{high}% of them rated it 4 or 5, {low}% rated it 1 or 2" in lp.reason
    p = np.bincount(r.astype(int), minlength=6)[1:] / len(r)
    entropy = -(p[p > 0] * np.log2(p[p > 0])).sum()
    assert lp.score == pytest.approx(np.log1p(len(r)) * entropy)

    en = make_strategy("entropy", ctx).propose(Answers())
    assert re.search(r"entropy (\d\.\d\d) of at most 2\.32 bits", en.reason).group(1) == (
        f"{en.score:.2f}"
    )
    va = make_strategy("variance", ctx).propose(Answers())
    rv = data.rating[train & (data.item == va.item)]
    assert f"standard deviation is {np.std(rv):.2f} over {len(rv)} ratings" in va.reason


def ctx_users(data):
    return user_folds(data, 3, 0, 0.1)[0].train_users


def test_item_stats_on_a_half_star_scale():
    from metarec_core.data.io import from_arrays

    d = from_arrays(["a", "b", "c", "d"], ["x"] * 4, [0.5, 1.5, 4.0, 5.0], source="half")
    st = ItemStats.from_ratings(d)
    assert st.count[0] == 4 and st.share(0, "high") == 0.5 and st.share(0, "low") == 0.5
    assert "50% of them rated it 4–5" in st.spread(0)


def test_shrinkage_adapts_to_answers_and_reports_its_cut(ctx):
    strat = make_strategy("shrinkage", ctx)
    first = strat.propose(Answers())
    assert "cut the uncertainty of your predicted ratings by" in first.reason
    cut = float(re.search(r"by (\d+\.\d)%", first.reason).group(1))
    assert 0 < cut <= 100
    # after the answer the same item cannot come again and the uncertainty left is smaller
    second = strat.propose(Answers().add(first.item, 5.0))
    assert second.item != first.item
    assert second.score <= first.score + 1e-12


def test_shrinkage_and_evidence_fall_back_without_a_state(data, mf):
    _, fold = mf
    method = make_method("item_mean", seed=0).fit(data, fold.train_users, fold.val_users)
    ctx = ElicitContext.build(data, method, fold.train_users)
    assert state_view(method) is None and ctx.view is None
    pop = make_strategy("popularity", ctx).propose(Answers())
    sh = make_strategy("shrinkage", ctx).propose(Answers())
    assert sh.item == pop.item and "most known item" in sh.reason
    ev_ = make_strategy("melu_evidence", ctx).propose(Answers())
    assert "a user offset" in ev_.reason


def test_meta_learner_state_view_matches_its_adapt(data, mf):
    _, fold = mf
    learner = make_learner(
        "metasgd",
        seed=0,
        device="cpu",
        factors=3,
        embedding_dim=4,
        hidden=(8, 8),
        steps=10,
        eval_every=5,
        meta_batch=8,
        pretrain=False,
        calibrate_prior=False,
        warm_start=False,
    )
    learner.fit(data, fold.train_users, fold.val_users)
    view = state_view(learner)
    assert view is not None
    items, ratings = np.array([3, 8, 11]), np.array([5.0, 1.0, 4.0])
    s = view.state(items, ratings)
    pred, J = view.linearise(s, np.arange(data.n_items))
    adapted = learner.adapt(items, ratings)
    np.testing.assert_allclose(pred, adapted.expected, atol=1e-4)
    assert J.shape == (data.n_items, len(s)) and np.isfinite(J).all()
    strat = make_strategy("shrinkage", ElicitContext.build(data, learner, fold.train_users))
    assert strat.propose(Answers().add(3, 5.0)).item != 3


def test_interview_counts_unknowns_as_questions_or_skips_them(data, ctx):
    fold = user_folds(data, 3, 0, 0.1)[0]
    tasks, _ = make_tasks(data, fold.test_users, query=10, min_support=5, seed=0)
    user = ev._User.of(tasks[0])
    strat = make_strategy("popularity", ctx)
    cost, _ = interview(strat, user, 15, "cost", data.n_items)
    assert cost.n_asked == 15
    assert cost.n_answered == sum(i in user.pool for i in cost.items)
    for i, r in zip(cost.items, cost.ratings, strict=True):
        assert (r is None) == (i not in user.pool)
        assert r is None or r == user.pool[i]
    skip, _ = interview(strat, user, 15, "skip", data.n_items)
    assert skip.n_asked == skip.n_answered == min(15, len(user.pool))
    assert set(skip.items) <= set(user.pool)
    # no query item is ever asked, in either mode
    assert not set(cost.items + skip.items) & set(user.q_items.tolist())


def test_offline_loop_never_puts_a_query_rating_in_a_support(data, monkeypatch):
    seen = []
    real = ev._score

    def spy(method, supports, users, d):
        for (items, _), u in zip(supports, users, strict=True):
            seen.append(bool(set(items.tolist()) & set(u.q_items.tolist())))
            assert set(items.tolist()) <= set(u.pool)
        return real(method, supports, users, d)

    monkeypatch.setattr(ev, "_score", spy)
    cfg = ElicitConfig(
        strategies=STRATEGIES,
        methods=("user_bias",),
        questions=4,
        unknown=("cost", "skip"),
        folds=3,
        max_folds=1,
        n_boot=100,
    )
    report = run_elicitation(data, cfg)
    assert seen and not any(seen)
    # 5 points per (unknown, strategy): t = 0..4
    assert len(report.points) == 2 * len(STRATEGIES) * 5
    skip = [p for p in report.points if p.unknown == "skip" and p.questions > 0]
    assert all(p.answered == 1.0 for p in skip)
    cost = [p for p in report.points if p.unknown == "cost" and p.questions == 4]
    assert all(0 <= p.answered <= 1 for p in cost)
    assert all(p.ratings == pytest.approx(4 * p.answered) for p in cost)
    # at t = 0 every strategy is the model's prior: the same MAE
    assert len({p.mae for p in report.points if p.questions == 0}) == 1


def test_paired_cis_shape_and_json(data):
    cfg = ElicitConfig(
        strategies=("random", "popularity", "shrinkage"),
        methods=("mf_foldin",),
        questions=3,
        folds=3,
        max_folds=1,
        n_boot=100,
    )
    report = run_elicitation(data, cfg)
    # vs random: popularity, shrinkage; vs popularity: random, shrinkage; 3 metrics, t = 1..3
    assert len(report.diffs) == 4 * 3 * 3
    for d in report.diffs:
        assert d.vs in ("random", "popularity") and d.strategy != d.vs
        lo, hi = d.ci95
        assert lo is None or lo <= d.diff <= hi
    d = report.diff("mf_foldin", "cost", "shrinkage", "random", 3)
    a = report.point("mf_foldin", "cost", "shrinkage", 3).mae
    b = report.point("mf_foldin", "cost", "random", 3).mae
    assert d.diff == pytest.approx(a - b)
    blob = json.loads(report.to_json())
    assert blob["protocol"]["default_unknown"] == "cost"
    assert len(blob["points"]) == 3 * 4 and len(blob["paired"]) == len(report.diffs)
    assert "MAE − random" in report.to_text() and "shrinkage" in report.to_text()


def test_config_errors_are_specific():
    with pytest.raises(ValueError, match="unknown elicitation strategy 'pop'"):
        ElicitConfig(strategies=("pop",))
    with pytest.raises(ValueError, match="unknown must be among"):
        ElicitConfig(unknown=("maybe",))
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        ElicitConfig(methods=("nope",))


def test_interview_session_proposes_rates_and_skips(ctx):
    iv = Interview.start("logpop_entropy", ctx)
    first = iv.current
    assert first is not None and "popular and divisive" in first.reason
    second = iv.answer(4.0)
    assert second.item != first.item
    third = iv.answer(None)  # haven't seen it
    assert third.item not in (first.item, second.item)
    assert iv.answers.n_asked == 2 and iv.answers.n_answered == 1
    iv.skip_items([third.item])
    assert iv.current.item != third.item
    assert len(iv.proposal_seconds) == 4


def test_cli_evaluate_elicit(tmp_path, capsys):
    rows = ["user,item,rating"]
    d = tiny_dataset(n_users=45, n_items=30, per_user=22)
    rows += [
        f"{d.user_ids[u]},{d.item_ids[i]},{int(r)}"
        for u, i, r in zip(d.user, d.item, d.rating, strict=True)
    ]
    path = tmp_path / "r.csv"
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "e.json"
    code = main(
        [
            "evaluate",
            str(path),
            "--elicit",
            "random,popularity,logpop_entropy",
            "--methods",
            "user_bias",
            "--questions",
            "3",
            "--unknown",
            "both",
            "--folds",
            "3",
            "--max-folds",
            "1",
            "--out",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "user_bias, unknown=cost" in text and "user_bias, unknown=skip" in text
    assert "logpop_entropy" in text and "MAE@3" in text
    assert json.loads(out.read_text())["protocol"]["questions"] == 3
    assert main(["evaluate", str(path), "--elicit", "nope"]) == 2
    assert "unknown elicitation strategy 'nope'" in capsys.readouterr().err
