"""Additive Gaussian noise (Bishop, 1995): σ·N(0, I) in training only."""

from __future__ import annotations

import pytest
import torch

import reglab
from reglab.core.errors import RegularizerInputError


def test_gaussian_noise():
    gn = reglab.create("gaussian_noise", sigma=0.5)
    x = torch.zeros(20000)
    out = gn(x)
    assert float(out.std()) == pytest.approx(0.5, rel=0.05) and abs(float(out.mean())) < 0.02
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(gn(x, generator=g1), 0.5 * torch.randn(20000, generator=g2))
    assert gn(torch.zeros(2, dtype=torch.bfloat16)).dtype == torch.bfloat16
    gn.eval()
    assert gn(x) is x
    with pytest.raises(RegularizerInputError, match="GaussianNoise.*floating"):
        reglab.GaussianNoise()(torch.zeros(3, dtype=torch.long))
    with pytest.raises(RegularizerInputError, match="GaussianNoise.*sigma"):
        reglab.GaussianNoise(-1.0)
