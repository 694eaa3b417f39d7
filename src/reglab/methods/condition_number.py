"""Condition-number regularizer for model immunization (Zheng, Bai, Bullins & Yeh, ICML 2025).

A pre-trained feature extractor φ is "immunized" against fine-tuning on a
harmful task when the Hessian of a linear probe on that task, ∝ S_H =
φ(X_H)ᵀφ(X_H), is ill-conditioned (gradient descent on it converges
slowly), while the probe's Hessian on the task the model is meant for,
S_P = φ(X_P)ᵀφ(X_P), stays well-conditioned. With k the feature dimension:

    R_well(S_P) = σ_max(S_P)²/2 − ‖S_P‖²_F/(2k)            (≥ 0; 0 iff every eigenvalue equal)
    R_ill(S_H)  = 1 / (‖S_H‖²_F/(2k) − σ_min(S_H)²/2)       (small when σ_min is small)
    R = λ_1·R_well(S_P) + λ_2·R_ill(S_H)

Pinned from the official code (amberyzheng/model-immunization-cond-num,
``models/model.py`` ``Model.reg_loss`` (r1, r2 with n = 2, K, the
weights), ``utils/loss.py`` ``condition_number`` (float64, ``S + 1e-6·I``,
``eigvalsh``, σ_min the smallest eigenvalue above 1e-6, i.e. of the
non-null space), ``configs/mnist.yaml`` (λ_1 = 1, λ_2 = 5e7, the linear
feature extractor on MNIST; the ImageNet configs use λ_1 = 5e-5,
λ_2 = 2e6: the scale of S sets them)). The official ``reg_loss`` takes k
from the input's last dimension, which equals the feature dimension in its
linear experiments; here k is the feature dimension (S's size), which
keeps R_well ≥ 0 for any extractor.

R_well is the condition-number minimizer of Nenov, Haider & Balazs (2024);
R_ill is the paper's Theorem 4.1. The paper's monotonicity guarantee
(Theorem 4.3) also multiplies the feature extractor's gradient by K⁻¹ (the
official ``LinearFeatureExtractor`` "dummy layer" preconditioning): that
is part of its linear extractor's training, not of the penalty, and is not
reproduced here.

The Grams sum over the batch: under DDP they are those of the global
batches (``gather=True``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from reglab.core import Claim, Paper, RegularizerInputError, register
from reglab.core.regularizer import RepresentationRegularizer
from reglab.ops import hyperparameters, no_autocast, non_negative, positive, prepare_batch

__all__ = ["condition_number_terms", "condition_number_immunization", "ConditionNumberImmunization"]

PAPER = Paper(
    "Model Immunization from a Condition Number Perspective",
    "Zheng, A. Y., Bai, C. S., Bullins, B. and Yeh, R. A.", 2025, arxiv="2505.23760", venue="ICML",
    code="https://github.com/amberyzheng/model-immunization-cond-num")

WHO = "ConditionNumberImmunization"


class ConditionNumberTerms(NamedTuple):
    well: torch.Tensor  # R_well on the intended task's features (minimized: keeps it well-conditioned)
    ill: torch.Tensor  # R_ill on the harmful task's features (minimized: makes it ill-conditioned)


@hyperparameters(WHO, eps=positive)
def condition_number_terms(
    z_keep: torch.Tensor, z_harmful: torch.Tensor, *, eps: float = 1e-6, gather: bool = True
) -> ConditionNumberTerms:
    """``R_well(φ(X_P)ᵀφ(X_P))`` and ``R_ill(φ(X_H)ᵀφ(X_H))`` (Zheng et al., 2025; official ``reg_loss``).

    ``z_keep``: (n_P, k) features of the task to keep; ``z_harmful``:
    (n_H, k) features of the task to immunize against. Eigenvalues of
    ``S + eps·I`` in float64; σ_min over the eigenvalues above ``eps``.
    """
    zp = prepare_batch(WHO, z_keep, arg="features of the task to keep", gather=gather)
    zh = prepare_batch(WHO, z_harmful, arg="features of the harmful task", gather=gather)
    if zp.shape[1] != zh.shape[1]:
        raise RegularizerInputError(
            f"{WHO} expects both feature batches with one dimension, got {tuple(zp.shape)} and {tuple(zh.shape)}"
        )
    out_dtype = torch.promote_types(zp.dtype, zh.dtype)
    with no_autocast(zp):
        k = zp.shape[1]
        sp, sh = zp.double().T @ zp.double(), zh.double().T @ zh.double()
        eye = torch.eye(k, dtype=torch.float64, device=sp.device)
        if sp.device.type == "meta":
            return ConditionNumberTerms(sp.sum().to(out_dtype), sh.sum().to(out_dtype))
        eig_p = torch.linalg.eigvalsh(sp + eps * eye)
        eig_h = torch.linalg.eigvalsh(sh + eps * eye)
        nonnull = eig_h[eig_h > eps]
        if nonnull.numel() == 0:
            raise RegularizerInputError(f"{WHO}: the harmful task's features are all zero (their Gram has no eigenvalue above {eps})")
        well = eig_p.max().pow(2) / 2 - sp.pow(2).sum() / (2 * k)
        gap = sh.pow(2).sum() / (2 * k) - nonnull.min().pow(2) / 2
        if not bool(gap > 0):
            raise RegularizerInputError(
                f"{WHO}: the harmful task's feature Gram is perfectly conditioned (all its eigenvalues equal), where "
                f"R_ill = 1/(‖S‖²_F/2k − σ_min²/2) is undefined"
            )
        ill = 1.0 / gap
        if not (bool(torch.isfinite(well)) and bool(torch.isfinite(ill))):
            raise RegularizerInputError(f"{WHO}: the condition-number terms overflow float64 (features too large)")
    return ConditionNumberTerms(well.to(out_dtype), ill.to(out_dtype))


@hyperparameters(WHO, lambda_well=non_negative, lambda_ill=non_negative)
def condition_number_immunization(
    z_keep: torch.Tensor, z_harmful: torch.Tensor, *, lambda_well: float = 1.0, lambda_ill: float = 5e7,
    eps: float = 1e-6, gather: bool = True,
) -> torch.Tensor:
    """``λ_1·R_well(S_keep) + λ_2·R_ill(S_harmful)`` (Zheng et al., 2025); defaults of the official MNIST config."""
    t = condition_number_terms(z_keep, z_harmful, eps=eps, gather=gather)
    return lambda_well * t.well + lambda_ill * t.ill


@register
class ConditionNumberImmunization(RepresentationRegularizer):
    """Condition-number immunization: keep one task's feature Gram well-conditioned, make a harmful one's ill.

    Zheng, Bai, Bullins & Yeh (2025). On features ``z_keep`` of the task
    the model is for and ``z_harmful`` of the task it should resist being
    fine-tuned on, with S = zᵀz (k×k)::

        R = λ_1·(σ_max(S_keep)²/2 − ‖S_keep‖²_F/2k) + λ_2/(‖S_harm‖²_F/2k − σ_min(S_harm)²/2)

    The first term is zero when S_keep's eigenvalues are all equal; the
    second shrinks as S_harm's smallest (non-null) eigenvalue goes to zero,
    so a linear probe fine-tuned on the harmful task by gradient descent
    faces a large condition number. Eigenvalues in float64 (``eigvalsh``
    of S + 1e-6·I, σ_min over those above 1e-6), as the official code.
    λ_1 = 1, λ_2 = 5e7 are the official MNIST values (ImageNet: 5e-5,
    2e6): they depend on the scale of the features. Under DDP the Grams are
    those of the global batches (``gather=True``). Cost: two k×k
    eigendecompositions per step.
    """

    name = "condition_number_immunization"
    formula = "λ₁(σ_max(S_P)²/2 − ‖S_P‖²_F/2k) + λ₂/(‖S_H‖²_F/2k − σ_min(S_H)²/2),  S = zᵀz"
    paper = PAPER
    num_inputs = 2
    function = condition_number_immunization
    terms = condition_number_terms
    claims = (
        Claim(
            "After immunization, fine-tuning a linear probe on the harmful task converges much more slowly while "
            "the intended task keeps its accuracy",
            testable=False,
            untestable_reason="needs a two-task immunization setup (pre-train with both feature batches, then "
            "fine-tune probes on each task and compare convergence); no lab task has a harmful/kept task pair",
            source="Zheng et al. 2025, Sec. 5 (linear models on house prices and MNIST; ResNet-18 and ViT on "
            "ImageNet with Stanford Cars / Country211 as harmful tasks)",
        ),
    )
