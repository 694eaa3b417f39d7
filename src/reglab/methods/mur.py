"""Multi-grained uncertainty regularization for composed image retrieval (Chen, Zheng, Ji, Qu, Chua, 2022/ICLR 2024).

The target features are perturbed to simulate coarse queries, and the matching loss is relaxed in
proportion to the perturbation's spread, early in training:

    t̃ = α ⊙ IN(t) + β,   α_{b,d} ~ N(1, s_b),  β_{b,d} ~ N(m_b, s_b)   (m_b, s_b: mean and std of row t_b;
                                                                        IN: each row standardized, ε = 1e-5)
    L_u    = ½·(exp(−σ)·CE(q t̃ᵀ, diag) + σ),   σ = std of all entries of t̃
    L_info = CE(q tᵀ, diag)                      (in-batch classification: row b's positive is column b)
    L      = γ·L_u + (1 − γ)·L_info,            γ = exp(−g·epoch/E).

Pinned from the official code, Monoxide-Chen/uncertainty_retrieval @ f1fd828:
``models/augmenter/normal_augmenter.py`` (``NormalAugmenter``), ``losses/uncertainty_loss.py``
(``BatchBasedAleatoricLoss``), ``losses/batch_based_classification_loss.py`` and
``options/command_line.py`` (E = ``--epoch`` 80, g = ``--gamma_scale`` 1, α and β scales 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from reglab.core import Claim, Paper, RegularizerInputError, RepresentationRegularizer, register
from reglab.ops import common_dtype, has_data, hyperparameters, integer, no_autocast, non_negative, positive, prepare_views

__all__ = ["multigrained_uncertainty", "MultiGrainedUncertainty", "uncertainty_augment"]

PAPER = Paper(
    "Composed Image Retrieval with Text Feedback via Multi-grained Uncertainty Regularization",
    "Chen, Zheng, Ji, Qu, Chua", 2024, arxiv="2211.07394", venue="ICLR",
    code="https://github.com/Monoxide-Chen/uncertainty_retrieval")


def uncertainty_augment(t: torch.Tensor, generator: torch.Generator | None = None, *, alpha_scale: float = 1.0,
                        beta_scale: float = 1.0) -> torch.Tensor:
    """The official ``NormalAugmenter`` on (B, D) features: α ⊙ IN(t) + β with per-row Gaussian α, β
    (drawn without gradient from ``generator`` or the global RNG)."""
    std, mean = torch.std_mean(t.detach(), dim=1)
    b, d = t.shape
    with torch.no_grad():
        za = torch.randn(b, d, dtype=torch.float32, device=t.device, generator=generator).to(t.dtype)
        zb = torch.randn(b, d, dtype=torch.float32, device=t.device, generator=generator).to(t.dtype)
        alpha = alpha_scale * (1.0 + std[:, None] * za)
        beta = beta_scale * (mean[:, None] + std[:, None] * zb)
    normed = (t - t.mean(dim=1, keepdim=True)) / torch.sqrt(t.var(dim=1, unbiased=False, keepdim=True) + 1e-5)
    return alpha * normed + beta


def _in_batch_ce(q: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(q @ t.T, torch.arange(q.shape[0], device=q.device))


@hyperparameters("MultiGrainedUncertainty", total_epochs=integer(1), gamma_scale=non_negative,
                 alpha_scale=positive, beta_scale=non_negative)
def multigrained_uncertainty(
    query: torch.Tensor, target: torch.Tensor, epoch: int = 0, generator: torch.Generator | None = None, *,
    total_epochs: int = 80, gamma_scale: float = 1.0, alpha_scale: float = 1.0, beta_scale: float = 1.0,
    gather: bool = True,
) -> torch.Tensor:
    """γ·L_u + (1 − γ)·L_info (official ``BatchBasedAleatoricLoss``), the whole matching loss.

    ``query`` (B, D) the composed query features, ``target`` (B, D) the target image features (row b
    matches row b); ``epoch`` the current epoch (0-based, as the official trainer passes it).
    ``gather=True`` uses the global batch under DDP (in-batch negatives); the random α, β are drawn
    on the gathered batch, so pass the same ``generator`` seed on every rank.
    """
    who = "MultiGrainedUncertainty"
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise RegularizerInputError(f"{who} expects epoch to be a non-negative int, got {epoch!r}")
    q, t = common_dtype(*prepare_views(who, query, target, gather=gather))
    with no_autocast(q):
        aug = uncertainty_augment(t, generator, alpha_scale=alpha_scale, beta_scale=beta_scale)
        sigma = aug.std()
        l_u = 0.5 * (torch.exp(-sigma) * _in_batch_ce(q, aug) + sigma)
        l_info = _in_batch_ce(q, t)
        gamma = math.exp(-gamma_scale * epoch / total_epochs)
        value = gamma * l_u + (1.0 - gamma) * l_info
    if has_data(value) and not bool(torch.isfinite(value.detach())):
        raise RegularizerInputError(f"{who} produced a non-finite loss ({float(value)}) from finite features: they overflow {q.dtype}")
    return value


@register
class MultiGrainedUncertainty(RepresentationRegularizer):
    """Multi-grained uncertainty regularization: match queries to Gaussian-perturbed targets with an
    aleatoric relaxation early in training, annealed into the plain in-batch matching loss.

    ``reg(query, target, epoch=e)``: γ·½(e^{−σ}·CE(q t̃ᵀ) + σ) + (1 − γ)·CE(q tᵀ), γ = exp(−e/80),
    t̃ the official ``NormalAugmenter`` perturbation of the targets and σ its overall std. It *is* the
    matching loss (weight 1), replacing the in-batch classification loss it anneals into.
    """

    name = "multigrained_uncertainty"
    paper = PAPER
    formula = "γ·½(e^{−σ}·CE(q t̃ᵀ, I) + σ) + (1−γ)·CE(q tᵀ, I), t̃ = α⊙IN(t) + β, γ = exp(−g·epoch/E)"
    function = multigrained_uncertainty
    num_inputs = 2
    call_args = ("epoch", "generator")
    takes_embedding_batches = False  # random perturbations per call: its own tests cover it
    claims = (
        Claim(
            "Multi-grained uncertainty regularization raises Recall@50 of composed image retrieval (FashionIQ, "
            "Fashion200k, Shoes)",
            testable=False,
            untestable_reason="needs a composed-retrieval task (reference image + text modification -> target "
            "image) with recall@K; no lab task composes queries",
        ),
    )
