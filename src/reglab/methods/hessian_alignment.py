"""Hessian alignment across training domains (Hemati, Zhang, Estiri & Chen, ICCV 2023: "Understanding
Hessian Alignment for Domain Generalization"), both of the paper's estimators: HGP and Hutchinson.

Match, across the training environments e, the classifier head's gradients g_e and a curvature vector
c_e to those of the average risk (ḡ, c̄ of the mean of the environments' losses):

    R = α·Σ_e ‖c_e − c̄‖² + β·Σ_e ‖g_e − ḡ‖²,

* ``variant="hgp"`` (default): c = H·g, the Hessian-gradient product, computed without a Hessian as
  ‖g‖·∇‖g‖ (double backprop). Pinned from the official code (huawei-noah/Federated-Learning,
  ``HessianAlignment/cmnist/cmnist_HGP.py``, commit 89965534: ``compute_sad_penalty`` (‖g_e‖ over the
  classifier's parameters), ``Hg_e = ‖g_e‖·∇‖g_e‖``, ``mean_Hg`` from the gradient of the mean NLL,
  ``sad_penalty = Σ_e ‖Hg_e − mean_Hg‖² + Σ_e ‖g_e − ḡ‖²``, both terms unweighted).
* ``variant="hutchinson"``: c = diag(H), Hutchinson's estimate with Rademacher vectors,
  ĉ = (1/S)·Σ_s z_s ⊙ (H z_s), z_s ∈ {−1, +1}ⁿ, H z = ∇(g·z) (a Hessian-vector product, no Hessian).
  Pinned from ``HessianAlignment/cmnist/cmnist_Hutchinson.py`` (same commit): ``calc_hessian_diag``
  (lines 233-242: ``z = 2·randint_like(g, high=2) − 1``, ``Hz = ∇(g·z)`` with ``create_graph=True``, the
  mean of ``z*Hz``), called with ``repeat=150`` (lines 395-398: S = 150, the default ``samples``) once for
  the mean loss and once per environment, each with its own fresh vectors (c̄ is the estimate of the mean
  loss's diagonal, not the mean of the environments' estimates); ``sad_penalty`` (lines 408-409) =
  Σ_e ‖g_e − ḡ‖² + Σ_e ‖ĉ_e − ĉ̄‖², unweighted (α = β = 1), nothing detached. As there, the estimates'
  own noise (variance Σ_{j≠i} H_ij²/S per entry) enters the penalty: identical environments still give a
  small positive Hessian term. Vectors come from ``generator`` (a per-call argument; the global RNG without
  one), drawn for the mean loss first, then for each environment in order.

In both Colored-MNIST scripts the loss is ``train_nll + λ·penalty``, divided by λ once λ > 1, with IRM's
λ = 91257 after 190 annealing steps (1 before); the default λ = 1 here is a library choice. The official
DomainBed classes (``HessianAlignment/domainbed/algorithms.py``: ``HGP``, lines 2007-2103; ``Hutchinson``,
lines 2105-2202) differ: they weight the terms by ``penalty_alpha``/``penalty_beta`` (``hparams_registry.py``:
HGP α = 1e-4, β = 5e-3, lines 154-156; Hutchinson α = 1e-3, β = 5e-3, lines 159-161), detach c̄ and ḡ and
divide the sum by the number of environments (lines 2158-2161), and use S = 300 (lines 2146, 2154).
``alpha``, ``beta`` and ``samples`` reproduce those weights and S, and λ can absorb the 1/n; the detached
averages are not offered.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from reglab.core import Claim, Paper, Regularizer, RegularizerInputError, register
from reglab.ops import check_tensor, hyperparameters, integer, non_negative, one_of, require_values

__all__ = ["HessianAlignment", "hessian_alignment"]

PAPER = Paper(
    "Understanding Hessian Alignment for Domain Generalization", "Hemati, Zhang, Estiri, Chen", 2023,
    arxiv="2308.11778", venue="ICCV", code="https://github.com/huawei-noah/Federated-Learning")

WHO = "HessianAlignment"
VARIANTS = ("hgp", "hutchinson")


def _flat(tensors, params: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([(torch.zeros_like(p) if t is None else t).reshape(-1) for p, t in zip(params, tensors)])


def _grad(loss: torch.Tensor, params: list[torch.Tensor], check: bool = False) -> torch.Tensor:
    """g = ∇loss flattened over ``params``, with its graph; with ``check``, an error when no gradient
    reaches any parameter (losses not computed through them)."""
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    if check and all(g is None for g in grads):
        raise RegularizerInputError(f"{WHO}: the environments' losses do not depend on the given head parameters "
                                    f"(no gradient reaches any of them; pass the losses computed through the head)")
    return _flat(grads, params)


def _hgp(flat: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """H·g = ‖g‖·∇‖g‖, with its graph."""
    norm = flat.norm()
    if not norm.requires_grad or (not norm.is_meta and float(norm.detach()) == 0.0):
        return torch.zeros_like(flat)  # a stationary point: H·0 = 0
    return norm * _flat(torch.autograd.grad(norm, params, create_graph=True, allow_unused=True), params)


def _rademacher(flat: torch.Tensor, samples: int, generator: torch.Generator | None) -> torch.Tensor:
    """``samples`` × n independent ±1 entries (official: ``2·randint_like(g, high=2) − 1``)."""
    signs = torch.randint(0, 2, (samples, flat.numel()), generator=generator, device=flat.device)
    return 2 * signs.to(flat.dtype) - 1


def _hutchinson_diagonal(flat: torch.Tensor, params: list[torch.Tensor], signs: torch.Tensor) -> torch.Tensor:
    """(1/S)·Σ_s z_s ⊙ H z_s over the rows z_s of ``signs``, H z = ∇(g·z); with its graph. A gradient with
    no graph (a loss linear in the parameters) has H = 0."""
    if not flat.requires_grad:
        return torch.zeros_like(flat)
    total = None
    for z in signs:
        hz = _flat(torch.autograd.grad(flat @ z, params, create_graph=True, allow_unused=True), params)
        total = z * hz if total is None else total + z * hz
    return total / signs.shape[0]


@hyperparameters(WHO, variant=one_of(*VARIANTS), samples=integer(1), alpha=non_negative, beta=non_negative)
def hessian_alignment(
    env_losses: torch.Tensor,
    params: Iterable[torch.Tensor] | nn.Module,
    variant: str = "hgp",
    samples: int = 150,
    alpha: float = 1.0,
    beta: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """α·Σ_e ‖c_e − c̄‖² + β·Σ_e ‖g_e − ḡ‖² over the head ``params``: c = H·g = ‖g‖∇‖g‖ (``"hgp"``) or
    Hutchinson's diag(H) estimate from ``samples`` Rademacher vectors (``"hutchinson"``; drawn from
    ``generator``, first for the mean loss, then for each environment in order; ``samples`` is unused by
    ``"hgp"``). ``env_losses``: a 1-d tensor of ≥ 2 environments' losses, each with its graph; ḡ, c̄ are those
    of their mean. Differentiable (third-order autograd through the head)."""
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

    def curvature(g: torch.Tensor) -> torch.Tensor:
        if variant == "hgp":
            return _hgp(g, ps)
        return _hutchinson_diagonal(g, ps, _rademacher(g, samples, generator))  # drawn even where H = 0

    with torch.enable_grad():
        mean_g = _grad(env_losses.mean(), ps, check=True)
        mean_c = curvature(mean_g)
        total = None
        for e in range(env_losses.shape[0]):
            g = _grad(env_losses[e], ps)
            term = alpha * (curvature(g) - mean_c).pow(2).sum() + beta * (g - mean_g).pow(2).sum()
            total = term if total is None else total + term
    if not total.is_meta and not bool(torch.isfinite(total.detach())):
        raise RegularizerInputError(f"{WHO}: the penalty is not finite (NaN/inf gradients of the environments' losses)")
    return total


@register
class HessianAlignment(Regularizer):
    """Align each environment's head gradient and curvature (HGP: H·g; Hutchinson: diag H) with the average's.

    ``reg(env_losses, head)`` returns ``λ·(α·Σ_e ‖c_e − c̄‖² + β·Σ_e ‖g_e − ḡ‖²)`` (``hessian_alignment``),
    where ``env_losses`` is a 1-d tensor of the environments' mean losses (``torch.stack([...])``, each
    with its graph), ``head`` the classifier's parameters (or module), g_e = ∇L_e, ḡ and c̄ those of
    the mean of the losses. ``variant="hgp"`` (default): c = H·g = ‖g‖·∇‖g‖ by double backprop;
    ``variant="hutchinson"``: c = (1/S)·Σ_s z_s ⊙ H z_s with S = ``samples`` = 150 Rademacher vectors per
    estimate (pass ``generator=`` per call for reproducible draws). No Hessian is formed; the result is
    differentiable (third-order autograd through the head, cheap when the head is linear; Hutchinson costs
    S Hessian-vector products per environment). As the official Colored-MNIST code
    (huawei-noah/Federated-Learning, ``HessianAlignment/cmnist/cmnist_HGP.py`` and ``cmnist_Hutchinson.py``),
    restrict ``head`` to the last layer; α = β = 1 as there. Needs ≥ 2 environments; under DDP, give each
    environment's loss over its full (gathered) batch. λ defaults to 1 (a library choice; the paper's
    CMNIST runs use IRM's λ = 91257 after 190 steps).
    """

    name = "hessian_alignment"
    kind = "procedure"
    form = "penalty"
    paper = PAPER
    formula = ("R = α Σ_e ‖c_e − c̄‖² + β Σ_e ‖g_e − ḡ‖²,  c = H g = ‖g‖∇‖g‖ (HGP) or Hutchinson's "
               "(1/S) Σ z⊙Hz (Rademacher z),  head parameters only")
    default_weight = 1.0
    function = hessian_alignment
    call_args = ("generator",)
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
