"""Squared gradient-norm penalty (Geiping et al., 2022): ½‖∇L‖² by hand; forward difference vs double backprop."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import reglab
from reglab.core.errors import RegularizerInputError

from ._problem import loss_of, make_problem
from ._reference import Reference


class _SoftplusRegression(nn.Module):
    """A float64 model that keeps its data, so the reference can differentiate its loss by hand."""

    def __init__(self, g: torch.Generator):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, generator=g, dtype=torch.float64))
        self.register_buffer("x", torch.randn(12, 3, generator=g, dtype=torch.float64))
        self.register_buffer("t", torch.randn(12, generator=g, dtype=torch.float64))

    def loss(self) -> torch.Tensor:
        return nn.functional.softplus(self.x @ self.w - self.t).mean()


def _loss_and_model(g: torch.Generator):
    model = _SoftplusRegression(g)
    return model.loss(), model


def ref_half_squared_gradient_norm(loss, model):
    """½‖∇_w mean softplus(xw − t)‖² by the chain rule in numpy (``loss`` is not used)."""
    x, t, w = model.x.numpy(), model.t.numpy(), model.w.detach().numpy()
    sig = 1 / (1 + np.exp(-(x @ w - t)))
    grad = x.T @ sig / len(t)
    return 0.5 * float((grad**2).sum())


REFERENCES = {"squared_gradient_norm": Reference(ref_half_squared_gradient_norm, inputs=_loss_and_model)}


def _least_squares(seed=0):
    g = torch.Generator().manual_seed(seed)
    X, t = torch.randn(20, 4, generator=g, dtype=torch.float64), torch.randn(20, generator=g, dtype=torch.float64)
    w = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    return X, t, w


def test_forward_difference_is_exact_on_a_quadratic():
    """L = mean (Xw − t)²: g = (2/n)Xᵀ(Xw − t), H = (2/n)XᵀX, so the update g + λHg is known in closed form,
    and the forward difference of a linear gradient is exact for any ε."""
    X, t, w = _least_squares()
    g = (2 / 20) * X.T @ (X @ w.detach() - t)
    want = g + 0.3 * (2 / 20) * X.T @ X @ g
    reg = reglab.SquaredGradientNorm(0.3, eps=0.5)
    loss = reg.backward(lambda: ((X @ w - t) ** 2).mean(), [w])
    torch.testing.assert_close(w.grad, want, rtol=1e-10, atol=1e-12)
    assert float(loss) == pytest.approx(float(((X @ w - t) ** 2).mean()))


def test_update_is_the_official_forward_difference():
    """g + λ·‖g‖·(∇L(θ + ε g/‖g‖) − g)/ε, by hand (fullbatch/models/modules.py, _forward_differences)."""
    model, x, y = make_problem(torch.float64)
    ref = copy.deepcopy(model)
    ps = list(ref.parameters())
    g = torch.autograd.grad(loss_of(ref, x, y), ps)
    norm = torch.sqrt(sum((gi**2).sum() for gi in g))
    with torch.no_grad():
        for p, gi in zip(ps, g):
            p.add_(1e-2 * gi / norm)
    g2 = torch.autograd.grad(loss_of(ref, x, y), ps)
    want = [gi + 0.1 * norm * (g2i - gi) / 1e-2 for gi, g2i in zip(g, g2)]
    before = [p.detach().clone() for p in model.parameters()]
    reglab.create("squared_gradient_norm").backward(lambda: loss_of(model, x, y), model)
    for p, b, wt in zip(model.parameters(), before, want):
        assert torch.equal(p.detach(), b)  # restored exactly
        torch.testing.assert_close(p.grad, wt, rtol=1e-9, atol=1e-12)


def test_forward_difference_agrees_with_double_backprop():
    model, x, y = make_problem(torch.float64)
    other = copy.deepcopy(model)
    reglab.SquaredGradientNorm(0.5, method="double_backprop").backward(lambda: loss_of(model, x, y), model)
    reglab.SquaredGradientNorm(0.5, eps=1e-6).backward(lambda: loss_of(other, x, y), other)
    plain = torch.autograd.grad(loss_of(model, x, y), list(model.parameters()))
    for a, b, g in zip(model.parameters(), other.parameters(), plain):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-7)
        assert not torch.allclose(a.grad, g, atol=1e-6)


def test_double_backprop_gradcheck_and_weight():
    X, t, w = _least_squares(1)
    reg = reglab.SquaredGradientNorm(0.2, method="double_backprop")
    assert torch.autograd.gradcheck(lambda v: reg.penalty(torch.tanh(X @ v - t).pow(2).mean(), [v]), (w,))
    loss = ((X @ w - t) ** 2).mean()
    g = (2 / 20) * X.T @ (X @ w.detach() - t)
    assert float(reg(loss, [w])) == pytest.approx(0.2 * 0.5 * float(g @ g), rel=1e-10)


def test_defaults_are_the_official_recipe():
    """gradreg.yaml: lr 0.8, block_strength 0.5 → λ = lr·block_strength/4 = 0.1; eps 1e-2 (default config)."""
    reg = reglab.create("squared_gradient_norm")
    assert reg.weight == pytest.approx(0.8 * 0.5 / 4) and reg.eps == 1e-2 and reg.method == "finite_difference"


def test_zero_gradient_is_no_shift():
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    reglab.SquaredGradientNorm().backward(lambda: (w**2).sum(), [w])
    assert torch.equal(w.grad, torch.zeros(3, dtype=torch.float64))


def test_bad_inputs():
    reg = reglab.SquaredGradientNorm()
    w = torch.randn(3, requires_grad=True)
    with pytest.raises(RegularizerInputError, match="SquaredGradientNorm.*scalar"):
        reg.penalty(w * 2, [w])
    with pytest.raises(RegularizerInputError, match="SquaredGradientNorm.*NaN"):
        reg.backward(lambda: (w * float("nan")).sum(), [w])
    assert w.grad is None
    with pytest.raises(RegularizerInputError, match="SquaredGradientNorm.*no parameters"):
        reg.penalty((w * 2).sum(), [])
    with pytest.raises(RegularizerInputError, match="method"):
        reglab.SquaredGradientNorm(method="exact")
    with pytest.raises(RegularizerInputError, match="eps"):
        reglab.SquaredGradientNorm(eps=0.0)
    with torch.no_grad(), pytest.raises(RegularizerInputError, match="SquaredGradientNorm.*autograd off"):
        reg.penalty((w * 2).sum(), [w])
