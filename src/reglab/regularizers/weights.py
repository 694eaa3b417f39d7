"""Weight regularizers: penalties on parameter tensors.

Each class wraps one function of :mod:`reglab.functional.weights`; fused
``penalty_many`` implementations batch the work over many tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab import functional as RF
from reglab._validation import check_tensor
from reglab.prox import soft_threshold
from reglab.registry import register
from reglab.regularizers.base import WeightRegularizer

__all__ = ["L1", "L2"]


def _check_all(who: str, tensors: Sequence[torch.Tensor]) -> None:
    for w in tensors:
        check_tensor(who, w, arg="weight")


@register
class L1(WeightRegularizer):
    """L1 (lasso) penalty: drives individual weights to exactly zero in prox mode.

    R(w) = Σ|w_i|. Proximal operator: soft thresholding.
    """

    name = "l1"
    formula = "R(w) = Σ_i |w_i|"

    def __init__(self, weight: float = 1e-5):
        super().__init__(weight)

    def penalty(self, w: torch.Tensor) -> torch.Tensor:
        return RF.l1(w)

    def penalty_many(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        _check_all("l1", tensors)
        return torch.stack(torch._foreach_norm(list(tensors), 1)).sum()

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        w.copy_(soft_threshold(w, step_size))


@register
class L2(WeightRegularizer):
    """L2 penalty (weight decay as a loss term): R(w) = ½‖w‖₂².

    With the ½, ``L2(λ)`` adds ``λ·w`` to the gradient, exactly what
    ``SGD(weight_decay=λ)`` does, but only on the selected tensors (by
    default not biases, norm or embedding parameters).
    """

    name = "l2"
    formula = "R(w) = ½ Σ_i w_i²"

    def __init__(self, weight: float = 5e-4):
        super().__init__(weight)

    def penalty(self, w: torch.Tensor) -> torch.Tensor:
        return RF.l2(w)

    def penalty_many(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        _check_all("l2", tensors)
        norms = torch.stack(torch._foreach_norm(list(tensors), 2))
        return 0.5 * norms.pow(2).sum()

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        w.mul_(1.0 / (1.0 + step_size))
