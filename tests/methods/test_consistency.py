"""Two-view consistency: symmetric KL between the softmaxes, by loops."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._naive import softmax


def sym_kl_ref(a, b):
    total = 0.0
    for ra, rb in zip(a.tolist(), b.tolist()):
        pa, pb = softmax(ra), softmax(rb)
        total += sum(x * math.log(x / y) for x, y in zip(pa, pb)) + sum(y * math.log(y / x) for x, y in zip(pa, pb))
    return total / a.shape[0]


REFERENCES = {"consistency": sym_kl_ref}


def test_consistency_reference_symmetry_zero():
    a, b = torch.randn(5, 4), torch.randn(5, 4)
    assert float(RF.consistency(a, b)) == pytest.approx(sym_kl_ref(a, b), rel=1e-5)
    assert float(RF.consistency(a, b)) == pytest.approx(float(RF.consistency(b, a)), rel=1e-6)
    assert float(RF.consistency(a, a)) == pytest.approx(0.0, abs=1e-7)
    assert float(reglab.Consistency(2.0)(a, b)) == pytest.approx(2 * sym_kl_ref(a, b), rel=1e-5)
    aa = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    bb = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(RF.consistency, (aa, bb))


def test_consistency_bad_inputs():
    with pytest.raises(RegularizerInputError, match="Consistency.*same shape"):
        RF.consistency(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(RegularizerInputError, match="Consistency.*NaN"):
        RF.consistency(torch.randn(3, 4), torch.full((3, 4), float("nan")))
    with pytest.raises(RegularizerInputError, match="Consistency.*2 classes"):
        RF.consistency(torch.randn(3, 1), torch.randn(3, 1))
