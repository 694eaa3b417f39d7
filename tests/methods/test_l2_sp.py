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


# ---- the β term (Li et al. 2018, Eq. 3): new parameters S̄ pulled to 0, not to their random init


def ref_l2_sp_eq3(shared, anchors, new, beta_ratio):
    """Eq. 3 divided by α, by loops: ½Σ‖w_S − w⁰_S‖² + (β/α)/2·Σ‖w_S̄‖²."""
    first = sum(ref_l2_sp(w, a) for w, a in zip(shared, anchors))
    return first + 0.5 * beta_ratio * sum(x**2 for v in new for x in v.flatten().tolist())


def _head_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).double()


def test_beta_term_pulls_new_parameters_to_zero():
    model = _head_model()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    reg = reglab.L2SP(0.3, new_params="2.*", beta_ratio=0.5)
    regs = reglab.attach(model, reg.on(exclude=None))
    assert sorted(k for k in reg.state_dict() if k.startswith("anchor__")) == ["anchor__0__bias", "anchor__0__weight"]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.25)
    shared = [model[0].weight, model[0].bias]
    new = [model[2].weight, model[2].bias]
    expected = ref_l2_sp_eq3(shared, [start["0.weight"], start["0.bias"]], new, 0.5)
    assert regs.penalty().item() == pytest.approx(0.3 * expected, rel=1e-12)
    assert reg(list(model.parameters())).item() == pytest.approx(0.3 * expected, rel=1e-12)
    assert sum(reg(p) for p in model.parameters()).item() == pytest.approx(0.3 * expected, rel=1e-12)
    regs.penalty().backward()
    # the head's gradient is α·(β/α)·w = β·w: toward 0, whatever its initialization
    torch.testing.assert_close(model[2].weight.grad, 0.3 * 0.5 * model[2].weight.detach())
    torch.testing.assert_close(model[0].weight.grad, 0.3 * (model[0].weight.detach() - start["0.weight"]))


def test_beta_zero_leaves_new_parameters_alone():
    model = _head_model()
    regs = reglab.attach(model, reglab.L2SP(1.0, new_params=["2.weight", "2.bias"]).on(exclude=None))
    with torch.no_grad():
        model[2].weight.add_(3.0)
    assert regs.penalty().item() == 0.0


def test_only_new_parameters():
    model = _head_model()
    regs = reglab.attach(model, reglab.L2SP(1.0, new_params="*", beta_ratio=2.0).on(exclude=None))
    expected = sum(float((p.detach() ** 2).sum()) for p in model.parameters())
    assert regs.penalty().item() == pytest.approx(expected, rel=1e-12)


def test_pure_function_with_new_tensors():
    w, anchor = rand((4, 3)), rand((4, 3))
    new = [rand((3, 2)), rand((5,))]
    got = RF.l2_sp([w], [anchor], new, beta_ratio=0.7)
    assert got.item() == pytest.approx(ref_l2_sp_eq3([w], [anchor], new, 0.7), rel=1e-12)
    x = rand((3, 2)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: RF.l2_sp(w, anchor, [v], beta_ratio=0.7), (x,))
    with pytest.raises(RegularizerInputError, match="l2_sp"):
        RF.l2_sp(w, anchor, [torch.tensor([float("nan")])], beta_ratio=1.0)
    with pytest.raises(RegularizerInputError, match="l2_sp.*beta_ratio"):
        RF.l2_sp(w, anchor, new, beta_ratio=-1.0)


def test_prox_of_new_parameters():
    model = _head_model()
    reg = reglab.L2SP(new_params="2.*", beta_ratio=0.5)
    reg.setup(list(model.named_parameters()))
    before = model[2].weight.detach().clone()
    with torch.no_grad():
        reg.prox_(model[2].weight, 0.4)  # argmin ½‖x − w‖² + 0.4·(0.5/2)‖x‖² = w / (1 + 0.2)
    torch.testing.assert_close(model[2].weight.detach(), before / 1.2)


def test_beta_options_round_trip_and_validation():
    reg = reglab.L2SP(0.2, new_params=["fc.*", "head.*"], beta_ratio=0.1)
    cfg = reg.get_config()
    assert cfg == {"name": "l2_sp", "weight": 0.2, "new_params": ["fc.*", "head.*"], "beta_ratio": 0.1}
    assert reglab.from_config(cfg).get_config() == cfg
    with pytest.raises(ValueError, match="L2SP.*new_params"):
        reglab.L2SP(new_params=3)
    with pytest.raises(RegularizerInputError, match="L2SP.*beta_ratio"):
        reglab.L2SP(beta_ratio=-0.1)
