"""ELLE: efficient local-linearity regularization (Abad Rocamora, Liu, Chrysos, Olmos & Cevher, ICLR 2024:
"Efficient local linearity regularization to overcome catastrophic overfitting").

For each input x draw x_a, x_b uniformly in the ℓ∞ ball B_ε(x) and α ∼ U[0, 1], set
x_c = (1 − α)·x_a + α·x_b, and penalize how far the loss is from linear along the segment:

    R = mean_i (ℓ(x_c) − (1 − α)·ℓ(x_a) − α·ℓ(x_b))²

added as λ·R to the (single-step adversarial) training loss; three extra forward passes, no
double backprop. Pinned from the official code (LIONS-EPFL/ELLE, ``README.md`` snippet and
``core/utils/train.py``, ``Trainer.loss``, ``reg == 'ELLE'``: x_ab = x.repeat(2) + ε·(2·rand − 1),
α = rand(bs), one forward of the 3·bs inputs, per-sample cross-entropy, ``MSELoss`` of
ℓ_c against (1 − α)ℓ_a + αℓ_b; no clamping to the data range). λ (``--lin_reg``) is 1000 for
ε ≤ 8/255, 5000 for 10-20/255 and 10000 beyond (``scripts/run_elle_cifar10.sh``): default
λ = 1000, ε = 8/255. ELLE-A (λ raised when R spikes) is not implemented.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from reglab.core import Claim, Paper, Regularizer, RegularizerInputError, register
from reglab.ops import check_positive, check_tensor

__all__ = ["elle", "ELLE"]

PAPER = Paper(
    "Efficient local linearity regularization to overcome catastrophic overfitting",
    "Abad Rocamora, Liu, Chrysos, Olmos, Cevher", 2024, arxiv="2401.11618", venue="ICLR",
    code="https://github.com/LIONS-EPFL/ELLE")

WHO = "ELLE"


def _model_dtype(model: object, dtype: torch.dtype) -> torch.dtype:
    """The dtype a module computes in (its first floating parameter's), so an input of another precision
    (a half-precision batch, a float32 batch for a float64 model) is perturbed in the model's; else ``dtype``."""
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            if p.is_floating_point():
                return p.dtype
    return dtype


def elle(
    x: torch.Tensor, y: torch.Tensor, model: Callable[[torch.Tensor], torch.Tensor], eps: float = 8 / 255
) -> torch.Tensor:
    """ELLE's local-linearity error ``mean_i (ℓ(x_c) − (1 − α)ℓ(x_a) − αℓ(x_b))²`` with per-sample
    cross-entropy ℓ of ``model`` at labels ``y``; x_a, x_b ∼ U(B_ε(x)) (ℓ∞), α ∼ U[0, 1] per sample,
    drawn from torch's global generator in the official order (the 2·bs perturbations, then α)."""
    check_tensor(WHO, x, arg="input", min_ndim=1)
    if not isinstance(y, torch.Tensor) or y.shape[:1] != x.shape[:1] or y.is_floating_point():
        raise RegularizerInputError(
            f"{WHO} expects integer labels y with one label per input ({x.shape[0]}), got "
            f"{type(y).__name__ if not isinstance(y, torch.Tensor) else (y.dtype, tuple(y.shape))}"
        )
    check_positive(WHO, "eps", eps)
    x = x.to(_model_dtype(model, x.dtype))
    bs = x.shape[0]
    x_ab = x.repeat(2, *([1] * (x.ndim - 1)))
    x_ab = x_ab + eps * (2 * torch.rand(x_ab.shape, device=x.device, dtype=x.dtype) - 1)
    alpha = torch.rand((bs,) + (1,) * (x.ndim - 1), device=x.device, dtype=x.dtype)
    x_c = (1 - alpha) * x_ab[:bs] + alpha * x_ab[bs:]
    alpha = alpha.reshape(bs)
    logits = model(torch.cat((x_ab, x_c), dim=0))
    check_tensor(WHO, logits, arg="model output (logits)", ndim=2)
    losses = F.cross_entropy(logits, y.repeat(3), reduction="none")
    linear = (1 - alpha) * losses[:bs] + alpha * losses[bs : 2 * bs]
    return (losses[2 * bs :] - linear).pow(2).mean()


@register
class ELLE(Regularizer):
    """ELLE: penalize the loss's deviation from linearity between random points of the ε-ball.

    ``reg(x, y, model)`` returns ``λ·mean_i (ℓ(x_c) − (1 − α)ℓ(x_a) − αℓ(x_b))²`` (x_a, x_b uniform
    in the ℓ∞ ball of radius ε around x, x_c on their segment at a uniform α; ℓ the per-sample
    cross-entropy of ``model``). Add it to the loss of single-step adversarial training (FGSM or
    N-FGSM) to prevent catastrophic overfitting without double backprop: it costs one extra
    forward-backward over 3× the batch. Defaults from the official code (LIONS-EPFL/ELLE,
    ``scripts/run_elle_cifar10.sh``): λ = 1000 with ε = 8/255 (use 5000 for ε in 10-20/255 and
    10000 above, on images in [0, 1]); give ε the attack's own radius. No clamping to the data range
    (as the official ``train.py``). The adaptive ELLE-A schedule is not part of this class.
    """

    name = "elle"
    kind = "procedure"
    form = "penalty"
    paper = PAPER
    formula = "R = mean (ℓ(x_c) − (1−α)ℓ(x_a) − αℓ(x_b))²,  x_a, x_b ∼ U(B_ε(x)),  x_c = (1−α)x_a + αx_b"
    default_weight = 1000.0
    claims = (
        Claim(
            "ELLE prevents catastrophic overfitting of single-step (FGSM) adversarial training at large ε",
            testable=False,
            untestable_reason="the lab has no adversarial-training task: catastrophic overfitting shows only in "
            "FGSM training of a CNN at a large ε for tens of epochs, judged by PGD accuracy; a new task with an "
            "attack and PGD evaluation per epoch would cost far above the lab's per-claim budget",
            source="Abad Rocamora et al. 2024, Fig. 1 and Table 1 (PGD accuracy of FGSM-AT + ELLE vs GradAlign)",
        ),
    )

    def __init__(self, weight: float = 1000.0, eps: float = 8 / 255):
        super().__init__(weight)
        self.eps = check_positive(WHO, "eps", eps)

    def penalty(self, x: torch.Tensor, y: torch.Tensor, model: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The local-linearity error (without λ); ``reg(x, y, model)`` multiplies by λ."""
        if not callable(model):
            raise RegularizerInputError(f"{WHO} expects a model (a callable returning logits), got {type(model).__name__}")
        return elle(x, y, model, self.eps)
