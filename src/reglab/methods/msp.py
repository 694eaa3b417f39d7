"""Matrix Subspace Projection (Li, Lin, Li, Wang, Guerin, ICML 2020): factor attribute information into
a learned linear subspace of an autoencoder's latent code.

With a learned matrix M (K × D) mapping codes z (B, D) to the K attributes y (B, K),

    L_MSP = ‖z Mᵀ − y‖²_F + ‖y M − z‖²_F   (sums over all entries),

the first term makes Mz predict the attributes, the second leaves nothing but the attributes in the
row space of M (the rest of z lies in M's null space), so attributes can be edited by moving the
M-component of z. Pinned from the official code, lissomx/MSP @ 5b4e7cc: ``M_ModelAE_Cnn.py``
``_loss_msp`` (L111–114) and ``loss`` (L116–122: L_rec + L_KL + L_MSP · numel(x)/(numel(y) + numel(z)),
the reconstruction summed over pixels), M initialized ``xavier_normal_`` (L85–86).
"""

from __future__ import annotations

import torch

from reglab.core import Claim, Paper, Regularizer, RegularizerInputError, register
from reglab.ops import check_tensor, has_data, no_autocast

__all__ = ["matrix_subspace_projection", "MatrixSubspaceProjection"]

PAPER = Paper(
    "Latent Space Factorisation and Manipulation via Matrix Subspace Projection",
    "Li, Lin, Li, Wang, Guerin", 2020, arxiv="1907.12385", venue="ICML", code="https://github.com/lissomx/MSP")

WHO = "MatrixSubspaceProjection"


def matrix_subspace_projection(z: torch.Tensor, labels: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """``‖z Mᵀ − y‖²_F + ‖y M − z‖²_F`` (official ``_loss_msp``): ``z`` (B, D) codes, ``labels`` (B, K)
    float attribute targets, ``projection`` M (K, D), a learned parameter trained with the model."""
    check_tensor(WHO, z, arg="codes", ndim=2)
    check_tensor(WHO, labels, arg="labels", ndim=2)
    check_tensor(WHO, projection, arg="projection M", ndim=2)
    b, d = z.shape
    k = labels.shape[1]
    if labels.shape[0] != b or tuple(projection.shape) != (k, d):
        raise RegularizerInputError(
            f"{WHO} expects codes (B, D), labels (B, K) and M (K, D); got {tuple(z.shape)}, {tuple(labels.shape)} "
            f"and {tuple(projection.shape)}")
    with no_autocast(z):
        y = labels.to(z.dtype)
        m = projection.to(z.dtype)
        value = (z @ m.T - y).pow(2).sum() + (y @ m - z).pow(2).sum()
    if has_data(value) and not bool(torch.isfinite(value.detach())):
        raise RegularizerInputError(f"{WHO} produced a non-finite penalty ({float(value)}) from finite inputs: they overflow {z.dtype}")
    return value


@register
class MatrixSubspaceProjection(Regularizer):
    """Matrix Subspace Projection: ‖zMᵀ − y‖² + ‖yM − z‖² with a learned M (K × D).

    ``reg(z, y, M)`` with ``M = nn.Parameter(torch.empty(K, D))`` (``nn.init.xavier_normal_``) trained
    with the autoencoder. The official weight is numel(x)/(numel(y) + numel(z)) next to a
    reconstruction summed over pixels: pass it as ``weight`` for your shapes (default 1). Edit an
    attribute by z += (y_new − z Mᵀ) M.
    """

    name = "matrix_subspace_projection"
    kind = "representation"
    form = "penalty"
    num_inputs = 3
    takes_embedding_batches = False  # codes, labels and the learned matrix: its own tests cover them
    paper = PAPER
    formula = "‖z Mᵀ − y‖²_F + ‖y M − z‖²_F"
    function = matrix_subspace_projection
    claims = (
        Claim(
            "MSP factorizes attributes out of an autoencoder's latent space: attribute edits that a classifier "
            "recognizes, with reconstruction kept (CelebA, text)",
            testable=False,
            untestable_reason="needs attribute swapping evaluated by a separate classifier on decoded images; "
            "the lab's autoencoder task passes the regularizer the code only (no labels, no learned M)",
        ),
    )
