"""Agreement with the frozen pretrained model (PromptSRC's self-regulating constraints; Khattak et al., ICCV 2023).

L_SCL = λ_f · mean |f̂ − f̂₀| + Σ_{b,c} p₀ (log p₀ − log p) / (B·C),

f̂, f̂₀ the L2-normalized features of the model being adapted and of the
frozen pretrained model on the same input (B, D), p = softmax(logits),
p₀ = softmax(frozen logits) (B, C): an L1 agreement of the features and the
KL(p₀ ‖ p) of the predictions averaged over all B·C entries. Pinned from
the official code, muzairkhattak/PromptSRC @ 8be7dcff: ``trainers/promptsrc.py``
``forward_backward`` (``F.l1_loss(image_ft, zs_image_embedd)·IMAGE_LOSS_WEIGHT``
and ``F.kl_div(log_softmax(logits), log_softmax(zero_shot_logits),
reduction='sum', log_target=True)/logits.numel()``; ``CustomCLIP.forward``
normalizes both feature sets) and
``configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml``
(IMAGE_LOSS_WEIGHT 10, TEXT_LOSS_WEIGHT 25, total loss CE + L_SCL). The text
branch is a second L1 term on the class text features with λ = 25 (call the
penalty on them with ``feature_weight=25`` and no logits term, or write it
out); PromptSRC's Gaussian-weighted prompt aggregation over epochs (GPA) is
not part of this penalty.
"""

from __future__ import annotations

import torch

from reglab.core import Claim, Paper, RegularizerInputError, RepresentationRegularizer, register
from reglab.ops import check_logits, hyperparameters, no_autocast, non_negative, normalize_rows, prepare_views
from reglab.ops.validation import check_same_shape

__all__ = ["frozen_agreement", "FrozenAgreement"]

PAPER = Paper(
    "Self-regulating Prompts: Foundational Model Adaptation without Forgetting",
    "Khattak, Wasim, Naseer, Khan, Yang, Khan", 2023, arxiv="2307.06948", venue="ICCV",
    code="https://github.com/muzairkhattak/PromptSRC")


@hyperparameters("FrozenAgreement", feature_weight=non_negative)
def frozen_agreement(
    features: torch.Tensor, frozen_features: torch.Tensor, logits: torch.Tensor, frozen_logits: torch.Tensor, *,
    feature_weight: float = 10.0, normalize: bool = True,
) -> torch.Tensor:
    """PromptSRC's L_SCL for one branch: ``λ_f·mean|f̂ − f̂₀| + KL(p₀ ‖ p)/(B·C)`` (``trainers/promptsrc.py``).

    ``normalize`` L2-normalizes both feature sets first, as the official
    model does. Per-sample means: no gather under DDP.
    """
    who = "FrozenAgreement"
    check_same_shape(who, features, frozen_features, "features and frozen features")
    f, f0 = prepare_views(who, features, frozen_features, min_batch=1, gather=False)
    check_same_shape(who, logits, frozen_logits, "logits and frozen logits")
    check_logits(who, logits)
    check_logits(who, frozen_logits, arg="frozen logits")
    if logits.shape[0] != f.shape[0]:
        raise RegularizerInputError(
            f"{who} expects one row of logits per feature row ({f.shape[0]}), got logits of shape {tuple(logits.shape)}")
    with no_autocast(f):
        if normalize:
            f, f0 = normalize_rows(f), normalize_rows(f0)
        feat = (f - f0).abs().mean()
        logp = torch.log_softmax(logits.to(f.dtype), dim=1)
        logp0 = torch.log_softmax(frozen_logits.to(f.dtype), dim=1)
        kl = (logp0.exp() * (logp0 - logp)).sum() / logits.numel()
        return feature_weight * feat + kl


@register
class FrozenAgreement(RepresentationRegularizer):
    """Agreement with the frozen pretrained model: λ_f·mean|f̂ − f̂₀| + KL(p₀ ‖ p)/(B·C).

    PromptSRC's self-regulating constraints for adapting a pretrained model
    without forgetting: the adapted model's normalized features stay close
    (L1) to the frozen model's, and its predictions close (KL from the frozen
    model's predictions, averaged over the B·C entries) to the frozen
    model's zero-shot predictions. ``reg(features, frozen_features, logits,
    frozen_logits)`` with the frozen quantities computed under
    ``torch.no_grad()``. Defaults from the official config: λ_f = 10 (image
    features; 25 for the text features), weight 1 (loss = CE + L_SCL).

    Khattak, Wasim, Naseer, Khan, Yang & Khan (2023), ICCV, arXiv:2307.06948.
    """

    name = "frozen_agreement"
    paper = PAPER
    formula = "λ_f·mean|f̂ − f̂₀| + Σ p₀(log p₀ − log p)/(B·C)"
    function = frozen_agreement
    num_inputs = 4
    takes_embedding_batches = False  # features and logits: its own tests cover gradients and config
    claims = (
        Claim(
            "Agreement with the frozen model keeps the pretrained model's generalization while adapting "
            "(base-to-novel, cross-dataset and domain-generalization gains on 11 datasets)",
            testable=False,
            untestable_reason="needs a frozen pretrained model whose features and zero-shot logits are compared "
            "with the adapted model's on each batch, and an evaluation on classes or domains the adaptation never "
            "saw; the lab's transfer task attaches weight penalties only and has no frozen zero-shot head",
        ),
    )
