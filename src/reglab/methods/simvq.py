"""SimVQ (Zhu et al., 2024): a VQ codebook reparametrized as one linear layer over a frozen random basis.

C = C₀Wᵀ + b with C₀ ∈ R^{K×d} drawn once from N(0, 1/d) and frozen, and W, b
a learnable ``nn.Linear(d, d)``. Each input is quantized to its nearest code,
k* = argmin_k ‖z − C_k‖², with the VQ loss β·mean‖sg(z_q) − z‖² +
mean‖z_q − sg(z)‖² and the straight-through estimator z + sg(z_q − z). Because
every code is a function of the shared W, the gradient of the selected codes
moves the whole codebook, and no code is left behind (the collapse remedy).

Pinned from youngsheen/SimVQ @ d8bd94d9 (``taming/modules/vqvae/quantize.py``
class ``SimVQ``: init L20-33 — ``nn.init.normal_(embedding.weight, std=e_dim**-0.5)``,
``requires_grad = False``, ``embedding_proj = nn.Linear(e_dim, e_dim)``; forward
L74-118 with ``legacy=False``, the setting of its configs: ``commit_loss =
beta * mean((z_q.detach() - z)**2) + mean((z_q - z.detach())**2)``; β = 0.25 from
``configs/imagenet_simvq_128_B.yaml``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from reglab.core import Baseline, Claim, Configurable, Paper, RegularizerInputError, register
from reglab.ops import check_int, check_positive, check_tensor, has_data, no_autocast

PAPER = Paper(
    "Addressing Representation Collapse in Vector Quantized Models with One Linear Layer",
    "Zhu, Li, Xin, Xia, Xu", 2024, arxiv="2411.02038", code="https://github.com/youngsheen/SimVQ")

__all__ = ["SimVQOutput", "simvq_quantize", "SimVQ"]


class SimVQOutput(NamedTuple):
    """``quantized`` (straight-through, the input's shape), ``loss`` (the VQ loss, a scalar),
    ``indices`` (the chosen code of each vector, the input's shape without its last dimension)."""

    quantized: torch.Tensor
    loss: torch.Tensor
    indices: torch.Tensor


def simvq_quantize(
    z: torch.Tensor, basis: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, beta: float = 0.25
) -> SimVQOutput:
    """Quantize ``z`` (..., d) with the codebook ``C = basis·weightᵀ + bias`` (SimVQ, legacy=False).

    ``basis`` (K, d) is the frozen random basis C₀; ``weight`` (d, d) and
    ``bias`` (d,) the learnable projection. Loss = β·mean((sg(z_q) − z)²) +
    mean((z_q − sg(z))²), elementwise means; output z + sg(z_q − z).
    """
    who = "SimVQ"
    check_tensor(who, z, arg="input", min_ndim=1)
    check_tensor(who, basis, arg="basis", ndim=2)
    d = basis.shape[1]
    if z.shape[-1] != d:
        raise RegularizerInputError(
            f"{who} expects inputs with the code dimension {d} last, got shape {tuple(z.shape)} (move channels last)"
        )
    dtype = z.dtype if z.dtype in (torch.float32, torch.float64) else torch.float32
    with no_autocast(z):
        flat = z.reshape(-1, d).to(dtype)
        codebook = nn.functional.linear(basis.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype))
        with torch.no_grad():
            dist = (
                flat.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1)[None, :] - 2 * flat @ codebook.T
            )
            if has_data(dist) and dist.numel() and not bool(torch.isfinite(dist).all()):
                raise RegularizerInputError(f"{who}: distances to the codes overflow {dtype}; rescale the inputs")
            indices = dist.argmin(dim=1)
        zq = codebook[indices]
        loss = beta * (zq.detach() - flat).pow(2).mean() + (zq - flat.detach()).pow(2).mean()
        out = flat + (zq - flat).detach()
    return SimVQOutput(out.reshape(z.shape).to(z.dtype), loss, indices.reshape(z.shape[:-1]))


