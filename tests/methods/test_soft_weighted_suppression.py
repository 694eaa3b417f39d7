"""Soft-weighted suppression (Li et al., 2024), against numpy's SVD as the official punish_wight uses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError


def ref_soft_weight(x, alpha):
    """The official orientation: W = x.T (d × m), full SVD, keep the first m columns of u, s *= exp(-alpha s)."""
    w = np.asarray(x, dtype=np.float64).T
    u, s, vh = np.linalg.svd(w)
    m = w.shape[1]
    u = u[:, :m]
    s = s * np.exp(-alpha * s)
    return (u @ np.diag(s) @ vh).T


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_matches_reference(alpha):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 12, generator=g, dtype=torch.float64)
    got = reglab.create("soft_weighted_suppression", alpha=alpha)(x)
    np.testing.assert_allclose(got.numpy(), ref_soft_weight(x.numpy(), alpha), rtol=1e-10, atol=1e-12)


def test_identity_at_zero_and_dominant_direction_shrinks_most():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 6, generator=g, dtype=torch.float64)
    torch.testing.assert_close(RF.soft_weighted_suppression(x, 0.0), x)
    s_before = torch.linalg.svdvals(x)
    s_after = torch.linalg.svdvals(RF.soft_weighted_suppression(x, 1.0))
    shrunk = s_before * torch.exp(-s_before)  # σ·e^(−σ) is not monotone: compare as sorted spectra
    torch.testing.assert_close(s_after, shrunk.sort(descending=True).values)
    ratio = shrunk / s_before
    assert (ratio[:-1] <= ratio[1:]).all()  # the larger σ, the stronger the shrink


def test_gradcheck_and_bad_input():
    x = torch.tensor([[3.0, 0.5, 0.1], [0.2, 1.5, 0.3]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: RF.soft_weighted_suppression(a, 0.5), (x,))
    with pytest.raises(RegularizerInputError, match="SoftWeightedSuppression.*embeddings"):
        RF.soft_weighted_suppression(torch.randn(3))
    with pytest.raises(RegularizerInputError, match="SoftWeightedSuppression.*alpha"):
        reglab.create("soft_weighted_suppression", alpha=-1.0)
