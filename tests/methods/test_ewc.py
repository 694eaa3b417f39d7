"""EWC (Kirkpatrick et al., 2017): ½ΣF(θ − θ*)² by loops, the Fisher by per-sample loops, state round trips."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._reference import Reference


def ref_ewc(w, anchor, fisher):
    """½ Σ_i F_i (w_i − w*_i)² by a loop."""
    return 0.5 * sum(f * (x - a) ** 2 for x, a, f in zip(w.flatten().tolist(), anchor.flatten().tolist(),
                                                         fisher.flatten().tolist()))


def _inputs(g):
    w, a = (torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64) for _ in range(2))
    return w, a, torch.rand(4, 3, 3, 3, generator=g, dtype=torch.float64)



REFERENCES = {"ewc": Reference(ref_ewc, inputs=_inputs)}


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()


def ref_fisher(model, x, y=None, kind="true"):
    """Per sample, per class: (∂ log p_c/∂θ)² by autograd one sample at a time, weighted by p_c (true
    Fisher) or at the label (empirical), averaged over the samples."""
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    for i in range(x.shape[0]):
        logp = torch.log_softmax(model(x[i : i + 1]), dim=-1)[0]
        classes = range(logp.shape[0]) if kind == "true" else [int(y[i])]
        for c in classes:
            grads = torch.autograd.grad(logp[c], params, retain_graph=True)
            weight = math.exp(float(logp[c])) if kind == "true" else 1.0
            for t, gr in zip(total, grads):
                t += weight * gr.detach() ** 2
    return [t / x.shape[0] for t in total]


@pytest.mark.parametrize("kind", ["true", "empirical"])
def test_fisher_matches_per_sample_loop(kind):
    model = _model()
    x = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (7,), generator=torch.Generator().manual_seed(2))
    got = RF.fisher_diagonal(model, x, y, fisher=kind, batch_size=3)
    for (name, _), want in zip(model.named_parameters(), ref_fisher(model, x, y, kind)):
        torch.testing.assert_close(got[name], want, rtol=1e-10, atol=1e-14)


def test_sampled_fisher_is_unbiased():
    """The mean of many one-label draws approaches the exact expectation over the classes."""
    model = _model()
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    exact = RF.fisher_diagonal(model, x, fisher="true")
    g = torch.Generator().manual_seed(0)
    draws = [RF.fisher_diagonal(model, x.repeat(40, 1), fisher="sampled", generator=g) for _ in range(5)]
    for name in exact:
        mean = sum(d[name] for d in draws) / len(draws)
        assert float((mean - exact[name]).abs().sum()) < 0.1 * float(exact[name].abs().sum())


def test_value_gradient_and_penalty_after_consolidate():
    model = _model()
    x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    reg = reglab.EWC(2.0)
    regs = reglab.attach(model, reg.on(exclude=None))
    reg.consolidate(model, x)
    assert float(regs.penalty()) == 0.0
    fishers = ref_fisher(model, x)
    anchors = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    want = sum(ref_ewc(p.detach(), a, f) for p, a, f in zip(model.parameters(), anchors, fishers))
    assert float(regs.penalty()) == pytest.approx(2.0 * want, rel=1e-9)
    w, a, f = (t.requires_grad_(i == 0) for i, t in enumerate(_inputs(torch.Generator().manual_seed(5))))
    assert torch.autograd.gradcheck(lambda v: RF.ewc(v, a, f), (w,))


def test_second_consolidation_sums_fishers_and_moves_the_anchor():
    model = _model()
    xa = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    xb = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    reg = reglab.EWC(1.0, fisher="true")
    reg.consolidate(model, xa)  # standalone: binds every parameter
    fa = ref_fisher(model, xa)
    with torch.no_grad():
        model[0].weight.add_(0.5)
    fb = ref_fisher(model, xb)
    reg.consolidate(model, xb)
    torch.testing.assert_close(reg.fisher__0__weight, fa[0] + fb[0], rtol=1e-10, atol=1e-14)
    assert torch.equal(reg.anchor__0__weight, model[0].weight.detach())


def test_state_dict_round_trip():
    model = _model()
    reg = reglab.EWC(3.0, fisher="empirical")
    regs = reglab.attach(model, reg)
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.randint(0, 3, (5,))
    reg.consolidate(model, x, y)
    with torch.no_grad():
        model[2].weight.mul_(1.5)
    value = float(regs.penalty())
    fresh = reglab.from_config(reg.get_config())
    fresh.load_state_dict(reg.state_dict())  # before attach: buffers created by name
    again = reglab.attach(model, fresh)
    assert float(again.penalty()) == pytest.approx(value, rel=1e-12)
    assert fresh.get_config() == {"name": "ewc", "weight": 3.0, "fisher": "empirical"}


def test_bad_inputs():
    model = _model()
    reg = reglab.EWC()
    regs = reglab.attach(model, reg)
    with pytest.warns(RuntimeWarning, match="EWC.*consolidate"):
        assert float(regs.penalty()) == 0.0  # anchors, no Fisher yet: no previous task to protect
    with pytest.raises(RegularizerInputError, match="EWC.*no anchor"):
        reg.penalty(torch.randn(3, 4))
    with pytest.raises(RegularizerInputError, match="EWC.*NaN"):
        reg.consolidate(model, torch.full((2, 3), float("nan"), dtype=torch.float64))
    with pytest.raises(RegularizerInputError, match="EWC.*label"):
        reglab.EWC(fisher="empirical").consolidate(model, torch.randn(2, 3, dtype=torch.float64))
    with pytest.raises(RegularizerInputError, match="fisher"):
        reglab.EWC(fisher="exact")
    w = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(RegularizerInputError, match="ewc"):
        RF.ewc(w, w, torch.ones(4, 3, dtype=torch.float64))
    with pytest.raises(RegularizerInputError, match="EWC.*together"):
        reg.penalty(w, anchor=w)
