"""DDPM-IP input perturbation against a plain re-statement of the official training_losses lines."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError


def ref_ddpm_ip(x0, noise, alpha_bar, gamma, seed):
    """forever208/DDPM-IP gaussian_diffusion.training_losses: new_noise = noise + γ·randn_like(noise);
    q_sample: √ᾱ·x0 + √(1 − ᾱ)·new_noise; element by element."""
    xi = torch.randn(noise.shape, generator=torch.Generator().manual_seed(seed), dtype=noise.dtype)
    out = torch.empty_like(x0)
    for i in range(x0.shape[0]):
        a = alpha_bar[i] if isinstance(alpha_bar, list) else alpha_bar
        for j in range(x0.shape[1]):
            out[i, j] = math.sqrt(a) * x0[i, j] + math.sqrt(1 - a) * (noise[i, j] + gamma * xi[i, j])
    return out


@pytest.mark.parametrize("gamma", [0.0, 0.1, 0.3])
def test_matches_reference_per_sample_alpha(gamma):
    x0, eps = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    abar = [0.9, 0.5, 0.1, 0.999]
    got = RF.ddpm_ip(x0, eps, torch.tensor(abar, dtype=torch.float64), gamma,
                     generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, ref_ddpm_ip(x0, eps, abar, gamma, 5))


def test_scalar_alpha_and_module():
    x0, eps = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    m = reglab.DDPMInputPerturbation(gamma=0.2)
    got = m(x0, eps, 0.3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(got, ref_ddpm_ip(x0, eps, 0.3, 0.2, 1))


def test_perturbation_variance():
    """The perturbed noise has variance 1 + γ² (Ning et al., Sec. 4)."""
    x0 = torch.zeros(20000, 1, dtype=torch.float64)
    eps = torch.randn(20000, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    xt = RF.ddpm_ip(x0, eps, 0.0, 0.5, generator=torch.Generator().manual_seed(12345))
    assert xt.var().item() == pytest.approx(1.25, rel=0.05)


def test_gradient_flows_to_x0():
    x0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    RF.ddpm_ip(x0, torch.randn(2, 3, dtype=torch.float64), 0.64).sum().backward()
    torch.testing.assert_close(x0.grad, torch.full_like(x0, 0.8))


def test_bad_input():
    x0 = torch.randn(3, 2)
    with pytest.raises(RegularizerInputError, match="DDPMInputPerturbation.*shape"):
        RF.ddpm_ip(x0, torch.randn(3, 3), 0.5)
    with pytest.raises(RegularizerInputError, match="DDPMInputPerturbation.*alpha_bar"):
        RF.ddpm_ip(x0, torch.randn(3, 2), torch.tensor([0.5, 0.5]))
    with pytest.raises(RegularizerInputError, match="DDPMInputPerturbation.*alpha_bar"):
        RF.ddpm_ip(x0, torch.randn(3, 2), 1.5)
    with pytest.raises(RegularizerInputError, match="DDPMInputPerturbation"):
        RF.ddpm_ip(torch.tensor([[float("nan"), 0.0]]), torch.randn(1, 2), 0.5)
    with pytest.raises(RegularizerInputError, match="DDPMInputPerturbation"):
        reglab.DDPMInputPerturbation(gamma=-0.1)
