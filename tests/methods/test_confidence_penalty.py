"""Confidence penalty (Pereyra et al., 2017): −H of the softmax."""

from __future__ import annotations

import pytest
import torch

import reglab
from reglab import functional as RF

from ._naive import mean_entropy

REFERENCES = {"confidence_penalty": lambda z: -mean_entropy(z)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_confidence_penalty_reference(dtype):
    z = torch.randn(6, 5, dtype=dtype) * 2
    h = mean_entropy(z.double())
    assert float(RF.confidence_penalty(z)) == pytest.approx(-h, rel=1e-5)
    assert float(reglab.ConfidencePenalty(0.5)(z)) == pytest.approx(-0.5 * h, rel=1e-5)


def test_confidence_penalty_gradcheck():
    z = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(RF.confidence_penalty, (z,))
