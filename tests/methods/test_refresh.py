"""Refresh learning (Wang et al., 2024): the unlearning step and the task Fisher, by hand."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import reglab
from reglab import RegularizerInputError

from ._problem import loss_of, make_problem


def test_unlearn_step_matches_the_official_update():
    """θ + δ(‖θ‖·Δ/(‖Δ‖ + 1e-20) + 1e-3·ξ)/(1 + 1e-3·F), Δ = 0.01·∇L, with the same noise draws."""
    model, x, y = make_problem(torch.float64)
    ref = copy.deepcopy(model)
    refresh = reglab.create("refresh_learning", delta=1e-2)
    refresh.end_task(model, x, y)
    fishers = [getattr(refresh, "fisher__" + n.replace(".", "__")).clone() for n, _ in model.named_parameters()]
    refresh(model, lambda: loss_of(model, x, y), generator=torch.Generator().manual_seed(3))
    grads = torch.autograd.grad(loss_of(ref, x, y), list(ref.parameters()))
    g = torch.Generator().manual_seed(3)
    for p, q, gr, f in zip(ref.parameters(), model.parameters(), grads, fishers):
        step = 0.01 * gr
        xi = torch.randn(p.shape, generator=g, dtype=p.dtype)
        want = p.detach() + 1e-2 * (p.detach().norm() / (step.norm() + 1e-20) * step + 1e-3 * xi) / (1 + 1e-3 * f)
        torch.testing.assert_close(q.detach(), want, rtol=1e-12, atol=1e-14)
    assert loss_of(model, x, y) > loss_of(ref, x, y)  # an ascent step: the batch is unlearned a little


def test_end_task_fisher_by_loops_and_decay():
    model, x, y = make_problem(torch.float64)
    refresh = reglab.RefreshLearning(tau=0.5)
    refresh.end_task(model, x, y)
    w = model[0].weight
    want = torch.zeros_like(w)
    for i in range(x.shape[0]):
        logp = torch.log_softmax(model(x[i : i + 1]), dim=1)[0, int(y[i])]
        (gw,) = torch.autograd.grad(logp, [w])
        want += math.exp(float(logp)) * gw**2
    want /= x.shape[0]
    torch.testing.assert_close(refresh.fisher__0__weight, want, rtol=1e-10, atol=1e-14)
    refresh.end_task(model, x, y)
    torch.testing.assert_close(refresh.fisher__0__weight, 1.5 * want, rtol=1e-10, atol=1e-14)
    again = reglab.from_config(refresh.get_config())
    again.load_state_dict(refresh.state_dict())
    assert torch.equal(again.fisher__0__weight, refresh.fisher__0__weight)


def test_defaults_and_bad_input():
    refresh = reglab.create("refresh_learning")
    assert (refresh.delta, refresh.tau, refresh.noise, refresh.damping) == (1e-5, 1e-5, 1e-3, 1e-3)
    model, x, y = make_problem()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(RegularizerInputError, match="RefreshLearning.*NaN"):
        refresh(model, lambda: loss_of(model, x * float("nan"), y))
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    with pytest.raises(RegularizerInputError, match="RefreshLearning.*scalar"):
        refresh(model, lambda: model(x).sum(dim=1))
    with pytest.raises(RegularizerInputError, match="delta"):
        reglab.RefreshLearning(delta=0.0)
