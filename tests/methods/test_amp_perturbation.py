"""Adversarial Model Perturbation (Zheng et al., 2021) against a hand-written inner ascent."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import reglab
from reglab.core.errors import RegularizerInputError

from ._problem import loss_of, make_problem


def amp_by_hand(model, x, y, steps, eps, inner_lr, inner_iter, lr):
    params = list(model.parameters())
    for _ in range(steps):
        delta = [torch.zeros_like(p) for p in params]
        g = torch.autograd.grad(loss_of(model, x, y), params)
        for _k in range(inner_iter):
            with torch.no_grad():
                new = []
                for d, gi in zip(delta, g):
                    n = d + inner_lr * gi
                    if n.norm() > eps:
                        n = n * eps / n.norm()
                    new.append(n)
                for p, d, n in zip(params, delta, new):
                    p.add_(n - d)
                delta = new
            g = torch.autograd.grad(loss_of(model, x, y), params)
        with torch.no_grad():
            for p, d, gi in zip(params, delta, g):
                p.sub_(d)
                p.sub_(lr * gi)
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("eps, inner_iter", [(0.5, 1), (0.02, 2), (10.0, 3)])
def test_amp_equals_hand_written(eps, inner_iter):
    model, x, y = make_problem(torch.float64)
    ref_model = copy.deepcopy(model)
    amp = reglab.create("amp_perturbation", params=model.parameters(), epsilon=eps, inner_iter=inner_iter, lr=0.1)

    def closure():
        loss = loss_of(model, x, y)
        loss.backward()
        return loss

    for _ in range(2):
        amp.step(closure)
    ref = amp_by_hand(ref_model, x, y, 2, eps, 1.0, inner_iter, 0.1)
    for p, r in zip(model.parameters(), ref):
        assert torch.allclose(p, r, atol=1e-10)


def test_amp_needs_closure_and_valid_args():
    amp = reglab.AMPPerturbation(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(RegularizerInputError, match="closure"):
        amp.step()
    with pytest.raises(RegularizerInputError, match="inner_iter"):
        reglab.AMPPerturbation(nn.Linear(2, 2).parameters(), inner_iter=-1)
    assert amp.get_config() == {"name": "amp_perturbation", "epsilon": 0.5, "inner_lr": 1.0, "inner_iter": 1, "lr": 0.1}
