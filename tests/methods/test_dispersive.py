"""Dispersive loss (Wang & He, 2025), InfoNCE-L2 variant, against a loop over all ordered pairs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings

import reglab
from reglab import functional as RF

from ._invariance import SEEDS, assert_rotation_invariant
from reglab.core.errors import RegularizerInputError

from ._naive import mean


def ref_dispersive(z, tau=1.0):
    n, d = len(z), len(z[0])
    terms = [math.exp(-sum((a - b) ** 2 for a, b in zip(z[i], z[j])) / (tau * d)) for i in range(n) for j in range(n)]
    return math.log(mean(terms))


REFERENCES = {"dispersive": lambda z: ref_dispersive(z.tolist())}


def test_dispersive_matches_reference():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(7, 5, generator=g, dtype=torch.float64)
    assert float(RF.dispersive(z)) == pytest.approx(ref_dispersive(z.tolist()), rel=1e-10)
    assert float(RF.dispersive(z, tau=0.5)) == pytest.approx(ref_dispersive(z.tolist(), 0.5), rel=1e-10)
    # images: flattened per sample
    img = torch.randn(4, 2, 3, 3, dtype=torch.float64)
    assert float(RF.dispersive(img)) == pytest.approx(ref_dispersive(img.reshape(4, -1).tolist()), rel=1e-10)


def test_bad_hyperparameters():
    # the functional form names the function it was called as; the class its own name
    with pytest.raises(RegularizerInputError, match="(?i)dispersive expects tau to be a positive number"):
        RF.dispersive(torch.randn(4, 3), tau=-1.0)
    with pytest.raises(RegularizerInputError, match="Dispersive expects tau to be a positive number"):
        reglab.Dispersive(tau=-1.0)


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS)
def test_rotation_invariance(seed):
    assert_rotation_invariant(RF.dispersive, seed)


def test_default_weight_is_the_papers_lambda():
    """λ = 0.5 (raywang4/DispLoss README, the JAX runs behind the paper)."""
    reg = reglab.create("dispersive")
    assert reg.weight == 0.5
    z = torch.randn(6, 4, dtype=torch.float64)
    assert float(reg(z)) == pytest.approx(0.5 * ref_dispersive(z.tolist()), rel=1e-10)
