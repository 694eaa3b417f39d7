"""Dispersive loss (Wang & He, 2025): InfoNCE without positives, spreading a hidden layer's representations.

InfoNCE-L2 variant of the paper's Algorithm 1 snippet:
L = log mean_{i,j} exp(−‖z_i − z_j‖²/(τ·D)), z the flattened activation of
each sample, D its dimension, the mean over all N² ordered pairs (the zero
diagonal included) and τ = 1 as in that snippet. The coefficient λ of the
total loss L_diff + λ·L_disp is the ``weight`` (the paper's per-model λ was
not checked here; 1.0 by default).
"""

from __future__ import annotations

import math

import torch

from reglab.core import Paper, RepresentationRegularizer, register
from reglab.ops import check_tensor, hyperparameters, no_autocast, pairwise_sq_dists, positive, prepare_batch

PAPER = Paper(
    "Diffuse and Disperse: Image Generation with Representation Regularization", "Wang, He", 2025,
    arxiv="2506.09027")


@hyperparameters("Dispersive", tau=positive)
def dispersive(z: torch.Tensor, *, tau: float = 1.0, gather: bool = True) -> torch.Tensor:
    """Dispersive loss, InfoNCE-L2 variant (Wang & He, 2025):
    ``log mean_{i,j} exp(−‖z_i − z_j‖² / (τ·D))`` over all N² ordered pairs
    (the diagonal included, as the paper's snippet does), z flattened per sample."""
    who = "Dispersive"
    check_tensor(who, z, arg="activations", min_ndim=2)
    z = prepare_batch(who, z.reshape(z.shape[0], -1), arg="activations", gather=gather)
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
    coefficient λ of the total loss L_diff + λ·L_disp is the ``weight``
    (the paper's per-model λ was not checked here; 1.0 by default).

    Wang & He (2025), "Diffuse and Disperse: Image Generation with
    Representation Regularization", arXiv:2506.09027.
    """

    name = "dispersive"
    paper = PAPER
    formula = "log mean_{i,j} exp(−‖z_i − z_j‖²/(τ·D))"
    function = dispersive
