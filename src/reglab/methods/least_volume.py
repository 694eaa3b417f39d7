"""Least Volume (Chen & Fuge, ICLR 2024): shrink an autoencoder's latent "volume".

L = exp(mean_j log(std_j(z) + η)), the geometric mean of the per-dimension
standard deviations (unbiased std). η = 1e-2 and λ = 1e-3 (the default
``weight``) follow the official code (IDEALLab/Least_Volume_ICLR2024:
``src/model/sparsity.py``, ``VolumeAE.loss_spar`` and the README's
``-l 1e-3``). The method needs a Lipschitz decoder (the paper, §2).
"""

from __future__ import annotations

import torch

from reglab.core import Paper, RepresentationRegularizer, register
from reglab.ops import hyperparameters, no_autocast, positive, prepare_batch

PAPER = Paper(
    "Compressing Latent Space via Least Volume", "Chen, Fuge", 2024,
    arxiv="2404.17773", venue="ICLR", code="https://github.com/IDEALLab/Least_Volume_ICLR2024")


@hyperparameters("LeastVolume", eta=positive)
def least_volume(z: torch.Tensor, *, eta: float = 1e-2, gather: bool = True) -> torch.Tensor:
    """Least Volume penalty (Chen & Fuge, ICLR 2024): the geometric mean of the
    per-dimension standard deviations, ``exp(mean_j log(std_j(z) + η))``
    (unbiased std; IDEALLab/Least_Volume_ICLR2024, ``VolumeAE.loss_spar``)."""
    z = prepare_batch("LeastVolume", z, arg="latent codes", gather=gather)
    with no_autocast(z):
        return torch.exp(torch.log(z.std(dim=0) + eta).mean())


@register
class LeastVolume(RepresentationRegularizer):
    """Least Volume: shrink an autoencoder's latent "volume", the geometric mean
    of the per-dimension standard deviations, L = exp(mean_j log(std_j(z) + η)).

    η = 1e-2 and λ = 1e-3 (the default ``weight``) follow the official code
    (IDEALLab/Least_Volume_ICLR2024: ``src/model/sparsity.py``, ``VolumeAE``
    and the README's ``-l 1e-3``). The method needs a Lipschitz decoder: wrap
    its layers in ``torch.nn.utils.parametrizations.spectral_norm`` (the paper,
    §2), or the decoder simply rescales and the penalty is meaningless.

    Chen & Fuge (2024), "Compressing Latent Space via Least Volume", ICLR.
    """

    name = "least_volume"
    paper = PAPER
    formula = "exp(mean_j log(std_j(z) + η))"
    function = least_volume
    default_weight = 1e-3
