"""Proximal maps of the sparsity penalties (applied after the optimizer step by ``regs.step``).

Proximal gradient descent handles non-smooth penalties (L1, group lasso)
exactly: after the optimizer's step on the loss, each regularized tensor is
mapped through ``prox_{η·λ·R}(w) = argmin_u ½‖u − w‖² + η·λ·R(u)`` with
``η`` the param group's learning rate and ``λ`` the regularizer's current
weight. Unlike a subgradient penalty, this yields exact zeros.

The loop that applies them lives in ``reglab.core.attach``.
"""

from __future__ import annotations

import torch

__all__ = [
    "soft_threshold",
    "group_soft_threshold",
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
