"""Shrink & Perturb (Ash & Adams, 2020): θ ← λ_s·θ + p·θ_fresh, buffers from the fresh model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError


def _net():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def _bn_net():
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def _trained(make, seed=0):
    """A model moved away from its init, with BatchNorm statistics accumulated."""
    torch.manual_seed(seed)
    net = make()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.5 * torch.randn_like(p))
    net.train()
    net(torch.randn(16, 3) * 3 + 1)
    return net


def test_sheet_vector():
    """The formula sheet's test vector: a new model built after torch.manual_seed(1) is the noise."""
    torch.manual_seed(0)
    net = _net().double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    torch.manual_seed(1)
    RF.shrink_perturb_(net)
    torch.testing.assert_close(
        net[0].weight[0].detach(), torch.tensor([-0.005039, 0.066606, -0.239380], dtype=torch.float64),
        rtol=0, atol=1e-6)


def test_official_code_independent_reference():
    """Ash & Adams' run.py: build a new model, p_new = shrink·p_old + perturb·p_new, for every parameter."""
    net = _trained(_net)
    old = [p.detach().clone() for p in net.parameters()]
    torch.manual_seed(5)
    RF.shrink_perturb_(net, shrink=0.3, perturb=0.2)
    torch.manual_seed(5)
    new_init = _net()
    for p, p_old, p_new in zip(net.parameters(), old, new_init.parameters()):
        torch.testing.assert_close(p.detach(), 0.3 * p_old + 0.2 * p_new.detach())


def test_identity_with_shrink_one_perturb_zero():
    net = _trained(_bn_net)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    reglab.ShrinkPerturb(shrink=1.0, perturb=0.0)(net, generator=torch.Generator().manual_seed(0))
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.detach(), before[name], rtol=0, atol=0)


def test_shrink_zero_perturb_one_is_a_fresh_init_with_the_same_generator():
    net = _trained(_net)
    global_state = torch.random.get_rng_state()
    RF.shrink_perturb_(net, shrink=0.0, perturb=1.0, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.random.get_rng_state(), global_state)  # the global RNG is untouched
    fresh = RF.fresh_init(_trained(_net, seed=3), generator=torch.Generator().manual_seed(7))
    for p, q in zip(net.parameters(), fresh.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=0)
    other = RF.fresh_init(_trained(_net, seed=3), generator=torch.Generator().manual_seed(8))
    assert not torch.equal(other[0].weight, fresh[0].weight)
    # and it is an init: nn.Linear's kaiming-uniform bound 1/sqrt(fan_in)
    assert float(fresh[0].weight.abs().max()) <= 1 / 3**0.5


