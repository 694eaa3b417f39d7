"""KL bottleneck (Zhu & Razavian, 2021), against a loop reference of NYUMedML/GNN_for_EHR's KL."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._reference import Reference


def ref_kl(mu, logvar):
    n, d = mu.shape
    total = 0.0
    for i in range(n):
        for j in range(d):
            m, lv = float(mu[i, j]), float(logvar[i, j])
            total += 0.5 * (math.exp(lv) - lv - 1 + m * m)
    return total / n


def _inputs(g):
    return torch.randn(9, 4, generator=g, dtype=torch.float64), 0.5 * torch.randn(9, 4, generator=g, dtype=torch.float64)


REFERENCES = {"kl_bottleneck": Reference(ref_kl, inputs=_inputs)}


def test_zero_at_the_prior_and_gradcheck():
    assert float(RF.kl_bottleneck(torch.zeros(3, 2), torch.zeros(3, 2))) == 0.0
    mu, lv = _inputs(torch.Generator().manual_seed(8))
    assert torch.autograd.gradcheck(RF.kl_bottleneck, (mu.requires_grad_(), lv.requires_grad_()))


def test_reparameterize():
    mu, lv = _inputs(torch.Generator().manual_seed(9))
    assert torch.equal(RF.gaussian_reparameterize(mu, lv, training=False), mu)
    big_mu = torch.zeros(20000, 2, dtype=torch.float64)
    big_lv = torch.log(torch.tensor([[4.0, 0.25]], dtype=torch.float64)).expand(20000, 2)
    z = RF.gaussian_reparameterize(big_mu, big_lv, generator=torch.Generator().manual_seed(0))
    assert z.std(dim=0).tolist() == pytest.approx([2.0, 0.5], rel=0.03)


def test_bad_input():
    reg = reglab.create("kl_bottleneck")
    with pytest.raises(RegularizerInputError, match="KLBottleneck.*same shape"):
        reg(torch.randn(3, 2), torch.randn(3, 3))
    with pytest.raises(RegularizerInputError, match="KLBottleneck.*overflows"):
        reg(torch.zeros(2, 2), torch.full((2, 2), 100.0))
    with pytest.raises(RegularizerInputError, match="KLBottleneck.*logvar"):
        reg(torch.zeros(2, 2), torch.tensor([[0.0, float("nan")], [0.0, 0.0]]))
