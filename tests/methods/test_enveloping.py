"""Enveloping and homogeneity losses (Dong et al. 2025), against numpy transcriptions of the official code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._reference import Reference


def _unit(a):
    a = np.asarray(a, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def ref_enveloping(trace, points):
    """uniformity_loss (agedb-dir/dfr.py L63-88): for each point, the best trace cosine; 1 − their mean."""
    cos = _unit(trace) @ _unit(points).T
    return 1.0 - cos.max(axis=0).mean()


def ref_homogeneity(trace, alpha=-1.0, beta=0.1):
    """smooth_loss (L90-103), with an explicit loop over consecutive pairs."""
    t = _unit(trace)
    steps = [float(t[i + 1] @ t[i]) for i in range(len(t) - 1)]
    m = sum(steps) / len(steps)
    var = sum((s - m) ** 2 for s in steps) / (len(steps) - 1)
    return alpha * sum(steps) + beta * var


def _env_inputs(g):
    return (torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(40, 3, generator=g, dtype=torch.float64))


REFERENCES = {
    "enveloping": Reference(lambda t, p: ref_enveloping(t.numpy(), p.numpy()), inputs=_env_inputs),
    "homogeneity": lambda t: ref_homogeneity(t.numpy()),
}


def test_values_weights_and_extremes():
    g = torch.Generator().manual_seed(0)
    t, p = _env_inputs(g)
    assert float(RF.homogeneity(t, alpha=-2.0, beta=1.0)) == pytest.approx(ref_homogeneity(t.numpy(), -2.0, 1.0), rel=1e-12)
    assert reglab.create("enveloping").weight == 100.0 and reglab.create("homogeneity").weight == 0.01
    # a trace through every point envelops it perfectly
    assert float(RF.enveloping(p, p)) == pytest.approx(0.0, abs=1e-12)
    # evenly spaced steps on a great circle: no variance term, the sum of equal cosines
    ang = torch.linspace(0, 3.0, 7, dtype=torch.float64)
    arc = torch.stack([ang.cos(), ang.sin(), torch.zeros_like(ang)], dim=1)
    assert float(RF.homogeneity(arc)) == pytest.approx(-6 * np.cos(0.5), rel=1e-12)


def test_fixed_points_buffer_round_trips():
    torch.manual_seed(0)
    reg = reglab.create("enveloping", num_points=50)
    t = torch.randn(5, 3, dtype=torch.float64)
    a = reg(t)
    pts = reg.points.clone()
    assert pts.shape == (50, 3) and torch.allclose(pts.norm(dim=1), torch.ones(50))
    assert float(reg(t)) == float(a)  # the same points every call
    again = reglab.from_config(reg.get_config())
    again.load_state_dict(reg.state_dict())
    assert float(again(t)) == pytest.approx(float(a))


def test_gradcheck():
    g = torch.Generator().manual_seed(1)
    t = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: RF.homogeneity(a), (t,))
    p = torch.randn(30, 3, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: RF.enveloping(a, p), (t,))


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="Enveloping expects points with the trace's dimension 3"):
        RF.enveloping(torch.randn(4, 3), torch.randn(10, 2))
    with pytest.raises(RegularizerInputError, match="Homogeneity needs a batch of at least 3"):
        RF.homogeneity(torch.randn(2, 3))
    with pytest.raises(RegularizerInputError, match="Enveloping expects num_points"):
        reglab.Enveloping(num_points=0)
