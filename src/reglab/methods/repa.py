"""REPA: align a network's projected hidden states to a frozen encoder's features (Yu et al., ICLR 2025).

L_proj = mean_{b, n} −⟨ŷ*_{b,n}, ẑ_{b,n}⟩, hats = L2-normalized along the
feature dimension: ``z`` = the trainable projector's output h_φ(h) on the
hidden states h of an early/middle block (B, N, D) (or (B, D)), ``target`` =
the frozen encoder's features y* of the clean input (same shape). Total loss
L_task + λ·L_proj, λ = 0.5. Pinned from the official code, sihyun-yu/REPA @
67f71450: ``loss.py`` ``SILoss.__call__`` (L78–90: normalize both along the
last dim, −(z·z̃).sum(−1) averaged over patches, then over the batch and
encoders), ``train.py`` L311 (total loss) and L436 (``--proj-coeff 0.5``);
the projector ``models/sit.py`` ``build_mlp`` (L16–23) is the user's module.
GigaTok (Xiong et al. 2025) uses the same cosine alignment on tokenizer
features.
"""

from __future__ import annotations

import torch

from reglab.core import Claim, Paper, RepresentationRegularizer, register
from reglab.ops import check_tensor, no_autocast, normalize_rows, prepare_views
from reglab.ops.validation import check_same_shape

__all__ = ["repa", "REPA"]

PAPER = Paper(
    "Representation Alignment for Generation: Training Diffusion Transformers Is Easier Than You Think",
    "Yu, Kwak, Jang, Jeong, Huang, Shin, Xie", 2025, arxiv="2410.06940", venue="ICLR",
    code="https://github.com/sihyun-yu/REPA")


def repa(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """REPA projection loss ``mean_{b,n} −cos(z_{b,n}, y*_{b,n})`` (Yu et al. 2025, ``loss.py`` L78–90).

    ``z``: projected hidden states (B, N, D) or (B, D); ``target``: the frozen
    encoder's features, same shape (computed under ``torch.no_grad()``, as
    the official code does; the loss itself does not stop their gradient).
    A mean over samples and tokens: under DDP, equal local batches give the
    global mean, so nothing is gathered.
    """
    who = "REPA"
    check_same_shape(who, z, target, "projected features and target features")
    for arg, t in (("projected features", z), ("target features", target)):
        check_tensor(who, t, arg=arg, min_ndim=2, finite=False)
    z2, t2 = z.reshape(-1, z.shape[-1]), target.reshape(-1, target.shape[-1])
    z2, t2 = prepare_views(who, z2, t2, min_batch=1, gather=False)
    with no_autocast(z2):
        return -(normalize_rows(z2) * normalize_rows(t2)).sum(dim=1).mean()


@register
class REPA(RepresentationRegularizer):
    """REPA: negative cosine similarity between projected hidden states and a frozen encoder's features.

    L = mean_{b,n} −⟨ẑ_{b,n}, ŷ*_{b,n}⟩ over samples b and patches/tokens n
    (inputs (B, N, D) or (B, D); compute the target under ``torch.no_grad()``). Bind the trainable
    projector (the paper's 3-layer SiLU MLP, 2048 wide) to an early or
    middle block (depth 8 of SiT-XL/2) and pass its output with the
    encoder's features of the clean input (DINOv2-B in the paper). Default
    weight λ = 0.5 (``--proj-coeff``, sihyun-yu/REPA ``train.py`` L436).
    Patch grids must match (interpolate the encoder's features if not).

    Yu, Kwak, Jang, Jeong, Huang, Shin & Xie (2025), ICLR, arXiv:2410.06940.
    """

    name = "repa"
    paper = PAPER
    formula = "mean_{b,n} −⟨z_{b,n}/‖z_{b,n}‖, y*_{b,n}/‖y*_{b,n}‖⟩"
    function = repa
    num_inputs = 2
    default_weight = 0.5
    claims = (
        Claim(
            "REPA speeds up training of diffusion transformers (SiT-XL matches a 7M-step baseline in < 400K steps)",
            testable=False,
            untestable_reason="needs a denoiser trained next to a frozen pretrained encoder's features; no lab task "
            "trains a student beside a frozen feature extractor (transfer attaches weight penalties only, and task "
            "modules are not edited), and the paper's effect is on diffusion-transformer FID at ImageNet scale",
        ),
    )
