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

from reglab.core import Baseline, Claim, Paper, RepresentationRegularizer, RegularizerInputError, register
from reglab.core.paper import Tuned, Tuning
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


_OLD_OLD = Baseline(
    "old model (old→old retrieval)", metric="old_old_recall_at_1",
    why="BCT's compatibility criterion (Sec. 3): new-to-old retrieval must beat keeping the old model, or the "
    "update is useless without backfilling")
_INDEPENDENT = Baseline(
    "independently trained new model",
    why="the new model without a compatibility loss: its embedding is not comparable with the old gallery")
_L2 = Baseline(
    "ℓ2 to the old embeddings (λ=0.1)", task_args={"l2_weight": 0.1},
    why="the paper's ℓ2 baseline: pull each new embedding onto the old model's embedding of the same image")
_SETTINGS = (
    "the paper's nested-class protocol at toy scale: the old model trained on the digits 0-4 of the training "
    "split (the paper: ImageNet-500 of 1,000), the new one on all 10 digits from its own initialization; both an "
    "MLP d-256-32 (ReLU) embedding with a bias-free linear classifier, cross-entropy, Adam 1e-3, batch 128, 30 "
    "epochs, last epoch (the paper: ResNets); BCT's influence classifier = the old classifier's rows for 0-4 and "
    "the old model's mean training embedding of each of 5-9 (the paper's synthesized classifier), weight 10 "
    "(BT²'s released alpha; not tuned); retrieval = leave-one-out cosine 1-NN over the whole test split, all 10 "
    "digits (the paper: top-1 on the ImageNet validation set); the ℓ2 baseline is λ·mean ‖φ_new − φ_old‖², "
    "λ picked on development seeds"
)
_TUNING = Tuning(
    baselines=(("ℓ2 to the old embeddings (λ=0.1)", Tuned(
        "l2_weight", (0.01, 0.03, 0.1, 0.3, 1.0), 0.1,
        "digits and digits_half seeds 0-2, mean validation cross-model recall@1 (val_cross_recall_at_1): 0.675, "
        "0.745, 0.765, 0.750, 0.738")),),
    note="BCT's weight not tuned (10, BT²'s alpha); the baseline's tuning only helps the baseline")


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
            "BCT makes the new model backward compatible: new-model queries searched against the old model's "
            "gallery retrieve better than the old model itself (M(φ_new, φ_old) > M(φ_old, φ_old)), than an "
            "independently trained new model, and than an ℓ2 pull of the new embeddings onto the old ones",
            task="compatible_embedding", metric="cross_recall_at_1", direction="higher", kind="superiority",
            role="outcome", min_effect=0.01,
            min_effect_reason="one point of recall@1 (about 5 of the 540 digits test queries, 9 of the 900 on "
            "digits_half)",
            baselines=(_OLD_OLD, _INDEPENDENT, _L2),
            datasets=("digits", "digits_half"), settings=_SETTINGS, tuning=_TUNING,
            source="Shen et al. 2020, Sec. 3 (the compatibility criterion M(φ_new, φ_old) > M(φ_old, φ_old)) and "
            "Sec. 4.1 / Table 1 (ImageNet: old model on 500 classes, new on 1,000; independent, ℓ2 and BCT rows)",
        ),
        Claim(
            "BCT's new model keeps the retrieval accuracy of an independently trained new model (new-to-new "
            "recall@1 within one point)",
            task="compatible_embedding", metric="new_new_recall_at_1", direction="higher",
            kind="non-inferiority", role="outcome", min_effect=0.01,
            min_effect_reason="one point of recall@1: the new-model accuracy a practitioner would give up to skip "
            "backfilling the gallery",
            baselines=(_INDEPENDENT,),
            control=Baseline(
                "ℓ2 to the old embeddings (λ=0.1)", task_args={"l2_weight": 0.1},
                why="negative control: a new model pulled onto the old (digits 0-4) embedding, which costs new-model "
                "accuracy; the same test must reject it"),
            datasets=("digits", "digits_half"), settings=_SETTINGS,
            source="Shen et al. 2020, abstract and Table 1 (BCT 'without sacrificing accuracy': its new-to-new "
            "row against the independently trained new model)",
        ),
    )
