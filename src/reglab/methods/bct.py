"""Backward-compatible training: the BCT influence loss (Shen et al., CVPR 2020).

The new model's embedding φ_new(x) is scored by the OLD model's frozen
classifier W_old and trained with cross-entropy on it,

    L_influence = mean_i CE(W_old φ_new(x_i), y_i),

added to the new model's own loss with weight λ, so new embeddings stay
comparable with the gallery the old model indexed (no backfilling). For the
classes the old model never saw, BCT synthesizes the classifier rows from the
old model's mean feature of each class; the reference code of BT² (Zhou et al.,
ICCV 2023; YifeiZhou02/BT-2, Apple copyright 2022) builds the whole
"pseudo classifier" that way (``train_BCT.py`` L55-72: per-class sum of the old
model's features divided by the class count, for every class) and trains with
``criterion(output, target) + alpha * criterion(feature @ pseudo_classifierᵀ,
target)`` (``trainers/bct_trainer.py`` L45-48), ``alpha: 10`` in
``configs/cifar100_BCT.yaml`` (our default weight). ``bct_pseudo_classifier``
builds those rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reglab.core import Claim, Paper, RepresentationRegularizer, RegularizerInputError, register
from reglab.ops import check_labels, check_tensor, checked_total, has_data, no_autocast

PAPER = Paper(
    "Towards Backward-Compatible Representation Learning", "Shen, Xiong, Xia, Soatto", 2020, arxiv="2003.11942",
    venue="CVPR", code="https://github.com/YifeiZhou02/BT-2")

__all__ = ["bct_influence", "bct_pseudo_classifier", "BCT"]


def bct_influence(features: torch.Tensor, labels: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
    """BCT influence loss ``mean_i CE(W_old f_i, y_i)`` of new features ``f`` (n, d) under the old
    classifier ``W_old`` (C, d) (frozen: pass it detached), labels in [0, C).

    The old model's own classification layer, or the pseudo classifier of
    ``bct_pseudo_classifier`` (old-model class means, which covers new classes
    too). No bias, as in the reference code (``feature @ pseudo_classifierᵀ``).
    """
    who = "BCT"
    check_tensor(who, features, arg="new features", ndim=2)
    check_tensor(who, classifier, arg="old classifier", ndim=2)
    if classifier.shape[1] != features.shape[1]:
        raise RegularizerInputError(
            f"{who} expects the old classifier (C, d) to match the features' dimension d={features.shape[1]}, got "
            f"shape {tuple(classifier.shape)}; BT²'s extra dimensions are not scored by the old classifier"
        )
    check_labels(who, labels, classifier.shape[0], batch=features.shape[0])
    dtype = torch.promote_types(features.dtype, classifier.dtype)
    if dtype not in (torch.float32, torch.float64):
        dtype = torch.float32
    with no_autocast(features):
        logits = features.to(dtype) @ classifier.to(dtype).T
        if has_data(logits) and dtype == torch.float32 and not bool(torch.isfinite(logits.detach()).all()):
            logits = features.double() @ classifier.double().T  # products past float32's range
        value = F.cross_entropy(logits, labels.to(logits.device))
    return checked_total(who, value, [features, classifier], arg="input")


@torch.no_grad()
def bct_pseudo_classifier(old_features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The (num_classes, d) classifier of class means of the OLD model's features (BCT's synthesized
    classifier; BT²'s ``pseudo_classifier``, ``train_BCT.py`` L55-72). A class without samples raises."""
    who = "BCT"
    check_tensor(who, old_features, arg="old features", ndim=2)
    check_labels(who, labels, num_classes, batch=old_features.shape[0])
    sums = torch.zeros(num_classes, old_features.shape[1], dtype=torch.float64, device=old_features.device)
    sums.index_add_(0, labels, old_features.double())
    counts = torch.bincount(labels, minlength=num_classes)
    if bool((counts == 0).any()):
        missing = torch.nonzero(counts == 0).flatten()[:5].tolist()
        raise RegularizerInputError(f"{who}: classes {missing} have no sample to average (pseudo classifier)")
    return (sums / counts[:, None]).to(old_features.dtype if old_features.is_floating_point() else torch.float32)


@register
class BCT(RepresentationRegularizer):
    """BCT influence loss: cross-entropy of the new embeddings under the old model's frozen classifier.

    ``L = mean_i CE(W_old φ_new(x_i), y_i)``, added to the new model's loss
    with weight λ (Shen et al., 2020): the new embedding space stays
    compatible with the old one, so old gallery vectors can be queried with
    new query vectors. ``reg(new_features, labels, old_classifier)``; build
    the old classifier from the old model's class means with
    ``reglab.methods.bct.bct_pseudo_classifier`` (BCT's synthesized classifier,
    needed for classes the old model never saw).

    Default weight 10 = ``alpha`` of BT²'s released BCT config
    (YifeiZhou02/BT-2 ``configs/cifar100_BCT.yaml``; its criterion there is
    label-smoothed CE, 0.1, which this term does not add). Not shipped:
    BT²'s learnable orthonormal basis transformation with extra dimensions
    (its training code was not pinned).
    """

    name = "bct"
    paper = PAPER
    formula = "mean_i CE(W_old φ_new(x_i), y_i)  (W_old frozen)"
    function = bct_influence
    default_weight = 10.0
    takes_embedding_batches = False
    claims = (
        Claim(
            "BCT makes new query embeddings retrieve from an old-model gallery better than an independently "
            "trained new model (cross-model recall@1)",
            testable=False,
            untestable_reason="needs an old/new model pair trained on nested class sets and a cross-model "
            "retrieval metric; no lab task trains two models in sequence and evaluates new-to-old retrieval, and "
            "the lab's task modules may not be edited to add one",
            source="Shen et al. 2020, Table 1 (new-to-old retrieval on ImageNet/face recognition); Zhou et al. "
            "2023 (BT²), BCT baseline rows",
        ),
    )
