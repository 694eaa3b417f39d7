"""Additive Gaussian noise in training (Bishop, Neural Computation 1995).

x ← x + σ·ε, ε ~ N(0, I), in training only. Training with small input noise
is equivalent, to first order, to a Tikhonov (gradient-norm) penalty.
σ = 0.1 is a default for inputs scaled to [0, 1]; it is not a paper constant.
"""

from __future__ import annotations

import torch

from reglab.core import Baseline, Claim, FunctionModule, Paper, register
from reglab.ops import check_tensor, hyperparameters, non_negative

PAPER = Paper(
    "Training with Noise is Equivalent to Tikhonov Regularization", "Bishop", 1995,
    doi="10.1162/neco.1995.7.1.108", venue="Neural Computation")


@hyperparameters("GaussianNoise", sigma=non_negative)
def gaussian_noise(
    x: torch.Tensor, sigma: float = 0.1, training: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``x + σ·N(0, I)`` when ``training``, else ``x``."""
    check_tensor("GaussianNoise", x, arg="input")
    if not training or sigma == 0.0:
        return x
    noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
    return x + sigma * noise


@register
class GaussianNoise(FunctionModule):
    """Additive Gaussian noise ``x + N(0, σ²)`` on inputs or activations, in training only.

    Training with small input noise is equivalent, to first order, to a
    Tikhonov (gradient-norm) penalty (Bishop, 1995). Insert it as a layer
    (``nn.Sequential(GaussianNoise(0.1), ...)``); identity in ``.eval()``.
    σ = 0.1 is a default for inputs scaled to [0, 1]; it is not a paper
    constant.
    """

    name = "gaussian_noise"
    claims = (
        Claim(
            "Training with input noise improves generalization, as a Tikhonov (weight-type) regularizer does",
            task="clean_classification", metric="test_accuracy", direction="higher",
            min_effect=0.005, min_effect_reason="half a point of test accuracy",
            baselines=(
                Baseline("no noise"),
                Baseline("L2 5e-4", {"name": "l2", "weight": 5e-4}, why="the explicit regularizer noise approximates"),
            ),
            datasets=("digits", "digits_half"),
            settings="σ = 0.1 on 8×8 digits scaled to [0, 1] (not a paper constant: Bishop's result is analytic); an "
            "MLP, Adam, 60 epochs, epoch selected on validation",
            source="Bishop 1995, Sec. 1 and 5 (noise as regularization)",
        ),
    )
    kind = "stochastic"
    form = "transform"
    paper = PAPER
    formula = "x ← x + σ·ε,  ε ~ N(0, I)  (training only)"
    function = gaussian_noise
    call_args = ("training", "generator")

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return super().forward(x, training=self.training, generator=generator)
