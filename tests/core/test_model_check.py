"""The model check (`metarec_core.evaluation.check`): its numbers, its verdict, its sentence."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny_dataset, tiny_split

from metarec_core.evaluation import metrics
from metarec_core.evaluation.check import (
    CHECK_BASELINES,
    MODEL,
    CheckConfig,
    CheckDiff,
    CheckRow,
    ModelCheck,
    fit_check_baselines,
    run_model_check,
)
from metarec_core.methods.base import AdaptedUser, Recommender
from metarec_core.protocol.tasks import make_tasks


class Constant(Recommender):
    """Predicts `value` for every item and user: a deliberately bad model when far off."""

    name = "constant"

    def __init__(self, value: float) -> None:
        self.value = value

    def fit(self, data, train_users, val_users=None, **hooks):
        self.n_items_, self.fitted_ = data.n_items, True
        return self

    def adapt(self, items, ratings, **kw) -> AdaptedUser:
        scores = np.full(self.n_items_, self.value)
        return AdaptedUser(scores, np.asarray(items), np.asarray(ratings))


@pytest.fixture(scope="module")
def setup():
    data = tiny_dataset()
    train, val = tiny_split(data)
    return data, train, val, fit_check_baselines(data, train, val)


def test_the_numbers_are_per_user_query_maes_averaged_over_the_draws(setup):
    data, train, val, fitted = setup
    cfg = CheckConfig(repeats=2, seed=3, n_boot=200)
    model = Constant(3.0).fit(data, train)
    check = run_model_check(model, data, train, val, config=cfg, baselines=fitted)
    assert check is not None and check.ks == (1, 3, 5, 10) and check.baselines == CHECK_BASELINES
    # every validation user of the tiny data has 25 ratings: all are checked at every k
    assert check.users == len(val) == 8 and {r.users for r in check.rows} == {8}
    assert len(check.rows) == 5 * 4 and len(check.diffs) == 4 * 4
    # by hand: the same seeded draws as the learners' validation episodes (seed + 7919 x draw)
    draws = [make_tasks(data, val, query=10, seed=3 + 7919 * r)[0] for r in range(2)]
    const = np.mean([[np.abs(3.0 - t.query[1]).mean() for t in ts] for ts in draws], axis=0)
    assert check.mae(MODEL, 3) == pytest.approx(const.mean())  # a constant ignores the support
    ub = fitted["user_bias"]
    by_user = np.mean(
        [
            [np.abs(ub.adapt(*t.support(5)).predict(t.query[0]) - t.query[1]).mean() for t in ts]
            for ts in draws
        ],
        axis=0,
    )
    assert check.mae("user_bias", 5) == pytest.approx(by_user.mean())
    [d] = [d for d in check.diffs if d.baseline == "user_bias" and d.k == 5]
    diff, lo, hi = metrics.paired_bootstrap_ci(const, by_user, n_boot=200, seed=3)
    assert (d.diff, *d.ci95) == pytest.approx((diff, lo, hi)) and d.users == 8
    [row] = [r for r in check.rows if r.method == "user_bias" and r.k == 5]
    assert row.ci95 == pytest.approx(metrics.bootstrap_ci(by_user, n_boot=200, seed=3))
    # seeded: the same check twice is the same check
    assert run_model_check(model, data, train, val, config=cfg, baselines=fitted) == check


def test_a_model_far_off_is_reported_worse_with_the_baseline_to_use(setup):
    data, train, val, fitted = setup
    bad = Constant(1.0).fit(data, train)  # 1 star for everything on a 1-5 scale
    check = run_model_check(bad, data, train, val, baselines=fitted)
    assert check.worse and not check.better
    assert all(d.worse and d.diff > 0.5 for d in check.diffs)  # every baseline, every k
    assert check.winner == check.best  # better at every k: the lowest mean MAE wins the tie
    text = check.describe()
    assert text.startswith(f"On your 8 check users, {check.winner} is better than this model ")
    assert "at k = 1, 3, 5 and 10 (MAE " in text and "better at some k too." in text
    # the baselines it fits itself are the very ones `fit_check_baselines` gives (seeded)
    assert run_model_check(bad, data, train, val) == check


def test_a_baseline_checked_against_itself_is_not_worse(setup):
    data, train, val, fitted = setup
    same = fit_check_baselines(data, train, val, ["mf_foldin_levels"])["mf_foldin_levels"]
    check = run_model_check(same, data, train, val, baselines=fitted)
    itself = [d for d in check.diffs if d.baseline == "mf_foldin_levels"]
    assert all(d.diff == 0 and d.ci95 == (0, 0) for d in itself)
    if check.best == "mf_foldin_levels":
        assert not check.worse and not check.better
        assert "about as good as the best baseline, mf_foldin_levels" in check.describe()


def test_nothing_to_check_is_none(setup):
    data, train, val, fitted = setup
    model = Constant(3.0).fit(data, train)
    assert run_model_check(model, data, train, None, baselines=fitted) is None
    assert run_model_check(model, data, train, val[:0], baselines=fitted) is None
    # validation users with fewer than 1 + query ratings: no episode
    assert run_model_check(model, data, train, val, config=CheckConfig(query=30)) is None
    assert run_model_check(model, data, train, val, should_stop=lambda: True) is None
    pop = fit_check_baselines(data, train, val, ["popularity"])["popularity"]
    assert run_model_check(pop, data, train, val, baselines=fitted) is None  # a ranking only
    with pytest.raises(ValueError, match="support sizes"):
        CheckConfig(ks=())


def _check(model: dict[int, float], base: dict[str, dict[int, float]], cis) -> ModelCheck:
    """A check built by hand: MAE per k, and the (lo, hi) of model − baseline per (name, k)."""
    ks = tuple(model)
    rows = [CheckRow(MODEL, k, v, (v, v), 61) for k, v in model.items()]
    rows += [CheckRow(b, k, v, (v, v), 61) for b, m in base.items() for k, v in m.items()]
    diffs = [
        CheckDiff(b, k, model[k] - base[b][k], cis[(b, k)], 61) for b in base for k in ks
    ]  # fmt: skip
    return ModelCheck(tuple(rows), tuple(diffs), 61, ks, tuple(base))


def test_the_sentence_says_which_baseline_is_better_where():
    model = {1: 0.78, 3: 0.76, 5: 0.70}
    base = {
        "user_bias": {1: 0.80, 3: 0.79, 5: 0.75},
        "user_bias_levels": {1: 0.74, 3: 0.74, 5: 0.71},
    }
    noise = (-0.02, 0.02)
    cis = {(b, k): noise for b in base for k in model}
    tie = _check(model, base, cis)
    assert not tie.worse and not tie.better and tie.best == "user_bias_levels"
    assert tie.describe() == (
        "On your 61 check users, this model is about as good as the best baseline, "
        "user_bias_levels (MAE 0.75 vs 0.73 over k = 1, 3 and 5): no baseline is significantly "
        "better than it at any k."
    )
    worse = _check(
        model,
        base,
        {**cis, ("user_bias_levels", 1): (0.01, 0.07), ("user_bias_levels", 3): (0.005, 0.03)},
    )
    assert worse.worse and worse.winner == "user_bias_levels"
    assert worse.worse_than("user_bias_levels") == (1, 3) and worse.worse_than("user_bias") == ()
    assert worse.describe() == (
        "On your 61 check users, user_bias_levels is better than this model at k = 1 and 3 "
        "(MAE 0.74 vs 0.77)."
    )
    better = _check(model, base, {**cis, ("user_bias_levels", 5): (-0.03, -0.001)})
    assert better.better and not better.worse
    assert better.describe() == (
        "On your 61 check users, this model is better than the best baseline, user_bias_levels, "
        "at k = 5 (MAE 0.70 vs 0.71), and no baseline is better than it at any k."
    )
    text = worse.to_text().splitlines()
    assert text[0] == "model check on 61 validation users: MAE by support size k"
    assert text[1].split() == ["k", "model", "user_bias", "user_bias_levels"]
    assert text[2].split() == ["1", "0.7800", "0.8000", "0.7400"]
    assert "  user_bias_levels   k=1   +0.0400 [+0.0100, +0.0700] worse" in text
    assert text[-1] == worse.describe()


def test_too_few_check_users_give_no_verdict(setup):
    data, train, val, fitted = setup
    bad = Constant(1.0).fit(data, train)
    few = run_model_check(bad, data, train, val[:3], baselines=fitted)  # below min_users = 5
    assert few.users == 3 and all(d.worse for d in few.diffs)  # every interval above 0, but
    assert not few.decided and not few.worse and not few.better and few.winner is None
    assert few.describe().startswith(
        "On your 3 check users, too few for a verdict (it takes 5): this model's MAE against "
        f"the best baseline's, {few.best}, is "
    )
    assert " worse" not in few.to_text()
    cfg = CheckConfig(min_users=3)
    assert run_model_check(bad, data, train, val[:3], config=cfg, baselines=fitted).worse
