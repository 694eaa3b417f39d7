"""Stochastic regularizers (kind ``"stochastic"``): noise injected in training only.

Forms: ``cutout``, ``gaussian_noise`` and ``drop_path`` /
``scheduled_drop_path`` are **transforms** (modules you call on a tensor;
identity in ``.eval()``); ``multi_sample_dropout`` is a **module** wrapping
the classifier head. Randomness comes from the global torch RNG (or the
``generator`` argument where given), drawn on the input's device, one
draw per sample, no Python loops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from reglab._validation import RegularizerInputError, check_positive, check_probability, check_tensor
from reglab.config import Configurable
from reglab.paper import Claim, Paper
from reglab.registry import register
from reglab.schedules import LinearRamp

__all__ = ["Cutout", "MultiSampleDropout", "DropPath", "ScheduledDropPath", "GaussianNoise"]


def _check_int(who: str, name: str, value: int, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise RegularizerInputError(f"{who} expects {name} to be an integer >= {minimum}, got {value!r}")
    return value


@register
class Cutout(Configurable, nn.Module):
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
    paper = Paper(
        title="Improved Regularization of Convolutional Neural Networks with Cutout",
        authors="DeVries, Taylor",
        year=2017,
        arxiv="1708.04552",
        code="https://github.com/uoguelph-mlrg/Cutout",
    )
    formula = "x[i, :, cy−s/2 : cy+s/2, cx−s/2 : cx+s/2] = 0,  (cy, cx) ~ U(pixels)"
    claims = (
        Claim(
            statement="Cutout improves test accuracy of a small CNN trained on little data",
            task="small_data_cnn",
            metric="test_accuracy",
            direction="higher",
            arm={"name": "cutout", "size": 4, "n_holes": 1},
            source="DeVries & Taylor 2017, Tables 1-2",
        ),
    )

    def __init__(self, size: int = 16, n_holes: int = 1):
        super().__init__()
        self.size = _check_int("Cutout", "size", size, 1)
        self.n_holes = _check_int("Cutout", "n_holes", n_holes, 1)

    def mask(self, n: int, h: int, w: int, device: torch.device, generator: torch.Generator | None = None):
        """(n, h, w) float mask: 0 inside the holes, 1 elsewhere."""
        cy = torch.randint(0, h, (n, self.n_holes, 1, 1), device=device, generator=generator)
        cx = torch.randint(0, w, (n, self.n_holes, 1, 1), device=device, generator=generator)
        half = self.size // 2
        # The square is [c − s//2, c − s//2 + s) in each axis: exactly s pixels before clipping.
        ys = torch.arange(h, device=device).view(1, 1, h, 1)
        xs = torch.arange(w, device=device).view(1, 1, 1, w)
        inside = (ys >= cy - half) & (ys < cy - half + self.size) & (xs >= cx - half) & (xs < cx - half + self.size)
        return (~inside.any(dim=1)).float()

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        check_tensor("Cutout", x, arg="images", ndim=(3, 4))
        if not self.training:
            return x
        h, w = x.shape[-2:]
        m = self.mask(x.shape[0], h, w, x.device, generator).to(x.dtype)
        return x * (m[:, None] if x.ndim == 4 else m)


@register
class MultiSampleDropout(Configurable, nn.Module):
    """Multi-sample dropout: M dropout masks on the head's input, shared head weights, averaged loss.

    Inoue (2019): the features ``z`` feeding the classifier head go through
    ``num_samples`` independent dropout masks; the same ``head`` is applied
    to each, and the loss is the mean of the M losses::

        L = (1/M)·Σ_m ℓ(head(dropout_m(z)), y)

    Use ``msd.loss(z, y)`` (default ``ℓ`` = cross-entropy) in training.
    ``msd(z)`` returns the M logits stacked as (M, batch, ...) in training
    and ``head(z)`` (one pass, no dropout) in eval. Paper defaults: M = 8,
    dropout rate 0.5 (Sec. 3, ImageNet/CIFAR). Only the head runs M times,
    so the extra cost is small.
    """

    name = "multi_sample_dropout"
    kind = "stochastic"
    form = "module"
    paper = Paper(
        title="Multi-Sample Dropout for Accelerated Training and Better Generalization",
        authors="Inoue",
        year=2019,
        arxiv="1905.09788",
    )
    formula = "L = (1/M) Σ_m ℓ(head(dropout_m(z)), y)"
    claims = (
        Claim(
            statement="Multi-sample dropout lowers the training loss faster than plain dropout",
            task="dropout_training",
            metric="mean_train_loss_first_half",
            direction="lower",
            baseline="plain dropout (M = 1)",
            baseline_arm={"name": "multi_sample_dropout", "num_samples": 1, "p": 0.5},
            source="Inoue 2019, Fig. 2-3",
        ),
    )
    _runtime_args = ("module",)

    def __init__(self, module: nn.Module, num_samples: int = 8, p: float = 0.5):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise RegularizerInputError(f"MultiSampleDropout expects the head as an nn.Module, got {module!r}")
        self.module = module
        self.num_samples = _check_int("MultiSampleDropout", "num_samples", num_samples, 1)
        self.p = check_probability("MultiSampleDropout", "p", p)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_tensor("MultiSampleDropout", z, arg="features", min_ndim=2)
        if not self.training:
            return self.module(z)
        # One batched head call on M stacked copies: same weights, independent masks.
        zs = F.dropout(z.unsqueeze(0).expand(self.num_samples, *z.shape), self.p, training=True)
        out = self.module(zs.reshape(self.num_samples * z.shape[0], *z.shape[1:]))
        return out.reshape(self.num_samples, z.shape[0], *out.shape[1:])

    def loss(
        self,
        z: torch.Tensor,
        target: torch.Tensor,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    ) -> torch.Tensor:
        """The mean of the M per-mask losses (eval: the loss of the single pass)."""
        out = self.forward(z)
        if not self.training:
            return loss_fn(out, target)
        return torch.stack([loss_fn(o, target) for o in out]).mean()


def drop_path(
    x: torch.Tensor, p: float, training: bool = True, scale_by_keep: bool = True, generator=None
) -> torch.Tensor:
    """Zero whole samples of a residual branch with probability ``p``.

    One Bernoulli(1 − p) draw per sample (dim 0), broadcast over the rest.
    With ``scale_by_keep`` the surviving samples are multiplied by 1/(1 − p)
    so the branch's expected output is unchanged.
    """
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = torch.empty(shape, device=x.device, dtype=x.dtype).bernoulli_(keep, generator=generator)
    if scale_by_keep and keep > 0:
        mask = mask / keep
    return x * mask


@register
class DropPath(Configurable, nn.Module):
    """Drop path (stochastic depth): drop a residual branch for a random subset of samples.

    Wrap the branch's output: ``x = x + dp(branch(x))``. In training each
    sample's branch output is zeroed with probability ``p`` (one draw per
    sample, not per element). ``scale_by_keep=True`` means: the samples
    whose branch survives have it multiplied by ``1/(1 − p)``, so its
    average over the random drops equals the undropped output and nothing
    needs to change at test time. With ``scale_by_keep=False`` the
    survivors pass unchanged (the original stochastic-depth formulation,
    which instead scales the branch by (1 − p) at test time; do that
    yourself). Identity in ``.eval()``. Default p = 0.1 (a common setting;
    Huang et al. 2016 use a linear-in-depth rule ending at 0.5).
    """

    name = "drop_path"
    kind = "stochastic"
    form = "transform"
    paper = Paper(
        title="Deep Networks with Stochastic Depth",
        authors="Huang, Sun, Liu, Sedra, Weinberger",
        year=2016,
        arxiv="1603.09382",
        venue="ECCV",
    )
    formula = "y_i = x_i · b_i / (1 − p),  b_i ~ Bernoulli(1 − p) per sample"

    def __init__(self, p: float = 0.1, scale_by_keep: bool = True):
        super().__init__()
        self.p = check_probability("DropPath", "p", p)
        self.scale_by_keep = bool(scale_by_keep)

    @property
    def rate(self) -> float:
        return self.p

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        check_tensor(type(self).__name__, x, arg="branch output", min_ndim=1)
        return drop_path(x, self.rate, self.training, self.scale_by_keep, generator)


@register
class ScheduledDropPath(DropPath):
    """ScheduledDropPath: drop path whose rate ramps linearly over training.

    NASNet (Zoph et al., 2018, Sec. 3): ``p_t = p_final · t / T`` for
    training step ``t`` of ``total_steps`` T, then ``p_final``. The rate is a
    :class:`reglab.schedules.LinearRamp` evaluated at a step counter kept in
    a buffer (in ``state_dict``, so a resumed run continues the ramp); call
    ``sdp.step()`` once per optimizer step. Per sample, survivors rescaled
    by ``1/(1 − p_t)`` when ``scale_by_keep`` (see :class:`DropPath`). The
    paper does not give one final rate for all models; 0.3 here is the
    catalog's digits setting, not a paper constant.
    """

    name = "scheduled_drop_path"
    paper = Paper(
        title="Learning Transferable Architectures for Scalable Image Recognition",
        authors="Zoph, Vasudevan, Shlens, Le",
        year=2018,
        arxiv="1707.07012",
        venue="CVPR",
    )
    formula = "p_t = p_final · min(t, T) / T;  y_i = x_i · b_i / (1 − p_t)"
    example_args: ClassVar[dict] = {"total_steps": 100}

    def __init__(self, total_steps: int, p_final: float = 0.3, scale_by_keep: bool = True):
        super().__init__(p=p_final, scale_by_keep=scale_by_keep)
        self.total_steps = _check_int("ScheduledDropPath", "total_steps", total_steps, 1)
        self.p_final = self.p
        self.schedule = LinearRamp(0.0, self.p_final, self.total_steps)
        self.register_buffer("step_count", torch.zeros((), dtype=torch.long))

    @property
    def rate(self) -> float:
        return self.schedule(int(self.step_count))

    def step(self) -> None:
        self.step_count.add_(1)


@register
class GaussianNoise(Configurable, nn.Module):
    """Additive Gaussian noise ``x + N(0, σ²)`` on inputs or activations, in training only.

    Training with small input noise is equivalent, to first order, to a
    Tikhonov (gradient-norm) penalty (Bishop, 1995). Insert it as a layer
    (``nn.Sequential(GaussianNoise(0.1), ...)``); identity in ``.eval()``.
    σ = 0.1 is a default for inputs scaled to [0, 1]; it is not a paper
    constant.
    """

    name = "gaussian_noise"
    kind = "stochastic"
    form = "transform"
    paper = Paper(
        title="Training with Noise is Equivalent to Tikhonov Regularization",
        authors="Bishop",
        year=1995,
        doi="10.1162/neco.1995.7.1.108",
        venue="Neural Computation",
    )
    formula = "x ← x + σ·ε,  ε ~ N(0, I)  (training only)"

    def __init__(self, sigma: float = 0.1):
        super().__init__()
        self.sigma = check_positive("GaussianNoise", "sigma", sigma, allow_zero=True)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        check_tensor("GaussianNoise", x, arg="input")
        if not self.training or self.sigma == 0.0:
            return x
        noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        return x + self.sigma * noise
