"""Policy gradient-driven noise mask (Yavuz & Yang, 2024): objective, mask pipeline and bases by loops; bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError


def ref_beta_logpdf(m, a, b):
    return (a - 1) * math.log(m) + (b - 1) * math.log(1 - m) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))


def ref_blur(img, kernel, sigma):
    """numpy: reflect-pad, then Σ over the (kernel × kernel) normalized Gaussian window."""
    half = (kernel - 1) / 2
    k1 = np.array([math.exp(-0.5 * ((-half + i) / sigma) ** 2) for i in range(kernel)])
    k1 /= k1.sum()
    pad = kernel // 2
    padded = np.pad(img, pad, mode="reflect")
    out = np.zeros_like(img)
    for i in range(img.shape[0]):
        for j in range(img.shape[1]):
            out[i, j] = sum(k1[u] * k1[v] * padded[i + u, j + v] for u in range(kernel) for v in range(kernel))
    return out


def test_objective_matches_loops_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(3, 5, generator=g, dtype=torch.float64)
    ce = torch.tensor(1.7, dtype=torch.float64)
    expected = sum(math.log(sum(math.exp(v) for v in row)) for row in lp.tolist()) / 3 * 1.7
    assert math.isclose(RF.noise_mask_policy_loss(lp, ce).item(), expected, rel_tol=1e-12)
    per = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    expected = sum(math.log(sum(math.exp(v) for v in row)) * w for row, w in zip(lp.tolist(), per.tolist())) / 3
    assert math.isclose(RF.noise_mask_policy_loss(lp, per).item(), expected, rel_tol=1e-12)
    lp.requires_grad_(True)
    ce.requires_grad_(True)
    assert torch.autograd.gradcheck(RF.noise_mask_policy_loss, (lp, ce))
    # no overflow where the official log(sum(exp)) would give inf
    assert torch.isfinite(RF.noise_mask_policy_loss(torch.full((2, 3), 800.0), torch.tensor(1.0)))


def test_training_forward_bases_mask_and_loss_by_hand():
    torch.manual_seed(0)
    pnm = reglab.create("policy_noise_mask", grid=2, kernel=3, sigma=1.0)
    base_a, base_b = pnm.base_alpha.clone().double(), pnm.base_beta.clone().double()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 2, 6, 6, generator=g, dtype=torch.float64)
    alpha = torch.randn(3, 4, generator=g, dtype=torch.float64)
    beta = torch.randn(3, 4, generator=g, dtype=torch.float64)
    out = pnm(x, alpha, beta)
    m = pnm.mask.double()
    # bases: 0.99·base + 0.01·batch mean of the raw heads
    assert torch.allclose(pnm.base_alpha.double(), 0.99 * base_a + 0.01 * alpha.mean(0, keepdim=True), atol=1e-6)
    assert torch.allclose(pnm.base_beta.double(), 0.99 * base_b + 0.01 * beta.mean(0, keepdim=True), atol=1e-6)
    # output: x · blur(nearest-upsampled mask), the mask shared over channels
    for n in range(3):
        up = np.repeat(np.repeat(m[n].numpy().reshape(2, 2), 3, axis=0), 3, axis=1)
        expected = x[n].numpy() * ref_blur(up, 3, 1.0)[None]
        assert np.allclose(out[n].numpy(), expected, atol=1e-6)
    # loss: mean_b log Σ_k Beta(m_bk; e^(0.9 base + 0.1 α), e^(0.9 base + 0.1 β)) · ℓ
    total = 0.0
    for n in range(3):
        dens = [
            ref_beta_logpdf(m[n, k].item(), math.exp(0.9 * base_a[0, k].item() + 0.1 * alpha[n, k].item()),
                            math.exp(0.9 * base_b[0, k].item() + 0.1 * beta[n, k].item()))
            for k in range(4)
        ]
        total += math.log(sum(math.exp(d) for d in dens))
    assert math.isclose(pnm.loss(torch.tensor(2.0)).item(), total / 3 * 2.0, rel_tol=1e-4)


def test_gradients_reach_policy_heads_and_eval_uses_the_bases():
    torch.manual_seed(2)
    pnm = reglab.create("policy_noise_mask", grid=4, kernel=3, sigma=1.0)
    alpha = torch.randn(5, 16, requires_grad=True)
    beta = torch.randn(5, 16, requires_grad=True)
    x = torch.rand(5, 1, 8, 8)
    pnm(x, alpha, beta)
    pnm.loss(torch.tensor(1.3)).backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0 and beta.grad.abs().sum() > 0
    bases = pnm.base_alpha.clone()
    pnm.eval()
    out = pnm(x)
    assert torch.equal(pnm.base_alpha, bases)  # no update in eval
    assert pnm.mask.shape == (1, 16) and pnm.log_prob is None
    ratio = out / x  # one mask for the whole batch
    assert torch.allclose(ratio, ratio[:1].expand_as(ratio), atol=1e-5)


def test_state_dict_round_trip_keeps_the_bases():
    a = reglab.create("policy_noise_mask", grid=3)
    b = reglab.create("policy_noise_mask", grid=3)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.base_alpha, b.base_alpha) and torch.equal(a.base_beta, b.base_beta)


def test_bad_input_is_named():
    with pytest.raises(RegularizerInputError, match="PolicyNoiseMask.*kernel"):
        reglab.create("policy_noise_mask", kernel=4)
    with pytest.raises(RegularizerInputError, match="PolicyNoiseMask.*sigma"):
        reglab.create("policy_noise_mask", sigma=0)
    with pytest.raises(RegularizerInputError, match="PolicyNoiseMask.*grid"):
        reglab.create("policy_noise_mask", grid=0)
    pnm = reglab.create("policy_noise_mask", grid=2, kernel=3, sigma=1.0)
    x = torch.rand(2, 1, 6, 6)
    with pytest.raises(RegularizerInputError, match="PolicyNoiseMask.*forward"):
        pnm.loss(torch.tensor(1.0))
    with pytest.raises(RegularizerInputError, match="PolicyNoiseMask.*alpha and beta"):
        pnm(x)
    with pytest.raises(RegularizerInputError, match=r"PolicyNoiseMask.*alpha of shape.*\(2, 4\)"):
        pnm(x, torch.randn(2, 9), torch.randn(2, 4))
    with pytest.raises(RegularizerInputError, match="PolicyNoiseMask.*beta"):
        pnm(x, torch.randn(2, 4), torch.tensor([[0.0, float("nan"), 0.0, 0.0]] * 2))
    with pytest.raises(RegularizerInputError, match="PolicyNoiseMask.*images"):
        pnm(torch.rand(2, 6, 6), torch.randn(2, 4), torch.randn(2, 4))
    with pytest.raises(RegularizerInputError, match="PolicyNoiseMask.*kernel // 2"):
        reglab.create("policy_noise_mask", grid=2)(torch.rand(2, 1, 6, 6), torch.randn(2, 4), torch.randn(2, 4))
    pnm(x, torch.randn(2, 4), torch.randn(2, 4))
    with pytest.raises(RegularizerInputError, match="PolicyNoiseMask.*task_loss"):
        pnm.loss(torch.ones(3))
