"""REPA (Yu et al. 2025): negative cosine between projected hidden states and frozen target features."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError


def ref_repa(z, t):
    """mean over samples and tokens of −cos (sihyun-yu/REPA loss.py L78-90), plain loops over (B, N, D) lists."""
    vals = []
    for zb, tb in zip(z, t):
        per = []
        for a, b in zip(zb, tb):
            na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
            per.append(-sum(x * y for x, y in zip(a, b)) / (na * nb))
        vals.append(sum(per) / len(per))
    return sum(vals) / len(vals)


REFERENCES = {"repa": lambda z, t: ref_repa([[r] for r in z.tolist()], [[r] for r in t.tolist()])}


def test_patches_match_loops():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    t = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    assert float(RF.repa(z, t)) == pytest.approx(ref_repa(z.tolist(), t.tolist()), rel=1e-12)
    assert float(reglab.create("repa")(z, t)) == pytest.approx(0.5 * ref_repa(z.tolist(), t.tolist()), rel=1e-12)


def test_range_and_scale_invariance():
    z = torch.randn(4, 5, 6, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 5, 6, dtype=torch.float64, requires_grad=True)
    assert float(RF.repa(t.detach(), t.detach())) == pytest.approx(-1.0)
    assert float(RF.repa(-t.detach(), t.detach())) == pytest.approx(1.0)
    assert float(RF.repa(3.0 * z.detach(), t.detach())) == pytest.approx(float(RF.repa(z.detach(), t.detach())))


def test_gradcheck_on_patches():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: RF.repa(a, t), (z,))


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="REPA expects projected features and target features of the same shape"):
        RF.repa(torch.randn(2, 3, 4), torch.randn(2, 3, 5))
    with pytest.raises(RegularizerInputError, match="REPA"):
        RF.repa(torch.randn(4), torch.randn(4))
    with pytest.raises(RegularizerInputError, match="REPA"):
        RF.repa(torch.randn(2, 4), torch.full((2, 4), float("nan")))
