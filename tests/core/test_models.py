"""The rating model: MF special case, genre embedding, broadcasting, inner-loop parameters."""

from __future__ import annotations

import math

import pytest
import torch

from metarec_core.methods.meta.model import DecisionHead, InnerOptimizer, ItemEncoder, RatingModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(genres: torch.Tensor | None = None, **kw) -> RatingModel:
    kw = {"factors": 3, "embedding_dim": 4, "hidden": (6, 5), "seed": 0, **kw}
    return RatingModel(7, genres=genres, **kw).double()


def test_untrained_head_is_exactly_biased_mf():
    m = _model()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        m.item_enc.mu.fill_(3.5)
        m.item_enc.bias.copy_(torch.randn(7, generator=g, dtype=torch.float64))
    state = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=torch.float64)
    items = torch.tensor([0, 3, 6])
    enc = m.item_enc
    want = 3.5 + enc.bias[items] + 0.1 + enc.factor[items] @ state[:3]
    torch.testing.assert_close(m(items, state), want)


def test_trained_head_adds_a_nonlinear_term():
    m = _model()
    with torch.no_grad():
        for layer in m.head.layers:
            layer.weight.abs_()
            layer.bias.fill_(0.1)  # keep the ReLUs active
        m.head.out.weight.fill_(0.5)
    items = torch.tensor([0, 1, 2])
    state = torch.zeros(4, dtype=torch.float64)
    enc = m.item_enc
    mf = enc.mu + enc.bias[items] + enc.factor[items] @ state[:3]
    assert not torch.allclose(m(items, state), mf)


def test_genre_embedding_is_the_mean_over_the_items_genres():
    genres = torch.tensor([[1, 1, 0], [0, 0, 0], [0, 0, 1]] + [[1, 0, 0]] * 4, dtype=torch.bool)
    enc = ItemEncoder(7, 2, 4, 5, genres).double()
    with torch.no_grad():
        enc.embedding.zero_()
        enc.proj.bias.zero_()
        # h = genre part only: identity on the 4 genre-embedding inputs (5th output stays 0)
        enc.proj.weight.copy_(torch.cat([torch.zeros(5, 4), torch.eye(5, 4)], 1))
        enc.genre_embedding.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 5.0, 0]]))
    h = enc(torch.tensor([0, 1, 2]))[:, 3:]  # after [mu+b, q (2)]
    torch.testing.assert_close(h[0, :3], torch.tensor([0.5, 1.5, 0.0], dtype=torch.float64))
    torch.testing.assert_close(h[1], torch.zeros(5, dtype=torch.float64))  # no genres: zero
    torch.testing.assert_close(h[2, :3], torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64))


def test_head_broadcasts_a_batch_of_states_over_shared_features():
    m = _model()
    with torch.no_grad():
        m.head.out.weight.normal_(generator=torch.Generator().manual_seed(0))
    feats = m.item_enc(torch.arange(7))
    states = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    batched = m.head(states, feats)
    assert batched.shape == (3, 7)
    for b in range(3):
        torch.testing.assert_close(batched[b], m.head(states[b], feats))


def test_same_seed_same_initial_weights_and_different_seed_differs():
    a, b, c = _model(seed=5), _model(seed=5), _model(seed=6)
    for (n, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), n
    assert any(
        not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True)
    )


def test_pure_mf_without_decision_layers():
    m = _model(hidden=())
    assert not hasattr(m.head, "out")
    state = torch.tensor([1.0, 0.0, 0.0, 0.25], dtype=torch.float64)
    items = torch.tensor([2])
    enc = m.item_enc
    torch.testing.assert_close(
        m(items, state), enc.mu + enc.bias[items] + 0.25 + enc.factor[items, 0]
    )


def test_implicit_start_state_is_prior_plus_mean_of_rated_item_vectors():
    m = _model(implicit=True)
    with torch.no_grad():
        m.implicit.copy_(torch.arange(28, dtype=torch.float64).reshape(7, 4))
        m.implicit_log_c.fill_(math.log(2.0))
    items = torch.tensor([1, 3, 0])
    mask = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)  # last entry is padding
    want = m.user_init + (m.implicit[1] + m.implicit[3]) / (2 + 2.0)
    torch.testing.assert_close(m.start_state(items, mask), want)
    empty = torch.zeros(3, dtype=torch.float64)
    torch.testing.assert_close(m.start_state(items, empty), m.user_init)


