"""The validation-user cap (issue 16): early stopping and the model check score at most
``max_val_users`` validation users, a seeded sample of them; fewer users change nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import tiny_dataset

from metarec_core import jobs
from metarec_core.evaluation.check import CheckConfig, run_model_check
from metarec_core.methods.meta import LearnerConfig, MetaLearner, make_learner
from metarec_core.methods.registry import make_method
from metarec_core.protocol.splits import DEFAULT_MAX_VAL_USERS, capped_users

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAIN, VAL = np.arange(0, 48), np.arange(48, 80)  # tiny_dataset has 80 users, 25 ratings each
SMALL = dict(device="cpu", factors=3, embedding_dim=4, hidden=(8,), meta_batch=8, max_support=8)


@pytest.fixture(scope="module")
def data():
    return tiny_dataset()


def test_capped_users_samples_with_the_seed_and_keeps_fewer_users_as_they_are():
    users = np.arange(100, 400, 3)  # 100 users
    assert capped_users(users, 100, 0) is users and capped_users(users, None, 0) is users
    unsorted = users[::-1]
    assert capped_users(unsorted, 500, 0) is unsorted  # not even sorted: untouched
    a = capped_users(users, 10, seed=4)
    assert len(a) == 10 and len(np.unique(a)) == 10 and np.isin(a, users).all()
    assert np.array_equal(a, np.sort(a))
    assert np.array_equal(capped_users(users, 10, seed=4), a)  # seeded
    assert not np.array_equal(capped_users(users, 10, seed=5), a)
    assert np.array_equal(capped_users(unsorted, 10, seed=4), capped_users(unsorted, 10, 4))


def test_the_cap_is_a_checked_config_field_with_a_default():
    assert LearnerConfig().max_val_users == DEFAULT_MAX_VAL_USERS == CheckConfig().max_users
    assert LearnerConfig(max_val_users=None).max_val_users is None
    with pytest.raises(ValueError, match="max_val_users must be >= 1"):
        LearnerConfig(max_val_users=0)
    with pytest.raises(ValueError, match="max_users must be >= 1"):
        CheckConfig(max_users=0)


def _fit_recording(monkeypatch, data, **kw) -> tuple[MetaLearner, list[np.ndarray]]:
    """A small seeded fit (warm start, pretraining, meta-training) and the validation users
    of every validation set-up it made (its pretrainer's included)."""
    seen: list[np.ndarray] = []
    original = MetaLearner._val_batches

    def recording(self, d, val_users, should_stop=None):
        seen.append(np.array(val_users))
        return original(self, d, val_users, should_stop)

    monkeypatch.setattr(MetaLearner, "_val_batches", recording)
    cfg = {**SMALL, "steps": 8, "eval_every": 4, "patience": 50, **kw}
    learner = make_learner("metasgd", **cfg).fit(data, TRAIN, VAL)
    monkeypatch.setattr(MetaLearner, "_val_batches", original)
    return learner, seen


def test_fit_validates_on_a_seeded_sample_of_at_most_the_cap(monkeypatch, data):
    _, seen = _fit_recording(monkeypatch, data, max_val_users=5, seed=1)
    assert len(seen) == 2  # the pretrainer's and the meta-training's
    assert all(np.array_equal(s, seen[0]) for s in seen)
    assert len(seen[0]) == 5 and np.isin(seen[0], VAL).all()  # validation users only
    assert np.array_equal(seen[0], capped_users(VAL, 5, 1))
    _, again = _fit_recording(monkeypatch, data, max_val_users=5, seed=1)
    _, other = _fit_recording(monkeypatch, data, max_val_users=5, seed=2)
    assert np.array_equal(again[0], seen[0]) and not np.array_equal(other[0], seen[0])


def _weights(learner: MetaLearner) -> dict[str, torch.Tensor]:
    return {**learner.model_.state_dict(), **{f"inner.{k}": v for k, v in learner.inner_.state_dict().items()}}  # fmt: skip


def test_fewer_validation_users_than_the_cap_change_nothing(monkeypatch, data):
    capped, seen = _fit_recording(monkeypatch, data, seed=3)  # the default cap, 2,000
    assert np.array_equal(seen[0], VAL)
    exact, _ = _fit_recording(monkeypatch, data, seed=3, max_val_users=len(VAL))
    uncapped, _ = _fit_recording(monkeypatch, data, seed=3, max_val_users=None)
    fewer, _ = _fit_recording(monkeypatch, data, seed=3, max_val_users=len(VAL) - 1)
    for other in (exact, uncapped):
        assert other.best_val_mae_ == capped.best_val_mae_
        assert other.best_step_ == capped.best_step_
        for name, w in _weights(capped).items():
            assert torch.equal(w, _weights(other)[name]), name
    # and the comparison can fail: one validation user fewer is another early-stopping signal
    assert fewer.best_val_mae_ != capped.best_val_mae_


def test_the_model_check_scores_and_tunes_on_the_capped_users(data):
    model = make_method("global_mean").fit(data, TRAIN)  # any model that predicts ratings
    cfg = CheckConfig(seed=2, n_boot=100, baselines=("user_bias",), max_users=6)
    check = run_model_check(model, data, TRAIN, VAL, config=cfg)
    assert check is not None and check.users == 6 and {r.users for r in check.rows} == {6}
    # the same as checking those very users without a cap (baseline tuned on them too)
    few = capped_users(VAL, 6, 2)
    by_hand = CheckConfig(seed=2, n_boot=100, baselines=("user_bias",), max_users=None)
    assert run_model_check(model, data, TRAIN, few, config=by_hand) == check
    # fewer users than the cap: the same check as without one
    roomy = CheckConfig(seed=2, n_boot=100, baselines=("user_bias",), max_users=len(VAL))
    full = run_model_check(model, data, TRAIN, VAL, config=by_hand)
    assert full is not None and full.users == len(VAL)
    assert run_model_check(model, data, TRAIN, VAL, config=roomy) == full


def test_the_trainings_check_takes_the_learners_cap(monkeypatch, data):
    """The training job's and the learner's own model check validate on the users fit did."""
    seen = []

    def recording(model, d, train_users, val_users, *, config, **hooks):
        seen.append(config)
        return None

    monkeypatch.setattr("metarec_core.evaluation.check.run_model_check", recording)
    cfg = LearnerConfig(seed=5, max_val_users=7)
    jobs._model_check(make_method("global_mean").fit(data, TRAIN), data, TRAIN, VAL, cfg)
    learner = make_learner("metasgd", **SMALL, steps=2, eval_every=1, max_val_users=4, seed=6)
    monkeypatch.setattr("metarec_core.methods.meta.validation.run_model_check", recording)
    learner.fit(data, TRAIN, VAL).compare_with_baselines(data, TRAIN, VAL)
    assert [(c.seed, c.max_users) for c in seen] == [(5, 7), (6, 4)]
