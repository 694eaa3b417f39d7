"""Von Neumann entropy (Kim et al., CVPR 2023) against numpy's symmetric eigensolver."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings

import reglab
from reglab import functional as RF

from ._invariance import SCALES, SEEDS, assert_rotation_invariant, assert_scale_invariant
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


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, scale=SCALES)
def test_scale_invariance(seed, scale):
    assert_scale_invariant(RF.vne, seed, scale)


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS)
def test_rotation_invariance(seed):
    assert_rotation_invariant(RF.vne, seed)