def test_inner_optimizer_per_step_rates_and_shapes():
    shapes = {"user_init": torch.Size([4]), "head.out.weight": torch.Size([1, 5])}
    init = {k: torch.tensor(0.1) for k in shapes}
    opt = InnerOptimizer(
        shapes, 3, lr_init=init, log_prec_init=init, log_c_init=init, per_step=True
    )
    assert opt.lr["user_init"].shape == (3, 4)
    assert opt.lr["head__out__weight"].shape == (3, 1, 5)
    with torch.no_grad():
        opt.lr["user_init"][2].fill_(7.0)
    assert torch.equal(opt.step_lr("user_init", 2), torch.full((4,), 7.0))
    assert torch.equal(opt.step_lr("user_init", 0), torch.full((4,), 0.1))
    shared = InnerOptimizer(
        shapes, 3, lr_init=init, log_prec_init=init, log_c_init=init, per_step=False
    )
    assert shared.lr["user_init"].shape == (4,)
    assert shared.step_lr("user_init", 2) is shared.lr["user_init"]


def test_decision_head_dropout_masks_are_applied():
    head = DecisionHead(2, (3,), dropout=0.5).double()
    with torch.no_grad():
        head.out.weight.fill_(1.0)
    state = torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64)
    feats = torch.ones(2, 1 + 2 + 3, dtype=torch.float64)
    keep = head(state, feats, [torch.ones(2, 3, dtype=torch.float64)])
    drop = head(state, feats, [torch.zeros(2, 3, dtype=torch.float64)])
    torch.testing.assert_close(keep, head(state, feats))
    assert not torch.allclose(keep, drop)


@pytest.mark.parametrize("hidden", [(), (4,), (4, 3)])
def test_feature_dim_matches_forward(hidden):
    m = _model(hidden=hidden)
    assert m.item_enc(torch.tensor([0, 1])).shape == (2, m.item_enc.feature_dim)


def test_ordinal_output_is_a_distribution_whose_median_is_the_prediction():
    from metarec_core.methods.meta.model import OrdinalOutput

    out = OrdinalOutput(1.0, 1.0, 5).double().requires_grad_(False)
    z = torch.linspace(0.0, 6.0, 61, dtype=torch.float64)
    # probabilities of the 5 levels are positive and sum to one for every z
    nll = torch.stack([out.nll(z, torch.full_like(z, float(r))) for r in range(1, 6)], -1)
    probs = (-nll).exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones_like(z))
    assert bool((probs > 0).all())
    # the point prediction is (up to the 1e-3 tie-break) the median level of that distribution
    cdf = probs.cumsum(-1)
    median = 1.0 + (cdf < 0.5).sum(-1).to(torch.float64)
    point = out.point(z)
    assert float((point - median).abs().max()) <= 4e-3
    # ... which minimises the expected absolute error over the 5 levels
    levels = torch.arange(1.0, 6.0, dtype=torch.float64)
    exp_abs = (probs.unsqueeze(-1) * (levels.view(1, 5, 1) - levels.view(1, 1, 5)).abs()).sum(1)
    best = exp_abs.min(-1).values
    at_point = (probs * (point.unsqueeze(-1) - levels).abs()).sum(-1)
    assert float((at_point - best).max()) < 4e-3
    # larger z, higher prediction; out-of-scale ratings snap to the nearest level
    assert bool((point[1:] >= point[:-1]).all())
    torch.testing.assert_close(out.nll(z, torch.full_like(z, 9.0)), nll[:, 4])


def test_rating_model_forward_gives_points_and_raw_gives_the_ordinal_location():
    m = _model(ordinal=(1.0, 1.0, 5))
    items = torch.arange(7)
    state = torch.tensor([0.3, -0.2, 0.5, 2.0], dtype=torch.float64)
    z = m(items, state, raw=True)
    torch.testing.assert_close(m(items, state), m.ordinal.point(z))
    assert not torch.allclose(m(items, state), z)
    assert _model()(items, state).shape == z.shape  # no ordinal output: forward is z itself
    torch.testing.assert_close(_model()(items, state), _model()(items, state, raw=True))
