"""Glocal-IB global alignment: align the latents of a masked input to those of the complete input
(Yang, Zhang, Zhang, Yu, Ding, NeurIPS 2025).

A model-agnostic term added to the imputation loss: the (projected) embedding of the masked series z is
pulled toward the embedding of the complete series z* (detached), either by cosine alignment

    L_cos = 1 − mean cos(z, sg(z*)),   the cosine taken along dimension 1 (as ``nn.CosineSimilarity(dim=1)``),

or by an InfoNCE over the tokens of each sample (temperature 1): for embeddings (B, T, D) normalized
along D, logits[b, i, j] = ⟨ẑ_{b,i}, ẑ*_{b,j}⟩ and the cross-entropy over i (the class dimension of
``nn.CrossEntropyLoss`` on (B, T, T)) with target i = j, averaged over b and j.

Pinned from the official code, Muyiiiii/NeurIPS-25-Glocal-IB @ 1ee232e: ``Glocal_IB/align_loss.py``
(``CosAlignLoss``, ``ContrastiveLoss``), ``Glocal_IB/Glocal_IB.py`` (the wrapper: a 2-layer ReLU projection
on the masked embedding, the complete pass under ``torch.no_grad()``) and the README's configuration
(``align_loss_type="cos_align"``, ``align_weight=0.5``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reglab.core import Claim, Paper, RegularizerInputError, RepresentationRegularizer, register
from reglab.ops import check_tensor, hyperparameters, no_autocast, normalize_rows, one_of
from reglab.ops.validation import check_same_shape

__all__ = ["glocal_alignment", "GlocalAlignment"]

PAPER = Paper(
    "Glocal Information Bottleneck for Time Series Imputation", "Yang, Zhang, Zhang, Yu, Ding", 2025,
    arxiv="2510.04910", venue="NeurIPS", code="https://github.com/Muyiiiii/NeurIPS-25-Glocal-IB")


@hyperparameters("GlocalAlignment", loss=one_of("cosine", "contrastive"))
def glocal_alignment(z: torch.Tensor, target: torch.Tensor, *, loss: str = "cosine") -> torch.Tensor:
    """Glocal-IB's alignment of masked-input latents ``z`` to complete-input latents ``target`` (detached).

    ``loss="cosine"``: 1 − mean cosine along dim 1 (``CosAlignLoss``; for (B, D) the per-sample cosine).
    ``loss="contrastive"``: per-sample InfoNCE over the T tokens of (B, T, D) embeddings
    (``ContrastiveLoss``). Per-sample means: no gather under DDP.
    """
    who = "GlocalAlignment"
    check_same_shape(who, z, target, "masked and complete embeddings")
    check_tensor(who, z, arg="masked embeddings", min_ndim=2)
    check_tensor(who, target, arg="complete embeddings", min_ndim=2)
    t = target.detach().to(z.dtype)
    with no_autocast(z):
        if loss == "cosine":  # cosine along dim 1, with overflow-safe norms (nn.CosineSimilarity(dim=1))
            zc = normalize_rows(z.movedim(1, -1).reshape(-1, z.shape[1]))
            tc = normalize_rows(t.movedim(1, -1).reshape(-1, t.shape[1]))
            return 1.0 - (zc * tc).sum(dim=1).mean()
        if z.ndim != 3:
            raise RegularizerInputError(
                f"{who} with loss='contrastive' expects (batch, tokens, dim) embeddings, got shape {tuple(z.shape)}")
        zn, tn = F.normalize(z, dim=-1), F.normalize(t, dim=-1)
        logits = zn @ tn.transpose(-1, -2)  # (B, T, T); the class dimension is 1
        labels = torch.arange(z.shape[1], device=z.device).repeat(z.shape[0], 1)
        return F.cross_entropy(logits, labels)


@register
class GlocalAlignment(RepresentationRegularizer):
    """Glocal-IB global alignment: pull a masked input's (projected) latents to the complete input's.

    ``reg(projector(z_masked), z_complete)`` with ``z_complete`` from the same model on the complete
    input under ``torch.no_grad()`` (it is detached here too). ``loss="cosine"`` (default, the README's
    ``cos_align``: 1 − mean cosine along dim 1) or ``"contrastive"`` (InfoNCE over each sample's tokens,
    temperature 1). Default weight 0.5 (``align_weight``).
    """

    name = "glocal_alignment"
    paper = PAPER
    formula = "1 − mean cos(z, sg(z*)) along dim 1;  or  CE over tokens of ⟨ẑ_i, ẑ*_j⟩, target i = j"
    function = glocal_alignment
    num_inputs = 2
    default_weight = 0.5
    takes_embedding_batches = False  # the target is detached (stop-gradient): its own tests cover gradients
    claims = (
        Claim(
            "Aligning masked and complete latents improves imputation at high missing rates (nine datasets)",
            testable=False,
            untestable_reason="needs a time-series imputation model trained on masked series with held-out "
            "entries; no lab task imputes missing values",
        ),
    )
