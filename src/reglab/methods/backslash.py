"""BackSlash: a generalized-Gaussian rate penalty with the shape fitted to the weights (Wu, Wen & Han, 2025).

Trained weights follow a generalized Gaussian (GG) law p(w) ∝ exp(−(|w|/α)^ν);
BackSlash (rate-constrained training) and its GG-prior follow-up (Wu, Xiong,
Wen & Han, 2025, "It Takes a Good Model to Train a Good Model") shrink the
weights along the GG rate. Code: the GG-prior authors' release
(Hugging Face space shifeng3711, mirrored in phuang1024/DBS ``gg_prior/backslash.py``):

1. the shape ν is fitted by moment matching: ``ρ = n·Σw²/(Σ|w|)²`` is looked
   up in the table of ``ρ(ν) = Γ(1/ν)Γ(3/ν)/Γ(2/ν)²`` for ν ∈ [0.1, 3.0]
   in steps of 0.01 (``data/gamma_table.pt``, ``r_gamma_table.pt``; the
   README gives the grid), nearest entry;
2. after each batch ``w ← w − rdo·ν/n·sign(w)·(|w| + c)^(ν−1)`` with
   ``rdo = 2e3``, ``c = clip = 1``, n the number of parameters,

which is one unit gradient step on ``rdo·(1/n)·Σ(|w| + c)^ν`` with ν held
fixed. We ship that penalty, ``R(w) = (1/n)·Σ_i (|w_i| + c)^ν`` with ν fitted
on the detached weights at each call (or given), default weight
``rdo = 2e3``; it goes through the optimizer with the loss (the official
step is applied outside the optimizer, at unit step size). The official ν
and n pool every parameter of the model: ``scope="global"`` here; the
local (default) scope fits ν and n per tensor.

DeepShape itself (the follow-up's post-training histogram remap of the
weights to a GG profile) is a one-shot transform, not this penalty.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import Baseline, Claim, Paper, WeightRegularizer, register
from reglab.core.paper import Baselines
from reglab.ops import as_tensors, checked_total, hyperparameters, non_negative, require_values, sum_terms

__all__ = ["gg_shape", "backslash", "backslash_global", "BackSlash"]

PAPER = Paper(
    "BackSlash: Rate Constrained Optimized Training of Large Language Models",
    "Wu, J., Wen, J. and Han, Y.", 2025, arxiv="2504.16968",
    code="https://huggingface.co/spaces/shifeng3711/gg_prior")

#: the official table's grid of shapes ν (README: [0.1, 3.0], step 0.01)
_NU = torch.arange(10, 301, dtype=torch.float64) / 100


def _rho_table() -> torch.Tensor:
    lg = torch.lgamma
    return torch.exp(lg(1 / _NU) + lg(3 / _NU) - 2 * lg(2 / _NU))


_RHO = _rho_table()


@torch.no_grad()
def gg_shape(w: torch.Tensor | Sequence[torch.Tensor]) -> float:
    """The GG shape ν of the pooled values by moment matching: the grid ν whose
    ``Γ(1/ν)Γ(3/ν)/Γ(2/ν)²`` is nearest ``n·Σw²/(Σ|w|)²`` (BackSlash's lookup)."""
    ws = as_tensors("BackSlash", w)
    require_values("BackSlash", *ws, arg="weight", needs="the weights' values to fit its shape ν (pass shape=...)")
    n = sum(t.numel() for t in ws)
    sq = sum(float(t.detach().double().pow(2).sum()) for t in ws)
    ab = sum(float(t.detach().double().abs().sum()) for t in ws)
    if ab == 0.0:
        return float(_NU[-1])
    rho = n * sq / ab**2
    return float(_NU[int(torch.argmin((_RHO - rho).abs()))])


def _term(t: torch.Tensor, nu: float, clip: float, n: int) -> torch.Tensor:
    return (t.abs() + clip).pow(nu).sum() / n


@hyperparameters("BackSlash", clip=non_negative)
def backslash(w: torch.Tensor | Sequence[torch.Tensor], clip: float = 1.0, shape: float | None = None) -> torch.Tensor:
    """``Σ_t (1/n_t)·Σ_i (|w_i| + c)^ν_t``, ν_t fitted per tensor (``gg_shape``) unless ``shape`` is given."""
    ws = as_tensors("BackSlash", w)
    terms = [_term(t, gg_shape(t) if shape is None else float(shape), clip, t.numel()) for t in ws]
    return checked_total("BackSlash", sum_terms(terms), ws)


@hyperparameters("BackSlash", clip=non_negative)
def backslash_global(w: Sequence[torch.Tensor], clip: float = 1.0, shape: float | None = None) -> torch.Tensor:
    """``(1/n)·Σ_i (|w_i| + c)^ν`` over all tensors pooled, one ν (the official ``backslash``)."""
    ws = as_tensors("BackSlash", list(w))
    nu = gg_shape(ws) if shape is None else float(shape)
    n = sum(t.numel() for t in ws)
    return checked_total("BackSlash", sum_terms([_term(t, nu, clip, n) for t in ws]), ws)


@register
class BackSlash(WeightRegularizer):
    """BackSlash / GG prior: R(w) = (1/n)·Σ(|w| + c)^ν, the shape ν fitted to the weights by moment matching.

    A generalized-Gaussian rate penalty (Wu, Wen & Han 2025; the GG-prior
    follow-up's reproduction, ``gg_prior/backslash.py``): ν is the grid
    value (0.1…3.0, step 0.01) whose ``Γ(1/ν)Γ(3/ν)/Γ(2/ν)²`` matches
    ``n·Σw²/(Σ|w|)²`` (refitted at each call, no gradient through it), c = 1,
    default weight ``rdo`` = 2e3. For ν < 1 (heavy-tailed weights) the
    penalty is concave in |w| and pushes small weights to zero harder than L1.
    The official code pools all the model's parameters for ν and n
    (``.on(scope="global")``); the default local scope fits each tensor.
    """

    name = "backslash"
    formula = "R(w) = (1/n)·Σ_i (|w_i| + c)^ν,  ν = GG shape fitted by moment matching"
    paper = PAPER
    function = backslash
    global_function = backslash_global
    default_weight = 2e3
    claims = (
        Claim(
            "BackSlash makes the weights more compressible: a larger share of near-zero weights",
            task="clean_classification", metric="weight_near_zero", direction="higher", role="mechanism",
            min_effect=0.05, min_effect_reason="5% of the weight entries",
            baselines=(
                Baseline("no regularizer"),
                Baseline("L1 1e-4", {"name": "l1", "weight": 1e-4}, why="the usual sparsity-inducing penalty"),
            ),
            datasets=("digits",),
            settings="an MLP on 8×8 digits, Adam 1e-3, 60 epochs, epoch selected on validation, instead of LLM "
            "training; the penalty goes through Adam with the loss (the official step is applied outside the "
            "optimizer at unit step); ν and n fitted per weight matrix (local scope) instead of over the whole "
            "model; weight 2e3 = the official rdo, not tuned; near-zero = |w| < 1e-3 (the task's metric) instead "
            "of the entropy-coded bit rate",
            source="Wu, Wen & Han 2025, abstract and Sec. 5 (rate reduction; up to 90% of parameters removable)",
        ),
        Claim(
            "More compressible weights without losing accuracy",
            task="clean_classification", metric="test_accuracy", direction="higher", kind="non-inferiority",
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(Baseline("no regularizer"),),
            control=Baselines.shorter_training(15, 60),
            datasets=("digits",),
            settings="as above",
            source="Wu, Wen & Han 2025, abstract (compression with minimal accuracy loss)",
        ),
    )
