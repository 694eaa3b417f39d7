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

from reglab.core import Baseline, Claim, Paper, RepresentationRegularizer, register
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
    takes_embedding_batches = False  # (B, N, D) tokens and a frozen target: its own tests cover them
    _settings = (
        "a few-label classifier instead of a diffusion transformer: a student MLP 64-256-256-10 trained on 10% of "
        "the 8×8 digits labels (Adam, batch 32, 40 epochs, best-validation epoch) with its first hidden layer "
        "aligned through a trainable projector 256-256-256 (SiLU; REPA's 3-layer shape, 2048 → 256 wide) to the "
        "256-d penultimate features of a frozen teacher MLP trained on the whole train split (instead of DINOv2 "
        "patch features); λ = 0.5 (the paper's), not tuned"
    )
    _mse = Baseline(
        "feature distillation (MSE through the same projector, weight 1)", task_args={"distill_mse": 1.0},
        why="regressing the frozen features is the plain alternative to a cosine alignment (the formula sheet's "
        "strongest simple alternative)",
    )
    claims = (
        Claim(
            "Aligning an early hidden layer to a frozen pretrained encoder's features improves the trained model "
            "(the lab: few-label test accuracy)",
            task="feature_alignment", metric="test_accuracy", direction="higher",
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(Baseline("no alignment", why="the same student trained on its labels alone"), _mse),
            datasets=("digits", "digits_half"), settings=_settings,
            source="Yu et al. 2025, Sec. 4 and Fig. 1 (REPA reaches the baseline's quality far sooner and improves "
            "FID)",
        ),
        Claim(
            "REPA makes the projected hidden states agree with the frozen encoder's features (higher cosine)",
            task="feature_alignment", metric="alignment_cosine", direction="higher", role="mechanism",
            min_effect=0.1, min_effect_reason="0.1 of mean cosine similarity on the test split",
            baselines=(Baseline("no alignment", why="the projector trained without the alignment term"),),
            datasets=("digits", "digits_half"), settings=_settings,
            source="Yu et al. 2025, Sec. 3 (the loss maximizes the patch-wise cosine to the encoder features)",
        ),
    )
