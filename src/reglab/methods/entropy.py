"""Prediction-entropy regularization (classic): ±w·mean_i H(softmax(z_i)).

Minimizing the entropy of the predictions is the semi-supervised entropy
minimization of Grandvalet & Bengio (2004); maximizing it is the confidence
penalty (see ``reglab.methods.confidence_penalty``).
"""

from __future__ import annotations

import torch

from reglab.core import Baseline, Claim, Regularizer, register
from reglab.ops import check_logits, hyperparameters, mean_entropy, one_of


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy ``H(p) = −Σ_c p_c log p_c`` of the softmax, in nats."""
    check_logits("Entropy", logits)
    return mean_entropy(logits)


@hyperparameters("Entropy", direction=one_of("min", "max"))
def signed_entropy(logits: torch.Tensor, direction: str = "min") -> torch.Tensor:
    """``+H(p)`` for ``direction="min"`` (adding it minimizes the entropy), ``−H(p)`` for ``"max"``."""
    h = entropy(logits)
    return h if direction == "min" else -h


@register
class Entropy(Regularizer):
    """Prediction-entropy regularizer with an explicit sign.

    ``direction="min"`` returns ``+w·H(p)`` (entropy minimization, as in
    semi-supervised learning: Grandvalet & Bengio, 2004);
    ``direction="max"`` returns ``−w·H(p)`` (maximization; the same as the
    confidence penalty). ``H`` is the batch mean of the per-sample entropy
    in nats. Either way the returned value is added to the loss.
    """

    name = "entropy"
    claims = (
        Claim(
            "Entropy minimization on unlabelled data improves accuracy when labels are few",
            task="semi_supervised", metric="final_accuracy", direction="higher",
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(Baseline("labelled data only (augmented)", why="what the unlabelled data must add to"),),
            datasets=("digits", "digits_half"),
            settings="10% of the digits training split labelled, an MLP, Adam, a fixed 60-epoch schedule (the "
            "labelled validation share is too small to select epochs reliably), w = 0.1 (this class's default; "
            "Grandvalet & Bengio choose λ by cross-validation)",
            source="Grandvalet & Bengio 2004 (NeurIPS), Sec. 5 (entropy regularization with unlabelled data)",
        ),
    )
    kind = "output"
    formula = "R = ±w·mean_i H(softmax(z_i)),  + for direction='min', − for 'max'"
    function = signed_entropy
    default_weight = 0.1
