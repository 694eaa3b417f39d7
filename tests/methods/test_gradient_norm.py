"""Gradient-norm penalty (Zhao et al., 2022): ‖∇L‖ by hand, double backprop vs finite difference."""

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


class _TanhRegression(nn.Module):
    """A tiny float64 model that keeps its data, so the reference can differentiate its loss by hand."""

    def __init__(self, g: torch.Generator):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(1, generator=g, dtype=torch.float64))
        self.register_buffer("x", torch.randn(20, 4, generator=g, dtype=torch.float64))
        self.register_buffer("t", torch.randn(20, generator=g, dtype=torch.float64))

    def loss(self) -> torch.Tensor:
        return torch.tanh(self.x @ self.w + self.b - self.t).pow(2).mean()


def _loss_and_model(g: torch.Generator):
    model = _TanhRegression(g)
    return model.loss(), model


def ref_gradient_norm(loss, model):
    """‖∇_{w,b} mean tanh(xw + b − t)²‖₂ by the chain rule in numpy (``loss`` is not used)."""
    x, t = model.x.numpy(), model.t.numpy()
    w, b = model.w.detach().numpy(), model.b.detach().numpy()
    h = np.tanh(x @ w + b - t)
    dr = 2 * h * (1 - h**2) / len(t)  # d mean(h²) / d r
    grad_w, grad_b = x.T @ dr, dr.sum()
    return float(np.sqrt((grad_w**2).sum() + grad_b**2))


REFERENCES = {"gradient_norm": Reference(ref_gradient_norm, inputs=_loss_and_model)}


def test_gradient_norm_matches_least_squares_formula():
    torch.manual_seed(1)
    X, t = torch.randn(20, 4, dtype=torch.float64), torch.randn(20, dtype=torch.float64)
    w = torch.randn(4, dtype=torch.float64, requires_grad=True)
    loss = ((X @ w - t) ** 2).mean()
    analytic = (2 / 20) * X.T @ (X @ w - t)  # ∇_w mean (Xw − t)²
    gn = reglab.create("gradient_norm", weight=0.3)
    assert float(gn.penalty(loss, [w])) == pytest.approx(float(analytic.norm()), rel=1e-10)
    assert float(gn(loss, [w])) == pytest.approx(0.3 * float(analytic.norm()), rel=1e-10)


def test_gradient_norm_double_backprop_gradcheck():
    X, t = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    gn = reglab.GradientNorm()

    def f(w):
        return gn.penalty(torch.tanh(X @ w - t).pow(2).mean(), [w])

    w = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (w,))


def test_double_backprop_and_finite_difference_agree():
    model, x, y = make_problem(torch.float64)
    m_fd = copy.deepcopy(model)
    exact = reglab.GradientNorm(0.2, method="double_backprop")
    fd = reglab.GradientNorm(0.2, method="finite_difference", r=1e-5)
    exact.backward(lambda: loss_of(model, x, y), model)
    before = [p.detach().clone() for p in m_fd.parameters()]
    fd.backward(lambda: loss_of(m_fd, x, y), m_fd)
    for p, b in zip(m_fd.parameters(), before):
        assert torch.equal(p, b)  # parameters restored after the shifted pass
    plain = torch.autograd.grad(loss_of(model, x, y), list(model.parameters()))
    for a, b, g in zip(model.parameters(), m_fd.parameters(), plain):
        assert torch.allclose(a.grad, b.grad, atol=1e-6, rtol=1e-4)
        assert not torch.allclose(a.grad, g, atol=1e-6)  # the penalty changed the gradient


def test_finite_difference_is_approximate_for_large_r():
    model, x, y = make_problem(torch.float64)
    m_fd = copy.deepcopy(model)
    reglab.GradientNorm(0.5).backward(lambda: loss_of(model, x, y), model)
    reglab.GradientNorm(0.5, method="finite_difference", r=1.0).backward(lambda: loss_of(m_fd, x, y), m_fd)
    diff = max(float((a.grad - b.grad).abs().max()) for a, b in zip(model.parameters(), m_fd.parameters()))
    assert diff > 1e-4


def test_gradient_norm_bad_inputs():
    gn = reglab.GradientNorm()
    w = torch.randn(3, requires_grad=True)
    with pytest.raises(RegularizerInputError, match="GradientNorm.*scalar"):
        gn.penalty(w * 2, [w])
    with pytest.raises(RegularizerInputError, match="GradientNorm.*NaN"):
        gn.penalty((w * float("nan")).sum(), [w])
    with pytest.raises(RegularizerInputError, match="GradientNorm.*no parameters"):
        gn.penalty((w * 2).sum(), [])
    with pytest.raises(RegularizerInputError, match="method"):
        reglab.GradientNorm(method="exact")


def test_gradient_norm_rejects_a_non_tensor_loss_and_inf():
    gn = reglab.GradientNorm()
    w = torch.randn(3, requires_grad=True)
    with pytest.raises(RegularizerInputError, match="GradientNorm.*torch.Tensor"):
        gn.penalty(1.0, [w])
    with pytest.raises(RegularizerInputError, match="GradientNorm.*inf"):
        gn.penalty(((w.abs() + 1) * float("inf")).sum(), [w])


def test_defaults_are_the_official_recipe():
    """zhaoyang-0204/gnp recipes/resnet-cifar.sh: GNP_R=0.1, GNP_ALPHA=0.8, so λ = α·r = 0.08."""
    gn = reglab.GradientNorm()
    assert gn.r == 0.1 and gn.weight == pytest.approx(0.08)
    assert gn.weight / gn.r == pytest.approx(0.8)
    assert reglab.create("gradient_norm").get_config()["weight"] == pytest.approx(0.08)


def test_finite_difference_is_the_papers_interpolation():
    """Eq. 10: the update is (1 − α)·∇L(θ) + α·∇L(θ + r·g/‖g‖) with α = λ/r, computed here by hand."""
    torch.manual_seed(2)
    X, t = torch.randn(12, 3, dtype=torch.float64), torch.randn(12, dtype=torch.float64)
    w = torch.randn(3, dtype=torch.float64, requires_grad=True)

    def loss_at(v):
        return torch.tanh(X @ v - t).pow(2).mean()

    (g,) = torch.autograd.grad(loss_at(w), w)
    shifted = (w.detach() + 0.1 * g / g.norm()).requires_grad_()
    (g2,) = torch.autograd.grad(loss_at(shifted), shifted)
    want = (1 - 0.8) * g + 0.8 * g2
    reglab.GradientNorm(method="finite_difference").backward(lambda: loss_at(w), [w])
    torch.testing.assert_close(w.grad, want, rtol=1e-9, atol=1e-12)
