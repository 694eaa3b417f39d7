"""Prediction entropy (classic; Grandvalet & Bengio, 2004 for minimization): references, sign, invariances."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._naive import mean_entropy

#: direction="min" (the default): the penalty is +H
REFERENCES = {"entropy": mean_entropy}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_entropy_reference(dtype):
    z = torch.randn(6, 5, dtype=dtype) * 2
    h = mean_entropy(z.double())
    assert float(RF.entropy(z)) == pytest.approx(h, rel=1e-5)
    assert RF.entropy(z).dtype == dtype
    assert float(reglab.Entropy(0.5, direction="min")(z)) == pytest.approx(0.5 * h, rel=1e-5)
    assert float(reglab.Entropy(0.5, direction="max")(z)) == pytest.approx(-0.5 * h, rel=1e-5)


def test_entropy_bf16():
    z = torch.randn(4, 6)
    assert float(RF.entropy(z.bfloat16())) == pytest.approx(float(RF.entropy(z)), rel=3e-2)


def test_entropy_bounds_and_gradcheck():
    assert float(RF.entropy(torch.zeros(3, 7))) == pytest.approx(math.log(7))
    z = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(RF.entropy, (z,))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.floats(-5, 5))
def test_entropy_invariances(seed, shift):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(3, 5, generator=g, dtype=torch.float64)
    perm = torch.randperm(5, generator=g)
    h = float(RF.entropy(z))
    assert float(RF.entropy(z[:, perm])) == pytest.approx(h, abs=1e-9)
    assert float(RF.entropy(z + shift)) == pytest.approx(h, abs=1e-9)


def test_entropy_direction_is_validated():
    with pytest.raises(RegularizerInputError, match="direction"):
        reglab.Entropy(direction="up")
