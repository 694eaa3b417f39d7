"""DDPM-IP: input perturbation against exposure bias in diffusion training (Ning et al., ICML 2023).

The noisy training input is built from a perturbed noise while the regression target
stays the unperturbed one:

    x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·(ε + γ·ξ),   ε, ξ ~ N(0, I);   target: ε

Official code: forever208/DDPM-IP, ``guided_diffusion/gaussian_diffusion.py``,
``training_losses``: ``new_noise = noise + self.input_pertub * th.randn_like(noise)``,
``x_t = self.q_sample(x_start, t, noise=new_noise)``, and the MSE target stays
``noise`` (``ModelMeanType.EPSILON``). γ = 0.1 is the paper's recommended value (the
code's ``input_pertub`` default is 0.0, i.e. off; its README trains with 0.1). Only
the training input changes: sampling is untouched, so it costs one extra
``randn_like`` per step.
"""

from __future__ import annotations

import torch

from reglab.core import Claim, FunctionModule, Paper, RegularizerInputError, register
from reglab.ops import check_tensor, hyperparameters, non_negative

__all__ = ["ddpm_ip", "DDPMInputPerturbation"]

PAPER = Paper(
    "Input Perturbation Reduces Exposure Bias in Diffusion Models",
    "Ning, M., Sangineto, E., Porrello, A., Calderara, S. and Cucchiara, R.", 2023, arxiv="2301.11706",
    venue="ICML", code="https://github.com/forever208/DDPM-IP")

_WHO = "DDPMInputPerturbation"


@hyperparameters(_WHO, gamma=non_negative)
def ddpm_ip(
    x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor | float, gamma: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The DDPM-IP training input ``√ᾱ·x0 + √(1 − ᾱ)·(noise + γ·ξ)``, ξ ~ N(0, I); regress ``noise`` on it.

    ``alpha_bar`` is ᾱ_t, a float or one value per sample (shape (B,), broadcast over the rest).
    """
    check_tensor(_WHO, x0, arg="x0")
    check_tensor(_WHO, noise, arg="noise")
    if noise.shape != x0.shape:
        raise RegularizerInputError(f"{_WHO} expects noise of the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
    a = torch.as_tensor(alpha_bar, dtype=x0.dtype, device=x0.device)
    if a.ndim == 1 and x0.ndim >= 1 and a.shape[0] == x0.shape[0]:
        a = a.reshape((-1,) + (1,) * (x0.ndim - 1))
    elif a.ndim != 0:
        raise RegularizerInputError(
            f"{_WHO} expects alpha_bar as a number or one value per sample (shape ({x0.shape[0]},)), "
            f"got shape {tuple(a.shape)}")
    if not bool(((a >= 0) & (a <= 1)).all()):
        raise RegularizerInputError(f"{_WHO} expects alpha_bar (ᾱ_t) in [0, 1]")
    perturbed = noise
    if gamma > 0:
        perturbed = noise + gamma * torch.randn(noise.shape, device=noise.device, dtype=noise.dtype, generator=generator)
    return a.sqrt() * x0 + (1 - a).sqrt() * perturbed


@register
class DDPMInputPerturbation(FunctionModule):
    """DDPM-IP: build the diffusion training input from ε + γξ, keep ε as the target (Ning et al. 2023).

    ``x_t = ip(x0, eps, alpha_bar[t])`` replaces ``q_sample(x0, t, eps)`` in the training loss;
    the loss stays ``‖ε_θ(x_t, t) − ε‖²``. γ = 0.1 (the paper's value).
    """

    name = "ddpm_ip"
    kind = "stochastic"
    form = "transform"
    paper = PAPER
    formula = "x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·(ε + γξ),  target ε"
    function = ddpm_ip
    call_args = ("generator",)
    claims = (
        Claim(
            "Input perturbation lowers the FID of a DDPM at equal training and sampling steps (exposure bias)",
            task="generation", metric="fid", direction="lower",
            testable=False,
            untestable_reason="the lab has no generative (diffusion) task; a 2-D toy DDPM with an MMD metric would "
            "need a new task with a sampler, and the paper's effect (exposure bias over hundreds of sampling "
            "steps on image data) is not expected to show at a CPU scale a 40 CPU-s budget allows",
            source="Ning et al. 2023, Tables 1-3 (CIFAR-10, ImageNet 32, LSUN, CelebA, FFHQ)",
        ),
    )
