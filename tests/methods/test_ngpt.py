"""nGPT's hypersphere projection and normalized residual against plain numpy."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import reglab
from reglab import RegularizerInputError
from reglab.methods.ngpt import hypersphere_normalize, ngpt_residual


def ref_norm(x, axis=-1):
    return x / np.sqrt((x**2).sum(axis=axis, keepdims=True))


def ref_residual(h, hb, alpha):
    a, b = ref_norm(h), ref_norm(hb)
    return ref_norm(a + alpha * (b - a))


def test_sheet_numeric_example_and_reference():
    rng = np.random.default_rng(0)
    h, hb = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    got = ngpt_residual(torch.from_numpy(h), torch.from_numpy(hb), 0.05)
    np.testing.assert_allclose(got.numpy(), ref_residual(h, hb, 0.05), rtol=1e-12)
    assert np.allclose(np.linalg.norm(got.numpy(), axis=-1), 1.0)
    alpha = np.linspace(0.0, 1.0, 4)
    got = ngpt_residual(torch.from_numpy(h), torch.from_numpy(hb), torch.from_numpy(alpha))
    np.testing.assert_allclose(got.numpy(), ref_residual(h, hb, alpha), rtol=1e-12)
    # α = 0 keeps the direction of h, α = 1 moves to the block's output direction
    np.testing.assert_allclose(ngpt_residual(torch.from_numpy(h), torch.from_numpy(hb), 1.0).numpy(), ref_norm(hb))


def test_gradcheck_residual():
    h = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    hb = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    a = torch.rand(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ngpt_residual, (h, hb, a))


def test_module_scales_alpha_as_official():
    m = reglab.NGPTResidual(dim=16)
    assert torch.allclose(m.alpha, torch.full((16,), 0.25))  # stored as α_scale = 1/√16
    assert torch.allclose(m.effective_alpha(), torch.full((16,), 0.05))  # used as α_init
    h, hb = torch.randn(2, 3, 16), torch.randn(2, 3, 16)
    out = m(h, hb)
    np.testing.assert_allclose(out.detach().numpy(), ref_residual(h.numpy(), hb.numpy(), 0.05), rtol=1e-5)
    out.sum().backward()
    assert m.alpha.grad is not None
    again = reglab.from_config(m.get_config())
    again.load_state_dict(m.state_dict())


def test_projection_trajectory_equals_base_step_then_normalize():
    """Adam step, then rows (dim -1) or columns (dim 0) back to unit norm; 1-D parameters untouched."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 5))
    ref = copy.deepcopy(net)
    x = torch.randn(16, 5)
    groups = [{"params": [net[0].weight, net[0].bias]}, {"params": [net[2].weight], "dim": 0}, {"params": [net[2].bias]}]
    opt = reglab.HypersphereProjection(groups, torch.optim.Adam, lr=1e-2)
    assert torch.allclose(net[0].weight.norm(dim=1), torch.ones(6))
    with torch.no_grad():  # the reference: numpy normalization at init, then plain Adam + normalization
        ref[0].weight.copy_(torch.from_numpy(ref_norm(ref[0].weight.numpy(), 1)))
        ref[2].weight.copy_(torch.from_numpy(ref_norm(ref[2].weight.numpy(), 0)))
    ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-2)
    for _ in range(4):
        for model, o in ((net, opt), (ref, ref_opt)):
            o.zero_grad()
            model(x).pow(2).mean().backward()
            o.step()
        with torch.no_grad():
            ref[0].weight.copy_(torch.from_numpy(ref_norm(ref[0].weight.numpy(), 1)))
            ref[2].weight.copy_(torch.from_numpy(ref_norm(ref[2].weight.numpy(), 0)))
    for p, q in zip(net.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert torch.allclose(net[2].weight.norm(dim=0), torch.ones(6))
    assert not torch.allclose(net[0].bias.norm(), torch.ones(()))


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="hypersphere_normalize.*zero norm"):
        hypersphere_normalize(torch.zeros(2, 3))
    with pytest.raises(RegularizerInputError, match="hypersphere_normalize.*dim"):
        hypersphere_normalize(torch.ones(2, 3), dim=2)
    with pytest.raises(RegularizerInputError, match="ngpt_residual.*shape"):
        ngpt_residual(torch.randn(2, 3), torch.randn(2, 4), 0.1)
    with pytest.raises(RegularizerInputError, match="ngpt_residual"):
        ngpt_residual(torch.full((2, 3), float("nan")), torch.randn(2, 3), 0.1)
    with pytest.raises(RegularizerInputError, match="NGPTResidual.*dim"):
        reglab.NGPTResidual(dim=0)
    with pytest.raises(RegularizerInputError, match="NGPTResidual"):
        reglab.NGPTResidual(dim=4)(torch.randn(2, 5), torch.randn(2, 5))
    with pytest.raises(RegularizerInputError, match="HypersphereProjection.*dim"):
        reglab.HypersphereProjection([nn.Parameter(torch.ones(2, 2))], dim="rows")
    p = nn.Parameter(torch.ones(2, 2))
    opt = reglab.HypersphereProjection([p], lr=0.1)
    p.grad = torch.full((2, 2), float("nan"))
    with pytest.raises(RegularizerInputError, match="HypersphereProjection.*NaN"):
        opt.step()
