"""Proximal maps of the sparsity penalties (applied after the optimizer step by ``regs.step``).

Proximal gradient descent handles non-smooth penalties (L1, group lasso)
exactly: after the optimizer's step on the loss, each regularized tensor is
mapped through ``prox_{η·λ·R}(w) = argmin_u ½‖u − w‖² + η·λ·R(u)`` with
``η`` the param group's learning rate and ``λ`` the regularizer's current
weight. Unlike a subgradient penalty, this yields exact zeros.

The loop that applies them lives in ``reglab.core.attach``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = [
    "soft_threshold",
    "group_soft_threshold",
    "best_candidate",
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


def best_candidate(
    z: torch.Tensor, candidates: list[torch.Tensor], penalty: Callable[[torch.Tensor], torch.Tensor],
    step_size: float | torch.Tensor,
) -> torch.Tensor:
    """Element-wise argmin of ``½(x − z)² + step_size·penalty(x)`` over the given candidate points.

    For a separable penalty that is piecewise smooth in ``x ≥ 0`` (non-convex ones
    included), the prox of each entry is the best of the per-piece minimizers
    (stationary points clipped to their piece, and the piece ends): passing them
    all as ``candidates`` makes this the exact proximal map. Ties go to the
    earlier candidate (put 0 first to prefer sparsity).
    """
    best = candidates[0]
    best_value = 0.5 * (best - z).pow(2) + step_size * penalty(best)
    for c in candidates[1:]:
        value = 0.5 * (c - z).pow(2) + step_size * penalty(c)
        better = value < best_value
        best = torch.where(better, c, best)
        best_value = torch.where(better, value, best_value)
    return best
