"""ELLE (Abad Rocamora et al., 2024): the local-linearity error by loops over the same random draws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._reference import Reference


class _TanhNet(nn.Module):
    def __init__(self, g: torch.Generator):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(4, 5, generator=g, dtype=torch.float64))
        self.w2 = nn.Parameter(torch.randn(5, 3, generator=g, dtype=torch.float64))

    def forward(self, x):
        return torch.tanh(x @ self.w1) @ self.w2


def _inputs(g):
    x = torch.rand(6, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (6,), generator=g)
    return x, y, _TanhNet(g)


def ref_elle(x, y, model, eps=8 / 255):
    """Draw as the official code (2·bs perturbations, then bs alphas), then the error by loops in numpy."""
    bs = x.shape[0]
    noise = (2 * torch.rand((2 * bs,) + tuple(x.shape[1:]), dtype=x.dtype) - 1).numpy()
    alpha = torch.rand(bs, dtype=x.dtype).numpy()
    w1, w2 = model.w1.detach().numpy(), model.w2.detach().numpy()
    xs = x.numpy()

    def ce(v, label):
        z = np.tanh(v @ w1) @ w2
        return math.log(sum(math.exp(t) for t in z)) - z[label]

    total = 0.0
    for i in range(bs):
        xa, xb = xs[i] + eps * noise[i], xs[i] + eps * noise[bs + i]
        xc = (1 - alpha[i]) * xa + alpha[i] * xb
        lin = (1 - alpha[i]) * ce(xa, int(y[i])) + alpha[i] * ce(xb, int(y[i]))
        total += (ce(xc, int(y[i])) - lin) ** 2
    return total / bs


REFERENCES = {"elle": Reference(ref_elle, inputs=_inputs)}


def test_matches_loops_at_another_eps_and_backpropagates():
    x, y, model = _inputs(torch.Generator().manual_seed(3))
    torch.manual_seed(5)
    got = reglab.ELLE(10.0, eps=0.3)(x, y, model)
    torch.manual_seed(5)
    assert float(got) == pytest.approx(10.0 * ref_elle(x, y, model, eps=0.3), rel=1e-10)
    got.backward()
    assert model.w1.grad is not None and float(model.w1.grad.abs().sum()) > 0


def test_zero_for_a_loss_linear_in_the_input():
    """A model whose per-sample loss is affine in x has no linearity error (up to rounding)."""

    class Affine(nn.Module):
        def forward(self, x):  # two logits: (0, s(x)) with CE at label 0 = softplus(s), ≈ s for s ≫ 0
            s = 50 + x.sum(dim=1, keepdim=True)
            return torch.cat([torch.zeros_like(s), s], dim=1)

    x = torch.rand(5, 3, dtype=torch.float64)
    y = torch.ones(5, dtype=torch.long)  # CE at label 1 = softplus(−s) ≈ 0 and linear: e^(−50)-sized
    assert float(RF.elle(x, y, Affine(), eps=0.1)) < 1e-30
    y0 = torch.zeros(5, dtype=torch.long)  # CE at label 0 = softplus(s) = s + tiny: linear in x
    assert float(RF.elle(x, y0, Affine(), eps=0.1)) < 1e-20


def test_curved_loss_is_penalized_more_at_larger_eps():
    x, y, model = _inputs(torch.Generator().manual_seed(4))
    values = []
    for eps in (0.01, 0.1, 1.0):
        torch.manual_seed(0)
        values.append(float(RF.elle(x, y, model, eps=eps)))
    assert values[0] < values[1] < values[2]


def test_bad_inputs():
    x, y, model = _inputs(torch.Generator().manual_seed(1))
    reg = reglab.ELLE()
    with pytest.raises(RegularizerInputError, match="ELLE.*labels"):
        reg(x, y[:3], model)
    with pytest.raises(RegularizerInputError, match="ELLE.*model"):
        reg(x, y, "not a model")
    with pytest.raises(RegularizerInputError, match="eps"):
        reglab.ELLE(eps=0.0)
    with pytest.raises(RegularizerInputError, match="ELLE.*logits"):
        reg(x, y, lambda v: v.sum(dim=1))
    assert reg.weight == 1000.0 and reg.eps == pytest.approx(8 / 255)  # official CIFAR-10 ε = 8/255 setting


def test_1e20_scale_float32_input_gives_a_finite_gradient():
    """The bad-input matrix's 1e20 cell with a float32 model (the generic test's float64 model cannot take it)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    x = (torch.rand(6, 4) * 1e20).requires_grad_()
    reglab.create("elle")(x, torch.randint(0, 3, (6,)), net).backward()
    assert torch.isfinite(x.grad).all() and all(torch.isfinite(p.grad).all() for p in net.parameters())
