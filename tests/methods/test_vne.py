"""Von Neumann entropy (Kim et al., CVPR 2023) against numpy's symmetric eigensolver."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reglab
from reglab import functional as RF

from ._naive import unit


def ref_vne(z):
    # eigenvalues of the d×d autocorrelation of row-normalized z, by numpy's symmetric eigensolver
    u = np.array([unit(r) for r in z])
    rho = u.T @ u / len(z)
    lam = np.linalg.eigvalsh(rho)
    return float(-sum(x * math.log(x) for x in lam if x > 1e-15))


#: the penalty is −VNE (a positive weight raises the entropy)
REFERENCES = {"vne": lambda z: -ref_vne(z.tolist())}


@pytest.mark.parametrize("n,d", [(5, 8), (9, 4)])
def test_vne_matches_reference(n, d):
    z = torch.randn(n, d, dtype=torch.float64)
    assert float(RF.vne(z)) == pytest.approx(ref_vne(z.tolist()), rel=1e-8)
    assert float(reglab.create("vne").penalty(z)) == pytest.approx(-ref_vne(z.tolist()), rel=1e-8)


_small = st.integers(min_value=0, max_value=10_000)


@settings(max_examples=15, deadline=None)
@given(seed=_small, scale=st.floats(0.1, 10.0))
def test_scale_invariance(seed, scale):
    z = torch.randn(8, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert float(RF.vne(scale * z)) == pytest.approx(float(RF.vne(z)), rel=1e-7, abs=1e-9)


@settings(max_examples=15, deadline=None)
@given(seed=_small)
def test_rotation_invariance(seed):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(9, 4, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    assert float(RF.vne(z1 @ q)) == pytest.approx(float(RF.vne(z1)), rel=1e-8, abs=1e-10)
