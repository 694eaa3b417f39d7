"""Diff pruning (Guo et al. 2021): hard-concrete gates and the L0 penalty against the official formulas."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import reglab
from reglab import RegularizerInputError
from reglab.methods.diff_pruning import hard_concrete, hard_concrete_l0


def ref_concrete_stretched(alpha, u, l=-1.5, r=1.5):
    """dguo98/DiffPruning examples/run_glue_diffpruning.py concrete_stretched, entry by entry:
    the gate and its hand-written derivative dz/dα = (t < 1)(u' > 0)(r − l)s(1 − s)."""
    zs, grads = [], []
    for a, uu in zip(alpha.flatten().tolist(), u.flatten().tolist()):
        uu = min(max(uu, 0.0001), 0.9999)
        s = 1 / (1 + math.exp(-(math.log(uu) - math.log(1 - uu) + a)))
        stretched = s * (r - l) + l
        t = max(stretched, 0.0)
        zs.append(min(t, 1.0))
        grads.append(float(t < 1) * float(stretched > 0) * (r - l) * s * (1 - s))
    return torch.tensor(zs, dtype=torch.float64), torch.tensor(grads, dtype=torch.float64)


def test_gate_and_gradient_match_official():
    alpha = torch.linspace(-4, 4, 41, dtype=torch.float64).requires_grad_(True)
    z = hard_concrete(alpha, generator=torch.Generator().manual_seed(3))
    u = torch.rand(41, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    z_ref, g_ref = ref_concrete_stretched(alpha.detach(), u)
    torch.testing.assert_close(z.detach(), z_ref)
    z.sum().backward()
    torch.testing.assert_close(alpha.grad, g_ref)


def test_eval_gate_and_l0():
    alpha = torch.tensor([-3.0, 0.0, 2.0, 5.0], dtype=torch.float64)
    det = hard_concrete(alpha, training=False)
    expected = [min(max(1 / (1 + math.exp(-a)) * 3 - 1.5, 0), 1) for a in alpha.tolist()]
    torch.testing.assert_close(det, torch.tensor(expected, dtype=torch.float64))
    # log(−l/r) = 0 for the symmetric stretch; = log(0.1/1.1) for Louizos' (−0.1, 1.1)
    assert hard_concrete_l0(alpha).item() == pytest.approx(sum(1 / (1 + math.exp(-a)) for a in alpha.tolist()))
    lr = math.log(0.1 / 1.1)
    assert hard_concrete_l0(alpha, -0.1, 1.1).item() == pytest.approx(
        sum(1 / (1 + math.exp(-(a - lr))) for a in alpha.tolist()))


def test_reparametrization_trains_only_diff_and_gates():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4))
    w0 = body[0].weight.detach().clone()
    dp = reglab.DiffPruning(sparsity_pen=0.01)
    dp(body)
    body.eval()
    torch.testing.assert_close(body[0].weight.detach(), w0)  # δ₀ = 0: the function is unchanged
    body.train()
    assert not body[0].parametrizations.weight.original.requires_grad
    # E‖z‖₀ at log α₀ = 5: one gate per entry plus one per tensor, each sigmoid(5)
    n = sum(p.numel() for p in dp.diff_parameters())
    assert dp.penalty().item() == pytest.approx(0.01 * (n + 4) / (1 + math.exp(-5)))
    opt = torch.optim.SGD(dp.diff_parameters() + dp.alpha_parameters(), lr=0.5)
    loss = body(torch.randn(8, 6)).pow(2).sum() + dp.penalty()
    loss.backward()
    opt.step()
    torch.testing.assert_close(body[0].parametrizations.weight.original.detach(), w0)
    assert dp.changed_fraction() > 0
    # state_dict round trip of the diff and the gates
    other = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4))
    reglab.DiffPruning()(other)
    other.load_state_dict(body.state_dict())
    body.eval(), other.eval()
    x = torch.randn(3, 6)
    torch.testing.assert_close(other(x), body(x))


def test_closed_gates_change_nothing():
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    dp = reglab.DiffPruning(alpha_init=-10.0)
    dp(layer)
    with torch.no_grad():
        for d in dp.diff_parameters():
            d.fill_(1.0)
    layer.eval()
    assert dp.changed_fraction() == 0.0


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="DiffPruning"):
        reglab.DiffPruning(sparsity_pen=-1.0)
    with pytest.raises(RegularizerInputError, match="DiffPruning.*low < 0"):
        reglab.DiffPruning(low=0.1)(nn.Linear(2, 2))
    with pytest.raises(RegularizerInputError, match="DiffPruning"):
        reglab.DiffPruning()(nn.ReLU())
    with pytest.raises(RegularizerInputError, match="DiffPruning"):
        reglab.DiffPruning()("model")
    with pytest.raises(RegularizerInputError, match="DiffPruning"):
        hard_concrete(torch.tensor([float("nan")]))
    with pytest.raises(RuntimeError, match="DiffPruning is not applied"):
        reglab.DiffPruning().penalty()
