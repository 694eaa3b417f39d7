"""Shared fixtures for the weight-penalty test files: shapes, random weights, prox helpers.

No references live here (each method's test file holds its own); only inputs
and the plain soft threshold ``sign(x)·max(|x| − t, 0)`` the prox checks use.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import reglab

SHAPES = [(4, 3), (3, 2, 2, 2), (3, 2, 3), (6, 2)]  # Linear, Conv2d, Conv1d, tall Linear
IDS = ["linear", "conv2d", "conv1d", "tall"]
#: Repeated shapes exercise the stacked (accelerator) path, singletons the unstacked one.
LIST_SHAPES = SHAPES + SHAPES[:2] + [(4, 3)]
#: Shapes for the proximal-map checks.
PROX_SHAPES = [(5, 4), (4, 3, 2, 2), (4, 3, 3)]
PROX_IDS = ["linear", "conv2d", "conv1d"]
#: Slack on subgradient inequalities.
TOL = 1e-9


def rand(shape, dtype=torch.float64, away_from_zero=False):
    w = torch.randn(shape, dtype=dtype)
    if away_from_zero:
        w = torch.sign(w) * (0.3 + w.abs())
    return w


def rows_np(w):
    """The weight as the (out, in·k…) float64 numpy matrix."""
    return w.detach().double().reshape(w.shape[0], -1).numpy()


def check_list_matches_references(reg, ref):
    """``reg.penalty(list)`` equals the sum of the reference over the tensors, and its
    gradients equal those of the per-tensor penalties."""
    ts = [rand(s) for s in LIST_SHAPES]
    expected = sum(ref(t) for t in ts)
    assert reg.penalty(ts).item() == pytest.approx(expected, rel=1e-10)
    leaves = [t.clone().requires_grad_(True) for t in ts]
    reg.penalty(leaves).backward()
    singles = [t.clone().requires_grad_(True) for t in ts]
    sum(reg.penalty(t) for t in singles).backward()
    for a, b in zip(leaves, singles):
        torch.testing.assert_close(a.grad, b.grad)


def prox(reg, w, t):
    """``prox_{t·R}(w)`` out of place."""
    u = w.clone()
    reg.prox_(u, t)
    return u


def groups_of(x, groups):
    """The groups of ``x`` as flat vectors: rows (``"out"``) or dim-1 slices (``"in"``)."""
    if groups == "out":
        return [x[i].reshape(-1) for i in range(x.shape[0])]
    return [x[:, j].reshape(-1) for j in range(x.shape[1])]


def soft(x, t):
    return torch.sign(x) * (x.abs() - t).clamp_min(0)


BAD_WEIGHTS = [
    torch.tensor([[1.0, float("nan")], [0.0, 1.0]]),
    torch.tensor([[1.0, float("inf")], [0.0, 1.0]]),
    torch.ones(2, 2, dtype=torch.int64),
    torch.ones(0, 2),
    [[1.0, 2.0]],
]


def bad_weights(matrix: bool) -> list:
    """Bad weights every penalty must reject (and a 1-D tensor for the matrix penalties)."""
    return BAD_WEIGHTS + ([torch.ones(2)] if matrix else [])


def check_power_iteration_resumes_standalone(name: str) -> None:
    """A fresh instance loading a saved state_dict continues the power iteration exactly."""
    w = [rand((6, 4), dtype=torch.float32), rand((5, 2, 3), dtype=torch.float32)]
    reg = reglab.create(name)
    for _ in range(3):
        reg.penalty(w)
    state = copy.deepcopy(reg.state_dict())  # as if saved to disk: state_dict aliases the buffers
    assert any(k.startswith("u__") for k in state)
    fresh = reglab.create(name)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.penalty(w), reg.penalty(w), rtol=0, atol=0)


def check_state_resumes_through_attach(name: str) -> None:
    """Model + RegularizerSet state_dicts loaded into a fresh run give the same penalty."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    regs = reglab.attach(model, [reglab.create(name)])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    for _ in range(2):
        regs.penalty()
    saved_model, saved_regs = copy.deepcopy(model.state_dict()), copy.deepcopy(regs.state_dict())
    assert any("0__weight" in k for k in saved_regs)
    expected = regs.penalty()

    torch.manual_seed(2)  # a fresh run: different init and different random vectors
    model2 = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    regs2 = reglab.attach(model2, [reglab.create(name)])
    model2.load_state_dict(saved_model)
    regs2.load_state_dict(saved_regs)
    torch.testing.assert_close(regs2.penalty(), expected, rtol=0, atol=0)
