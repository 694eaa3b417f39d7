"""Math on predicted distributions shared by the output regularizers."""

from __future__ import annotations

import torch

from reglab.core.errors import RegularizerInputError
from reglab.ops.validation import check_logits, check_tensor

__all__ = ["mean_entropy", "soft_cross_entropy"]


def mean_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Batch mean of the softmax's Shannon entropy ``−Σ_c p_c log p_c`` (nats); no validation."""
    logp = logits.log_softmax(dim=1)
    return -(logp.exp() * logp).sum(dim=1).mean()


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
