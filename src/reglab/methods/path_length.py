"""Step-wise variation (path-length) regularization: keep ‖J_xᵀ y‖ constant (Smooth Diffusion; Guo et al., CVPR 2024).

For an output o = f(x) (B, ...) and its input x, with y ~ N(0, I)/√D·s per
sample (D = the number of output entries per sample, s an optional
per-sample scale: Smooth Diffusion's √(1 − ᾱ_t)),

    v_b = ‖∂(Σ o·y)/∂x_b‖₂,   a_t = a_{t−1} + β·(mean_b v_b − a_{t−1}),   R = mean_b (v_b − a_t)²,

a_0 = 0, β = 0.01; a_t carries the gradient of the current batch's mean, the
stored a_t is detached. The ratio between a small input change and the
output change is pushed to one constant: a smooth, evenly scaled map. This
is StyleGAN2's path-length regularizer (Karras et al. 2020) as Smooth
Diffusion applies it to the denoiser's predicted x₀ as a function of the
sampled noise ε. Pinned from the official code, SHI-Labs/Smooth-Diffusion @
c23b638: ``train_smooth_diffusion.py`` ``step_regularize`` (L306–321: the
noise scaled by 1/√(C·H·W) and √(1 − ᾱ_t), the norm summed over every
non-batch dimension, decay 0.01, a_0 = 0 at L663) and the total loss
``loss + lambda_reg·reg_loss`` (L742; ``--lambda_reg`` default 1.0, L221).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch

from reglab.core import Claim, Paper, Regularizer, RegularizerInputError, register
from reglab.core.distributed import gather as _gather
from reglab.ops import check_tensor, hyperparameters, probability

__all__ = ["path_length", "PathLength", "PathLengthStep"]

PAPER = Paper(
    "Smooth Diffusion: Crafting Smooth Latent Spaces in Diffusion Models",
    "Guo, Xu, Pu, Ni, Wang, Vasu, Song, Huang, Shi", 2024, arxiv="2312.04410", venue="CVPR",
    code="https://github.com/SHI-Labs/Smooth-Diffusion")

WHO = "PathLength"


class PathLengthStep(NamedTuple):
    penalty: torch.Tensor
    lengths: torch.Tensor  # v_b of this (global) batch
    mean: torch.Tensor  # a_t, detached


@hyperparameters(WHO, decay=probability)
def path_length(
    output: torch.Tensor, inputs: torch.Tensor, mean: torch.Tensor | float | None = None,
    scale: torch.Tensor | float | None = None, generator: torch.Generator | None = None, *,
    decay: float = 0.01, gather: bool = True,
) -> PathLengthStep:
    """One step of the step-wise variation penalty ``mean_b (v_b − a_t)²`` (``step_regularize``).

    ``output`` (B, ...) computed from ``inputs`` (B, ...), which requires
    grad; ``mean`` = a_{t−1} (None: 0, the start of training); ``scale`` a
    scalar or (B,) factor on the random direction (√(1 − ᾱ_t) in Smooth
    Diffusion; None: 1). One double-backprop VJP. ``gather=True`` takes the
    batch mean and the penalty over the global batch under DDP (the
    lengths are all-gathered with gradient), so a_t stays identical on all
    ranks.
    """
    check_tensor(WHO, output, arg="output", min_ndim=2)
    check_tensor(WHO, inputs, arg="inputs", min_ndim=1)
    b = output.shape[0]
    if inputs.shape[0] != b:
        raise RegularizerInputError(
            f"{WHO} expects output and inputs with the same batch size, got {tuple(output.shape)} and "
            f"{tuple(inputs.shape)}")
    if not inputs.requires_grad or not output.requires_grad:
        raise RegularizerInputError(
            f"{WHO} needs inputs that require grad and an output computed from them: call "
            f"inputs.requires_grad_(True) before output = f(inputs)")
    y = torch.randn(output.shape, dtype=torch.float32, device=output.device, generator=generator).to(output.dtype)
    y = y / math.sqrt(math.prod(output.shape[1:]))
    if scale is not None:
        s = torch.as_tensor(scale, dtype=output.dtype, device=output.device)
        if s.ndim not in (0, 1) or (s.ndim == 1 and s.shape[0] != b):
            raise RegularizerInputError(f"{WHO} expects scale to be a scalar or one value per sample ({b}), got shape {tuple(s.shape)}")
        y = y * s.reshape(-1, *([1] * (output.ndim - 1)))
    (grad,) = torch.autograd.grad((output * y).sum(), inputs, create_graph=True, allow_unused=True)
    if grad is None:
        raise RegularizerInputError(f"{WHO}: the output was not computed from these inputs")
    lengths = grad.pow(2).flatten(1).sum(dim=1).sqrt()
    v = _gather(lengths[:, None], enabled=gather)[:, 0]
    prev = torch.as_tensor(0.0 if mean is None else mean, dtype=v.dtype, device=v.device).detach()
    a = prev + decay * (v.mean() - prev)
    penalty = (v - a).pow(2).mean()
    if not bool(torch.isfinite(penalty.detach())):
        raise RegularizerInputError(f"{WHO} produced a non-finite penalty ({float(penalty)}) from finite inputs")
    return PathLengthStep(penalty, v.detach(), a.detach())


@register
class PathLength(Regularizer):
    """Step-wise variation / path-length regularization: R = mean_b (‖J_bᵀ y_b‖ − a)², a an EMA of the mean length.

    ``reg(output, inputs)`` with ``inputs.requires_grad_(True)`` set before
    ``output = f(inputs)``; optional ``scale=`` (Smooth Diffusion's
    √(1 − ᾱ_t) per sample) and ``generator=``. The running mean a (buffer
    ``mean``, in ``state_dict``) starts at 0 and moves by β = 0.01 of the
    gap each training call, as in SHI-Labs/Smooth-Diffusion
    ``step_regularize`` (StyleGAN2's ``pl_decay``); in eval mode it is not
    updated. Default weight 1 (``--lambda_reg``). Under DDP (``gather=True``)
    the lengths are all-gathered, so a is the global batch's and identical
    on every rank.
    """

    name = "path_length"
    kind = "procedure"
    form = "penalty"
    num_inputs = 2
    paper = PAPER
    formula = "a_t = a_{t−1} + β(mean_b v_b − a_{t−1}), v_b = ‖∂(Σ o·y)/∂x_b‖, y ~ N(0, I)/√D;  R = mean_b (v_b − a_t)²"
    function = path_length
    call_args = ("scale", "generator")
    default_weight = 1.0
    claims = (
        Claim(
            "Step-wise variation regularization makes the latent space smooth: even interpolations, better "
            "inversion and editing, with generation quality kept",
            testable=False,
            untestable_reason="needs a generator or denoiser re-differentiated with respect to its latent input "
            "and an interpolation-smoothness metric (ISTD) on decoded images; the lab's autoencoder task passes "
            "the regularizer the latent code only, never the decoder's input-output pair",
        ),
    )

    def __init__(self, weight: Any = 1.0, decay: float = 0.01, gather: bool = True):
        super().__init__(weight)
        self.decay = probability(WHO, "decay", decay)
        self.gather = bool(gather)
        self.register_buffer("mean", torch.zeros(()))

    def penalty(self, output: torch.Tensor, inputs: torch.Tensor, scale: Any = None,  # type: ignore[override]
                generator: torch.Generator | None = None) -> torch.Tensor:
        step = path_length(output, inputs, self.mean, scale, generator, decay=self.decay, gather=self.gather)
        if self.training:
            with torch.no_grad():
                self.mean.copy_(step.mean.to(self.mean.dtype))
        return step.penalty
