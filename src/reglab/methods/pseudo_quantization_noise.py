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
from reglab.core.paper import Baseline, Tuned, Tuning
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
            "Training with pseudo-quantization noise at the deployed bit-width makes a model robust to "
            "post-training quantization at that bit-width: test accuracy after b-bit uniform rounding is higher "
            "(QuantNAS: noise-aware training finds quantization-friendly models)",
            task="bbit_quantization", metric="quantized_accuracy", direction="higher",
            datasets=("digits",),
            task_args={"bits": 2},
            arm={"name": "pseudo_quantization_noise", "bits": 2},
            min_effect=0.01,
            min_effect_reason="one point of test accuracy (about 5 of the 540 digits test images), the scale of "
            "the lab's other post-training quantization claims",
            baselines=(
                Baseline("no noise, same 2-bit rounding", why="plain training, the model quantized as is"),
                Baseline(
                    "Adam weight decay 1e-3, same 2-bit rounding", task_args={"weight_decay": 1e-3},
                    why="weight decay shrinks the weight range, the usual regularizer before post-training "
                    "quantization; tuned on the dev seeds",
                ),
            ),
            settings="a CPU MLP 64-128-128-128-10 on digits instead of the paper's super-resolution architecture "
            "search: the noise (ξ ~ N(0,1)/2, the official default) as a parametrization of the two "
            "hidden-to-hidden Linear weights only, in training only, without the paper's full-precision/bit-width "
            "mixture or the activation noise; Adam 1e-3, batch 64, 20 epochs, epoch picked on full-precision "
            "validation accuracy; then each of those two tensors rounded to 2^b uniform min-max levels (no "
            "retraining, no learned step as in the paper's LSQ). b = 2, the lowest width of QuantNAS's search "
            "[8, 4, 2] (the class default is 8): on dev seeds 0-2 the plain model loses nothing at 4 bits (drop "
            "0.000 ± 0.002) and 3 bits, so only 2 bits leaves a loss to prevent; the arm's b matches it",
            source="Shvetsov et al. 2022, Sec. 3.3 and Tables 2-3",
            tuning=Tuning(
                baselines=(("Adam weight decay 1e-3, same 2-bit rounding", Tuned(
                    "weight_decay", (1e-4, 1e-3, 1e-2), 1e-3,
                    "digits seeds 0-2, mean validation accuracy after 2-bit rounding (val_quantized_accuracy): "
                    "0.931, 0.943, 0.934")),),
                note="the noise not tuned (b matched to the rounding, the official gaussian ξ); b = 2 chosen on "
                "dev seeds 0-2 as the width where the plain model loses accuracy (the arm's dev results at 2-4 bits "
                "were seen too); the baseline's tuning only helps the baseline",
            ),
        ),
    )

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return super().forward(x, training=self.training, generator=generator)
