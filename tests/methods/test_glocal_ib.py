"""Glocal-IB global alignment (cosine and token InfoNCE), against loops."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._reference import Reference


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def ref_cosine(z, t):
    """1 − mean over samples of the cosine of each sample's rows (2-D inputs: dim 1 = features)."""
    return 1.0 - sum(_cos(a, b) for a, b in zip(z, t)) / len(z)


def ref_contrastive(z, t):
    """Per sample b and complete token j: −log softmax_i ⟨ẑ_i, ẑ*_j⟩ at i = j; mean over b and j."""
    total, count = 0.0, 0
    for zb, tb in zip(z, t):
        for j in range(len(tb)):
            logits = [_cos(zb[i], tb[j]) for i in range(len(zb))]
            total += -(logits[j] - math.log(sum(math.exp(v) for v in logits)))
            count += 1
    return total / count


REFERENCES = {"glocal_alignment": Reference(lambda z, t: ref_cosine(z.tolist(), t.tolist()),
                                             inputs=lambda g: (torch.randn(6, 4, generator=g, dtype=torch.float64),
                                                               torch.randn(6, 4, generator=g, dtype=torch.float64)))}


def test_contrastive_and_cosine_along_dim1_for_tokens():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    t = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    assert float(RF.glocal_alignment(z, t, loss="contrastive")) == pytest.approx(ref_contrastive(z.tolist(), t.tolist()), rel=1e-12)
    # cosine along dim 1 (the token axis for (B, T, D)), as nn.CosineSimilarity(dim=1) does
    expected = 1.0 - sum(_cos(z[b, :, d].tolist(), t[b, :, d].tolist()) for b in range(2) for d in range(4)) / 8
    assert float(RF.glocal_alignment(z, t)) == pytest.approx(expected, rel=1e-12)
    assert reglab.create("glocal_alignment").weight == 0.5


def test_target_is_detached_and_gradcheck():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    RF.glocal_alignment(z, t, loss="contrastive").backward()
    assert t.grad is None and z.grad is not None
    assert torch.autograd.gradcheck(lambda a: RF.glocal_alignment(a, t.detach(), loss="contrastive"), (z.detach().requires_grad_(),))
    assert torch.autograd.gradcheck(lambda a: RF.glocal_alignment(a, t.detach()), (z.detach().requires_grad_(),))


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="GlocalAlignment expects masked and complete embeddings of the same shape"):
        RF.glocal_alignment(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(RegularizerInputError, match="GlocalAlignment with loss='contrastive' expects"):
        RF.glocal_alignment(torch.randn(4, 3), torch.randn(4, 3), loss="contrastive")
    with pytest.raises(RegularizerInputError, match="GlocalAlignment expects loss"):
        reglab.GlocalAlignment(loss="mse")
