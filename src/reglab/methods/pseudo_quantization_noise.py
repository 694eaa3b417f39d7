"""Pseudo-quantization noise (QuantNAS; Shvetsov et al. 2022): train through the noise b-bit rounding would add.

    x̃ = x + Δ·ξ,   Δ = (max x − min x)/(2^b − 1)   (one range per tensor, from the tensor itself)

with ξ ~ N(0, 1)/2 (``distribution="gaussian"``) or ξ ~ U(−½, ½) (``"uniform"``, the
classic additive model of rounding error). Official code: On-Point-RND/QuantNAS,
``sr_models/quant_conv_lsq.py``, ``quant_noise`` (lines 12-25): ``scale = flat.max() −
flat.min()``, ``unit = 1/(2**bit − 1)``, ``noise_source = torch.randn_like(flat)/2``
(gaussian, the function's default and the one ``QuaNoiseConv2d`` calls) or
``torch.rand_like(flat) − 0.5`` (uniform). The QuantNAS layer applies it to both the
weights and the (ReLU) input activations of each convolution.

Gradient: the noise is treated as a constant (the range and ξ are detached), so
∂x̃/∂x = I. The official ``quant_noise`` detaches the whole noisy copy and mixes it
with a full-precision term (``fp_alpha·w + Σ_b α_b·quant_noise(w, b)``, a NAS
architecture over bit-widths); that mixture is the paper's search space, not this
component — here the single-bit-width noisy tensor carries the gradient.
On activations the range is that of the local batch (per device under DDP, as in the
official single-device code; gathering it is not needed for a noise scale). Identity in
``.eval()``. Default b = 8 (the highest bit-width of the README's search example
``arch.bits = [8, 4, 2]``; b has no single paper default — set it to the bit-width you deploy).
"""

from __future__ import annotations

import torch

from reglab.core import Claim, FunctionModule, Paper, RegularizerInputError, register
from reglab.ops import check_tensor, hyperparameters, integer, one_of

__all__ = ["pseudo_quantization_noise", "PseudoQuantizationNoise"]

PAPER = Paper(
    "QuantNAS for super resolution: searching for efficient quantization-friendly architectures against "
    "quantization noise", "Shvetsov, E., Osin, D., Zaytsev, A., Koryakovskiy, I., Buchnev, V., Trofimov, I. and "
    "Burnaev, E.", 2022, arxiv="2208.14839", code="https://github.com/On-Point-RND/QuantNAS")

_WHO = "PseudoQuantizationNoise"


@hyperparameters(_WHO, bits=integer(1), distribution=one_of("gaussian", "uniform"))
def pseudo_quantization_noise(
    x: torch.Tensor, bits: int = 8, distribution: str = "gaussian", training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``x + Δ·ξ`` with Δ = (max x − min x)/(2^bits − 1) over the whole tensor and ξ ~ N(0,1)/2 or
    U(−½, ½), when ``training``; ``x`` otherwise. The noise is a constant for autograd."""
    check_tensor(_WHO, x, arg="input")
    if not x.is_floating_point():
        raise RegularizerInputError(f"{_WHO} expects a floating-point input, got dtype {x.dtype}")
    if not training or x.numel() == 0:
        return x
    with torch.no_grad():
        step = (x.max() - x.min()) / (2**bits - 1)
        if distribution == "gaussian":
            xi = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator) / 2
        else:
            xi = torch.rand(x.shape, device=x.device, dtype=x.dtype, generator=generator) - 0.5
        noise = step * xi
    return x + noise


@register
class PseudoQuantizationNoise(FunctionModule):
    """Pseudo-quantization noise: ``x + Δ·ξ``, Δ = range/(2^b − 1) per tensor, in training only (QuantNAS).

    On activations: a layer (``nn.Sequential(..., nn.ReLU(), PseudoQuantizationNoise(4), nn.Linear(...))``).
    On weights: a parametrization, ``torch.nn.utils.parametrize.register_parametrization(layer,
    "weight", PseudoQuantizationNoise(4))`` (the forward sees the noisy weight, the optimizer
    updates the clean one). ξ ~ N(0, 1)/2 (the official default) or U(−½, ½); the gradient
    passes through unchanged. Identity in ``.eval()``.
    """

    name = "pseudo_quantization_noise"
    kind = "stochastic"
    form = "transform"
    paper = PAPER
    formula = "x̃ = x + Δ·ξ,  Δ = (max x − min x)/(2^b − 1),  ξ ~ N(0,1)/2 or U(−½, ½)  (training only)"
    function = pseudo_quantization_noise
    call_args = ("training", "generator")
    claims = (
        Claim(
            "Training with pseudo-quantization noise makes a model robust to post-training quantization at that "
            "bit-width (QuantNAS: noise-aware search finds quantization-friendly models)",
            task="quantization", metric="quantized_accuracy", direction="higher",
            testable=False,
            untestable_reason="the lab's quantization task binds only weight penalties through reglab.attach (no "
            "hook to train through a weight parametrization or an activation layer) and quantizes to 1-1.6 bits "
            "per row with the Cauchy-Schwarz scaling rule, not to b-bit uniform levels; a faithful test needs a "
            "task that trains with the noise as a weight parametrization and then quantizes each tensor to b "
            "uniform levels. QuantNAS's own result is for an architecture search (noise in every candidate "
            "operation), a setting no CPU task here reproduces",
            source="Shvetsov et al. 2022, Sec. 3.3 and Tables 2-3",
        ),
    )

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return super().forward(x, training=self.training, generator=generator)
