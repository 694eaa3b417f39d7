"""Sharpness-Aware Minimization (Foret et al., 2021) and ASAM against hand-written two-pass updates."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import reglab
from reglab.core.errors import RegularizerInputError

from ._problem import loss_of, make_problem


def sam_by_hand(model, x, y, steps, rho, lr, momentum, adaptive=False):
    """Two explicit passes per step, plain tensors, SGD with momentum written out."""
    params = list(model.parameters())
    bufs = [torch.zeros_like(p) for p in params]
    for _ in range(steps):
        g = torch.autograd.grad(loss_of(model, x, y), params)
        with torch.no_grad():
            if adaptive:
                norm = torch.sqrt(sum(((p.abs() * gi) ** 2).sum() for p, gi in zip(params, g)))
                eps = [rho * p**2 * gi / norm for p, gi in zip(params, g)]
            else:
                norm = torch.sqrt(sum((gi**2).sum() for gi in g))
                eps = [rho * gi / norm for gi in g]
            for p, e in zip(params, eps):
                p.add_(e)
        g2 = torch.autograd.grad(loss_of(model, x, y), params)
        with torch.no_grad():
            for p, e, gi, b in zip(params, eps, g2, bufs):
                p.sub_(e)
                b.mul_(momentum).add_(gi)
                p.sub_(lr * b)
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("api", ["two_step", "closure"])
def test_sam_equals_hand_written_two_pass(adaptive, api):
    model, x, y = make_problem(torch.float64)
    ref_model = copy.deepcopy(model)
    rho = 0.5 if adaptive else 0.05
    sam = reglab.create("sam", params=model.parameters(), rho=rho, adaptive=adaptive, lr=0.1, momentum=0.9)
    for _ in range(3):
        if api == "two_step":
            loss_of(model, x, y).backward()
            sam.first_step(zero_grad=True)
            loss_of(model, x, y).backward()
            sam.second_step(zero_grad=True)
        else:

            def closure():
                loss = loss_of(model, x, y)
                loss.backward()
                return loss

            sam.step(closure)
    ref = sam_by_hand(ref_model, x, y, 3, rho, 0.1, 0.9, adaptive)
    for p, r in zip(model.parameters(), ref):
        assert torch.allclose(p, r, atol=1e-10)


def test_sam_differs_from_plain_sgd_and_rho_zero_is_sgd():
    model, x, y = make_problem()
    m_sgd, m_sam0 = copy.deepcopy(model), copy.deepcopy(model)
    sgd = torch.optim.SGD(m_sgd.parameters(), lr=0.1)
    sam0 = reglab.SAM(m_sam0.parameters(), rho=0.0, lr=0.1)
    sam = reglab.SAM(model.parameters(), lr=0.1, rho=0.5)
    for m, opt in [(m_sgd, sgd), (m_sam0, sam0), (model, sam)]:
        def closure(m=m):
            loss = loss_of(m, x, y)
            loss.backward()
            return loss

        if opt is sgd:
            opt.zero_grad()
            closure()
            opt.step()
        else:
            opt.step(closure)
    for a, b, c in zip(m_sgd.parameters(), m_sam0.parameters(), model.parameters()):
        assert torch.allclose(a, b, atol=1e-7)
    assert any(not torch.allclose(a, c) for a, c in zip(m_sgd.parameters(), model.parameters()))


def test_sam_with_grad_scaler_matches_unscaled():
    model, x, y = make_problem()
    ref_model = copy.deepcopy(model)
    sam = reglab.SAM(model.parameters(), lr=0.1, momentum=0.9)
    ref = reglab.SAM(ref_model.parameters(), lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    for _ in range(2):
        scaler.scale(loss_of(model, x, y)).backward()
        sam.first_step(zero_grad=True)
        scaler.scale(loss_of(model, x, y)).backward()
        scaler.step(sam)
        scaler.update()
        sam.zero_grad()

        loss_of(ref_model, x, y).backward()
        ref.first_step(zero_grad=True)
        loss_of(ref_model, x, y).backward()
        ref.second_step(zero_grad=True)
    for p, r in zip(model.parameters(), ref_model.parameters()):
        assert torch.allclose(p, r, atol=1e-6)


def test_sam_skips_perturbation_on_overflow():
    model, x, y = make_problem()
    sam = reglab.SAM(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    loss_of(model, x, y).backward()
    next(model.parameters()).grad[0, 0] = float("inf")
    sam.first_step()
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b)


def test_sam_bf16_autocast_close_to_fp32():
    model, x, y = make_problem()
    ref_model = copy.deepcopy(model)
    sam = reglab.SAM(model.parameters(), lr=0.1)
    ref = reglab.SAM(ref_model.parameters(), lr=0.1)
    for m, opt, amp in [(model, sam, True), (ref_model, ref, False)]:
        for _ in range(2):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                loss = loss_of(m, x, y)
            loss.backward()
            opt.first_step(zero_grad=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                loss = loss_of(m, x, y)
            loss.backward()
            opt.second_step(zero_grad=True)
    for p, r in zip(model.parameters(), ref_model.parameters()):
        assert p.dtype == torch.float32
        assert torch.allclose(p, r, atol=2e-2)


def test_sam_state_dict_carries_base_state_and_config_round_trips():
    model, x, y = make_problem()
    sam = reglab.SAM(model.parameters(), lr=0.05, momentum=0.9, rho=0.1)
    loss_of(model, x, y).backward()
    sam.first_step(zero_grad=True)
    loss_of(model, x, y).backward()
    sam.second_step(zero_grad=True)
    cfg = sam.get_config()
    assert cfg == {"name": "sam", "rho": 0.1, "adaptive": False, "lr": 0.05, "momentum": 0.9}
    again = reglab.from_config(cfg, params=model.parameters(), base_optimizer=torch.optim.SGD)
    again.load_state_dict(sam.state_dict())
    assert again.base_optimizer.state is again.state
    p0 = next(model.parameters())
    assert torch.equal(again.base_optimizer.state[p0]["momentum_buffer"], sam.state[p0]["momentum_buffer"])


def test_sam_bad_arguments():
    with pytest.raises(RegularizerInputError, match="rho"):
        reglab.SAM(nn.Linear(2, 2).parameters(), rho=-1.0)
    with pytest.raises(RegularizerInputError, match="base_optimizer"):
        reglab.SAM(nn.Linear(2, 2).parameters(), base_optimizer="sgd")
