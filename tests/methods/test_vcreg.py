"""VCReg (Zhu et al., 2023): VICReg's variance and covariance terms on one view."""

from __future__ import annotations

import pytest
import torch

import reglab
from reglab import functional as RF

from .test_vicreg import ref_vicreg_terms


def ref_vcreg(z):
    """μ·v(Z) + ν·c(Z) with μ = 25, ν = 1; VICReg's terms on (Z, Z) are (v, 2c)."""
    _, var2, cov2 = ref_vicreg_terms(z.tolist(), z.tolist())
    return 25 * var2 + cov2 / 2


REFERENCES = {"vcreg": ref_vcreg}


def test_vicreg_variance_hinge_active():
    # columns with std far below γ=1: the hinge must be positive
    z = 0.01 * torch.randn(16, 4, dtype=torch.float64)
    assert float(RF.vcreg_terms(z).variance) > 0.9


@pytest.mark.parametrize("n,d", [(6, 9), (12, 4)])  # both the Gram (n<d) and the d×d route
def test_vcreg_matches_reference(n, d):
    z = torch.randn(n, d, dtype=torch.float64) * torch.linspace(0.2, 2, d, dtype=torch.float64)
    _, var2, cov2 = ref_vicreg_terms(z.tolist(), z.tolist())
    t = reglab.create("vcreg").components(z)
    assert float(t.variance) == pytest.approx(var2, rel=1e-10)
    assert float(t.covariance) == pytest.approx(cov2 / 2, rel=1e-9)


def test_gradcheck_gram_route():
    # n < d: the covariance sum goes through the n×n Gram matrix
    reg = reglab.create("vcreg")
    z = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: reg.penalty(*a), (z,))
