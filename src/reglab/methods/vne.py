"""Von Neumann entropy of the representation (Kim, Kang, Lee & Lee, CVPR 2023).

Z = row-normalized H (n, d); ρ = ZᵀZ/N (trace 1); VNE = −Σ λ log λ over the
eigenvalues λ of ρ, computed as the squared singular values of Z/√N
(jaeill/CVPR23-VNE, ``get_vne`` in its README). The regularizer adds
L = −α·VNE, so a positive weight α raises the entropy and a negative one
lowers it; the paper picks the sign and size of α per application (no single
default; 1.0 here).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from reglab.core import Paper, RepresentationRegularizer, register, ssl_claims
from reglab.core.paper import PARTIAL_COLLAPSE, PARTIAL_COLLAPSE_SETTINGS
from reglab.ops import no_autocast, normalize_rows, prepare_batch, spectrum_entropy

PAPER = Paper(
    "VNE: An Effective Method for Improving Deep Representation by Manipulating Eigenvalue Distribution",
    "Kim, Kang, Lee, Lee", 2023, arxiv="2304.01434", venue="CVPR", code="https://github.com/jaeill/CVPR23-VNE")


class _VNETerms(NamedTuple):
    vne: torch.Tensor


def vne(h: torch.Tensor, *, gather: bool = True) -> torch.Tensor:
    """Von Neumann entropy of ``ρ = ZᵀZ/N`` with ``Z`` the row-normalized batch
    (Kim et al., CVPR 2023; jaeill/CVPR23-VNE). The eigenvalues of ρ are the
    squared singular values of ``Z/√N``; they sum to 1. 0·log 0 = 0, as the
    official code's nansum does."""
    z = prepare_batch("VNE", h, gather=gather)
    with no_autocast(z):
        z = normalize_rows(z)
        lam = torch.linalg.svdvals(z / math.sqrt(z.shape[0])).pow(2)
        return spectrum_entropy(lam)


@register
class VNE(RepresentationRegularizer):
    """Von Neumann entropy of the representation: L = −VNE(H), so a positive
    weight α raises the entropy (L_total = L_task − α·VNE), a negative one lowers it.

    Z = row-normalized H; ρ = ZᵀZ/N (trace 1); VNE = −Σ λ log λ over the
    eigenvalues λ of ρ, computed as the squared singular values of Z/√N
    (jaeill/CVPR23-VNE, ``get_vne`` in its README). ``components()`` reports
    the entropy itself (``vne``). The paper picks the sign and size of α per
    application; there is no single default, 1.0 here.

    Kim, Kang, Lee & Lee (2023), CVPR, arXiv:2304.01434.
    """

    name = "vne"
    claims = ssl_claims(
        "Raising the von Neumann entropy of the representation raises its effective rank",
        "Raising the representation's von Neumann entropy improves its linear probe",
        settings="two-view SSL on 8×8 digits (MLP encoder 64-256-32, Adam), −α·VNE next to the invariance MSE, "
            "α = 1 (the paper sets α per application), instead of the paper's ImageNet SSL runs; "
            + PARTIAL_COLLAPSE_SETTINGS + " (where the paper puts VNE: on the representation)",
        task_args=PARTIAL_COLLAPSE,
        source_mechanism="Kim et al. 2023, Sec. 3 (VNE increases the rank/isotropy of the representation)",
        source_outcome="Kim et al. 2023, Sec. 5 (SSL: VNE+ improves linear evaluation)",
    )
    paper = PAPER
    formula = "−VNE, VNE = −Σ λ log λ, λ = eig(ZᵀZ/N), Z = normalize_rows(H)"
    function = vne

    def components(self, h: torch.Tensor) -> _VNETerms:
        return _VNETerms(vne(h, **self.function_kwargs()))

    def penalty(self, h: torch.Tensor) -> torch.Tensor:
        return -self.components(h).vne
