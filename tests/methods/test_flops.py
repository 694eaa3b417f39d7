"""FLOPS (Paria et al., 2020): Σ_j (mean_i |z_ij|)², by loops."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings

from reglab import functional as RF

from ._invariance import SCALES, SEEDS, assert_homogeneous


def ref_flops(z):
    n, d = len(z), len(z[0])
    return sum((sum(abs(z[i][j]) for i in range(n)) / n) ** 2 for j in range(d))


REFERENCES = {"flops": lambda z: ref_flops(z.tolist())}


def test_flops_matches_reference():
    z = torch.randn(7, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert float(RF.flops(z)) == pytest.approx(ref_flops(z.tolist()), rel=1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, scale=SCALES)
def test_homogeneous_of_degree_two(seed, scale):
    assert_homogeneous(RF.flops, seed, scale, degree=2)
