"""Norm Loss (Georgiou, Schmitt, Bäck, Chen & Lew, 2021): R(W) = Σ_i (1 − ‖w_i‖₂)².

A soft constraint that steers each weight matrix toward the Oblique
manifold (every output filter w_i of unit norm), replacing weight decay.
Rows are the flattened filters (out, in·k…). The paper's full text (exact
per-layer normalization and λ) was not available to us; this is the
abstract's "pushes each weight vector to have a norm close to one" in its
squared-deviation form. The default weight is a library choice.

Gradient (``mode="grad"``): ∂R/∂w_i = 2(‖w_i‖ − 1)·w_i/‖w_i‖ (0 for a zero
row, as autograd gives), from the same row norms as the value.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import Baseline, Claim, Paper, WeightRegularizer, register
from reglab.ops import add_scaled_, as_tensors, checked_total, flatten_rows, stack_by_shape, sum_terms, zero_safe_inverse

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
    claims = (
        Claim(
            "Norm Loss in place of weight decay gives at least the same accuracy",
            task="clean_classification", metric="test_accuracy", direction="higher", kind="non-inferiority",
            control=Baseline("no regularizer", why="if training without any regularizer also matches weight decay, the test cannot show that Norm Loss replaces it"),
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(Baseline("weight decay (L2 5e-4)", {"name": "l2", "weight": 5e-4},
                                why="what Norm Loss replaces"),),
            datasets=("digits", "digits_half"),
            settings="an MLP on 8×8 digits with Adam instead of ResNets/WideResNets on CIFAR with SGD; weight "
            "1e-4 is this class's default (the paper's λ could not be read)",
            source="Georgiou et al. 2021, abstract and Sec. 5 (Norm Loss replaces weight decay, better or equal "
            "accuracy)",
        ),
    )
    formula = "R(W) = Σ_i (1 − ‖w_i‖₂)²"
    paper = PAPER
    function = norm_loss
    default_weight = 1e-4

    @torch.no_grad()
    def grad_(self, tensors, grads, alpha):
        """``g_i += α·2(‖w_i‖ − 1)·w_i/‖w_i‖`` per filter; returns Σ_i (1 − ‖w_i‖)² from the same norms."""
        ws = as_tensors("norm_loss", list(tensors), min_ndim=2)
        terms, updates = [], []
        for w in ws:
            rows = flatten_rows(w)
            n = torch.linalg.vector_norm(rows, dim=1)
            terms.append((1.0 - n).pow(2).sum())
            updates.append((rows * (2.0 * (n - 1.0) * zero_safe_inverse(n)).unsqueeze(1)).reshape(w.shape))
        value = checked_total("norm_loss", sum_terms(terms), ws)
        add_scaled_(grads, updates, alpha)
        return value
