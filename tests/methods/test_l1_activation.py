"""Activation sparsity: mean over samples of each sample's L1 norm, by loops."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings

from reglab import functional as RF

from ._invariance import SCALES, SEEDS, assert_homogeneous

from ._naive import mean


def ref_l1_activation(z):
    return mean([sum(abs(x) for x in row) for row in z])


REFERENCES = {"l1_activation": lambda z: ref_l1_activation(z.tolist())}


def test_l1_activation_matches_reference():
    z = torch.randn(7, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert float(RF.l1_activation(z)) == pytest.approx(ref_l1_activation(z.tolist()), rel=1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, scale=SCALES)
def test_homogeneous_of_degree_one(seed, scale):
    assert_homogeneous(RF.l1_activation, seed, scale, degree=1)
