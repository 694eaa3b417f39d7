"""Output / label penalties: pure functions of logits (and targets).

Every function takes logits of shape (batch, classes) -- a single sample is
(1, classes), never a 1-D vector, so a missing batch dimension fails loudly
instead of being read as a batch of scalars. Probabilities are taken along
the last dimension. The penalties are batch means.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reglab._validation import RegularizerInputError, check_tensor

__all__ = [
    "elr",
    "entropy",
    "confidence_penalty",
    "consistency",
    "logit_clip",
    "smooth_labels",
    "soft_cross_entropy",
]


def check_logits(who: str, logits: object, *, arg: str = "logits") -> torch.Tensor:
    """(batch, classes) float logits with at least two classes, all finite."""
    check_tensor(who, logits, arg=arg, ndim=2)
    assert isinstance(logits, torch.Tensor)
    if logits.shape[1] < 2:
        raise RegularizerInputError(
            f"{who} needs at least 2 classes in {arg}, got shape {tuple(logits.shape)}"
        )
    return logits


def check_labels(who: str, labels: object, num_classes: int, *, batch: int | None = None) -> torch.Tensor:
    """Integer class labels of shape (batch,), each in [0, num_classes)."""
    check_tensor(who, labels, arg="labels", ndim=1, floating=False)
    assert isinstance(labels, torch.Tensor)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise RegularizerInputError(
            f"{who} expects integer class labels, got dtype {labels.dtype}; pass soft targets as a 2-D tensor"
        )
    if batch is not None and labels.shape[0] != batch:
        raise RegularizerInputError(
            f"{who} got {labels.shape[0]} labels for a batch of {batch} rows"
        )
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        raise RegularizerInputError(
            f"{who} expects labels in [0, {num_classes}), got values in [{lo}, {hi}]"
        )
    return labels


def elr(logits: torch.Tensor, targets: torch.Tensor, *, clamp: float = 1e-4) -> torch.Tensor:
    """Early-learning regularization term ``mean_i log(1 − ⟨p_i, t_i⟩)`` (Liu et al., 2020).

    ``p = softmax(logits)`` clamped to ``[clamp, 1 − clamp]`` (as the official
    code, shengliu66/ELR ``ELR/model/loss.py``, does before the inner
    product, which keeps ``1 − ⟨p, t⟩`` away from 0); ``targets`` are the
    per-sample EMA targets ``t_i`` (rows on the simplex, no gradient).
    Minimizing it pushes ``⟨p, t⟩`` up, towards the early-learning targets.
    """
    check_logits("ELR", logits)
    check_tensor("ELR", targets, arg="targets", ndim=2)
    if targets.shape != logits.shape:
        raise RegularizerInputError(
            f"ELR expects targets of the logits' shape {tuple(logits.shape)}, got {tuple(targets.shape)}"
        )
    p = logits.softmax(dim=1).clamp(clamp, 1.0 - clamp)
    inner = (p * targets.detach().to(p.dtype)).sum(dim=1)
    return torch.log1p(-inner).mean()


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy ``H(p) = −Σ_c p_c log p_c`` of the softmax, in nats."""
    check_logits("Entropy", logits)
    logp = logits.log_softmax(dim=1)
    return -(logp.exp() * logp).sum(dim=1).mean()


def confidence_penalty(logits: torch.Tensor) -> torch.Tensor:
    """Negative mean entropy ``−H(p)`` (Pereyra et al., 2017): adding it penalizes confident outputs."""
    check_logits("ConfidencePenalty", logits)
    logp = logits.log_softmax(dim=1)
    return (logp.exp() * logp).sum(dim=1).mean()


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


def logit_clip(logits: torch.Tensor, delta: float = 1.0, p: float = 2.0) -> torch.Tensor:
    """LogitClip (Wei et al., 2023): ``z ← z·min(1, δ/‖z‖_p)`` per row.

    A transform, not a penalty: it returns the clipped logits (same shape);
    the gradient flows through the rescaling.
    """
    check_logits("LogitClip", logits)
    norms = torch.linalg.vector_norm(logits, ord=p, dim=1, keepdim=True)
    # clamp_min keeps rows of zero norm at scale 1 instead of 0/0
    scale = (delta / norms.clamp_min(1e-12)).clamp(max=1.0)
    return logits * scale


def smooth_labels(labels: torch.Tensor, num_classes: int, epsilon: float = 0.1) -> torch.Tensor:
    """Label-smoothed targets ``(1 − ε)·onehot(y) + ε/C`` (Szegedy et al., 2016)."""
    check_labels("LabelSmoothing", labels, num_classes)
    onehot = F.one_hot(labels, num_classes).float()
    return onehot * (1.0 - epsilon) + epsilon / num_classes


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``mean_i −Σ_c t_ic log softmax(z_i)_c`` for soft targets (rows summing to 1)."""
    check_logits("soft_cross_entropy", logits)
    check_tensor("soft_cross_entropy", targets, arg="targets", ndim=2)
    if targets.shape != logits.shape:
        raise RegularizerInputError(
            f"soft_cross_entropy expects targets of the logits' shape {tuple(logits.shape)}, "
            f"got {tuple(targets.shape)}"
        )
    return -(targets.to(logits.dtype) * logits.log_softmax(dim=1)).sum(dim=1).mean()
