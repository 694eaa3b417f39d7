"""Latent quantization with per-dimension scalar codebooks (QLAE; Hsu, Dorrell, Whittington, Wu & Finn, NeurIPS 2023).

Each latent dimension j has its own learnable scalar codebook V_j (n_v values);
z_j is replaced by its nearest value q_j = argmin_{v ∈ V_j} |z_j − v| with a
straight-through gradient, ẑ = z + sg(q − z), and the model is trained with

    λ_q · mean (sg(z) − q)²   (moves the codebook values)
  + λ_c · mean (z − sg(q))²   (commits the encoder to them)

plus unusually strong weight decay on the encoder and decoder (AdamW, 0.1).
Few values per dimension force the encoder to compose codes, which the paper
finds disentangles (InfoMEC modularity and explicitness).

Pinned from the authors' code, kylehkhsu/latent_quantization:
``disentangle/latents/quantized.py`` (``QuantizedLatent``: values initialised
``linspace(-0.5, 0.5, n_v)`` per latent, nearest value by |z − v|,
``z_hat = x + stop_gradient(quantized − x)``, ``optimize_values=True``);
``disentangle/models/quantized_ae.py`` (``quantization_loss = mean((sg(z) −
q)²)``, ``commitment_loss = mean((z − sg(q))²)``);
``configs/model_partial/quantized_ae.yaml`` (``num_values_per_latent: 10``,
``quantization: 0.01``, ``commitment: 0.01``, ``l2: 0.1`` the AdamW weight decay).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from reglab.core import Claim, Configurable, Paper, RegularizerInputError, register
from reglab.ops import check_int, check_positive, check_tensor

PAPER = Paper(
    "Disentanglement via Latent Quantization", "Hsu, Dorrell, Whittington, Wu, Finn", 2023,
    arxiv="2305.18378", venue="NeurIPS", code="https://github.com/kylehkhsu/latent_quantization")

WHO = "LatentQuantization"


class LatentQuantizationTerms(NamedTuple):
    """``z_hat``: the quantized latents with a straight-through gradient (feed them to the decoder);
    ``indices``: (n, L) chosen value per dimension; ``quantization`` = mean (sg(z) − q)²;
    ``commitment`` = mean (z − sg(q))²; ``loss`` = λ_q·quantization + λ_c·commitment (add it to the
    reconstruction loss)."""

    z_hat: torch.Tensor
    indices: torch.Tensor
    quantization: torch.Tensor
    commitment: torch.Tensor
    loss: torch.Tensor


def latent_quantization(
    z: torch.Tensor, values: torch.Tensor, *, quantization: float = 0.01, commitment: float = 0.01
) -> LatentQuantizationTerms:
    """Quantize each latent dimension j of ``z`` (n, L) to its nearest value in ``values[j]`` (L, n_v).

    Straight-through: ``z_hat = z + sg(q − z)`` (forward value q, gradient of
    the identity to z). The losses are means over batch and dimensions
    (the official per-sample means, averaged over the batch).
    """
    check_tensor(WHO, z, arg="latents", ndim=2)
    check_tensor(WHO, values, arg="values", ndim=2)
    check_positive(WHO, "quantization", quantization, allow_zero=True)
    check_positive(WHO, "commitment", commitment, allow_zero=True)
    if values.shape[0] != z.shape[1]:
        raise RegularizerInputError(
            f"{WHO} expects one codebook row per latent dimension: values of shape ({z.shape[1]}, n_values) for "
            f"latents of shape {tuple(z.shape)}, got {tuple(values.shape)}"
        )
    values = values.to(z.dtype)
    with torch.no_grad():
        indices = (z.unsqueeze(-1) - values.unsqueeze(0)).abs().argmin(dim=-1)  # (n, L)
    q = torch.gather(values.unsqueeze(0).expand(z.shape[0], -1, -1), 2, indices.unsqueeze(-1)).squeeze(-1)
    z_hat = z + (q - z).detach()
    quant = (z.detach() - q).pow(2).mean()
    commit = (z - q.detach()).pow(2).mean()
    return LatentQuantizationTerms(z_hat, indices, quant, commit, quantization * quant + commitment * commit)


@register
class LatentQuantization(Configurable, nn.Module):
    """Latent quantization (QLAE): a learnable scalar codebook per latent dimension, straight-through.

    ``lq = LatentQuantization(num_latents=L)``; in the autoencoder,
    ``out = lq(encoder(x))``, decode ``out.z_hat`` and train on
    ``reconstruction + out.loss`` (λ_q·mean (sg(z) − q)² + λ_c·mean (z − sg(q))²)
    with AdamW and a strong weight decay (0.1, the paper's) on the encoder and
    decoder. Few values per dimension force the encoder to compose discrete
    codes, which disentangles (Hsu et al., 2023).

    Defaults from kylehkhsu/latent_quantization: 10 values per latent,
    initialised evenly on [−0.5, 0.5] and learned (``optimize_values``);
    λ_q = λ_c = 0.01; AdamW weight decay 0.1 (``configs/model_partial/quantized_ae.yaml``).
    The codebook is the module's parameter ``values`` (L, n_v): give it to the
    optimizer (without weight decay, as any codebook).

    Hsu, Dorrell, Whittington, Wu & Finn (2023), NeurIPS, arXiv:2305.18378.
    """

    name = "latent_quantization"
    kind = "representation"
    form = "module"
    paper = PAPER
    formula = "ẑ_j = z_j + sg(q_j − z_j), q_j = argmin_{v∈V_j}|z_j − v|;  L = λ_q·‖sg(z) − q‖² + λ_c·‖z − sg(q)‖² (means)"
    function = latent_quantization
    example_args = {"num_latents": 4}
    takes_embedding_batches = False  # a module with a codebook, not a penalty: tests/methods/test_latent_quantization.py
    claims = (
        Claim(
            "Latent quantization with strong weight decay improves disentanglement (InfoMEC modularity and "
            "explicitness) of an autoencoder without hurting reconstruction",
            testable=False,
            untestable_reason="needs a dataset with known generative factors (Shapes3D, MPI3D) and the InfoMEC "
            "metrics; the lab's latent_code task has no ground-truth factors and binds penalties, not a "
            "quantization layer inside the autoencoder",
            source="Hsu et al. 2023, Table 1 (InfoMEC on Shapes3D, MPI3D, Falcor3D, Isaac3D)",
        ),
    )

    def __init__(
        self, num_latents: int, num_values: int = 10, quantization: float = 0.01, commitment: float = 0.01,
        optimize_values: bool = True,
    ):
        super().__init__()
        self.num_latents = check_int(WHO, "num_latents", num_latents, 1)
        self.num_values = check_int(WHO, "num_values", num_values, 1)
        self.quantization = check_positive(WHO, "quantization", quantization, allow_zero=True)
        self.commitment = check_positive(WHO, "commitment", commitment, allow_zero=True)
        if not isinstance(optimize_values, bool):
            raise RegularizerInputError(f"{WHO} expects optimize_values to be True or False, got {optimize_values!r}")
        self.optimize_values = optimize_values
        grid = torch.linspace(-0.5, 0.5, num_values) if num_values > 1 else torch.zeros(1)
        self.values = nn.Parameter(grid.repeat(num_latents, 1), requires_grad=optimize_values)

    def forward(self, z: torch.Tensor) -> LatentQuantizationTerms:
        return latent_quantization(z, self.values, quantization=self.quantization, commitment=self.commitment)
