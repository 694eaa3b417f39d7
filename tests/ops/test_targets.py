"""Shared math on predicted distributions (reglab.ops.targets)."""

from __future__ import annotations

import math

import pytest
import torch

from reglab import functional as RF
from reglab.core.errors import RegularizerInputError
from reglab.ops.targets import mean_entropy

from ..methods._naive import mean_entropy as ref_mean_entropy
from ..methods._naive import softmax


def test_soft_cross_entropy_reference():
    z = torch.randn(3, 4, dtype=torch.float64)
    t = torch.softmax(torch.randn(3, 4, dtype=torch.float64), 1)
    ref = -sum(
        sum(tt * math.log(p) for tt, p in zip(trow, softmax(zrow))) for trow, zrow in zip(t.tolist(), z.tolist())
    ) / 3
    assert float(RF.soft_cross_entropy(z, t)) == pytest.approx(ref, rel=1e-9)
    with pytest.raises(RegularizerInputError, match="shape"):
        RF.soft_cross_entropy(z, t[:, :3])


def test_mean_entropy_reference():
    z = 3 * torch.randn(5, 4, dtype=torch.float64)
    assert float(mean_entropy(z)) == pytest.approx(ref_mean_entropy(z), rel=1e-12)
