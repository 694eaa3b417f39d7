"""Label smoothing (Szegedy, Vanhoucke, Ioffe, Shlens & Wojna, CVPR 2016, Sec. 7).

Train on ỹ = (1 − ε)·onehot(y) + ε/C instead of the one-hot label; ε = 0.1
as in the paper (ImageNet, C = 1000). Equivalent to
``F.cross_entropy(..., label_smoothing=ε)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reglab.core import Baselines, Claim, FunctionModule, Paper, register
from reglab.ops import check_labels, hyperparameters, probability

PAPER = Paper(
    "Rethinking the Inception Architecture for Computer Vision", "Szegedy, Vanhoucke, Ioffe, Shlens, Wojna", 2016,
    arxiv="1512.00567", venue="CVPR")


@hyperparameters("LabelSmoothing", epsilon=probability)
def smooth_labels(labels: torch.Tensor, num_classes: int, epsilon: float = 0.1) -> torch.Tensor:
    """Label-smoothed targets ``(1 − ε)·onehot(y) + ε/C`` (Szegedy et al., 2016)."""
    labels = check_labels("LabelSmoothing", labels, num_classes)
    onehot = F.one_hot(labels, num_classes).float()
    return onehot * (1.0 - epsilon) + epsilon / num_classes


@register
class LabelSmoothing(FunctionModule):
    """Label smoothing: train on ``(1 − ε)·onehot(y) + ε/C`` instead of the one-hot label.

    A target transform: ``targets = ls(labels, num_classes)``, then
    ``RF.soft_cross_entropy(logits, targets)``. Equivalent to
    ``F.cross_entropy(..., label_smoothing=ε)``. ε = 0.1 as in Szegedy et al.
    (2016, Sec. 7, ImageNet with C = 1000).
    """

    name = "label_smoothing"
    kind = "output"
    form = "target"
    paper = PAPER
    formula = "ỹ = (1 − ε)·onehot(y) + ε/C"
    function = smooth_labels
    claims = (
        Claim(
            "Label smoothing improves test accuracy over one-hot cross-entropy",
            task="clean_classification", metric="test_accuracy", direction="higher",
            min_effect=0.005, min_effect_reason="half a point of test accuracy (the paper reports +0.2 top-1 on ImageNet)",
            baselines=(Baselines.CE,),
            datasets=("digits", "digits_half"),
            settings="an MLP on 8×8 digits (all or half of the training split), Adam 60 epochs, epoch selected on "
            "validation, instead of Inception-v3 on ImageNet; ε = 0.1 is the paper's",
            source="Szegedy et al. 2016, Sec. 7 (0.2% absolute top-1 improvement)",
        ),
        Claim(
            "Label smoothing lowers calibration error (ECE)",
            task="calibration", metric="ece", direction="lower",
            min_effect=0.01, min_effect_reason="one ECE point (0.01)",
            baselines=(
                Baselines.CE,
                Baselines.TEMPERATURE_SCALING,
            ),
            datasets=("digits", "mnist1d"),
            settings="not a claim of Szegedy et al.: the calibration effect is Müller, Kornblith & Hinton (NeurIPS "
            "2019, 'When does label smoothing help?', Sec. 3); 20% of the training data, 200 epochs as in the "
            "calibration task; ε = 0.1",
            source="Müller et al. 2019, Table/Fig. on ECE with and without label smoothing",
        ),
    )
