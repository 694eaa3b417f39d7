"""Cross-Modal Alignment (CMA) regularizer for multi-modal fine-tuning (Kim & Hwang, CVPR 2025).

With L2-normalized image and text embeddings of a paired batch and the CLIP
logit scale s, L_ij = s·⟨x_i, t_j⟩ and

    R = ½ · [ mean_i (−log Σ_j exp L_ij)  +  mean_j (−log Σ_i exp L_ij) ],

the negative log-sum-exp (a free energy) of each image over the batch's texts
and of each text over its images, added to the symmetric CLIP loss with a
small weight λ. Lowering it raises every image–text similarity of the
in-distribution data, which closes the modality gap between image and text
embeddings (the paper reads it as maximum likelihood of an energy-based model
on the hypersphere); OoD scores (MCM, NegLabel) then separate better.

Pinned from the authors' code, ma-kjh/CMA-OoDD ``utils/train_utils.py``
(``train``): ``t_loss_data_text = -logsumexp(logits_per_text, dim=1)``, the
same for images, and ``total = (text_loss + lam·mean_text)/2 + (image_loss +
lam·mean_image)/2``, i.e. λ·R with R as above; README: ``--lam 0.001``.
The scale is CLIP's learned ``logit_scale.exp()`` (``scale[0]`` there), 100
for the released CLIP models (their learned value, at CLIP's clamp).
"""

from __future__ import annotations

import torch

from reglab.core import Claim, Paper, RepresentationRegularizer, register
from reglab.ops import common_dtype, hyperparameters, no_autocast, normalize_rows, positive, prepare_views

PAPER = Paper(
    "Enhanced OoD Detection through Cross-Modal Alignment of Multi-Modal Representations",
    "Kim, Hwang", 2025, arxiv="2503.18817", venue="CVPR", code="https://github.com/ma-kjh/CMA-OoDD")

WHO = "CMA"


@hyperparameters(WHO, logit_scale=positive)
def cma(image: torch.Tensor, text: torch.Tensor, *, logit_scale: float = 100.0, gather: bool = True) -> torch.Tensor:
    """CMA: ``½[mean_i −LSE_j(s·x_i·t_j) + mean_j −LSE_i(s·x_i·t_j)]`` on L2-normalized rows.

    ``image``, ``text``: (n, d) embeddings, row i of each the same pair (the
    text of image i's class prompt). ``gather=True``: under DDP the log-sum-exp
    runs over the global batch (the official code's single DataParallel batch).
    """
    x, t = common_dtype(*prepare_views(WHO, image, text, gather=gather))
    with no_autocast(x):
        logits = logit_scale * normalize_rows(x) @ normalize_rows(t).T
        per_image = -torch.logsumexp(logits, dim=1)
        per_text = -torch.logsumexp(logits, dim=0)
        return 0.5 * (per_image.mean() + per_text.mean())


@register
class CMA(RepresentationRegularizer):
    """Cross-Modal Alignment: the negative log-sum-exp of the image–text logits, to close the modality gap.

    R = ½[mean_i −log Σ_j exp(s·x_i·t_j) + mean_j −log Σ_i exp(s·x_i·t_j)] on
    L2-normalized image (x) and text (t) embeddings of a paired batch, added to
    the CLIP fine-tuning loss: ``loss = clip_loss + cma(img, txt)``. Where the
    contrastive loss only ranks the matching pair above the others, R raises
    the energy of all in-distribution image–text pairs, pulling the two
    modalities together on the sphere (Kim & Hwang, 2025).

    Defaults from ma-kjh/CMA-OoDD: ``weight`` λ = 0.001 (README, ``--lam
    0.001``), the form and the ½ of ``utils/train_utils.py``; s = 100 is the
    released CLIP models' learned scale (pass yours if it is learned or
    different). Under DDP (``gather=True``) the log-sum-exp runs over the
    global batch.

    Kim & Hwang (2025), CVPR, arXiv:2503.18817.
    """

    name = "cma"
    paper = PAPER
    formula = "½[mean_i −LSE_j(s·x̂_i·t̂_j) + mean_j −LSE_i(s·x̂_i·t̂_j)]"
    function = cma
    default_weight = 1e-3
    num_inputs = 2
    claims = (
        Claim(
            "CMA fine-tuning improves OoD detection (FPR95, AUROC with MCM/NegLabel scores) and ID accuracy of CLIP "
            "on the ImageNet-1k OoD benchmark",
            testable=False,
            untestable_reason="needs an image–text model (CLIP) fine-tuned on ImageNet with its text encoder; no "
            "lab task has two modalities or an OoD split, and a toy with fixed random class vectors as 'text' "
            "would not have the modality gap the method closes",
            source="Kim & Hwang 2025, Tables 1-2 (ImageNet-1k OoD benchmarks)",
        ),
    )
