"""The generic proximal machinery: soft thresholds, learning rates and the attach/regs.step hook.

Method-specific closed forms and optimality conditions live with each
method (tests/methods/test_classic.py, test_group_lasso.py, ...).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import reglab
from reglab.core.attach import apply_prox, learning_rates
from reglab.ops.prox import group_soft_threshold, soft_threshold

TOL = 1e-9


def prox(reg, w, t):
    u = w.clone()
    reg.prox_(u, t)
    return u


# ------------------------------------------------------------ soft thresholds
@pytest.mark.parametrize("t", [0.0, 0.3, 5.0])
def test_soft_threshold_closed_form(t):
    w = torch.randn(6, 5, dtype=torch.float64)
    expected = torch.where(w > t, w - t, torch.where(w < -t, w + t, torch.zeros_like(w)))
    torch.testing.assert_close(soft_threshold(w, t), expected)
    torch.testing.assert_close(soft_threshold(w, torch.tensor(t, dtype=torch.float64)), expected)


@pytest.mark.parametrize("t", [0.05, 0.5, 2.0])
def test_soft_threshold_is_the_l1_prox(t):
    """u = prox_{t‖·‖₁}(w) iff (w − u)/t ∈ ∂‖u‖₁."""
    w = 2 * torch.randn(7, 3, dtype=torch.float64)
    u = soft_threshold(w, t)
    g = (w - u) / t
    nz = u != 0
    torch.testing.assert_close(g[nz], torch.sign(u[nz]))
    assert (g[~nz].abs() <= 1 + TOL).all()


@pytest.mark.parametrize("t", [0.1, 1.0, 3.0])
def test_group_soft_threshold_scalar(t):
    rows = torch.randn(6, 4, dtype=torch.float64)
    out = group_soft_threshold(rows, t)
    for r, o in zip(rows, out):
        torch.testing.assert_close(o, r * max(0.0, 1 - t / r.norm().item()))
        g = (r - o) / t  # optimality: g = o/‖o‖ if o ≠ 0, ‖g‖ ≤ 1 otherwise
        if o.norm() > 0:
            torch.testing.assert_close(g, o / o.norm())
        else:
            assert g.norm() <= 1 + TOL


def test_group_soft_threshold_per_row_and_zero_rows():
    rows = torch.randn(5, 3, dtype=torch.float64)
    rows[2] = 0.0
    t = torch.tensor([0.1, 0.5, 0.2, 10.0, 0.0], dtype=torch.float64)
    out = group_soft_threshold(rows, t)
    assert torch.isfinite(out).all()
    for r, o, ti in zip(rows, out, t.tolist()):
        norm = r.norm().item()
        expected = r * max(0.0, 1 - ti / norm) if norm > 0 else torch.zeros_like(r)
        torch.testing.assert_close(o, expected)
    assert out[3].abs().max() == 0  # a threshold above the norm zeroes the row
    torch.testing.assert_close(out[4], rows[4])  # threshold 0 is the identity


def test_group_soft_threshold_sqrt_size_scaling_matches_group_lasso():
    """With threshold λ·√p per row, the row prox is GroupLasso's prox on 'out' groups."""
    w = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    rows = w.reshape(4, -1)
    expected = group_soft_threshold(rows, 0.2 * math.sqrt(rows.shape[1])).reshape(w.shape)
    torch.testing.assert_close(prox(reglab.GroupLasso(), w, 0.2), expected)


# ----------------------------------------------------------- learning rates
def test_learning_rates_per_param_group():
    a, b, c = (nn.Parameter(torch.zeros(2)) for _ in range(3))
    opt = torch.optim.SGD([{"params": [a], "lr": 0.5}, {"params": [b, c], "lr": torch.tensor(2.0)}], lr=0.1)
    lrs = learning_rates(opt)
    assert lrs == {id(a): 0.5, id(b): 2.0, id(c): 2.0}
    assert all(type(v) is float for v in lrs.values())


def test_apply_prox_step_is_lr_times_weight():
    a, b = nn.Parameter(torch.randn(4, 3, dtype=torch.float64)), nn.Parameter(torch.randn(5, dtype=torch.float64))
    opt = torch.optim.SGD([{"params": [a], "lr": 0.5}, {"params": [b], "lr": 0.25}])
    before = a.detach().clone(), b.detach().clone()
    apply_prox(reglab.L1(0.4), [("a", a), ("b", b)], opt)
    torch.testing.assert_close(a.detach(), soft_threshold(before[0], 0.5 * 0.4))
    torch.testing.assert_close(b.detach(), soft_threshold(before[1], 0.25 * 0.4))


def test_apply_prox_skips_zero_weight_and_rejects_params_outside_the_optimizer():
    a = nn.Parameter(torch.randn(4, 3))
    before = a.detach().clone()
    opt = torch.optim.SGD([a], lr=1.0)
    apply_prox(reglab.L1(0.0), [("a", a)], opt)
    torch.testing.assert_close(a.detach(), before, rtol=0, atol=0)
    other = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="does not update"):
        apply_prox(reglab.L1(0.1), [("a", a)], other)


# ------------------------------------------------------ attach + regs.step
def test_prox_mode_uses_lr_times_weight_per_param_group():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.Flatten(), nn.Linear(6, 2))
    lam = 0.05
    regs = reglab.attach(model, [reglab.GroupLasso(lam).on(modules=nn.Conv2d, mode="prox")])
    lrs = (0.5, 2.0)
    opt = torch.optim.SGD(
        [{"params": model[0].parameters(), "lr": lrs[0]}, {"params": list(model[2].parameters()) + list(model[4].parameters()), "lr": lrs[1]}]
    )
    assert regs.penalty().item() == 0.0  # prox mode leaves the loss alone
    before = [model[0].weight.detach().clone(), model[2].weight.detach().clone()]
    fc_before = model[4].weight.detach().clone()
    opt.zero_grad()
    opt.step()  # no gradients: the optimizer leaves the weights, the prox does the rest
    regs.step(opt)
    for w0, conv, lr in zip(before, (model[0], model[2]), lrs):
        expected = prox(reglab.GroupLasso(), w0, lr * lam)
        torch.testing.assert_close(conv.weight.detach(), expected)
    torch.testing.assert_close(model[4].weight.detach(), fc_before)  # not selected
    assert model[2].weight.detach().flatten(1).norm(dim=1).min() >= 0


def test_prox_mode_zeroes_filters_over_steps():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3))
    regs = reglab.attach(model, reglab.GroupLasso(1.0).on(modules=nn.Conv2d, mode="prox"))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(5):
        opt.step()
        regs.step(opt)
    assert (model[0].weight.detach().flatten(1).norm(dim=1) == 0).all()


def test_prox_mode_rejects_regularizers_without_prox():
    with pytest.raises(ValueError, match="proximal"):
        reglab.SoftOrthogonality().on(mode="prox")
