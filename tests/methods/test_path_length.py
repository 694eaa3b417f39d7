"""Step-wise variation / path-length regularization (Smooth Diffusion), against a per-sample loop."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._reference import Reference

W = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.7, -1.0]], dtype=torch.float64)


def _inputs(g):
    x = torch.randn(5, 3, generator=g, dtype=torch.float64).requires_grad_()
    return (torch.tanh(x @ W.T), x)


def ref_step(out_fn, x, y, prev=0.0, decay=0.01):
    """step_regularize (Smooth-Diffusion train_smooth_diffusion.py L306-321) sample by sample, with the
    random directions y given; each sample's VJP is taken separately."""
    lengths = []
    for b in range(x.shape[0]):
        xb = x[b : b + 1].detach().clone().requires_grad_()
        (g,) = torch.autograd.grad((out_fn(xb) * y[b : b + 1]).sum(), xb)
        lengths.append(math.sqrt(float(g.pow(2).sum())))
    a = prev + decay * (sum(lengths) / len(lengths) - prev)
    return sum((v - a) ** 2 for v in lengths) / len(lengths), a


def _ref_default(out, x):
    y = torch.randn(out.shape).to(out.dtype) / math.sqrt(out.shape[1])  # the same global-RNG draw (float32)
    return ref_step(lambda t: torch.tanh(t @ W.T), x, y)[0]


REFERENCES = {"path_length": Reference(_ref_default, inputs=_inputs)}


def test_step_matches_loops_with_scale_and_state():
    g = torch.Generator().manual_seed(2)
    out, x = _inputs(g)
    scale = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.1], dtype=torch.float64)
    step = RF.path_length(out, x, 0.3, scale, torch.Generator().manual_seed(9), decay=0.1)
    y = torch.randn(out.shape, generator=torch.Generator().manual_seed(9)).double() / math.sqrt(2) * scale[:, None]
    pen, a = ref_step(lambda t: torch.tanh(t @ W.T), x, y, prev=0.3, decay=0.1)
    assert float(step.penalty) == pytest.approx(pen, rel=1e-10)
    assert float(step.mean) == pytest.approx(a, rel=1e-12)


def test_buffer_advances_in_training_only_and_round_trips():
    reg = reglab.create("path_length")
    assert reg.weight == 1.0 and float(reg.mean) == 0.0
    out, x = _inputs(torch.Generator().manual_seed(0))
    reg(out, x, generator=torch.Generator().manual_seed(1))
    first = float(reg.mean)
    assert first > 0.0
    reg.eval()
    reg(out, x, generator=torch.Generator().manual_seed(1))
    assert float(reg.mean) == first
    again = reglab.from_config(reg.get_config())
    again.load_state_dict(reg.state_dict())
    assert float(again.mean) == first


def test_gradient_flows_to_the_map():
    lin = torch.nn.Linear(3, 4).double()
    x = torch.randn(16, 3, dtype=torch.float64, requires_grad=True)
    RF.path_length(torch.tanh(lin(x)), x, 1.0).penalty.backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_bad_input():
    out, x = _inputs(torch.Generator().manual_seed(3))
    with pytest.raises(RegularizerInputError, match="PathLength needs inputs that require grad"):
        RF.path_length(out, x.detach())
    with pytest.raises(RegularizerInputError, match="PathLength expects output and inputs with the same batch size"):
        RF.path_length(out[:4], x)
    with pytest.raises(RegularizerInputError, match="PathLength expects scale to be a scalar or one value per sample"):
        RF.path_length(out, x, None, torch.ones(3))
    with pytest.raises(RegularizerInputError, match="PathLength expects decay"):
        reglab.PathLength(decay=2.0)
