"""Classic weight penalties: L1 (lasso), L2 (ridge / weight decay) and the elastic net.

* L1 (Tibshirani, 1996): R(w) = Σ|w_i|; its proximal map (soft
  thresholding) gives exact zeros.
* L2: R(w) = ½‖w‖₂². The ½ makes the gradient ``w``, so ``L2(λ)`` matches
  ``torch.optim.SGD(weight_decay=λ)`` exactly, but only on the selected
  tensors (by default not biases, norm or embedding parameters).
* Elastic net (Zou & Hastie, 2005): R(w) = ρ‖w‖₁ + (1−ρ)·½‖w‖₂² in the
  glmnet / scikit-learn parameterization (``l1_ratio`` ρ, default 0.5 as in
  scikit-learn).

Each function takes one tensor or a list of tensors (the sum over them,
computed with one fused ``_foreach_norm``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import Paper, WeightRegularizer, register
from reglab.ops import (
    as_tensors, checked_total, hyperparameters, norms_sum, soft_threshold, squared_norm, unit_interval,
)

PAPER = Paper(
    "Regularization and variable selection via the elastic net", "Zou, H. and Hastie, T.", 2005,
    doi="10.1111/j.1467-9868.2005.00503.x", venue="J. R. Stat. Soc. B")

Weights = torch.Tensor | Sequence[torch.Tensor]


def l1(w: Weights) -> torch.Tensor:
    """Lasso penalty ``‖w‖₁ = Σ|w_i|`` (Tibshirani, 1996), summed over tensors."""
    ws = as_tensors("l1", w)
    return checked_total("l1", norms_sum(ws, 1), ws)


def l2(w: Weights) -> torch.Tensor:
    """Ridge / weight-decay penalty ``½‖w‖₂²``, summed over tensors.

    The ½ makes the gradient ``w``, so ``L2(λ)`` matches SGD weight decay
    ``λ`` exactly (``torch.optim.SGD(weight_decay=λ)``).
    """
    ws = as_tensors("l2", w)
    return checked_total("l2", 0.5 * squared_norm(ws), ws)


@hyperparameters(l1_ratio=unit_interval)
def elastic_net(w: Weights, l1_ratio: float = 0.5) -> torch.Tensor:
    """Elastic net ``ρ‖w‖₁ + (1−ρ)·½‖w‖₂²`` (Zou & Hastie, 2005), ρ = ``l1_ratio``."""
    ws = as_tensors("elastic_net", w)
    value = l1_ratio * norms_sum(ws, 1) + (1.0 - l1_ratio) * 0.5 * squared_norm(ws)
    return checked_total("elastic_net", value, ws)


@register
class L1(WeightRegularizer):
    """L1 (lasso) penalty: drives individual weights to exactly zero in prox mode.

    R(w) = Σ|w_i|. Proximal operator: soft thresholding.
    """

    name = "l1"
    formula = "R(w) = Σ_i |w_i|"
    function = l1
    default_weight = 1e-5

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        w.copy_(soft_threshold(w, step_size))


@register
class L2(WeightRegularizer):
    """L2 penalty (weight decay as a loss term): R(w) = ½‖w‖₂².

    With the ½, ``L2(λ)`` adds ``λ·w`` to the gradient, exactly what
    ``SGD(weight_decay=λ)`` does, but only on the selected tensors (by
    default not biases, norm or embedding parameters). No global scope:
    ½‖concat(w)‖² equals the sum of the local penalties.
    """

    name = "l2"
    formula = "R(w) = ½ Σ_i w_i²"
    function = l2
    default_weight = 5e-4

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        w.mul_(1.0 / (1.0 + step_size))


@register
class ElasticNet(WeightRegularizer):
    """Elastic net: R(w) = ρ‖w‖₁ + (1−ρ)·½‖w‖₂², ρ = ``l1_ratio``.

    Zou & Hastie (2005), in the glmnet / scikit-learn parameterization
    (scikit-learn's default ``l1_ratio = 0.5``). Proximal operator (exact):
    soft threshold at tρ, then shrink by 1/(1 + t(1−ρ)).
    """

    name = "elastic_net"
    formula = "R(w) = ρ‖w‖₁ + (1−ρ)·½‖w‖₂²"
    paper = PAPER
    function = elastic_net
    default_weight = 1e-5

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        rho = self.l1_ratio
        w.copy_(soft_threshold(w, step_size * rho) / (1.0 + step_size * (1.0 - rho)))
