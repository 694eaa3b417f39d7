"""FLOPS regularizer (Paria, Yeh, Yen, Xu, Ravikumar & Póczos, ICLR 2020).

L = Σ_j (mean_i |z_ij|)²: a smooth proxy for the retrieval cost of sparse
embeddings. Penalizes dimensions that are active across the batch
quadratically, so non-zeros spread evenly over dimensions (their Eq. 5; used
by SPLADE).
"""

from __future__ import annotations

import torch

from reglab.core import Paper, RepresentationRegularizer, register
from reglab.ops import no_autocast, prepare_batch

PAPER = Paper(
    "Minimizing FLOPs to Learn Efficient Sparse Representations", "Paria, Yeh, Yen, Xu, Ravikumar, Póczos", 2020,
    arxiv="2004.05665", venue="ICLR")


def flops(z: torch.Tensor, *, gather: bool = True) -> torch.Tensor:
    """FLOPS regularizer (Paria et al., 2020): ``Σ_j (mean_i |z_ij|)²``."""
    z = prepare_batch("FLOPS", z, min_batch=1, gather=gather)
    with no_autocast(z):
        return z.abs().mean(dim=0).pow(2).sum()


@register
class FLOPS(RepresentationRegularizer):
    """FLOPS: a smooth proxy for the retrieval cost of sparse embeddings,
    L = Σ_j (mean_i |z_ij|)².

    Penalizes dimensions that are active across the batch quadratically, so
    non-zeros spread evenly over dimensions (Paria et al., 2020, Eq. 5; used by
    SPLADE). With ``gather=True`` the mean over i is over the global batch under
    DDP, then squared, matching a single process on the concatenated batch.

    Paria, Yeh, Yen, Xu, Ravikumar & Póczos (2020), ICLR, arXiv:2004.05665.
    """

    name = "flops"
    paper = PAPER
    formula = "Σ_j (mean_i |z_ij|)²"
    function = flops
