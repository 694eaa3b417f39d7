"""L2 Init (Kumar, Marklund & Van Roy, 2023) against a loop; anchors at init, state, prox and gradient."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._reference import Reference
from ._weights import IDS, SHAPES, bad_weights, check_state_resumes_through_attach, rand


def ref_l2_init(w, anchor):
    """‖θ − θ₀‖² (no ½) by a loop."""
    return sum((x - a) ** 2 for x, a in zip(w.flatten().tolist(), anchor.flatten().tolist()))


def _weight_and_anchor(g):
    return tuple(torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64) for _ in range(2))


REFERENCES = {"l2_init": Reference(ref_l2_init, inputs=_weight_and_anchor)}


def _net():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()


def test_sheet_vector():
    torch.manual_seed(0)
    net = _net()
    theta0 = [p.detach().clone() for p in net.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert RF.l2_init(list(net.parameters()), theta0).item() == pytest.approx(0.202202, abs=1e-6)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_matches_loop(shape):
    w, anchor = rand(shape), rand(shape)
    assert RF.l2_init(w, anchor).item() == pytest.approx(ref_l2_init(w, anchor), rel=1e-12)


def test_gradcheck():
    w, anchor = rand((3, 2, 3)).requires_grad_(True), rand((3, 2, 3))
    assert torch.autograd.gradcheck(lambda x: RF.l2_init(x, anchor), (w,))


def test_default_weight_is_the_papers():
    assert reglab.L2Init().current_weight == pytest.approx(1e-2)


def test_attach_anchors_every_parameter_at_init_and_one_equals_list_equals_attached():
    torch.manual_seed(3)
    net = _net()
    start = [p.detach().clone() for p in net.parameters()]
    regs = reglab.attach(net, reglab.L2Init(1.0).on(exclude=None))
    assert regs.penalty().item() == 0.0
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1.5).add_(0.2)
    expected = sum(ref_l2_init(p.detach(), s) for p, s in zip(net.parameters(), start))
    reg = regs.regularizers[0]
    params = list(net.parameters())
    attached = regs.penalty().item()
    many = reg(params).item()
    one = sum(reg(p) for p in params).item()
    assert attached == pytest.approx(expected, rel=1e-12)
    assert many == pytest.approx(expected, rel=1e-12) and one == pytest.approx(expected, rel=1e-12)
    assert len(params) == 4 and len([k for k in reg.state_dict() if k.startswith("anchor__")]) == 4  # biases too


def test_gradient_pulls_toward_init_not_zero():
    w = nn.Parameter(torch.full((2, 2), 3.0, dtype=torch.float64))
    reg = reglab.L2Init(1.0)
    reg.setup([("w", w)])
    with torch.no_grad():
        w.add_(1.0)
    reg(w).backward()
    torch.testing.assert_close(w.grad, torch.full((2, 2), 2.0, dtype=torch.float64))  # 2λ(θ − θ₀), not 2λθ


def test_standalone_anchors_at_first_use():
    w = rand((4, 3))
    reg = reglab.L2Init(1.0)
    assert reg(w).item() == 0.0
    with torch.no_grad():
        w.add_(0.5)
    assert reg(w).item() == pytest.approx(0.25 * 12)
    assert reg.penalty(w, anchor=torch.zeros(4, 3, dtype=torch.float64)).item() == pytest.approx(
        ref_l2_init(w, torch.zeros(4, 3)))


def test_anchor_round_trip_through_state_dict():
    check_state_resumes_through_attach("l2_init")
    torch.manual_seed(0)
    net = _net()
    regs = reglab.attach(net, reglab.L2Init())
    state = copy.deepcopy(regs.state_dict())
    torch.manual_seed(1)
    other = _net()
    other.load_state_dict(net.state_dict())
    regs2 = reglab.attach(other, reglab.L2Init())  # anchors the other init ...
    regs2.load_state_dict(state)  # ... then loads the saved θ₀
    for p, q in zip(regs.regularizers[0].buffers(), regs2.regularizers[0].buffers()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_prox_closed_form():
    w = nn.Parameter(rand((4, 3)))
    reg = reglab.L2Init()
    reg.setup([("w", w)])
    anchor = w.detach().clone()
    t = 0.25
    with torch.no_grad():
        w.add_(1.0)
        moved = w.detach().clone()
        reg.prox_(w, t)
    # argmin_x ½‖x − w‖² + t‖x − θ₀‖², solved coordinate-wise by brute force on a grid
    grid = torch.linspace(-6, 6, 240001, dtype=torch.float64)
    for i in range(3):
        obj = 0.5 * (grid - moved.view(-1)[i]) ** 2 + t * (grid - anchor.view(-1)[i]) ** 2
        assert w.detach().view(-1)[i].item() == pytest.approx(grid[obj.argmin()].item(), abs=1e-4)


def test_closed_form_gradient_matches_autograd():
    assert reglab.L2Init().has_grad
    ws = [nn.Parameter(rand(s)) for s in SHAPES]
    reg = reglab.L2Init(1.0)
    reg.setup([(f"w{i}", w) for i, w in enumerate(ws)])
    with torch.no_grad():
        for w in ws:
            w.add_(torch.randn_like(w))
    value = reg.penalty(ws)
    value.backward()
    grads = [torch.zeros_like(w) for w in ws]
    with torch.no_grad():
        got = reg.grad_(ws, grads, 0.5)
    assert got.item() == pytest.approx(value.item(), rel=1e-12)
    for w, g in zip(ws, grads):
        torch.testing.assert_close(g, 0.5 * w.grad, rtol=1e-10, atol=1e-12)


def test_bad_inputs_raise_with_name():
    for x in bad_weights(matrix=False):
        with pytest.raises(RegularizerInputError, match="l2_init"):
            RF.l2_init(x, torch.zeros(2, 2))
    with pytest.raises(RegularizerInputError, match="l2_init"):
        RF.l2_init(rand((3, 4)), torch.zeros(4, 3))
    with pytest.raises(RegularizerInputError, match="l2_init"):
        RF.l2_init([rand((3, 4))], [])
