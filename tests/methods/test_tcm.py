"""Threshold-Consistent Margin (Zhang et al., 2023), against a loop reference of the
pytorch-metric-learning ThresholdConsistentMarginLoss (all pairs, no miner)."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._reference import Reference


def _cos(a, b):
    dot = sum(float(x) * float(y) for x, y in zip(a, b))
    na = math.sqrt(sum(float(x) ** 2 for x in a))
    nb = math.sqrt(sum(float(y) ** 2 for y in b))
    return dot / (na * nb)


def ref_tcm(z, labels, mp=0.9, mn=0.5, lp=1.0, ln=1.0):
    pos, neg = [], []
    n = len(labels)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            s = _cos(z[i], z[j])
            if int(labels[i]) == int(labels[j]):
                if s <= mp:
                    pos.append(mp - s)
            elif s >= mn:
                neg.append(s - mn)
    p = sum(pos) / len(pos) if pos else 0.0
    q = sum(neg) / len(neg) if neg else 0.0
    return lp * p + ln * q


def _inputs(g):
    z = torch.randn(12, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (12,), generator=g)
    return z, labels


REFERENCES = {"tcm": Reference(ref_tcm, inputs=_inputs)}


def test_hyperparameters_and_sparse_selection():
    g = torch.Generator().manual_seed(3)
    z, labels = _inputs(g)
    got = RF.tcm(z, labels, margin_pos=0.3, margin_neg=-0.2, lambda_pos=2.0, lambda_neg=0.5)
    assert float(got) == pytest.approx(ref_tcm(z, labels, 0.3, -0.2, 2.0, 0.5), rel=1e-10)
    # positives all above m+ and negatives all below m-: nothing selected, the penalty is exactly 0
    z = torch.tensor([[1.0, 0.0], [0.99, 0.05], [-1.0, 0.0], [-0.98, -0.1]], dtype=torch.float64)
    assert float(RF.tcm(z, torch.tensor([0, 0, 1, 1]))) == 0.0
    # one class only: no negative pair; all distinct: no positive pair
    assert float(RF.tcm(z, torch.tensor([0, 1, 2, 3]))) == pytest.approx(ref_tcm(z, [0, 1, 2, 3]))
    assert float(RF.tcm(z, torch.tensor([0, 0, 0, 0]))) == pytest.approx(ref_tcm(z, [0, 0, 0, 0]))


def test_gradcheck_and_direction():
    g = torch.Generator().manual_seed(4)
    z, labels = _inputs(g)
    z.requires_grad_()
    assert torch.autograd.gradcheck(lambda a: RF.tcm(a, labels), (z,))
    # a gradient step on TCM alone raises the hard positives' similarity and lowers the hard negatives'
    z = z.detach().clone().requires_grad_()
    before = float(RF.tcm(z, labels))
    RF.tcm(z, labels).backward()
    after = float(RF.tcm(z.detach() - 0.05 * z.grad, labels))
    assert after < before


def test_bad_input():
    tcm = reglab.create("tcm")
    z = torch.randn(6, 3)
    with pytest.raises(RegularizerInputError, match="TCM.*labels"):
        tcm(z, torch.zeros(6))
    with pytest.raises(RegularizerInputError, match="TCM.*one label per row"):
        tcm(z, torch.zeros(5, dtype=torch.long))
    with pytest.raises(RegularizerInputError, match="TCM.*margin_pos"):
        reglab.create("tcm", margin_pos=1.5)
    with pytest.raises(RegularizerInputError, match="TCM.*lambda_neg"):
        reglab.create("tcm", lambda_neg=-1.0)
    with pytest.raises(RegularizerInputError, match="TCM.*at least 2"):
        tcm(torch.randn(1, 3), torch.zeros(1, dtype=torch.long))
