"""L2-SP (Li, Grandvalet & Davoine, 2018) against a loop; anchors, state and its proximal map."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._reference import Reference
from ._weights import IDS, SHAPES, bad_weights, check_state_resumes_through_attach, rand


def ref_l2_sp(w, anchor):
    """½‖w − w⁰‖² by a loop."""
    return 0.5 * sum((x - a) ** 2 for x, a in zip(w.flatten().tolist(), anchor.flatten().tolist()))


def _weight_and_anchor(g):
    return tuple(torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64) for _ in range(2))


REFERENCES = {"l2_sp": Reference(ref_l2_sp, inputs=_weight_and_anchor)}


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_l2_sp_matches_loop(shape):
    w, anchor = rand(shape), rand(shape)
    assert RF.l2_sp(w, anchor).item() == pytest.approx(ref_l2_sp(w, anchor))


def test_gradcheck():
    w, anchor = rand((3, 2, 3)).requires_grad_(True), rand((3, 2, 3))
    assert torch.autograd.gradcheck(lambda x: RF.l2_sp(x, anchor), (w,))


def test_bad_inputs_raise_with_name():
    for x in bad_weights(matrix=False):
        with pytest.raises(RegularizerInputError, match="l2_sp"):
            RF.l2_sp(x, torch.zeros(2, 2))


def test_bad_arguments():
    w = rand((3, 4))
    with pytest.raises(RegularizerInputError, match="l2_sp"):
        RF.l2_sp(w, torch.zeros(4, 3))
    with pytest.raises(RegularizerInputError, match="L2SP"):
        reglab.L2SP().penalty(w)  # no anchor recorded


def test_list_rejects_non_finite():
    reg = reglab.create("l2_sp")
    ts = [rand((4, 3)), rand((4, 3))]
    ts[1][2, 1] = float("nan")
    reg.setup([("a", ts[0]), ("b", ts[1])])
    with pytest.raises(RegularizerInputError, match="l2_sp"):
        reg.penalty(ts)


def test_anchors_are_attach_time_values():
    model = nn.Linear(3, 2)
    start = model.weight.detach().clone()
    regs = reglab.attach(model, reglab.L2SP(1.0))
    assert regs.penalty().item() == 0.0
    with torch.no_grad():
        model.weight.add_(0.5)
    assert regs.penalty().item() == pytest.approx(0.5 * 0.25 * start.numel())
    explicit = reglab.L2SP().penalty(model.weight, anchor=start)
    assert explicit.item() == pytest.approx(0.5 * 0.25 * start.numel())


def test_state_resumes_through_attach():
    check_state_resumes_through_attach("l2_sp")


def test_prox_closed_form():
    model = nn.Linear(4, 3)
    reg = reglab.L2SP()
    reg.setup(list(model.named_parameters()))
    anchor = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
        reg.prox_(model.weight, 0.5)
    torch.testing.assert_close(model.weight.detach(), anchor + 1.0 / 1.5)
