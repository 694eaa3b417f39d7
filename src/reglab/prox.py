"""Proximal operators and the post-step hook.

Proximal gradient descent handles non-smooth penalties (L1, group lasso)
exactly: after the optimizer's step on the loss, each regularized tensor is
mapped through ``prox_{η·λ·R}(w) = argmin_u ½‖u − w‖² + η·λ·R(u)`` with
``η`` the param group's learning rate and ``λ`` the regularizer's current
weight. Unlike a subgradient penalty, this yields exact zeros.

With adaptive optimizers (Adam) ``η`` is the nominal learning rate, not the
per-coordinate step; the update is then a heuristic, as in most libraries.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "soft_threshold",
    "group_soft_threshold",
    "apply_prox",
    "learning_rates",
]


def soft_threshold(w: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """prox of ``threshold·‖w‖₁``: sign(w)·max(|w| − threshold, 0)."""
    return torch.sign(w) * (w.abs() - threshold).clamp_min(0.0)


def group_soft_threshold(
    rows: torch.Tensor, threshold: float | torch.Tensor, eps: float = 1e-12
) -> torch.Tensor:
    """prox of ``Σ_g threshold_g·‖w_g‖₂`` with one group per row of ``rows``.

    Each row is scaled by max(0, 1 − threshold_g/‖w_g‖); ``threshold`` may be
    a scalar or a per-row tensor (e.g. λ·√(group size)).
    """
    norms = rows.norm(dim=1, keepdim=True)
    t = threshold if not isinstance(threshold, torch.Tensor) else threshold.reshape(-1, 1)
    return rows * (1.0 - t / norms.clamp_min(eps)).clamp_min(0.0)


def learning_rates(optimizer: torch.optim.Optimizer) -> dict[int, float]:
    """``id(param) -> lr`` from the optimizer's param groups."""
    out: dict[int, float] = {}
    for group in optimizer.param_groups:
        lr = group["lr"]
        lr = float(lr.item()) if isinstance(lr, torch.Tensor) else float(lr)
        for p in group["params"]:
            out[id(p)] = lr
    return out


@torch.no_grad()
def apply_prox(
    regularizer,
    named_params: Sequence[tuple[str, nn.Parameter]],
    optimizer: torch.optim.Optimizer,
) -> None:
    """Apply ``regularizer.prox_`` to each parameter with step size lr × weight."""
    coef = regularizer.current_weight
    if coef == 0.0:
        return
    lrs = learning_rates(optimizer)
    who = type(regularizer).__name__
    for name, p in named_params:
        if id(p) not in lrs:
            raise ValueError(
                f"{who} (prox mode) selected parameter {name!r}, which the optimizer does not update; "
                f"narrow the selection or add it to the optimizer"
            )
        regularizer.prox_(p, lrs[id(p)] * coef)
