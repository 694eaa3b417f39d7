"""Hessian-gradient-product (HGP) alignment across training domains (Hemati, Zhang, Estiri & Chen, ICCV
2023: "Understanding Hessian Alignment for Domain Generalization").

Match, across the training environments e, the classifier head's gradients g_e and Hessian-gradient
products H_e·g_e to those of the average risk:

    R = Σ_e ‖H_e g_e − H̄ ḡ‖² + Σ_e ‖g_e − ḡ‖²,   ḡ, H̄ of the mean of the environments' losses,

with H·g computed without a Hessian as ‖g‖·∇‖g‖ (double backprop). Pinned from the official code
(huawei-noah/Federated-Learning, ``HessianAlignment/cmnist/cmnist_HGP.py``, commit 89965534:
``compute_sad_penalty`` (‖g_e‖ over the classifier's parameters), ``Hg_e = ‖g_e‖·∇‖g_e‖``,
``mean_Hg`` from the gradient of the mean NLL, ``sad_penalty = Σ_e ‖Hg_e − mean_Hg‖² + Σ_e
‖g_e − ḡ‖²``, both terms unweighted; the loss is ``train_nll + λ·penalty``, divided by λ once λ > 1).
Their Colored-MNIST λ is IRM's, 91257 after 190 annealing steps (1 before); the default λ = 1 here
is a library choice. The Hutchinson variant is not implemented.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from reglab.core import Claim, Paper, Regularizer, RegularizerInputError, register
from reglab.ops import check_tensor, require_values

__all__ = ["HessianAlignment"]

PAPER = Paper(
    "Understanding Hessian Alignment for Domain Generalization", "Hemati, Zhang, Estiri, Chen", 2023,
    arxiv="2308.11778", venue="ICCV", code="https://github.com/huawei-noah/Federated-Learning")

WHO = "HessianAlignment"


def _grad_and_hg(
    loss: torch.Tensor, params: list[torch.Tensor], check: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(g, H·g) flattened over ``params``, with graphs: H·g = ‖g‖·∇‖g‖; with ``check``, an error when no
    gradient reaches any parameter (losses not computed through them)."""
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    if check and all(g is None for g in grads):
        raise RegularizerInputError(f"{WHO}: the environments' losses do not depend on the given head parameters "
                                    f"(no gradient reaches any of them; pass the losses computed through the head)")
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
    flat = torch.cat([g.reshape(-1) for g in grads])
    norm = flat.norm()
    if not norm.requires_grad or (not norm.is_meta and float(norm.detach()) == 0.0):
        return flat, torch.zeros_like(flat)  # a stationary point: H·0 = 0
    dnorm = torch.autograd.grad(norm, params, create_graph=True, allow_unused=True)
    dnorm = torch.cat([(torch.zeros_like(p) if d is None else d).reshape(-1) for p, d in zip(params, dnorm)])
    return flat, norm * dnorm


@register
class HessianAlignment(Regularizer):
    """HGP: align each environment's head gradient and Hessian-gradient product with the average's.

    ``reg(env_losses, head)`` returns ``λ·(Σ_e ‖H_e g_e − H̄ḡ‖² + Σ_e ‖g_e − ḡ‖²)``, where
    ``env_losses`` is a 1-d tensor of the environments' mean losses (``torch.stack([...])``, each
    with its graph), ``head`` the classifier's parameters (or module), g_e = ∇L_e, ḡ and H̄ those of
    the mean of the losses. H·g = ‖g‖·∇‖g‖ by double backprop, so no Hessian is formed; the result is
    differentiable (third-order autograd through the head, cheap when the head is linear). As the
    official Colored-MNIST code (huawei-noah/Federated-Learning, ``HessianAlignment/cmnist/
    cmnist_HGP.py``), restrict ``head`` to the last layer. Needs ≥ 2 environments; under DDP, give each
    environment's loss over its full (gathered) batch. λ defaults to 1 (a library choice; the paper's
    CMNIST runs use IRM's λ = 91257 after 190 steps).
    """

    name = "hessian_alignment"
    kind = "procedure"
    form = "penalty"
    paper = PAPER
    formula = "R = Σ_e ‖H_e g_e − H̄ḡ‖² + Σ_e ‖g_e − ḡ‖²,  H g = ‖g‖∇‖g‖,  head parameters only"
    default_weight = 1.0
    claims = (
        Claim(
            "Aligning head gradients and Hessian-gradient products across domains improves accuracy on an unseen, "
            "correlation-shifted domain",
            testable=False,
            untestable_reason="no lab task has several training environments and a shifted test environment "
            "(the paper: Colored MNIST, DomainBed, WILDS); a faithful test needs a new multi-environment task with a "
            "spurious feature whose correlation flips at test time",
            source="Hemati et al. 2023, Tables 2-5 (HGP and Hutchinson vs ERM, IRM, V-REx, Fishr)",
        ),
    )

    def __init__(self, weight: float = 1.0):
        super().__init__(weight)

    def penalty(self, env_losses: torch.Tensor, params: Iterable[torch.Tensor] | nn.Module) -> torch.Tensor:
        check_tensor(WHO, env_losses, arg="env_losses", ndim=1)
        if env_losses.shape[0] < 2:
            raise RegularizerInputError(f"{WHO} needs the losses of at least 2 environments, got {env_losses.shape[0]}")
        if not env_losses.requires_grad:
            raise RegularizerInputError(f"{WHO} needs env_losses with an autograd graph (computed with autograd on)")
        if isinstance(params, nn.Module):
            params = params.parameters()
        ps = [p for p in params if p.requires_grad]
        if not ps:
            raise RegularizerInputError(f"{WHO} got no parameters that require grad")
        if not all(p.is_meta for p in ps):  # meta losses of real parameters: autograd cannot bring their gradients back
            require_values(WHO, env_losses, arg="env_losses",
                           needs="losses with values to differentiate parameters that hold data")
        with torch.enable_grad():
            mean_g, mean_hg = _grad_and_hg(env_losses.mean(), ps, check=True)
            total = None
            for e in range(env_losses.shape[0]):
                g, hg = _grad_and_hg(env_losses[e], ps)
                term = (hg - mean_hg).pow(2).sum() + (g - mean_g).pow(2).sum()
                total = term if total is None else total + term
        if not total.is_meta and not bool(torch.isfinite(total.detach())):
            raise RegularizerInputError(f"{WHO}: the penalty is not finite (NaN/inf gradients of the environments' losses)")
        return total
