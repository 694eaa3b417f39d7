"""Jacobian nuclear norm by factor Frobenius + denoising (Scarvelis & Solomon 2024)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._reference import Reference

H = torch.tensor([[1.0, -0.5, 0.2], [0.3, 0.8, -1.0]], dtype=torch.float64)  # h: R^3 -> R^2
G = torch.tensor([[0.5, 1.0], [-1.0, 0.2], [0.7, 0.7], [0.1, -0.4]], dtype=torch.float64)  # g: R^2 -> R^4


def h_fn(x):
    return torch.tanh(x @ H.T)


def g_fn(u):
    return u @ G.T + u.pow(2).sum(1, keepdim=True)


def ref_jnn(x, h, g, generator=None, sigma=1e-3):
    """Transcription of low_noise_sparsity_inducing_loss's regularizer (official final-celeba-autoencoder.py),
    sample by sample."""
    b = x.shape[0]
    n1 = torch.randn(x.shape, generator=generator).to(x.dtype) * sigma  # drawn in float32, as the penalty does
    hx = h(x)
    n2 = torch.randn(hx.shape, generator=generator).to(hx.dtype) * sigma
    total = 0.0
    for i in range(b):
        a = h(x[i : i + 1] + n1[i : i + 1]) - h(x[i : i + 1])
        c = g(hx[i : i + 1] + n2[i : i + 1]) - g(hx[i : i + 1])
        total += float(a.pow(2).sum()) + float(c.pow(2).sum())
    return total / (2 * b * sigma**2)


REFERENCES = {
    "jacobian_nuclear_norm": Reference(
        lambda x, h, g: ref_jnn(x, h, g),
        inputs=lambda gen: (torch.randn(5, 3, generator=gen, dtype=torch.float64), h_fn, g_fn),
        rtol=1e-9,
    )
}


def test_estimates_the_factor_frobenius_norms_and_bounds_the_nuclear_norm():
    """Linear factors: the estimate's mean is ½(‖H‖²_F + ‖G‖²_F); at the balanced factorization
    H = Σ^½Vᵀ, G = UΣ^½ it equals ‖GH‖_* (the paper's Thm. 3.1)."""
    a = torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.5, -1.0, 0.0]], dtype=torch.float64)
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    hb, gb = torch.diag(s.sqrt()) @ vh, u @ torch.diag(s.sqrt())
    x = torch.randn(4000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    est = RF.jacobian_nuclear_norm(x, lambda t: t @ hb.T, lambda t: t @ gb.T, torch.Generator().manual_seed(1))
    assert float(est) == pytest.approx(float(s.sum()), rel=0.03)
    assert 0.5 * (hb.pow(2).sum() + gb.pow(2).sum()) == pytest.approx(float(s.sum()), rel=1e-12)
    # an unbalanced factorization of the same map costs more: the penalty is an upper bound
    est2 = RF.jacobian_nuclear_norm(x, lambda t: t @ (3 * hb).T, lambda t: t @ (gb / 3).T, torch.Generator().manual_seed(1))
    assert float(est2) > 2 * float(est)


def test_gradients_flow_to_both_factors_and_weight():
    torch.manual_seed(0)
    h, g = nn.Linear(3, 2).double(), nn.Linear(2, 4).double()
    x = torch.randn(4000, 3, dtype=torch.float64)
    reg = reglab.create("jacobian_nuclear_norm")
    assert reg.weight == 0.25
    reg(x, h, g, generator=torch.Generator().manual_seed(0)).backward()
    assert h.weight.grad.abs().sum() > 0 and g.weight.grad.abs().sum() > 0
    # d/dW of ½‖W‖²_F is W for a linear factor (up to the estimator's noise)
    torch.testing.assert_close(g.weight.grad / 0.25, g.weight.detach(), rtol=0.1, atol=0.05)


def test_bad_input():
    x = torch.randn(4, 3)
    with pytest.raises(RegularizerInputError, match="JacobianNuclearNorm expects h to be a callable"):
        RF.jacobian_nuclear_norm(x, 3, lambda t: t)
    with pytest.raises(RegularizerInputError, match="JacobianNuclearNorm expects g to map a batch of 4"):
        RF.jacobian_nuclear_norm(x, lambda t: t, lambda t: t.sum())
    with pytest.raises(RegularizerInputError, match="JacobianNuclearNorm expects sigma"):
        RF.jacobian_nuclear_norm(x, lambda t: t, lambda t: t, sigma=0.0)
    with pytest.raises(RegularizerInputError, match="JacobianNuclearNorm"):
        RF.jacobian_nuclear_norm(torch.full((4, 3), float("nan")), lambda t: t, lambda t: t)
