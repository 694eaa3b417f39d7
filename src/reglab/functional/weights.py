"""Weight penalties: pure functions of one parameter tensor.

Each returns a scalar tensor, is differentiable, and validates its input
(floating dtype, non-empty, finite) with an error naming the penalty.
"""

from __future__ import annotations

import torch

from reglab._validation import check_tensor

__all__ = ["l1", "l2"]


def l1(w: torch.Tensor) -> torch.Tensor:
    """Lasso penalty ``‖w‖₁ = Σ|w_i|`` (Tibshirani, 1996)."""
    check_tensor("l1", w, arg="weight")
    return w.abs().sum()


def l2(w: torch.Tensor) -> torch.Tensor:
    """Ridge / weight-decay penalty ``½‖w‖₂²``.

    The ½ makes the gradient ``w``, so ``L2(λ)`` matches SGD weight decay
    ``λ`` exactly (``torch.optim.SGD(weight_decay=λ)``).
    """
    check_tensor("l2", w, arg="weight")
    return 0.5 * w.pow(2).sum()
