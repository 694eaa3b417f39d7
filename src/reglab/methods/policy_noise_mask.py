"""Policy gradient-driven noise mask (Yavuz & Yang, 2024): a learned, image-conditional multiplicative noise mask.

A policy network maps each image to Beta parameters for a grid × grid mask;
m ~ Beta(e^α, e^β) per cell, upsampled to the image (nearest) and Gaussian
blurred, multiplies the image; classifier and policy are trained on the single
objective mean_b[log Σ_k p(m_bk)] · CE. Pinned from the official code
(ogrenenmakine/Policy-Gradient-Driven-Noise-Mask, ``_policy_gradient/``:
``train_one_epoch.py`` lines 19-32, ``create_model.py`` ``MaskGenerator.forward``
lines 28-36, ``evaluate.py`` lines 17-23, ``train.py`` (the base initialization),
``get_args_parser.py`` (``--grid 64 --kernel 13 --sigma 6``)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reglab.core import Claim, Configurable, Paper, RegularizerInputError, register
from reglab.ops import check_int, check_positive, check_probability, check_tensor

PAPER = Paper(
    "Policy Gradient-Driven Noise Mask", "Yavuz, Yang", 2024, arxiv="2406.14568",
    code="https://github.com/ogrenenmakine/Policy-Gradient-Driven-Noise-Mask")

_WHO = "PolicyNoiseMask"


def noise_mask_policy_loss(log_prob: torch.Tensor, task_loss: torch.Tensor) -> torch.Tensor:
    """The official objective: ``mean_b[log Σ_k exp(log p_bk)] · ℓ``.

    ``log_prob`` (batch, cells): the log-density of each sampled mask cell
    under its Beta; ``task_loss``: the classifier's loss on the masked images,
    a scalar (the official ``CrossEntropyLoss()`` mean) or one value per
    sample (then the product is taken per sample before the mean). Neither
    factor is detached: the policy gets ``ℓ·∇ log-sum``, the classifier
    ``log-sum·∇ℓ``. ``torch.logsumexp`` computes the official
    ``log(sum(exp(logp), 1))`` without overflow.
    """
    check_tensor(_WHO, log_prob, arg="log_prob", ndim=2)
    check_tensor(_WHO, task_loss, arg="task_loss", ndim=(0, 1))
    if task_loss.ndim == 1 and task_loss.shape[0] != log_prob.shape[0]:
        raise RegularizerInputError(
            f"{_WHO} expects task_loss to be a scalar or one value per sample ({log_prob.shape[0]}), "
            f"got shape {tuple(task_loss.shape)}")
    return torch.mean(torch.logsumexp(log_prob, dim=1) * task_loss)


def _gaussian_blur(x: torch.Tensor, kernel: int, sigma: float) -> torch.Tensor:
    """torchvision's ``gaussian_blur`` (square kernel, reflect padding) on (B, 1, H, W)."""
    half = (kernel - 1) * 0.5
    t = torch.linspace(-half, half, kernel, dtype=x.dtype, device=x.device)
    k1 = torch.exp(-0.5 * (t / sigma) ** 2)
    k1 = k1 / k1.sum()
    k2 = torch.outer(k1, k1)[None, None]
    pad = kernel // 2
    return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), k2)


