"""LogitClip (Wei et al., 2023): z·min(1, δ/‖z‖_p) per row."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError


def test_logit_clip_reference():
    z = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    out = reglab.LogitClip(delta=1.0)(z)
    expected = torch.tensor([[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]])
    assert torch.allclose(out, expected)
    out1 = RF.logit_clip(torch.tensor([[3.0, -4.0]]), delta=2.0, p=1.0)
    assert torch.allclose(out1, torch.tensor([[6 / 7, -8 / 7]]))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.1, 10.0))
def test_logit_clip_bounds_norm_and_keeps_argmax(seed, delta):
    z = torch.randn(6, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 5
    out = RF.logit_clip(z, delta)
    assert (out.norm(dim=1) <= delta * (1 + 1e-9)).all()
    assert torch.equal(out.argmax(1), z.argmax(1))
    small = z.norm(dim=1) <= delta
    assert torch.allclose(out[small], z[small])


def test_logit_clip_gradcheck_and_bad_input():
    z = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: RF.logit_clip(a, 0.7), (z,))
    with pytest.raises(RegularizerInputError, match="LogitClip"):
        reglab.LogitClip()(torch.tensor([1.0, float("inf")])[None])
    with pytest.raises(RegularizerInputError, match="delta"):
        reglab.LogitClip(delta=0)