@register
class SimVQ(Configurable, nn.Module):
    """SimVQ: a vector quantizer whose codebook is one linear layer over a frozen random basis.

    Codebook C = C₀Wᵀ + b, C₀ (num_codes × dim) ~ N(0, 1/dim) frozen (a buffer),
    W, b a learnable ``nn.Linear(dim, dim)``. ``vq(z)`` returns
    ``(quantized, loss, indices)``: nearest-code quantization of ``z`` (..., dim)
    with the straight-through estimator, and the VQ loss
    β·mean((sg(z_q) − z)²) + mean((z_q − sg(z))²) to add to the training loss.
    All codes move with W, so the codebook does not collapse onto the few
    codes the encoder happens to pick (Zhu et al., 2024). β = 0.25 and the
    ``legacy=False`` loss are the official configs'; ``codebook`` gives C.
    """

    name = "simvq"
    kind = "representation"
    form = "module"
    takes_embedding_batches = False
    paper = PAPER
    formula = "C = C₀Wᵀ + b (C₀ frozen); z_q = C[argmin_k ‖z − C_k‖²]; L = β‖sg(z_q) − z‖² + ‖z_q − sg(z)‖²"
    function = None
    example_args = {"num_codes": 8, "dim": 4}
    _plain = Baseline("plain VQ (taming init)", why="the VQ every remedy is added to: a learnable codebook, "
                      "uniform(±1/K) init")
    _entropy = Baseline("plain VQ + codebook entropy (weight 0.1, τ = 0.01)", {"name": "codebook_entropy"},
                        why="the other one-line remedy for codebook collapse (MAGVIT-v2's entropy loss)")
    _settings = (
        "a VQ autoencoder on 8×8 digits (encoder 64-128-16 cut into 4 tokens of 4 dims, one shared codebook of 64 "
        "codes, decoder 16-128-64, MSE + VQ loss with β = 0.25; Adam, batch 128, 40 epochs; best validation epoch) "
        "instead of VQGAN image tokenizers on ImageNet; the task was sized on seeds 0-1, nothing tuned"
    )
    claims = (
        Claim(
            "SimVQ keeps more of the codebook in use than a plain VQ codebook",
            task="vq_code", metric="utilization", direction="higher", role="mechanism",
            min_effect=0.1, min_effect_reason="a tenth of the codebook (6 of 64 codes) more in use on the test split",
            baselines=(_plain, _entropy), datasets=("digits",), settings=_settings,
            source="Zhu et al. 2024, Table 1 and Fig. 1 (codebook utilization near 100% where VQGAN codebooks collapse)",
        ),
        Claim(
            "SimVQ reconstructs better than a plain VQ codebook",
            task="vq_code", metric="test_mse", direction="lower",
            min_effect=0.002, min_effect_reason="about 5% of the plain VQ's test MSE here (≈ 0.036)",
            baselines=(_plain,), datasets=("digits",), settings=_settings,
            source="Zhu et al. 2024, Table 1 (rFID/LPIPS of SimVQ vs VQGAN at equal codebook size)",
        ),
    )

    def __init__(self, num_codes: int, dim: int, beta: float = 0.25):
        super().__init__()
        self.num_codes = check_int("SimVQ", "num_codes", num_codes, 1)
        self.dim = check_int("SimVQ", "dim", dim, 1)
        self.beta = check_positive("SimVQ", "beta", beta, allow_zero=True)
        self.register_buffer("basis", torch.randn(self.num_codes, self.dim) * self.dim**-0.5)
        self.proj = nn.Linear(self.dim, self.dim)

    @property
    def codebook(self) -> torch.Tensor:
        """The current codebook C = C₀Wᵀ + b (num_codes × dim)."""
        return self.proj(self.basis)

    def forward(self, z: torch.Tensor) -> SimVQOutput:
        return simvq_quantize(z, self.basis, self.proj.weight, self.proj.bias, self.beta)
