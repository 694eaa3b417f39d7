"""Barlow Twins (Zbontar, Jing, Misra, LeCun & Deny, ICML 2021).

C = BN(Z)ᵀ BN(Z') / n, with BN the affine-free batch normalization over the
batch (biased variance, ε = 1e-5 as ``nn.BatchNorm1d``);
L = Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij². λ = 0.0051 as in the official code
(facebookresearch/barlowtwins, ``main.py``, ``--lambd``; the paper states
5e-3). The official code normalizes with a SyncBatchNorm and divides by the
global batch size; ``gather=True`` does the same.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from reglab.core import Paper, RepresentationRegularizer, register
from reglab.ops import check_same_shape, common_dtype, gram, no_autocast, prepare_batch

PAPER = Paper(
    "Barlow Twins: Self-Supervised Learning via Redundancy Reduction", "Zbontar, Jing, Misra, LeCun, Deny", 2021,
    arxiv="2103.03230", venue="ICML", code="https://github.com/facebookresearch/barlowtwins")


class BarlowTwinsTerms(NamedTuple):
    on_diagonal: torch.Tensor
    off_diagonal: torch.Tensor


def _standardize(z: torch.Tensor, eps: float) -> torch.Tensor:
    # BatchNorm1d(affine=False) in training mode: biased variance, eps inside the sqrt.
    return (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + eps)


def barlow_twins_terms(
    z1: torch.Tensor, z2: torch.Tensor, *, eps: float = 1e-5, gather: bool = True
) -> BarlowTwinsTerms:
    """Barlow Twins terms (Zbontar et al., 2021) on the cross-correlation
    ``C = BN(z1)ᵀ BN(z2) / n``: ``Σ_i (1 − C_ii)²`` and ``Σ_{i≠j} C_ij²``.

    The diagonal is O(nd); for n < d the off-diagonal sum comes from the two
    n×n Gram matrices, never forming the d×d C.
    """
    who = "BarlowTwins"
    check_same_shape(who, z1, z2)
    z1 = prepare_batch(who, z1, arg="first view", gather=gather)
    z2 = prepare_batch(who, z2, arg="second view", gather=gather)
    z1, z2 = common_dtype(z1, z2)
    with no_autocast(z1):
        n, d = z1.shape
        a, b = _standardize(z1, eps), _standardize(z2, eps)
        diag = (a * b).sum(dim=0) / n
        if n < d:
            # ‖AᵀB‖_F² = Σ (AAᵀ)∘(BBᵀ): n×n Gram matrices instead of the d×d C
            total = (gram(a) * gram(b)).sum() / n**2
        else:
            total = (a.T @ b).pow(2).sum() / n**2
        on = (diag - 1).pow(2).sum()
        off = total - diag.pow(2).sum()
    return BarlowTwinsTerms(on, off)


def barlow_twins(z1: torch.Tensor, z2: torch.Tensor, *, lambd: float = 0.0051, **options: Any) -> torch.Tensor:
    """``Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij²``; ``options`` (``eps``, ``gather``) go to :func:`barlow_twins_terms`."""
    t = barlow_twins_terms(z1, z2, **options)
    return t.on_diagonal + lambd * t.off_diagonal


@register
class BarlowTwins(RepresentationRegularizer):
    """Barlow Twins: drive the cross-correlation of two views' embeddings to the identity.

    C = BN(Z)ᵀ BN(Z') / n, with BN the affine-free batch normalization over
    the batch (biased variance, ε = 1e-5 as ``nn.BatchNorm1d``);
    L = Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij².

    λ = 0.0051 as in the official code (facebookresearch/barlowtwins,
    ``main.py``, ``--lambd``; the paper states 5e-3). The official
    code normalizes with a SyncBatchNorm and divides by the global batch size;
    ``gather=True`` does the same.

    Zbontar, Jing, Misra, LeCun & Deny (2021), ICML, arXiv:2103.03230.
    """

    name = "barlow_twins"
    paper = PAPER
    formula = "Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij², C = BN(z)ᵀBN(z')/n"
    num_inputs = 2
    function = barlow_twins
    terms = barlow_twins_terms
