"""Activation sparsity (classic sparse coding / sparse autoencoders): L = mean_i ‖z_i‖₁.

Each sample's activations are flattened; a per-sample mean, so no gather is
needed under DDP.
"""

from __future__ import annotations

import torch

from reglab.core import Baseline, Claim, RepresentationRegularizer, register
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
    claims = (
        Claim(
            "An L1 penalty on activations makes the code sparse (more exact zeros)",
            task="latent_code", metric="zero_fraction", direction="higher", role="mechanism",
            min_effect=0.05, min_effect_reason="5% of the latent entries",
            baselines=(Baseline("the same autoencoder without the penalty"),),
            datasets=("digits", "digits_half"),
            settings="a classic technique with no single paper: an MLP autoencoder with a 32-d ReLU code on 8×8 "
            "digits, Adam, 60 epochs; weight 1e-4 (this class's default)",
            source="sparse coding / sparse autoencoders (classic)",
        ),
        Claim(
            "The sparser code is as useful: linear-probe accuracy kept",
            task="latent_code", metric="probe_accuracy", direction="higher", kind="non-inferiority",
            control=Baseline("L1 on the code at 100× the weight (1e-2)", {"name": "l1_activation", "weight": 1e-2}, why="a penalty strong enough to empty the code: the test must fail it"),
            min_effect=0.01, min_effect_reason="one point of probe accuracy",
            baselines=(Baseline("the same autoencoder without the penalty"),),
            datasets=("digits", "digits_half"),
            settings="as above",
            source="sparse coding / sparse autoencoders (classic)",
        ),
    )
    formula = "mean_i Σ_j |z_ij|"
    function = l1_activation
    default_weight = 1e-4
