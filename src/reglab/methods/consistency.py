"""Two-view prediction consistency (classic): symmetric KL between the softmaxes of two views.

R = mean_i KL(p_a,i ‖ p_b,i) + KL(p_b,i ‖ p_a,i) for logits of two
augmentations of the same inputs (catalog E9; the DKL term of LegoGCD).
"""

from __future__ import annotations

import torch

from reglab.core import Baseline, Claim, Regularizer, RegularizerInputError, register
from reglab.ops import check_logits


def consistency(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Symmetric KL ``mean_i KL(p_a‖p_b) + KL(p_b‖p_a)`` between two views' predictions.

    Equals ``mean_i Σ_c (p_a − p_b)(log p_a − log p_b)``; gradients flow
    through both views (detach one yourself for a stop-gradient variant).
    """
    check_logits("Consistency", logits_a, arg="logits of view a")
    check_logits("Consistency", logits_b, arg="logits of view b")
    if logits_a.shape != logits_b.shape:
        raise RegularizerInputError(
            f"Consistency expects both views with the same shape, got {tuple(logits_a.shape)} "
            f"and {tuple(logits_b.shape)}"
        )
    la, lb = logits_a.log_softmax(dim=1), logits_b.log_softmax(dim=1)
    return ((la.exp() - lb.exp()) * (la - lb)).sum(dim=1).mean()


@register
class Consistency(Regularizer):
    """Two-view prediction consistency: symmetric KL between the softmaxes of two views.

    ``R = mean_i KL(p_a,i ‖ p_b,i) + KL(p_b,i ‖ p_a,i)`` for logits of two
    augmentations of the same inputs (catalog E9; the DKL term of LegoGCD).
    Call ``cons(logits_view_a, logits_view_b)``. Gradients flow through both
    views; detach one view for the stop-gradient variant.
    """

    name = "consistency"
    claims = (
        Claim(
            "Prediction consistency between two views of unlabelled data improves accuracy when labels are few",
            task="semi_supervised", metric="final_accuracy", direction="higher",
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(
                Baseline("labelled data only (augmented)", why="what the unlabelled data must add to"),
                Baseline("entropy minimization on the unlabelled data", {"name": "entropy"},
                         why="the simplest other use of unlabelled data"),
            ),
            datasets=("digits", "digits_half"),
            settings="a classic consistency term (Π-model-style; the symmetric KL of LegoGCD's DKL term); 10% of "
            "the digits training split labelled, an MLP, Adam, a fixed 60-epoch schedule; weight 1",
            source="Laine & Aila 2017 (Π-model) and Sajjadi et al. 2016: consistency regularization for "
            "semi-supervised learning",
        ),
    )
    kind = "output"
    formula = "R = w·mean_i [KL(p_a‖p_b) + KL(p_b‖p_a)]"
    num_inputs = 2
    function = consistency
