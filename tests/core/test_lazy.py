"""Lazy regularization (Karras et al. 2020): ``.on(every=k)`` applies a binding on every k-th
step of its regularizer's counter, with weight k·λ, and costs nothing on the other steps."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import reglab


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.enc = nn.Linear(6, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(torch.relu(self.enc(x)))


def _l2(model):
    return 0.5 * sum(p.detach().pow(2).sum() for n, p in model.named_parameters() if n.endswith("weight"))


@pytest.mark.parametrize("every", [1, 2, 3])
def test_penalty_mode_applies_on_every_kth_step_with_k_times_the_weight(every):
    model = Net().double()
    regs = reglab.attach(model, reglab.L2(0.1).on(every=every))
    for step in range(7):
        value = regs.penalty()
        if step % every == 0:
            torch.testing.assert_close(value, every * 0.1 * _l2(model))
            assert set(regs.last) == {"l2"}
        else:
            assert value.item() == 0.0 and not value.requires_grad
            assert regs.last == {}
        regs.step()


def test_weight_follows_the_schedule_at_the_applied_step():
    model = Net().double()
    regs = reglab.attach(model, reglab.L2(reglab.schedules.LinearRamp(0.0, 1.0, 10)).on(every=4))
    for step in range(9):
        value = regs.penalty()
        if step % 4 == 0 and step > 0:  # (at step 0 the ramp's weight is 0: nothing computed)
            torch.testing.assert_close(value, 4 * (step / 10) * _l2(model))
        elif step % 4:
            assert value.item() == 0.0
        regs.step()


def test_off_steps_run_no_forward_compute(monkeypatch):
    calls = []
    reg = reglab.create("soft_orthogonality")
    original = type(reg).penalty
    monkeypatch.setattr(type(reg), "penalty", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    regs = reglab.attach(Net(), reg.on(every=5))
    for _ in range(10):
        regs.penalty()
        regs.step()
    assert len(calls) == 2


def test_activation_binding_captures_nothing_on_off_steps():
    model = Net().double()
    regs = reglab.attach(model, reglab.create("vcreg", weight=0.1).on(activations="enc", every=2))
    captured = regs._captures[0]
    x = torch.randn(16, 6, dtype=torch.float64)
    ref = reglab.create("vcreg", weight=0.1)
    for step in range(4):
        model(x)
        if step % 2:
            assert len(captured) == 0  # no activation kept alive
            assert regs.penalty().item() == 0.0  # and no error for "nothing captured"
        else:
            assert len(captured) == 1
            with torch.no_grad():  # no capture from the reference's forward
                expected = 2 * ref(model.enc(x))
            torch.testing.assert_close(regs.penalty(), expected)
        regs.step()


def test_prox_mode_step_size_is_k_lr_weight():
    model = Net().double()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    regs = reglab.attach(model, reglab.create("group_lasso", weight=0.2).on(params="enc.weight", mode="prox", every=3))
    w = model.enc.weight
    for step in range(6):
        before = w.detach().clone()
        regs.step(opt)
        if step % 3 == 0:
            expected = before.clone()
            reglab.create("group_lasso").prox_(expected, 3 * 0.5 * 0.2)
            torch.testing.assert_close(w.detach(), expected)
        else:
            assert torch.equal(w.detach(), before)


def test_grad_mode_adds_k_lambda_grad_on_applied_steps_only():
    model = Net().double()
    regs = reglab.attach(model, reglab.L2(0.1).on(params="enc.weight", mode="grad", every=2))
    for step in range(4):
        model.zero_grad(set_to_none=False)
        model.enc.weight.grad = torch.zeros_like(model.enc.weight)
        regs.add_grads()
        expected = 2 * 0.1 * model.enc.weight.detach() if step % 2 == 0 else torch.zeros_like(model.enc.weight)
        torch.testing.assert_close(model.enc.weight.grad, expected)
        regs.step()


def test_phase_resumes_from_state_dict():
    model = Net().double()
    regs = reglab.attach(model, reglab.L2(0.1).on(every=3))
    for _ in range(4):
        regs.penalty()
        regs.step()
    state = copy.deepcopy(regs.state_dict())
    fresh = reglab.attach(model, reglab.L2(0.1).on(every=3))
    fresh.load_state_dict(state)
    for step in range(4, 10):
        a, b = regs.penalty(), fresh.penalty()
        torch.testing.assert_close(a, b)
        assert (a.item() != 0.0) == (step % 3 == 0)
        regs.step()
        fresh.step()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_every_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"L2\.on.*every= takes an integer >= 1"):
        reglab.L2().on(every=bad)


def test_config_round_trip_keeps_every():
    model = Net()
    regs = reglab.attach(model, reglab.create("vcreg").on(activations="enc", every=8))
    cfg = regs.get_config()
    assert cfg["bindings"][0]["on"]["every"] == 8
    assert reglab.attach_from_config(model, cfg).bindings[0].every == 8
    assert "every=8" in repr(regs.bindings[0])
