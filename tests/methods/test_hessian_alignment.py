"""HGP Hessian alignment (Hemati et al., 2023) against explicit Hessians."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.autograd.functional import hessian

import reglab
from reglab import RegularizerInputError

from ._reference import Reference


class _Head(nn.Module):
    """A linear softmax head on fixed features of three environments (kept as buffers for the reference)."""

    def __init__(self, g: torch.Generator):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 2, generator=g, dtype=torch.float64))
        self.register_buffer("feats", torch.randn(3, 6, 3, generator=g, dtype=torch.float64))
        self.register_buffer("labels", torch.randint(0, 2, (3, 6), generator=g))

    def env_loss(self, w, e):
        return nn.functional.cross_entropy(self.feats[e] @ w, self.labels[e])

    def losses(self):
        return torch.stack([self.env_loss(self.w, e) for e in range(3)])


def _inputs(g):
    head = _Head(g)
    return head.losses(), head


def ref_hgp(env_losses, head):
    """Σ_e ‖H_e g_e − H̄ḡ‖² + ‖g_e − ḡ‖² with the full Hessians from torch.autograd.functional.hessian."""
    w = head.w.detach()
    n = w.numel()

    def grad_and_hess(fn):
        x = w.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(x), x)
        return g.reshape(-1), hessian(fn, w).reshape(n, n)

    mean_fn = lambda x: sum(head.env_loss(x, e) for e in range(3)) / 3  # noqa: E731
    gm, hm = grad_and_hess(mean_fn)
    total = 0.0
    for e in range(3):
        g, h = grad_and_hess(lambda x, e=e: head.env_loss(x, e))
        total += float(((h @ g - hm @ gm) ** 2).sum() + ((g - gm) ** 2).sum())
    return total


REFERENCES = {"hessian_alignment": Reference(ref_hgp, inputs=_inputs, rtol=1e-8)}


def test_matches_explicit_hessians_and_is_differentiable():
    losses, head = _inputs(torch.Generator().manual_seed(3))
    reg = reglab.HessianAlignment(0.5)
    value = reg(losses, head)
    assert float(value) == pytest.approx(0.5 * ref_hgp(losses, head), rel=1e-8)
    value.backward()
    assert head.w.grad is not None and float(head.w.grad.abs().sum()) > 0


def test_identical_environments_give_zero():
    head = _Head(torch.Generator().manual_seed(4))
    with torch.no_grad():
        head.feats[1] = head.feats[0]
        head.feats[2] = head.feats[0]
        head.labels[1] = head.labels[0]
        head.labels[2] = head.labels[0]
    assert float(reglab.HessianAlignment()(head.losses(), head)) == pytest.approx(0.0, abs=1e-20)


def test_bad_inputs():
    losses, head = _inputs(torch.Generator().manual_seed(5))
    reg = reglab.HessianAlignment()
    with pytest.raises(RegularizerInputError, match="HessianAlignment.*2 environments"):
        reg(losses[:1], head)
    with pytest.raises(RegularizerInputError, match="HessianAlignment.*graph"):
        reg(losses.detach(), head)
    with pytest.raises(RegularizerInputError, match="HessianAlignment.*no parameters"):
        reg(losses, [])
