"""Label smoothing (Szegedy, Vanhoucke, Ioffe, Shlens & Wojna, CVPR 2016, Sec. 7).

Train on ỹ = (1 − ε)·onehot(y) + ε/C instead of the one-hot label; ε = 0.1
as in the paper (ImageNet, C = 1000). Equivalent to
``F.cross_entropy(..., label_smoothing=ε)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reglab.core import FunctionModule, Paper, register
from reglab.ops import check_labels, hyperparameters, probability

PAPER = Paper(
    "Rethinking the Inception Architecture for Computer Vision", "Szegedy, Vanhoucke, Ioffe, Shlens, Wojna", 2016,
    arxiv="1512.00567", venue="CVPR")


@hyperparameters("LabelSmoothing", epsilon=probability)
def smooth_labels(labels: torch.Tensor, num_classes: int, epsilon: float = 0.1) -> torch.Tensor:
    """Label-smoothed targets ``(1 − ε)·onehot(y) + ε/C`` (Szegedy et al., 2016)."""
    check_labels("LabelSmoothing", labels, num_classes)
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
