"""Cutout (DeVries & Taylor, 2017): zero out a random size×size square of every image.

Per image, the square's centre is drawn uniformly over all pixels, so the
square may be partly outside the image (it is clipped at the border); the
masked pixels are set to 0 (the mean, when inputs are normalized).
``n_holes`` squares per image (paper: 1, holes may overlap). Paper sizes: 16
(CIFAR-10), 8 (CIFAR-100), 20 (SVHN) pixels, about half the image side; the
default 16 is CIFAR-10's (uoguelph-mlrg/Cutout).
"""

from __future__ import annotations

import torch

from reglab.core import Baseline, Claim, FunctionModule, Paper, register
from reglab.ops import check_tensor, hyperparameters, integer

PAPER = Paper(
    "Improved Regularization of Convolutional Neural Networks with Cutout", "DeVries, Taylor", 2017,
    arxiv="1708.04552", code="https://github.com/uoguelph-mlrg/Cutout")


def cutout_mask(
    n: int, h: int, w: int, size: int, n_holes: int, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(n, h, w) float mask: 0 inside the holes, 1 elsewhere."""
    cy = torch.randint(0, h, (n, n_holes, 1, 1), device=device, generator=generator)
    cx = torch.randint(0, w, (n, n_holes, 1, 1), device=device, generator=generator)
    half = size // 2
    # The square is [c − s//2, c − s//2 + s) in each axis: exactly s pixels before clipping.
    ys = torch.arange(h, device=device).view(1, 1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, 1, w)
    inside = (ys >= cy - half) & (ys < cy - half + size) & (xs >= cx - half) & (xs < cx - half + size)
    return (~inside.any(dim=1)).float()


@hyperparameters("Cutout", size=integer(1), n_holes=integer(1))
def cutout(
    x: torch.Tensor,
    size: int = 16,
    n_holes: int = 1,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Cutout of (N, C, H, W) or (N, H, W) images: every sample gets its own squares,
    drawn on the input's device. Identity when ``training`` is False."""
    check_tensor("Cutout", x, arg="images", ndim=(3, 4))
    if not training:
        return x
    h, w = x.shape[-2:]
    m = cutout_mask(x.shape[0], h, w, size, n_holes, x.device, generator).to(x.dtype)
    return x * (m[:, None] if x.ndim == 4 else m)


@register
class Cutout(FunctionModule):
    """Cutout: zero out a random ``size``×``size`` square of every image.

    DeVries & Taylor (2017): per image, the square's centre is drawn
    uniformly over all pixels, so the square may be partly outside the image
    (it is clipped at the border); the masked pixels are set to 0 (the mean,
    when inputs are normalized). ``n_holes`` squares per image (paper: 1,
    holes may overlap). Paper sizes: 16 (CIFAR-10), 8 (CIFAR-100), 20 (SVHN)
    pixels, about half the image side; the default 16 is CIFAR-10's. Input
    (N, C, H, W) or (N, H, W); every sample gets its own square, drawn on
    the input's device. Identity in ``.eval()``.
    """

    name = "cutout"
    kind = "stochastic"
    form = "transform"
    paper = PAPER
    formula = "x[i, :, cy−s/2 : cy+s/2, cx−s/2 : cx+s/2] = 0,  (cy, cx) ~ U(pixels)"
    function = cutout
    call_args = ("training", "generator")
    claims = (
        Claim(
            "Cutout improves test accuracy of a small CNN trained on little data",
            task="small_data_cnn", metric="test_accuracy", direction="higher",
            arm={"name": "cutout", "size": 4, "n_holes": 1},
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(
                Baseline("no augmentation"),
                Baseline(
                    "random ±1-pixel shifts", task_args={"augment": "shift"},
                    why="the augmentation a practitioner reaches for first",
                ),
            ),
            datasets=("digits", "digits_half"),
            settings="size 4 on 8×8 digits is half the side, the paper's ratio (16 px on 32-px CIFAR-10); "
            "MNIST-1D is left out: Cutout is defined on images",
            source="DeVries & Taylor 2017, Tables 1-2",
        ),
    )

    def mask(self, n: int, h: int, w: int, device: torch.device, generator: torch.Generator | None = None):
        """(n, h, w) float mask: 0 inside the holes, 1 elsewhere."""
        return cutout_mask(n, h, w, self.size, self.n_holes, device, generator)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return super().forward(x, training=self.training, generator=generator)
