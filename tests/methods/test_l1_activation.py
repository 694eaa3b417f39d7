"""Activation sparsity: mean over samples of each sample's L1 norm, by loops."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reglab import functional as RF

from ._naive import mean


def ref_l1_activation(z):
    return mean([sum(abs(x) for x in row) for row in z])


REFERENCES = {"l1_activation": lambda z: ref_l1_activation(z.tolist())}


def test_l1_activation_matches_reference():
    z = torch.randn(7, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert float(RF.l1_activation(z)) == pytest.approx(ref_l1_activation(z.tolist()), rel=1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10_000), scale=st.floats(0.1, 10.0))
def test_homogeneous_of_degree_one(seed, scale):
    z = torch.randn(8, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert float(RF.l1_activation(scale * z)) == pytest.approx(scale * float(RF.l1_activation(z)), rel=1e-9)