def test_batchnorm_statistics_are_reset():
    net = _trained(_bn_net)
    bn = net[1]
    assert not torch.allclose(bn.running_mean, torch.zeros(4)) and int(bn.num_batches_tracked) == 1
    affine_before = bn.weight.detach().clone()
    RF.shrink_perturb_(net, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(bn.running_mean, torch.zeros(4))
    torch.testing.assert_close(bn.running_var, torch.ones(4))
    assert int(bn.num_batches_tracked) == 0
    torch.testing.assert_close(bn.weight.detach(), 0.4 * affine_before + 0.1 * torch.ones(4))  # BN affine too


class _Scaled(nn.Module):
    """A module with a parameter no reset_parameters re-initializes (like a ViT cls_token)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.gamma = nn.Parameter(torch.full((2,), 2.0))

    def forward(self, x):
        return self.gamma * self.lin(x)


def test_parameters_without_reset_parameters():
    net = _Scaled()
    with pytest.raises(RegularizerInputError, match=r"shrink_perturb.*gamma.*fresh="):
        RF.shrink_perturb_(net)
    weight = net.lin.weight.detach().clone()
    reglab.ShrinkPerturb(uncovered="keep")(net, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(net.gamma.detach(), torch.full((2,), 2.0))  # kept as is
    assert not torch.equal(net.lin.weight.detach(), weight)
    # or the caller builds the fresh model, as the official code does
    torch.manual_seed(4)
    fresh = _Scaled()
    with torch.no_grad():
        fresh.gamma.fill_(1.0)
    before = [p.detach().clone() for p in net.parameters()]
    RF.shrink_perturb_(net, fresh=lambda: fresh)
    for p, b, q in zip(net.parameters(), before, fresh.parameters()):
        torch.testing.assert_close(p.detach(), 0.4 * b + 0.1 * q.detach())


def test_dtypes_and_original_untouched_by_fresh_init():
    net = _trained(_net).double()
    snapshot = [p.detach().clone() for p in net.parameters()]
    fresh = RF.fresh_init(net, generator=torch.Generator().manual_seed(0))
    assert all(p.dtype == torch.float64 for p in fresh.parameters())
    for p, s in zip(net.parameters(), snapshot):
        assert torch.equal(p.detach(), s)


def test_bad_inputs():
    with pytest.raises(RegularizerInputError, match="shrink_perturb"):
        RF.shrink_perturb_(torch.ones(3))
    with pytest.raises(RegularizerInputError, match="ShrinkPerturb.*shrink"):
        reglab.ShrinkPerturb(shrink=-0.1)
    with pytest.raises(RegularizerInputError, match="ShrinkPerturb.*uncovered"):
        reglab.ShrinkPerturb(uncovered="zero")
    with pytest.raises(RegularizerInputError, match="shrink_perturb.*names"):
        RF.shrink_perturb_(_net(), fresh=_bn_net())


def test_registry_and_config():
    sp = reglab.create("shrink_perturb", shrink=0.5)
    assert sp.kind == "procedure" and sp.form == "operation"
    cfg = sp.get_config()
    assert cfg == {"name": "shrink_perturb", "shrink": 0.5, "perturb": 0.1, "uncovered": "error"}
    again = reglab.from_config(cfg)
    assert isinstance(again, reglab.ShrinkPerturb) and again.get_config() == cfg
    a, b = _trained(_net), _trained(_net)
    sp.apply(a, generator=torch.Generator().manual_seed(1))
    again(b, generator=torch.Generator().manual_seed(1))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


class _OwnInit(nn.Module):
    """A constructor with its own initialization, as many models have (a custom std)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(20, 30)
        self.out = nn.Linear(30, 2)
        self.init_weights()

    def init_weights(self):
        nn.init.normal_(self.fc.weight, std=5.1)
        nn.init.zeros_(self.fc.bias)


def test_init_fn_reproduces_the_constructors_own_initialization():
    """The official shrink_perturb builds the noise with the model's constructor: reset_parameters alone
    loses a constructor's own init (std ~0.13 instead of 5.1); init_fn= (or fresh=) restores it."""
    torch.manual_seed(0)
    net = _OwnInit()
    old = [p.detach().clone() for p in net.parameters()]
    torch.manual_seed(5)
    RF.shrink_perturb_(net, shrink=0.3, perturb=0.2, init_fn=lambda m: m.init_weights())
    torch.manual_seed(5)
    new_init = _OwnInit()  # run.py: new_init = Model(); p_new = shrink·p_old + perturb·p_new
    for p, p_old, p_new in zip(net.parameters(), old, new_init.parameters()):
        torch.testing.assert_close(p.detach(), 0.3 * p_old + 0.2 * p_new.detach())
    # the noise's scale is the constructor's, not the layer default's
    noise = RF.fresh_init(_OwnInit(), generator=torch.Generator().manual_seed(1), init_fn=lambda m: m.init_weights())
    assert 4.0 < float(noise.fc.weight.std()) < 6.0 and float(noise.fc.bias.abs().max()) == 0.0
    default = RF.fresh_init(_OwnInit(), generator=torch.Generator().manual_seed(1))
    assert float(default.fc.weight.std()) < 0.3  # reset_parameters: kaiming-uniform, bound 1/sqrt(20)
    # the builder form gives the same as the official code too
    torch.manual_seed(0)
    a = _OwnInit()
    before = [p.detach().clone() for p in a.parameters()]
    torch.manual_seed(9)
    built = _OwnInit()
    reglab.ShrinkPerturb()(a, fresh=built)
    for p, b, q in zip(a.parameters(), before, built.parameters()):
        torch.testing.assert_close(p.detach(), 0.4 * b + 0.1 * q.detach())
    with pytest.raises(RegularizerInputError, match="shrink_perturb.*fresh=.*init_fn="):
        RF.shrink_perturb_(a, fresh=_OwnInit, init_fn=lambda m: None)
    with pytest.raises(RegularizerInputError, match="shrink_perturb.*init_fn"):
        RF.shrink_perturb_(a, init_fn="init_weights")


def test_init_fn_covers_parameters_without_reset_parameters():
    net = _Scaled()
    reglab.ShrinkPerturb()(net, generator=torch.Generator().manual_seed(0),
                           init_fn=lambda m: nn.init.ones_(m.gamma))
    torch.testing.assert_close(net.gamma.detach(), torch.full((2,), 0.4 * 2.0 + 0.1))


def test_frozen_parameters_and_frozen_batchnorm_are_left_alone():
    net = _trained(_bn_net)
    net[0].weight.requires_grad_(False)
    bn = net[1]
    for p in bn.parameters():
        p.requires_grad_(False)  # a frozen BatchNorm: its statistics are part of what is frozen
    frozen = {"0.weight": net[0].weight.detach().clone(), "1.weight": bn.weight.detach().clone(),
              "1.bias": bn.bias.detach().clone()}
    stats = (bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked))
    bias_before = net[0].bias.detach().clone()
    RF.shrink_perturb_(net, generator=torch.Generator().manual_seed(0))
    for name, p in net.named_parameters():
        if name in frozen:
            assert torch.equal(p.detach(), frozen[name]), name
    assert not torch.equal(net[0].bias.detach(), bias_before)  # the trainable ones still move
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    assert int(bn.num_batches_tracked) == stats[2]


