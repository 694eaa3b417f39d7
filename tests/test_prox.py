"""Proximal operators: closed forms, optimality conditions, and the attach/step hook."""

import math

import pytest
import torch
from torch import nn

import reglab

SHAPES = [(5, 4), (4, 3, 2, 2), (4, 3, 3)]
IDS = ["linear", "conv2d", "conv1d"]
TOL = 1e-9


def prox(reg, w, t):
    u = w.clone()
    reg.prox_(u, t)
    return u


def groups_of(x, groups):
    if groups == "out":
        return [x[i].reshape(-1) for i in range(x.shape[0])]
    return [x[:, j].reshape(-1) for j in range(x.shape[1])]


def soft(x, t):
    return torch.sign(x) * (x.abs() - t).clamp_min(0)


# ------------------------------------------------------------ closed forms
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_elementwise_closed_forms(shape):
    w, t = torch.randn(shape, dtype=torch.float64), 0.4
    u = prox(reglab.L1(), w, t)
    expected = torch.where(w > t, w - t, torch.where(w < -t, w + t, torch.zeros_like(w)))
    torch.testing.assert_close(u, expected)
    torch.testing.assert_close(prox(reglab.L2(), w, t), w / (1 + t))
    rho = 0.3
    torch.testing.assert_close(prox(reglab.ElasticNet(l1_ratio=rho), w, t), soft(w, t * rho) / (1 + t * (1 - rho)))


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("groups", ["out", "in"])
def test_group_lasso_closed_form(shape, groups):
    w, t = torch.randn(shape, dtype=torch.float64), 0.3
    u = prox(reglab.GroupLasso(groups=groups), w, t)
    for wg, ug in zip(groups_of(w, groups), groups_of(u, groups)):
        thr = t * math.sqrt(wg.numel())
        norm = wg.norm().item()
        expected = wg * max(0.0, 1 - thr / norm)
        torch.testing.assert_close(ug, expected)


@pytest.mark.parametrize("groups", ["out", "in"])
def test_sparse_group_lasso_closed_form(groups):
    w, t, alpha = torch.randn(4, 3, 2, 2, dtype=torch.float64), 0.5, 0.4
    u = prox(reglab.SparseGroupLasso(alpha=alpha, groups=groups), w, t)
    for wg, ug in zip(groups_of(w, groups), groups_of(u, groups)):
        z = soft(wg, t * alpha)
        thr = t * (1 - alpha) * math.sqrt(wg.numel())
        expected = z * max(0.0, 1 - thr / z.norm().item()) if z.norm() > 0 else z
        torch.testing.assert_close(ug, expected)


def test_l2_sp_closed_form():
    model = nn.Linear(4, 3)
    reg = reglab.L2SP()
    reg.setup(list(model.named_parameters()))
    anchor = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
        reg.prox_(model.weight, 0.5)
    torch.testing.assert_close(model.weight.detach(), anchor + 1.0 / 1.5)


# ---------------------------------------------------- optimality conditions
@pytest.mark.parametrize("t", [0.05, 0.5, 2.0])
def test_l1_and_elastic_net_subgradient_conditions(t):
    w = 2 * torch.randn(6, 5, dtype=torch.float64)
    for rho in (1.0, 0.6):
        reg = reglab.L1() if rho == 1.0 else reglab.ElasticNet(l1_ratio=rho)
        u = prox(reg, w, t)
        g = (w - u) / t - (1 - rho) * u  # must lie in ρ·∂‖u‖₁
        nz = u != 0
        torch.testing.assert_close(g[nz], rho * torch.sign(u[nz]))
        assert (g[~nz].abs() <= rho + TOL).all()
    u = prox(reglab.L2(), w, t)
    torch.testing.assert_close((w - u) / t, u)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("groups", ["out", "in"])
@pytest.mark.parametrize("t", [0.1, 0.6, 3.0])
def test_group_lasso_subgradient_condition(shape, groups, t):
    w = torch.randn(shape, dtype=torch.float64)
    u = prox(reglab.GroupLasso(groups=groups), w, t)
    for wg, ug in zip(groups_of(w, groups), groups_of(u, groups)):
        g, c = (wg - ug) / t, math.sqrt(wg.numel())
        if ug.norm() > 0:
            torch.testing.assert_close(g, c * ug / ug.norm())
        else:
            assert g.norm() <= c + TOL


@pytest.mark.parametrize("groups", ["out", "in"])
@pytest.mark.parametrize("t", [0.1, 0.8, 3.0])
def test_sparse_group_lasso_subgradient_condition(groups, t):
    alpha = 0.3
    w = 1.5 * torch.randn(4, 3, 2, 2, dtype=torch.float64)
    u = prox(reglab.SparseGroupLasso(alpha=alpha, groups=groups), w, t)
    for wg, ug in zip(groups_of(w, groups), groups_of(u, groups)):
        g, c = (wg - ug) / t, (1 - alpha) * math.sqrt(wg.numel())
        if ug.norm() > 0:
            r = g - c * ug / ug.norm()  # remainder must lie in α·∂‖u_g‖₁
            nz = ug != 0
            torch.testing.assert_close(r[nz], alpha * torch.sign(ug[nz]))
            assert (r[~nz].abs() <= alpha + TOL).all()
        else:
            # exists s ∈ [−1, 1]ⁿ with ‖g − αs‖ ≤ c; the best s clips g/α
            assert soft(g, alpha).norm() <= c + TOL


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
