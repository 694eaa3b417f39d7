"""Dispersive loss (Wang & He, 2025): InfoNCE without positives, spreading a hidden layer's representations.

InfoNCE-L2 variant of the paper's Algorithm 1 snippet:
L = log mean_{i,j} exp(−‖z_i − z_j‖²/(τ·D)), z the flattened activation of
each sample, D its dimension, the mean over all N² ordered pairs (the zero
diagonal included) and τ = 1 as in that snippet. The coefficient λ of the
total loss L_diff + λ·L_disp is the ``weight``, 0.5 by default: the paper's
λ (the authors' README, raywang4/DispLoss, "Differences from JAX": their JAX
runs behind the paper's numbers used λ = 0.5, τ = 0.5; an earlier version of
their PyTorch ``transport/transport.py`` adds ``0.5 * disp_loss``). Their
current PyTorch re-implementation uses λ = 0.25 with τ = 1
(``terms['loss'] += 0.25*disp_loss``): pass ``weight=0.25``.
"""

from __future__ import annotations

import math

import torch

from reglab.core import Paper, RepresentationRegularizer, register, ssl_claims
from reglab.ops import hyperparameters, no_autocast, pairwise_sq_dists, positive, prepare_batch

PAPER = Paper(
    "Diffuse and Disperse: Image Generation with Representation Regularization", "Wang, He", 2025,
    arxiv="2506.09027")


@hyperparameters("Dispersive", tau=positive)
def dispersive(z: torch.Tensor, *, tau: float = 1.0, gather: bool = True) -> torch.Tensor:
    """Dispersive loss, InfoNCE-L2 variant (Wang & He, 2025):
    ``log mean_{i,j} exp(−‖z_i − z_j‖² / (τ·D))`` over all N² ordered pairs
    (the diagonal included, as the paper's snippet does), z flattened per sample."""
    who = "Dispersive"
    z = prepare_batch(who, z, arg="activations", gather=gather, flatten=True)
    with no_autocast(z):
        n, d = z.shape
        vals = -pairwise_sq_dists(z) / (tau * d)
        return torch.logsumexp(vals.flatten(), dim=0) - math.log(n * n)


@register
class Dispersive(RepresentationRegularizer):
    """Dispersive loss: InfoNCE without positives, spreading a hidden layer's
    representations: L = log mean_{i,j} exp(−‖z_i − z_j‖²/(τ·D)).

    InfoNCE-L2 variant of the paper's Algorithm 1 snippet: z is the flattened
    activation of each sample, D its dimension, the mean over all N² ordered
    pairs (the zero diagonal included) and τ = 1 as in that snippet. The
    coefficient λ of the total loss L_diff + λ·L_disp is the ``weight``,
    0.5 by default: the paper's λ (raywang4/DispLoss README, "Differences
    from JAX": the JAX runs behind the paper used λ = 0.5 with τ = 0.5; an
    earlier version of their PyTorch ``transport/transport.py`` adds
    ``0.5 * disp_loss``). Their current PyTorch code uses λ = 0.25 with
    τ = 1 (``weight=0.25``). The official code applies it to the last
    block's output (PyTorch) or the block at depth num_layers//4 (JAX).

    Wang & He (2025), "Diffuse and Disperse: Image Generation with
    Representation Regularization", arXiv:2506.09027.
    """

    name = "dispersive"
    claims = ssl_claims(
        "The dispersive loss spreads the hidden representations (higher effective rank)",
        "Spreading the hidden representations gives a better linear probe",
        settings="the paper regularizes diffusion models' hidden layers; the lab uses its mechanism (InfoNCE "
            "without positives) in two-view SSL on 8×8 digits (MLP encoder 64-256-32, Adam, 50 epochs), on "
            "the 256-unit hidden layer next to the invariance MSE; λ = 0.5, τ = 1",
        source_mechanism="Wang & He 2025, Sec. 3 (the loss encourages representations to spread out)",
        source_outcome="Wang & He 2025, Sec. 4 (better generation quality; the lab's outcome is a probe instead)",
    )
    paper = PAPER
    formula = "log mean_{i,j} exp(−‖z_i − z_j‖²/(τ·D))"
    function = dispersive
    default_weight = 0.5
