"""VICReg: Variance-Invariance-Covariance Regularization (Bardes, Ponce & LeCun, ICLR 2022).

L = λ·(1/(nd))Σ‖z_i − z'_i‖² + μ·½[v(Z) + v(Z')] + ν·[c(Z) + c(Z')], with
v(Z) = (1/d)Σ_j max(0, γ − √(Var(z_·j) + ε)) and c(Z) = (1/d)Σ_{i≠j} Cov(Z)_ij²
(unbiased variance and covariance).

Defaults λ = μ = 25, ν = 1, γ = 1 and ε = 1e-4 (the paper's implementation
details and the official code's defaults); the ½ on the variance term, the
unbiased estimates and the division of the covariance sum by d are those of
the official code (facebookresearch/vicreg, ``main_vicreg.py``,
``VICReg.forward``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from reglab.core import Baseline, Claim, Paper, RepresentationRegularizer, register
from reglab.ops import covariance_offdiag, no_autocast, prepare_views, variance_hinge

PAPER = Paper(
    "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning",
    "Bardes, Ponce, LeCun", 2022, arxiv="2105.04906", venue="ICLR", code="https://github.com/facebookresearch/vicreg")


class VICRegTerms(NamedTuple):
    invariance: torch.Tensor
    variance: torch.Tensor
    covariance: torch.Tensor


def vicreg_terms(
    z1: torch.Tensor, z2: torch.Tensor, *, gamma: float = 1.0, eps: float = 1e-4, gather: bool = True
) -> VICRegTerms:
    """The three unweighted VICReg terms (Bardes et al., 2022), as in the official code.

    invariance = mean over all entries of (z1 − z2)²; variance = the mean of
    the two views' hinge terms; covariance = the sum of the two views'
    off-diagonal terms (facebookresearch/vicreg, main_vicreg.py).
    ``gather=True`` computes the statistics on the global batch under DDP.
    """
    who = "VICReg"
    z1, z2 = prepare_views(who, z1, z2, gather=gather)
    with no_autocast(z1):
        inv = F.mse_loss(z1, z2)
        var = 0.5 * (variance_hinge(z1, gamma, eps) + variance_hinge(z2, gamma, eps))
        cov = covariance_offdiag(z1) + covariance_offdiag(z2)
    return VICRegTerms(inv, var, cov)


def vicreg(
    z1: torch.Tensor,
    z2: torch.Tensor,
    *,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    **options: Any,
) -> torch.Tensor:
    """VICReg loss ``λ·inv + μ·var + ν·cov`` with the paper's 25/25/1; ``options``
    (``gamma``, ``eps``, ``gather``) go to ``vicreg_terms``."""
    t = vicreg_terms(z1, z2, **options)
    return sim_coeff * t.invariance + std_coeff * t.variance + cov_coeff * t.covariance


@register
class VICReg(RepresentationRegularizer):
    """VICReg: invariance, variance and covariance terms on two views' embeddings.

    L = λ·(1/(nd))Σ‖z_i − z'_i‖² + μ·½[v(Z) + v(Z')] + ν·[c(Z) + c(Z')], with
    v(Z) = (1/d)Σ_j max(0, γ − √(Var(z_·j) + ε)) and c(Z) = (1/d)Σ_{i≠j} Cov(Z)_ij²
    (unbiased variance and covariance).

    Defaults λ = μ = 25, ν = 1, γ = 1 and ε = 1e-4 (the paper's
    implementation details and the official code's defaults); the ½ on the
    variance term, the unbiased estimates and the division of the
    covariance sum by d are those of the official code
    (facebookresearch/vicreg, ``main_vicreg.py``, ``VICReg.forward``). With
    ``gather=True`` the statistics are computed on the global batch under DDP
    (the official code all-gathers the embeddings with ``FullGatherLayer``).
    When n < d the covariance term is computed from the n×n Gram matrix, never
    forming the d×d covariance.

    Bardes, Ponce & LeCun (2022), ICLR, arXiv:2105.04906.
    """

    name = "vicreg"
    paper = PAPER
    formula = "λ·mse(z,z') + μ·½[v(z)+v(z')] + ν·[c(z)+c(z')], v = mean_j relu(γ−√(Var_j+ε)), c = Σ_{i≠j}Cov_ij²/d"
    num_inputs = 2
    function = vicreg
    terms = vicreg_terms
    claims = (
        Claim(
            "Variance and covariance terms prevent the collapse of invariance-only training",
            task="ssl_collapse", metric="effective_rank", direction="higher", role="mechanism",
            min_effect=1.0, min_effect_reason="one effective dimension (of 32)",
            baselines=(Baseline("invariance only", why="the loss that collapses without the two terms"),),
            settings="MLP encoder 64-256-32 on 8×8 digits, Adam, 50 epochs, instead of ResNet-50 on ImageNet "
            "with LARS; λ=μ=25, ν=1 are the paper's",
            source="Bardes et al. 2022, ablation of the loss terms (without the variance term training collapses)",
        ),
        Claim(
            "VICReg learns representations that give a better linear probe",
            task="ssl_collapse", metric="linear_probe_accuracy", direction="higher",
            min_effect=0.01, min_effect_reason="one point of probe accuracy",
            baselines=(
                Baseline("invariance only"),
                Baseline(
                    "untrained encoder", metric="untrained_probe_accuracy",
                    why="random features of the same encoder: what training must add to",
                ),
                Baseline("raw pixels", metric="raw_probe_accuracy", why="no representation learning at all"),
            ),
            settings="as above",
            source="Bardes et al. 2022, Table 1 (linear evaluation)",
        ),
    )
