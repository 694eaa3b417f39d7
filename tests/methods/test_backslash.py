"""BackSlash / GG prior: the shape lookup and the rate penalty against loops, local vs global, gradient."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError


def ref_shape(values):
    """The grid ν ∈ {0.10, 0.11, …, 3.00} whose Γ(1/ν)Γ(3/ν)/Γ(2/ν)² is nearest n·Σw²/(Σ|w|)²."""
    n = len(values)
    rho = n * sum(v * v for v in values) / sum(abs(v) for v in values) ** 2
    best, best_gap = None, float("inf")
    for k in range(10, 301):
        nu = k / 100
        r = math.exp(math.lgamma(1 / nu) + math.lgamma(3 / nu) - 2 * math.lgamma(2 / nu))
        if abs(r - rho) < best_gap:
            best, best_gap = nu, abs(r - rho)
    return best


def ref_backslash(w, clip=1.0):
    values = w.flatten().tolist()
    nu = ref_shape(values)
    return sum((abs(v) + clip) ** nu for v in values) / len(values)


REFERENCES = {"backslash": ref_backslash}


def test_shape_of_known_laws():
    g = torch.Generator().manual_seed(0)
    assert RF.gg_shape(torch.randn(20000, generator=g, dtype=torch.float64)) == pytest.approx(2.0, abs=0.1)
    lap = torch.distributions.Laplace(0.0, 1.0).sample((20000,)).double()
    assert RF.gg_shape(lap) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("shape", [(5, 4), (3, 2, 3), (4, 3, 2, 2)])
def test_matches_loop(shape):
    w = torch.randn(shape, dtype=torch.float64)
    assert RF.gg_shape(w) == pytest.approx(ref_shape(w.flatten().tolist()))
    assert RF.backslash(w, clip=0.5).item() == pytest.approx(ref_backslash(w, 0.5), rel=1e-12)


def test_global_pools_shape_and_count():
    ws = [torch.randn(6, 5, dtype=torch.float64), 0.1 * torch.randn(3, 4, dtype=torch.float64).pow(3)]
    values = [v for w in ws for v in w.flatten().tolist()]
    nu = ref_shape(values)
    expected = sum((abs(v) + 1) ** nu for v in values) / len(values)
    assert RF.backslash_global(ws).item() == pytest.approx(expected, rel=1e-12)
    assert RF.backslash(ws).item() == pytest.approx(sum(ref_backslash(w) for w in ws), rel=1e-12)


def test_gradient_is_the_official_update_direction():
    """∂R/∂w = ν/n·sign(w)·(|w| + c)^(ν−1): the step the official code subtracts (times rdo)."""
    w = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    nu = RF.gg_shape(w)
    RF.backslash(w).backward()
    expected = nu / w.numel() * torch.sign(w.detach()) * (w.detach().abs() + 1) ** (nu - 1)
    assert torch.allclose(w.grad, expected, rtol=1e-12)
    assert torch.autograd.gradcheck(lambda x: RF.backslash(x, shape=0.7), (w.detach().clone().requires_grad_(True),))


def test_default_weight_is_the_official_rdo_and_global_scope_binds():
    assert reglab.BackSlash().current_weight == pytest.approx(2e3)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)).double()
    regs = reglab.attach(net, reglab.BackSlash(weight=1.0).on(scope="global"))
    assert regs.penalty().item() == pytest.approx(RF.backslash_global([net[0].weight, net[1].weight]).item())


def test_bad_input_is_named():
    with pytest.raises(RegularizerInputError, match="BackSlash"):
        RF.backslash(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(RegularizerInputError, match="BackSlash"):
        reglab.BackSlash(clip=-1.0)
