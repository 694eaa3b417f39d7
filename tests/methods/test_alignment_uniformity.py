"""Alignment and uniformity (Wang & Isola, 2020) against loops over pairs."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reglab
from reglab import functional as RF

from ._invariance import SEEDS, assert_rotation_invariant
from reglab.core.errors import RegularizerInputError

from ._naive import mean, unit


def ref_uniformity(z, t=2.0):
    u = [unit(r) for r in z]
    terms = [math.exp(-t * sum((a - b) ** 2 for a, b in zip(u[i], u[j]))) for i, j in itertools.combinations(range(len(u)), 2)]
    return math.log(mean(terms))


def ref_alignment(z1, z2, alpha=2.0):
    return mean([math.sqrt(sum((a - b) ** 2 for a, b in zip(unit(x), unit(y)))) ** alpha for x, y in zip(z1, z2)])


REFERENCES = {
    "alignment": lambda z1, z2: ref_alignment(z1.tolist(), z2.tolist()),
    "uniformity": lambda z: ref_uniformity(z.tolist()),
}


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(3)
    z1 = torch.randn(7, 5, generator=g, dtype=torch.float64)
    z2 = z1 + 0.5 * torch.randn(7, 5, generator=g, dtype=torch.float64)
    return z1, z2


def test_alignment_and_uniformity_match_reference(pair):
    z1, z2 = pair
    assert float(RF.alignment(z1, z2)) == pytest.approx(ref_alignment(z1.tolist(), z2.tolist()), rel=1e-10)
    assert float(RF.alignment(z1, z2, alpha=1.0)) == pytest.approx(ref_alignment(z1.tolist(), z2.tolist(), 1.0), rel=1e-10)
    assert float(RF.uniformity(z1)) == pytest.approx(ref_uniformity(z1.tolist()), rel=1e-10)
    assert float(RF.uniformity(z1, t=0.5)) == pytest.approx(ref_uniformity(z1.tolist(), 0.5), rel=1e-10)


def test_bad_hyperparameters():
    # the functional form names the function it was called as; the class its own name
    with pytest.raises(RegularizerInputError, match="(?i)uniformity expects t to be a positive number"):
        RF.uniformity(torch.randn(4, 3), t=0.0)
    with pytest.raises(RegularizerInputError, match="Uniformity expects t to be a positive number"):
        reglab.Uniformity(t=0.0)
    with pytest.raises(RegularizerInputError, match="Alignment expects alpha to be a positive number"):
        reglab.Alignment(alpha=0.0)


_small = st.integers(min_value=0, max_value=10_000)


@settings(max_examples=15, deadline=None)
@given(seed=_small, scale=st.floats(0.1, 10.0))
def test_scale_invariance(seed, scale):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(8, 5, generator=g, dtype=torch.float64)
    z2 = z + 0.2 * torch.randn(8, 5, generator=g, dtype=torch.float64)
    # normalized losses do not see a global scale
    assert float(RF.uniformity(scale * z)) == pytest.approx(float(RF.uniformity(z)), rel=1e-7, abs=1e-9)
    assert float(RF.alignment(scale * z, scale * z2)) == pytest.approx(float(RF.alignment(z, z2)), rel=1e-7)


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS)
def test_rotation_invariance(seed):
    assert_rotation_invariant(RF.uniformity, seed)
