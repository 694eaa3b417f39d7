"""Activation sparsity (classic sparse coding / sparse autoencoders): L = mean_i ‖z_i‖₁.

Each sample's activations are flattened; a per-sample mean, so no gather is
needed under DDP.
"""

from __future__ import annotations

import torch

from reglab.core import RepresentationRegularizer, register
from reglab.ops import check_tensor, no_autocast


def l1_activation(z: torch.Tensor) -> torch.Tensor:
    """Activation sparsity ``mean_i Σ_j |z_ij|`` (per-sample L1, batch mean)."""
    check_tensor("L1Activation", z, arg="activations", min_ndim=1)
    z = z if z.dtype in (torch.float32, torch.float64) else z.float()
    with no_autocast(z):
        if z.ndim == 1:
            return z.abs().sum()
        return z.abs().reshape(z.shape[0], -1).sum(dim=1).mean()


@register
class L1Activation(RepresentationRegularizer):
    """Activation sparsity: L = mean_i ‖z_i‖₁ (each sample's activations flattened).

    The classic sparse-coding / sparse-autoencoder penalty on activations; a
    per-sample mean, so no gather is needed under DDP.
    """

    name = "l1_activation"
    formula = "mean_i Σ_j |z_ij|"
    function = l1_activation
    default_weight = 1e-4
