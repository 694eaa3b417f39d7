"""OReX's input-gradient hinge, against per-point finite-free loops of analytic gradients."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._reference import Reference

W = torch.tensor([[3.0, -1.0, 2.0]], dtype=torch.float64)


def _inputs(g):
    x = (2 * torch.randn(6, 3, generator=g, dtype=torch.float64)).requires_grad_()
    return (x, torch.sin(x @ W.T).squeeze(1) * 40.0)


def ref_hinge(x, alpha=100.0):
    """f(x) = 40·sin(w·x): ∇f = 40·cos(w·x)·w; the hinge of each point's norm, averaged."""
    total = 0.0
    w = W[0].tolist()
    for row in x.tolist():
        s = sum(a * b for a, b in zip(w, row))
        norm = abs(40.0 * math.cos(s)) * math.sqrt(sum(a * a for a in w))
        total += max(norm - alpha, 0.0)
    return total / len(x.tolist())


REFERENCES = {"gradient_hinge": Reference(lambda x, out: ref_hinge(x.detach()), inputs=_inputs, build={"alpha": 100.0})}


def test_values_thresholds_and_weight():
    x, out = _inputs(torch.Generator().manual_seed(0))
    for alpha in (0.0, 50.0, 100.0, 1000.0):
        assert float(RF.gradient_hinge(x, out, alpha=alpha)) == pytest.approx(ref_hinge(x.detach(), alpha), rel=1e-12, abs=1e-14)
    assert reglab.create("gradient_hinge").weight == 1e-4


def test_gradient_reaches_the_field():
    lin = torch.nn.Linear(3, 1).double()
    with torch.no_grad():
        lin.weight.mul_(500.0)
    x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    RF.gradient_hinge(x, lin(x)).backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_bad_input():
    x, out = _inputs(torch.Generator().manual_seed(1))
    with pytest.raises(RegularizerInputError, match="GradientHinge needs inputs that require grad"):
        RF.gradient_hinge(x.detach(), out.detach())
    with pytest.raises(RegularizerInputError, match="GradientHinge expects alpha"):
        reglab.GradientHinge(alpha=-1.0)
