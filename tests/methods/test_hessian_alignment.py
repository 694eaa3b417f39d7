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


# ------------------------------------------------------------------ the Hutchinson variant

def _all_signs(n):
    """Every vector of {−1, +1}ⁿ, one a row: the Rademacher distribution exactly."""
    bits = torch.arange(2**n).unsqueeze(1).bitwise_right_shift(torch.arange(n)).bitwise_and(1)
    return (2 * bits - 1).to(torch.float64)


def ref_hutchinson(head, samples, seed, alpha=1.0, beta=1.0):
    """α Σ_e ‖D̂_e − D̂‖² + β Σ_e ‖g_e − ḡ‖², D̂ = (1/S) Σ_s z_s ⊙ H z_s with full Hessians; the vectors are
    S × n Rademacher draws from a generator seeded ``seed``: the mean loss's first, then each environment's."""
    w = head.w.detach()
    n = w.numel()
    gen = torch.Generator().manual_seed(seed)

    def grad_and_diag(fn):
        x = w.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(x), x)
        h = hessian(fn, w).reshape(n, n)
        z = 2 * torch.randint(0, 2, (samples, n), generator=gen).to(torch.float64) - 1
        return g.reshape(-1), torch.stack([zs * (h @ zs) for zs in z]).mean(0)

    gm, dm = grad_and_diag(lambda x: sum(head.env_loss(x, e) for e in range(3)) / 3)
    total = 0.0
    for e in range(3):
        g, d = grad_and_diag(lambda x, e=e: head.env_loss(x, e))
        total += alpha * float(((d - dm) ** 2).sum()) + beta * float(((g - gm) ** 2).sum())
    return total


def test_hutchinson_matches_explicit_hessians_for_the_drawn_vectors():
    losses, head = _inputs(torch.Generator().manual_seed(6))
    reg = reglab.HessianAlignment(0.5, variant="hutchinson", samples=7, alpha=0.3, beta=2.0)
    value = reg(losses, head, generator=torch.Generator().manual_seed(11))
    assert float(value) == pytest.approx(0.5 * ref_hutchinson(head, 7, 11, alpha=0.3, beta=2.0), rel=1e-10)
    value.backward()
    assert head.w.grad is not None and float(head.w.grad.abs().sum()) > 0


def test_hutchinson_defaults_are_the_official_cmnist_ones():
    reg = reglab.HessianAlignment(variant="hutchinson")
    assert (reg.samples, reg.alpha, reg.beta) == (150, 1.0, 1.0)  # cmnist_Hutchinson.py: repeat=150, unweighted
    assert reglab.HessianAlignment().variant == "hgp"  # the default stays HGP


def test_hutchinson_estimator_expectation_is_the_hessian_diagonal():
    """Averaged over every Rademacher vector (the distribution exactly), z ⊙ Hz is diag(H)."""
    from reglab.methods.hessian_alignment import _hutchinson_diagonal

    head = _Head(torch.Generator().manual_seed(8))
    fn = lambda x: head.env_loss(x, 1)  # noqa: E731
    (g,) = torch.autograd.grad(fn(head.w), head.w, create_graph=True)
    got = _hutchinson_diagonal(g.reshape(-1), [head.w], _all_signs(head.w.numel()))
    exact = torch.diagonal(hessian(fn, head.w.detach()).reshape(6, 6))
    torch.testing.assert_close(got.detach(), exact, rtol=1e-12, atol=1e-14)


def test_hutchinson_is_reproducible_with_a_generator_and_random_without():
    losses, head = _inputs(torch.Generator().manual_seed(9))
    reg = reglab.HessianAlignment(variant="hutchinson", samples=3)
    a = reg.penalty(losses, head, generator=torch.Generator().manual_seed(1))
    b = reg.penalty(losses, head, generator=torch.Generator().manual_seed(1))
    c = reg.penalty(losses, head, generator=torch.Generator().manual_seed(2))
    assert float(a) == float(b) and float(a) != float(c)


def test_hutchinson_linear_losses_have_no_hessian_term():
    """A loss linear in the head has H = 0: only the gradient term is left (its vectors are still drawn)."""
    w = nn.Parameter(torch.randn(4, dtype=torch.float64))
    c = torch.randn(2, 4, dtype=torch.float64)
    losses = torch.stack([(w * c[0]).sum(), (w * c[1]).sum()])
    value = reglab.HessianAlignment(variant="hutchinson", samples=5).penalty(losses, [w])
    mean = c.mean(0)
    assert float(value) == pytest.approx(float(((c - mean) ** 2).sum()), rel=1e-12)


@pytest.mark.parametrize("variant", ["hgp", "hutchinson"])
def test_float64_gradient_check(variant):
    head = _Head(torch.Generator().manual_seed(10))
    reg = reglab.HessianAlignment(variant=variant, samples=3, alpha=0.7, beta=1.3)

    def fn(w):
        losses = torch.stack([head.env_loss(w, e) for e in range(3)])
        return reg.penalty(losses, [w], generator=torch.Generator().manual_seed(4))

    assert torch.autograd.gradcheck(fn, (head.w.detach().clone().requires_grad_(True),))


def test_hutchinson_bad_inputs_and_hyperparameters():
    losses, head = _inputs(torch.Generator().manual_seed(12))
    reg = reglab.HessianAlignment(variant="hutchinson", samples=2)
    with pytest.raises(RegularizerInputError, match="HessianAlignment.*2 environments"):
        reg(losses[:1], head)
    with pytest.raises(RegularizerInputError, match="HessianAlignment.*graph"):
        reg(losses.detach(), head)
    with pytest.raises(RegularizerInputError, match="HessianAlignment.*no parameters"):
        reg(losses, [])
    bad = losses.detach().clone()
    bad[0] = float("nan")
    with pytest.raises(RegularizerInputError, match="HessianAlignment"):
        reg(bad.requires_grad_(True), head)
    with pytest.raises(RegularizerInputError, match="HessianAlignment.*do not depend"):
        reg(torch.stack([losses[0], losses[1]]), [nn.Parameter(torch.zeros(2, dtype=torch.float64))])
    for kwargs in ({"variant": "trace"}, {"samples": 0}, {"samples": 1.5}, {"alpha": -1.0}, {"beta": float("nan")}):
        with pytest.raises(RegularizerInputError, match="HessianAlignment"):
            reglab.HessianAlignment(**kwargs)
    with pytest.raises(RegularizerInputError, match="HessianAlignment.*variant"):
        reglab.functional.hessian_alignment(losses, head, variant="trace")


def test_config_round_trip_keeps_the_variant():
    reg = reglab.HessianAlignment(0.25, variant="hutchinson", samples=3, alpha=1e-3, beta=5e-3)
    cfg = reg.get_config()
    assert cfg == {"name": "hessian_alignment", "weight": 0.25, "variant": "hutchinson", "samples": 3,
                   "alpha": 1e-3, "beta": 5e-3}
    again = reglab.from_config(cfg)
    assert type(again) is reglab.HessianAlignment and again.get_config() == cfg
    losses, head = _inputs(torch.Generator().manual_seed(13))
    a = reg(losses, head, generator=torch.Generator().manual_seed(5))
    b = again(losses, head, generator=torch.Generator().manual_seed(5))
    assert float(a) == float(b)