@register
class PolicyNoiseMask(Configurable, nn.Module):
    """Policy gradient-driven noise mask: a learned multiplicative noise mask per image, trained by REINFORCE.

    Yavuz & Yang (2024) pretrain a classifier on images multiplied by a noise
    mask that a light policy network samples per image. The policy (yours:
    the official one is a timm ``resnet10t`` trunk with two 3-layer MLP heads)
    outputs raw ``alpha, beta`` of shape (batch, grid²). This module, in
    training (``MaskGenerator.forward`` and ``train_one_epoch``):

    * mixes them with running bases: ``α = 0.9·α_base + 0.1·alpha`` (same
      for β), then updates ``α_base ← 0.99·α_base + 0.01·mean_b(alpha)``
      (detached; buffers initialized ``U[0, 1)`` as in ``train.py``);
    * samples ``m ~ Beta(e^α, e^β)`` per cell (no reparametrization),
      reshapes to (batch, 1, grid, grid), upsamples to the image size
      (nearest) and blurs it (Gaussian, ``kernel`` 13, σ = 6);
    * returns ``x · mask`` and keeps ``log p(m)`` for ``loss``.

    ``pnm.loss(task_loss)`` is the official objective
    ``mean_b[log Σ_k p(m_bk)] · ℓ`` (``noise_mask_policy_loss``); it is
    the whole loss of the official step (no separate cross-entropy term), for
    the classifier and the policy alike (the official policy optimizer uses
    lr/10). In eval, as the official ``evaluate.py``, one mask from the bases
    ``Beta(e^α_base, e^β_base)`` multiplies every image (``alpha, beta`` are
    not needed). The paper then fine-tunes the "heated" classifier without
    the mask; drop this module for that stage.

    Defaults ``grid = 64, kernel = 13, sigma = 6`` are the official
    ``get_args_parser.py`` defaults and README command. The bases are
    per-process buffers (state_dict), updated from the local batch: under
    DDP each rank keeps its own, as in the official code.
    """

    name = "policy_noise_mask"
    kind = "stochastic"
    form = "module"
    paper = PAPER
    formula = "m ~ Beta(e^α, e^β), x ← x·blur(up(m));  L = mean_b[log Σ_k p(m_bk)] · CE"
    claims = (
        Claim(
            "Pretraining with the policy-driven noise mask, then fine-tuning, improves accuracy over conventional "
            "training",
            testable=False,
            untestable_reason="the claim is about a two-stage pipeline (90 epochs of masked pretraining, then "
            "fine-tuning) on heterogeneous multi-modal RadImageNet images at 224 px with a 64×64 mask grid; no "
            "lab task has multi-modal images or a pretrain-then-fine-tune protocol, and on the lab's 8×8 digits "
            "a 13-pixel blur makes the mask nearly constant per image",
            source="Yavuz & Yang 2024, Tables 1-2 (baseline vs noise-mask pretrained models after fine-tuning)",
        ),
    )

    def __init__(self, grid: int = 64, kernel: int = 13, sigma: float = 6.0, decay: float = 0.9,
                 momentum: float = 0.99):
        super().__init__()
        self.grid = check_int(_WHO, "grid", grid, 1)
        self.kernel = check_int(_WHO, "kernel", kernel, 1)
        if self.kernel % 2 == 0:
            raise RegularizerInputError(f"{_WHO} expects kernel to be an odd integer, got {kernel!r}")
        self.sigma = check_positive(_WHO, "sigma", sigma)
        self.decay = check_probability(_WHO, "decay", decay)
        self.momentum = check_probability(_WHO, "momentum", momentum)
        self.register_buffer("base_alpha", torch.rand(1, self.grid * self.grid))
        self.register_buffer("base_beta", torch.rand(1, self.grid * self.grid))
        self.log_prob: torch.Tensor | None = None
        self.mask: torch.Tensor | None = None

    def _check_head(self, name: str, t: object, batch: int) -> torch.Tensor:
        t = check_tensor(_WHO, t, arg=name, ndim=2)
        if t.shape != (batch, self.grid * self.grid):
            raise RegularizerInputError(
                f"{_WHO} expects {name} of shape (batch, grid²) = ({batch}, {self.grid * self.grid}), "
                f"got {tuple(t.shape)}")
        return t

    def forward(self, x: torch.Tensor, alpha: torch.Tensor | None = None,
                beta: torch.Tensor | None = None) -> torch.Tensor:
        x = check_tensor(_WHO, x, arg="images", ndim=4)
        h, w = x.shape[-2:]
        if self.kernel // 2 >= min(h, w):
            raise RegularizerInputError(
                f"{_WHO} expects images larger than kernel // 2 = {self.kernel // 2} pixels (reflect padding), "
                f"got {h}×{w}")
        if self.training:
            if alpha is None or beta is None:
                raise RegularizerInputError(f"{_WHO} in training needs the policy's alpha and beta for the batch")
            alpha = self._check_head("alpha", alpha, x.shape[0])
            beta = self._check_head("beta", beta, x.shape[0])
            a = self.decay * self.base_alpha + (1.0 - self.decay) * alpha
            b = self.decay * self.base_beta + (1.0 - self.decay) * beta
            with torch.no_grad():
                m = self.momentum
                self.base_alpha.mul_(m).add_((1.0 - m) * alpha.detach().mean(0, keepdim=True).to(self.base_alpha))
                self.base_beta.mul_(m).add_((1.0 - m) * beta.detach().mean(0, keepdim=True).to(self.base_beta))
        else:
            a, b = self.base_alpha, self.base_beta
        dist = torch.distributions.Beta(torch.exp(a), torch.exp(b))
        mask = dist.sample()
        self.mask = mask
        self.log_prob = dist.log_prob(mask) if self.training else None
        grid_mask = mask.reshape(-1, 1, self.grid, self.grid).to(x.dtype)
        if (self.grid, self.grid) != (h, w):
            grid_mask = F.interpolate(grid_mask, (h, w))
        return x * _gaussian_blur(grid_mask, self.kernel, self.sigma)

    def loss(self, task_loss: torch.Tensor) -> torch.Tensor:
        """The official objective on the last training ``forward``'s masks (see the class docstring)."""
        if self.log_prob is None:
            raise RegularizerInputError(f"{_WHO}.loss needs a forward call in training mode first (no masks sampled)")
        return noise_mask_policy_loss(self.log_prob, task_loss)

    def extra_repr(self) -> str:
        return (f"grid={self.grid}, kernel={self.kernel}, sigma={self.sigma}, decay={self.decay}, "
                f"momentum={self.momentum}")

