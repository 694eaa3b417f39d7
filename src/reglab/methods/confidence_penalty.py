"""Confidence penalty (Pereyra, Tucker, Chorowski, Kaiser & Hinton, ICLR workshop 2017).

R = −β·H(p), H(p) = −Σ_c p_c log p_c averaged over the batch; adding it to
the loss raises the entropy of the predictions (their Eq. 2). The paper
tunes β per task by grid search and gives no single default; 0.1 is a mild
starting point, not the paper's number.
"""

from __future__ import annotations

import torch

from reglab.core import Paper, Regularizer, register
from reglab.ops import check_logits, mean_entropy

PAPER = Paper(
    "Regularizing Neural Networks by Penalizing Confident Output Distributions",
    "Pereyra, Tucker, Chorowski, Kaiser, Hinton", 2017, arxiv="1701.06548", venue="ICLR workshop")


def confidence_penalty(logits: torch.Tensor) -> torch.Tensor:
    """Negative mean entropy ``−H(p)`` (Pereyra et al., 2017): adding it penalizes confident outputs."""
    check_logits("ConfidencePenalty", logits)
    return -mean_entropy(logits)


@register
class ConfidencePenalty(Regularizer):
    """Confidence penalty: penalize low-entropy (over-confident) output distributions.

    ``R = β·(−H(p))`` with ``H(p) = −Σ_c p_c log p_c`` averaged over the
    batch; adding it to the loss raises the entropy of the predictions
    (Pereyra et al., 2017, Eq. 2). β = ``weight``. The paper tunes β per
    task by grid search and gives no single default; 0.1 here is a mild
    starting point, not the paper's number.
    """

    name = "confidence_penalty"
    kind = "output"
    paper = PAPER
    formula = "R = −β·H(softmax(z))"
    function = confidence_penalty
    default_weight = 0.1