def test_non_finite_weights_are_refused_and_nothing_is_written():
    net = _trained(_net)
    with torch.no_grad():
        net[2].weight[0, 0] = float("nan")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(RegularizerInputError, match=r"shrink_perturb.*2\.weight.*NaN or inf"):
        RF.shrink_perturb_(net, generator=torch.Generator().manual_seed(0))
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]) or (torch.isnan(v) == torch.isnan(before[k])).all(), k
    assert torch.equal(net[0].weight, before["0.weight"])
    bad_fresh = _net()
    with torch.no_grad():
        bad_fresh[0].bias.fill_(float("inf"))
    with pytest.raises(RegularizerInputError, match=r"shrink_perturb.*fresh value of 0\.bias"):
        RF.shrink_perturb_(_trained(_net), fresh=bad_fresh)
    with pytest.raises(RegularizerInputError, match=r"shrink_perturb.*overflows"):
        RF.shrink_perturb_(_trained(_net), shrink=1e39, generator=torch.Generator().manual_seed(0))


class _CountingLinear(nn.Linear):
    """A layer with reset_parameters and an integer parameter (which can never require grad)."""

    def __init__(self):
        super().__init__(3, 2)
        self.table = nn.Parameter(torch.arange(4), requires_grad=False)


def test_integer_parameter_is_left_alone():
    net = nn.Sequential(_CountingLinear())
    weight = net[0].weight.detach().clone()
    RF.shrink_perturb_(net, generator=torch.Generator().manual_seed(0))
    assert torch.equal(net[0].table, torch.arange(4))
    assert not torch.equal(net[0].weight.detach(), weight)
