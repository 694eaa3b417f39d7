"""Norm Loss (Georgiou, Schmitt, Bäck, Chen & Lew, 2021): R(W) = Σ_i (1 − ‖w_i‖₂)².

A soft constraint that steers each weight matrix toward the Oblique
manifold (every output filter w_i of unit norm), replacing weight decay.
Rows are the flattened filters (out, in·k…). The paper's full text (exact
per-layer normalization and λ) was not available to us; this is the
abstract's "pushes each weight vector to have a norm close to one" in its
squared-deviation form. The default weight is a library choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import Paper, WeightRegularizer, register
from reglab.ops import as_tensors, checked_total, flatten_rows, stack_by_shape, sum_terms

PAPER = Paper(
    "Norm Loss: An efficient yet effective regularization method for deep neural networks",
    "Georgiou, T., Schmitt, S., Bäck, T., Chen, W. and Lew, M.", 2021, arxiv="2103.06583")


def norm_loss(w: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Norm Loss ``Σ_i (1 − ‖w_i‖₂)²`` over output filters (Georgiou et al., 2021), summed over tensors."""
    ws = as_tensors("norm_loss", w, min_ndim=2)
    batches = stack_by_shape([flatten_rows(t) for t in ws])
    terms = [(1.0 - torch.linalg.vector_norm(b, dim=-1)).pow(2).sum() for b in batches]
    return checked_total("norm_loss", sum_terms(terms), ws)


@register
class NormLoss(WeightRegularizer):
    """Norm Loss: R(W) = Σ_i (1 − ‖w_i‖₂)² over output filters w_i.

    Georgiou, Schmitt, Bäck, Chen & Lew (2021): a soft constraint that
    steers each weight matrix toward the Oblique manifold (every filter of
    unit norm), replacing weight decay. Rows are the flattened filters
    (out, in·k…). Checked against the abstract only (see the module
    docstring). The default weight is a library choice.
    """

    name = "norm_loss"
    formula = "R(W) = Σ_i (1 − ‖w_i‖₂)²"
    paper = PAPER
    function = norm_loss
    default_weight = 1e-4
