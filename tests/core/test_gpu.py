"""The CUDA path (issue 16): run only where CUDA is available (`pytest -m gpu`), skipped
elsewhere. bench/gpu_check.sh runs them first on a GPU machine."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from metarec_core.methods.meta import MetaLearner, make_learner, resolve_device
from tests.helpers import tiny_dataset, tiny_split

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="no CUDA device here (torch.cuda.is_available())"
    ),
]

SMALL = dict(
    factors=3, embedding_dim=4, hidden=(8, 8), meta_batch=8, max_support=8, steps=4,
    eval_every=2, val_repeats=1, val_support=(1, 3), seed=0,
)  # fmt: skip


def _fit(device: str, **kw) -> MetaLearner:
    data = tiny_dataset()
    train, val = tiny_split(data)
    return make_learner("metasgd", device=device, **{**SMALL, **kw}).fit(data, train, val)


def test_auto_picks_cuda():
    assert resolve_device("auto").type == "cuda"
    assert make_learner("metasgd", **SMALL).setup(*_data()).device_.type == "cuda"


def _data():
    data = tiny_dataset()
    return data, tiny_split(data).train_users


def test_float64_training_on_cuda_equals_cpu():
    cpu, gpu = _fit("cpu", dtype="float64"), _fit("cuda", dtype="float64")
    assert gpu.device_.type == "cuda"
    for name, want in cpu.model_.state_dict().items():
        got = gpu.model_.state_dict()[name]
        assert got.device.type == "cuda"
        torch.testing.assert_close(got.cpu(), want, atol=1e-6, rtol=0, msg=name)
    assert gpu.best_step_ == cpu.best_step_
    assert gpu.best_val_mae_ == pytest.approx(cpu.best_val_mae_, abs=1e-6)


def test_float32_training_on_cuda_predicts_as_cpu():
    cpu, gpu = _fit("cpu"), _fit("cuda")
    items, ratings = np.array([0, 5, 9, 12]), np.array([5.0, 1.0, 4.0, 3.0])
    a, b = cpu.adapt(items, ratings), gpu.adapt(items, ratings)
    np.testing.assert_allclose(b.scores, a.scores, atol=0.05)


def test_adapt_and_recommend_on_cuda_match_cpu():
    trained = _fit("cpu")
    on_gpu = MetaLearner.from_state(trained.to_state(), device="cuda")
    assert on_gpu.device_.type == "cuda"
    items, ratings = np.array([1, 2, 30]), np.array([4.0, 2.0, 5.0])
    a, b = trained.adapt(items, ratings), on_gpu.adapt(items, ratings)
    np.testing.assert_allclose(b.scores, a.scores, atol=1e-4)
    top, _ = b.recommend(10)
    assert len(top) == 10 and not set(top) & set(items.tolist())
    # and back: a model trained on the GPU loads on a CPU-only machine
    back = MetaLearner.from_state(_fit("cuda").to_state(), device="cpu")
    assert back.adapt(items, ratings).scores.shape == (trained.n_items_,)


def test_a_meta_step_does_not_wait_for_the_gpu():
    """Objective, meta-gradient, clipping and the Adam step queue on the GPU without a host
    synchronisation (the loss's float for progress is the loop's only one per step)."""
    data, train = _data()
    learner = make_learner("metasgd", device="cuda", **SMALL).setup(data, train)
    eps = learner._episodes(data, train)
    support, query = learner._sample(eps, np.random.default_rng(0))
    s, q = learner._pad(support), learner._pad(query)
    opt, learn = learner._optimizer(), learner._learnable()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loss, _ = learner._objective(s, q, None)
            grads = torch.autograd.grad(loss, list(learn.values()), allow_unused=True)
            for p, g in zip(learn.values(), grads, strict=True):
                p.grad = torch.zeros_like(p) if g is None else g
            torch.nn.utils.clip_grad_norm_(list(learn.values()), 10.0)
            opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message).lower()]
    assert not syncs, syncs
