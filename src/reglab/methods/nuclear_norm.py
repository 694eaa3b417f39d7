"""Nuclear norm (Fazel 2002; Recht, Fazel & Parrilo 2010): R(W) = ‖W‖_* = Σ_i σ_i(W).

The convex envelope of rank, pushing the flattened (out, in·k…) weight
toward low rank. Computed exactly with a (batched) SVD; its gradient UVᵀ
needs distinct singular values.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import Paper, WeightRegularizer, register
from reglab.ops import as_tensors, full_precision, check_tensor, flatten_rows, stack_by_shape, sum_terms

PAPER = Paper(
    "Guaranteed Minimum-Rank Solutions of Linear Matrix Equations via Nuclear Norm Minimization",
    "Recht, B., Fazel, M. and Parrilo, P. A.", 2010, arxiv="0706.4138", venue="SIAM Review")


@full_precision
def nuclear_norm(w: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Nuclear norm ``‖W‖_* = Σ σ_i`` of the flattened weight, summed over tensors."""
    ws = as_tensors("nuclear_norm", w, min_ndim=2)
    # LAPACK fails on non-finite input, so check before the SVD (it dwarfs the check).
    for t in ws:
        check_tensor("nuclear_norm", t, arg="weight")
    return sum_terms([torch.linalg.svdvals(b).sum() for b in stack_by_shape([flatten_rows(t) for t in ws])])


@register
class NuclearNorm(WeightRegularizer):
    """Nuclear norm: R(W) = ‖W‖_* = Σ_i σ_i(W) of the flattened (out, in·k…) weight.

    The convex envelope of rank (Fazel 2002; Recht, Fazel & Parrilo 2010),
    pushing weights toward low rank. Computed exactly with a (batched) SVD;
    its gradient UVᵀ needs distinct singular values. The default weight is
    a library choice.
    """

    name = "nuclear_norm"
    formula = "R(W) = Σ_i σ_i(W)"
    paper = PAPER
    function = nuclear_norm
    default_weight = 1e-4
