"""Classic weight penalties: L1 (lasso), L2 (ridge / weight decay) and the elastic net.

* L1 (Tibshirani, 1996): R(w) = Σ|w_i|; its proximal map (soft
  thresholding) gives exact zeros.
* L2: R(w) = ½‖w‖₂². The ½ makes the gradient ``w``, so ``L2(λ)`` matches
  ``torch.optim.SGD(weight_decay=λ)`` exactly, but only on the selected
  tensors (by default not biases, norm or embedding parameters).
* Elastic net (Zou & Hastie, 2005): R(w) = ρ‖w‖₁ + (1−ρ)·½‖w‖₂² in the
  glmnet / scikit-learn parameterization (``l1_ratio`` ρ, default 0.5 as in
  scikit-learn).

Each function takes one tensor or a list of tensors (the sum over them,
computed with one fused ``_foreach_norm``).

Closed-form gradients (``mode="grad"``, ``grad_``): ∇‖w‖₁ = sign(w)
(subgradient 0 at 0, as autograd), ∇½‖w‖² = w, and their ρ-mix for the
elastic net; each one ``_foreach_add_`` into the gradients. L2's gradient is
exactly 1·w, so it also offers ``L2.grad_coefficients``, which
``regs.add_grads`` sums with other such terms on a shared tensor (one pass).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import Baseline, Baselines, Claim, Paper, WeightRegularizer, register
from reglab.ops import (
    add_scaled_, as_tensors, checked_total, hyperparameters, norms_sum, soft_threshold, squared_norm, unit_interval,
)

PAPER = Paper(
    "Regularization and variable selection via the elastic net", "Zou, H. and Hastie, T.", 2005,
    doi="10.1111/j.1467-9868.2005.00503.x", venue="J. R. Stat. Soc. B")

Weights = torch.Tensor | Sequence[torch.Tensor]


def l1(w: Weights) -> torch.Tensor:
    """Lasso penalty ``‖w‖₁ = Σ|w_i|`` (Tibshirani, 1996), summed over tensors."""
    ws = as_tensors("l1", w)
    return checked_total("l1", norms_sum(ws, 1), ws)


def l2(w: Weights) -> torch.Tensor:
    """Ridge / weight-decay penalty ``½‖w‖₂²``, summed over tensors.

    The ½ makes the gradient ``w``, so ``L2(λ)`` matches SGD weight decay
    ``λ`` exactly (``torch.optim.SGD(weight_decay=λ)``).
    """
    ws = as_tensors("l2", w)
    return checked_total("l2", 0.5 * squared_norm(ws), ws)


@hyperparameters(l1_ratio=unit_interval)
def elastic_net(w: Weights, l1_ratio: float = 0.5) -> torch.Tensor:
    """Elastic net ``ρ‖w‖₁ + (1−ρ)·½‖w‖₂²`` (Zou & Hastie, 2005), ρ = ``l1_ratio``."""
    ws = as_tensors("elastic_net", w)
    value = l1_ratio * norms_sum(ws, 1) + (1.0 - l1_ratio) * 0.5 * squared_norm(ws)
    return checked_total("elastic_net", value, ws)


@register
class L1(WeightRegularizer):
    """L1 (lasso) penalty: drives individual weights to exactly zero in prox mode.

    R(w) = Σ|w_i|. Proximal operator: soft thresholding.
    """

    name = "l1"
    claims = (
        Claim(
            "An L1 penalty drives many weights to (near) zero",
            task="clean_classification", metric="weight_near_zero", direction="higher", role="mechanism",
            arm={"name": "l1", "weight": 1e-4},
            min_effect=0.05, min_effect_reason="5% of the weights",
            baselines=(
                Baseline("no regularizer"),
                Baseline("L2 5e-4", {"name": "l2", "weight": 5e-4}, why="shrinks weights without selecting them"),
            ),
            datasets=("digits", "digits_half"),
            settings="the lasso (Tibshirani 1996) on an MLP's weight matrices as a loss penalty with Adam (no "
            "proximal step, so zeros are approximate: |w| < 1e-3 counts); weight 1e-4, ten times this class's "
            "default, since 1e-5 barely moves a 60-epoch run; chosen before any run, not tuned",
            source="Tibshirani 1996, Sec. 1 (the lasso sets coefficients to zero)",
        ),
        Claim(
            "The sparser network keeps its accuracy",
            task="clean_classification", metric="test_accuracy", direction="higher", kind="non-inferiority",
            arm={"name": "l1", "weight": 1e-4},
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(Baseline("no regularizer"),),
            control=Baselines.shorter_training(15, 60),
            datasets=("digits", "digits_half"),
            settings="as above",
            source="Tibshirani 1996 (prediction accuracy kept or improved)",
        ),
    )
    formula = "R(w) = Σ_i |w_i|"
    function = l1
    default_weight = 1e-5

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        w.copy_(soft_threshold(w, step_size))

    @torch.no_grad()
    def grad_(self, tensors, grads, alpha):
        """``g += α·sign(w)`` (the subgradient of Σ|w_i|, 0 at 0); returns Σ|w_i|."""
        ws = as_tensors("l1", list(tensors))
        value = checked_total("l1", norms_sum(ws, 1), ws)  # before touching the gradients
        add_scaled_(grads, torch._foreach_sign(ws), alpha)
        return value


@register
class L2(WeightRegularizer):
    """L2 penalty (weight decay as a loss term): R(w) = ½‖w‖₂².

    With the ½, ``L2(λ)`` adds ``λ·w`` to the gradient, exactly what
    ``SGD(weight_decay=λ)`` does, but only on the selected tensors (by
    default not biases, norm or embedding parameters). No global scope:
    ½‖concat(w)‖² equals the sum of the local penalties.
    """

    name = "l2"
    overlaps_weight_decay = True
    claims = (
        Claim(
            "Weight decay improves generalization, most where data is scarce",
            task="clean_classification", metric="test_accuracy", direction="higher",
            min_effect=0.005, min_effect_reason="half a point of test accuracy",
            baselines=(
                Baseline("no regularizer (early stopping only)", why="early stopping on validation is the free baseline"),
            ),
            datasets=("digits", "digits_half"),
            settings="a classic regularizer (Krogh & Hertz 1992, 'A simple weight decay can improve "
            "generalization'); an MLP on 8×8 digits (all or half of the training split), Adam 60 epochs, epoch "
            "selected on validation; weight 5e-4 (the common default, this class's), added as a penalty",
            source="Krogh & Hertz 1992 (NeurIPS), Sec. 4",
        ),
    )
    formula = "R(w) = ½ Σ_i w_i²"
    function = l2
    default_weight = 5e-4

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        w.mul_(1.0 / (1.0 + step_size))

    @torch.no_grad()
    def grad_(self, tensors, grads, alpha):
        """``g += α·w`` (the gradient of ½‖w‖²); returns ½Σ‖w‖² from one ``_foreach_norm``."""
        ws = as_tensors("l2", list(tensors))
        value, _ = self.grad_coefficients(ws)
        add_scaled_(grads, ws, alpha)
        return value

    @torch.no_grad()
    def grad_coefficients(self, tensors):
        """``(½Σ‖w‖², [1.0 per tensor])``: the gradient is ``1·w``, so ``regs.add_grads`` fuses it
        with other ``coef·w`` gradients (group lasso) on the same tensor."""
        ws = as_tensors("l2", list(tensors))
        value = checked_total("l2", 0.5 * torch.stack(torch._foreach_norm(ws, 2)).pow(2).sum(), ws)
        return value, [1.0] * len(ws)


@register
class ElasticNet(WeightRegularizer):
    """Elastic net: R(w) = ρ‖w‖₁ + (1−ρ)·½‖w‖₂², ρ = ``l1_ratio``.

    Zou & Hastie (2005), in the glmnet / scikit-learn parameterization
    (scikit-learn's default ``l1_ratio = 0.5``). Proximal operator (exact):
    soft threshold at tρ, then shrink by 1/(1 + t(1−ρ)).
    """

    name = "elastic_net"
    claims = (
        Claim(
            "The elastic net predicts better than the lasso at the same strength",
            task="clean_classification", metric="test_accuracy", direction="higher",
            arm={"name": "elastic_net", "weight": 1e-4},
            min_effect=0.005, min_effect_reason="half a point of test accuracy",
            baselines=(
                Baseline("L1 at the same weight (1e-4)", {"name": "l1", "weight": 1e-4},
                         why="the lasso the paper improves on"),
                Baseline("no regularizer"),
            ),
            datasets=("digits", "digits_half"),
            settings="an MLP's weight matrices instead of linear regression with correlated predictors; ρ = 0.5 "
            "(scikit-learn's default), weight 1e-4 as for the L1 claim; penalty with Adam",
            source="Zou & Hastie 2005, Sec. 5 (prostate cancer data and simulations: lower prediction error than "
            "the lasso)",
        ),
    )
    formula = "R(w) = ρ‖w‖₁ + (1−ρ)·½‖w‖₂²"
    paper = PAPER
    function = elastic_net
    default_weight = 1e-5

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        rho = self.l1_ratio
        w.copy_(soft_threshold(w, step_size * rho) / (1.0 + step_size * (1.0 - rho)))

    @torch.no_grad()
    def grad_(self, tensors, grads, alpha):
        """``g += α·(ρ·sign(w) + (1−ρ)·w)``; returns ρΣ‖w‖₁ + (1−ρ)·½Σ‖w‖²."""
        rho = self.l1_ratio
        ws = as_tensors("elastic_net", list(tensors))
        sq = torch.stack(torch._foreach_norm(ws, 2)).pow(2).sum()
        value = checked_total("elastic_net", rho * norms_sum(ws, 1) + (1.0 - rho) * 0.5 * sq, ws)
        update = torch._foreach_mul(torch._foreach_sign(ws), rho)
        torch._foreach_add_(update, ws, alpha=1.0 - rho)
        add_scaled_(grads, update, alpha)
        return value
