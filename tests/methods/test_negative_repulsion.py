"""Adapt-then-Unlearn repulsion: the three official forms against loops, local vs global, set_negative, state."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._reference import Reference


def _d(w, n):
    """The halved mean squared difference of one tensor, by a loop."""
    xs, ys = w.flatten().tolist(), n.flatten().tolist()
    return sum((x - y) ** 2 for x, y in zip(xs, ys)) / len(xs) / 2


def ref_exp(w, negative):
    return math.exp(-_d(w, negative))


def _pair(g):
    return tuple(torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64) for _ in range(2))


REFERENCES = {"negative_repulsion": Reference(ref_exp, inputs=_pair)}


@pytest.mark.parametrize("kind,form", [("exp", lambda d, g: math.exp(-g * d)), ("l2", lambda d, g: -g * d),
                                       ("inverse", lambda d, g: g / d)])
def test_forms_local_and_global_match_loops(kind, form):
    ws = [torch.randn(4, 3, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)]
    ns = [torch.randn(4, 3, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)]
    local = RF.negative_repulsion(ws, ns, gamma=0.7, kind=kind).item()
    assert local == pytest.approx(sum(form(_d(w, n), 0.7) for w, n in zip(ws, ns)), rel=1e-12)
    # official calc_difference_param_new: Σ_t mse_t / T / 2 (one negative model)
    d = sum(2 * _d(w, n) for w, n in zip(ws, ns)) / len(ws) / 2
    assert RF.negative_repulsion_global(ws, ns, gamma=0.7, kind=kind).item() == pytest.approx(form(d, 0.7), rel=1e-12)


def test_gradcheck_pushes_away_from_the_negative():
    n = torch.randn(3, 4, dtype=torch.float64)
    w = (n + 0.3 * torch.randn(3, 4, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: RF.negative_repulsion(x, n), (w,))
    RF.negative_repulsion(w, n).backward()
    # a gradient step on exp(−d) moves w away from θ_N
    with torch.no_grad():
        assert ((w - 0.1 * w.grad) - n).pow(2).sum() > (w - n).pow(2).sum()


def test_set_negative_copies_by_name_and_state_round_trips():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    negative = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    reg = reglab.NegativeRepulsion()
    regs = reglab.attach(model, reg.on(scope="global"))
    assert regs.penalty().item() == pytest.approx(100.0)  # before set_negative: d = 0
    reg.set_negative(negative)
    ws, ns = [model[0].weight, model[2].weight], [negative[0].weight, negative[2].weight]
    d = sum(2 * _d(w, n) for w, n in zip(ws, ns)) / 2 / 2
    assert regs.penalty().item() == pytest.approx(100 * math.exp(-d), rel=1e-10)
    fresh = reglab.NegativeRepulsion()
    fresh.load_state_dict(reg.state_dict())
    assert torch.equal(fresh.anchor__0__weight, negative[0].weight.detach())


def test_bad_input_is_named():
    with pytest.raises(RegularizerInputError, match="NegativeRepulsion.*shape"):
        RF.negative_repulsion(torch.randn(3, 4), torch.randn(4, 3))
    with pytest.raises(RegularizerInputError, match="NegativeRepulsion"):
        reglab.NegativeRepulsion(kind="cubic")
    reg = reglab.NegativeRepulsion()
    with pytest.raises(RegularizerInputError, match="NegativeRepulsion.*matched no bound parameter"):
        reg.set_negative(nn.Linear(2, 2))
