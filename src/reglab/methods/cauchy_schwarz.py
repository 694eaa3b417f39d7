"""Cauchy–Schwarz regularizers (Taner, Wang & Studer, ICLR 2025): pull weights to {±α}, {0, ±α} or orthogonality.

Each regularizer is a Cauchy–Schwarz (or power-mean) gap: ≥ 0 everywhere, 0
exactly on its target set, and scale-free (the level α is not chosen by the
regularizer). For a group x ∈ R^n of weights:

* ``"binary"`` (symmetric binary): R(x) = n^{r/2 − r/4}·‖x‖₄^r − ‖x‖₂^r, zero iff
  all |x_i| are equal (x ∈ {±α}^n). r = 2 (the default) is the official NN
  code's ``lplq_regularization_CNN`` with p = 4, q = 2, r = 2 (√n‖x‖₄² − ‖x‖₂²);
  r = 4 is the paper's polynomial form n·Σx⁴ − (Σx²)² (``Lbin`` of
  ``binary_recovery.m``).
* ``"ternary"`` (one-sided): R(x) = (Σx²)(Σx⁶) − (Σx⁴)², zero iff all non-zero
  |x_i| are equal (x ∈ {0, ±α}^n).
* ``"orthogonal"``: for the (out, in·k…) matrix W, R(W) = K·‖WWᵀ‖_F² − ‖W‖_F⁴ with
  K = min(out, in·k…), zero iff W is a scaled semi-orthogonal matrix (rows
  orthogonal with equal norms when out ≤ in, columns when out ≥ in). This is
  ``Lorth`` of ``orth_matrix_recovery.m`` with the multiplier the number of
  vectors that must be orthogonal; the script writes N (rows) and runs with
  N = K, where both agree — with N ≠ K the N-form is not zero on orthogonal
  matrices.

Groups (NN usage, IIP-Group/CS_regularizers ``quantized_nns/tools/
regularization_modules.py``): each row of the flattened weight (an FC row, a
conv output filter: their ``*_input_ch`` modes, the default of the binary and
ternary configs), or with ``groups="kernel"`` each k×k conv kernel; a 1-D
tensor is one group. With ``normalize=True`` each tensor's sum is divided by
its number of elements (their ``normalization_type='elenum'``). Default weight
λ = 10, the binary value of ``quantized_nns/main_train.py``; it sets λ = 1e5 for
ternary (a degree-8 polynomial of small weights), and trains in two phases: the
regularizer for 40 epochs (CIFAR-10), then quantization (per-group scale ×
sign / optimal ternary) and 20 epochs of retraining. They exclude the first
conv and the last FC layer: bind accordingly with ``.on(params=...)``.

Deviation from the official code: its ``fc_regu == 'ternary'`` branch reuses
the previous conv layer's reshaped tensor (``x = param_reshaped``) and its
element count instead of the FC weight; here the ternary regularizer applies
to the FC weight itself (the paper's form).

The eigenvector regularizer of the paper, R(x) = ‖Cx‖²‖x‖² − (xᵀCx)² (zero iff x
is an eigenvector of the symmetric C), is ``cauchy_schwarz_eigenvector``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import Baseline, Baselines, Claim, Paper, RegularizerInputError, WeightRegularizer, register
from reglab.ops import (
    as_tensors, check_tensor, checked_total, full_precision, gram, hyperparameters, one_of, positive,
    power_of_two_scale, sum_terms,
)

PAPER = Paper(
    "Cauchy-Schwarz Regularizers", "Taner, Wang, Studer", 2025, arxiv="2503.01639", venue="ICLR",
    code="https://github.com/IIP-Group/CS_regularizers")

__all__ = ["cauchy_schwarz", "cauchy_schwarz_eigenvector", "CauchySchwarz"]

VARIANTS = ("binary", "ternary", "orthogonal")
#: Degree of homogeneity of each variant (binary: r).
_DEGREE = {"ternary": 8.0, "orthogonal": 4.0}


def _root(s: torch.Tensor, power: float) -> torch.Tensor:
    """``s**power`` for s ≥ 0 with a zero (not NaN) gradient where s = 0."""
    if power >= 1:
        return s.pow(power)
    pos = s > 0
    return torch.where(pos, torch.where(pos, s, torch.ones_like(s)).pow(power), torch.zeros_like(s))


def _groups(w: torch.Tensor, groups: str) -> torch.Tensor:
    """The (groups, size) matrix of a weight: rows of the flattened weight, or k×k kernels."""
    if w.ndim == 1:
        return w.reshape(1, -1)
    if groups == "kernel" and w.ndim >= 3:
        return w.reshape(w.shape[0] * w.shape[1], -1)
    return w.reshape(w.shape[0], -1)


def _term(w: torch.Tensor, variant: str, r: float, groups: str) -> torch.Tensor:
    """The unnormalized regularizer of one tensor, computed on w/s (s a power of two near max|w|,
    exact) and rescaled by s^degree, so the high powers neither overflow nor underflow."""
    degree = float(r) if variant == "binary" else _DEGREE[variant]
    scale = power_of_two_scale(w).clamp_min(torch.finfo(w.dtype).tiny)
    x = _groups(w / scale, groups)
    if variant == "orthogonal":
        m = x if x.shape[0] <= x.shape[1] else x.T  # the smaller Gram matrix has the same norm
        k = m.shape[0]
        fro2 = m.pow(2).sum()
        value = k * gram(m).pow(2).sum() - fro2.pow(2)
    else:
        s2, s4 = x.pow(2).sum(dim=1), x.pow(4).sum(dim=1)
        if variant == "binary":
            n = x.shape[1]
            value = (n ** (r / 2 - r / 4) * _root(s4, r / 4) - _root(s2, r / 2)).sum()
        else:
            value = (s2 * x.pow(6).sum(dim=1) - s4.pow(2)).sum()
    return value * scale.pow(degree)


@hyperparameters(variant=one_of(*VARIANTS), r=positive, groups=one_of("filter", "kernel"))
@full_precision
def cauchy_schwarz(
    w: torch.Tensor | Sequence[torch.Tensor],
    variant: str = "binary",
    r: float = 2.0,
    groups: str = "filter",
    normalize: bool = True,
) -> torch.Tensor:
    """Cauchy–Schwarz regularizer (Taner et al., 2025), summed over tensors.

    ``variant``: ``"binary"`` Σ_g (n^{r/4}‖x_g‖₄^r − ‖x_g‖₂^r) (r = 2: the official NN code;
    r = 4: n·Σx⁴ − (Σx²)²), ``"ternary"`` Σ_g ((Σx²)(Σx⁶) − (Σx⁴)²), or ``"orthogonal"``
    K·‖WWᵀ‖²_F − ‖W‖⁴_F, K = min(rows, cols). Groups x_g: rows of the flattened weight
    (``groups="filter"``) or conv kernels (``"kernel"``). ``normalize``: each tensor's
    sum divided by its number of elements (the official ``'elenum'``).
    """
    who = "cauchy_schwarz"
    ws = as_tensors(who, w, min_ndim=2 if variant == "orthogonal" else 1)
    terms = []
    for t in ws:
        value = _term(t, variant, float(r), groups)
        terms.append(value / t.numel() if normalize else value)
    return checked_total(who, sum_terms(terms), ws)


def cauchy_schwarz_eigenvector(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Eigenvector regularizer (Taner et al., 2025; ``f_Cx`` of ``eigvec_recovery.m``):
    ``‖Cx‖²‖x‖² − (xᵀCx)²``, ≥ 0 for symmetric C, zero iff x is an eigenvector of C."""
    who = "cauchy_schwarz_eigenvector"
    check_tensor(who, x, arg="vector", ndim=1)
    check_tensor(who, c, arg="matrix", ndim=2)
    if c.shape != (x.shape[0], x.shape[0]):
        raise RegularizerInputError(
            f"{who} expects a square matrix of shape {(x.shape[0], x.shape[0])} for a vector of length "
            f"{x.shape[0]}, got {tuple(c.shape)}"
        )
    cx = c @ x
    return cx.pow(2).sum() * x.pow(2).sum() - (x @ cx).pow(2)


@register
class CauchySchwarz(WeightRegularizer):
    """Cauchy–Schwarz regularizers: pull each group of weights to {±α} (binary),
    {0, ±α} (ternary) or a weight matrix to a scaled semi-orthogonal one.

    binary: R(x) = n^{r/2−r/4}‖x‖₄^r − ‖x‖₂^r (r = 2: √n‖x‖₄² − ‖x‖₂², the
    official NN code; r = 4: n·Σx⁴ − (Σx²)²); ternary: R(x) = (Σx²)(Σx⁶) − (Σx⁴)²;
    orthogonal: R(W) = K‖WWᵀ‖²_F − ‖W‖⁴_F, K = min(out, in·k…). All ≥ 0, zero
    exactly on the target set, and scale-free: the level α is chosen by the
    quantizer afterwards (e.g. the group's mean |x| for binary).

    Pinned from the official code (IIP-Group/CS_regularizers,
    ``lplq_regularization_CNN``): groups are the rows of the flattened weight
    (FC rows, conv output filters; ``groups="kernel"``: per k×k kernel), each
    tensor's sum divided by its element count (``normalize``), λ = 10 for
    binary (the default weight) and 1e5 for ternary (``main_train.py``); they
    exclude the first conv and last FC layer. Their FC ternary branch
    regularizes the previous conv layer's tensor by mistake; the FC weight
    itself is regularized here (the paper's form).

    Taner, Wang & Studer (2025), "Cauchy-Schwarz Regularizers", ICLR, arXiv:2503.01639.
    """

    name = "cauchy_schwarz"
    formula = "binary: n^{r/4}‖x‖₄^r − ‖x‖₂^r; ternary: (Σx²)(Σx⁶) − (Σx⁴)²; orthogonal: K‖WWᵀ‖²_F − ‖W‖⁴_F"
    paper = PAPER
    function = cauchy_schwarz
    default_weight = 10.0
    claims = (
        Claim(
            "The binary Cauchy-Schwarz regularizer makes post-training binarization nearly lossless: test accuracy "
            "after binarizing the hidden layers (per-row scale mean|w| × sign, no retraining) is higher",
            task="quantization", metric="quantized_accuracy", direction="higher",
            datasets=("digits", "digits_half"),
            task_args={"levels": "binary"},
            arm={"name": "cauchy_schwarz", "variant": "binary", "weight": 10.0},
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(
                Baseline("no regularizer, same binarization"),
                Baseline(
                    "L2 (5e-4), same binarization", {"name": "l2", "weight": 5e-4},
                    why="weight decay, the usual regularizer before quantization",
                ),
            ),
            settings="MLP 64-128-128-128-10 on digits, the two middle layers regularized and binarized (the first "
            "and last excluded, as the official code does), Adam 1e-3 for 40 epochs; no retraining after "
            "quantization (the paper retrains for 20 epochs); λ = 10 is the official binary value, not tuned "
            "(developed on seeds 0-4)",
            source="Taner et al. 2025, Sec. 5 (quantized neural networks, Table 3)",
        ),
        Claim(
            "The ternary Cauchy-Schwarz regularizer makes post-training ternarization nearly lossless",
            task="quantization", metric="quantized_accuracy", direction="higher",
            datasets=("digits", "digits_half"),
            task_args={"levels": "ternary"},
            arm={"name": "cauchy_schwarz", "variant": "ternary", "weight": 1e5},
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(
                Baseline("no regularizer, same ternarization"),
                Baseline("L2 (5e-4), same ternarization", {"name": "l2", "weight": 5e-4}),
            ),
            settings="as above, ternarized with the official optimal per-row threshold and scale; λ = 1e5 is the "
            "official ternary value, not tuned",
            source="Taner et al. 2025, Sec. 5 (ternary networks)",
        ),
        Claim(
            "The binary Cauchy-Schwarz regularizer moves the weights towards the binary levels: the relative error "
            "of their binarization is lower",
            task="quantization", metric="quantization_error", direction="lower", role="mechanism",
            datasets=("digits", "digits_half"),
            task_args={"levels": "binary"},
            arm={"name": "cauchy_schwarz", "variant": "binary", "weight": 10.0},
            min_effect=0.05, min_effect_reason="five percent of the weights' norm",
            baselines=(
                Baseline("no regularizer"),
                Baseline("L2 (5e-4)", {"name": "l2", "weight": 5e-4}),
            ),
            settings="as above",
            source="Taner et al. 2025, Sec. 3 (the regularizer is zero exactly on the binary set)",
        ),
        Claim(
            "The Cauchy-Schwarz regularizer does not cost full-precision accuracy",
            task="quantization", metric="test_accuracy", direction="higher", kind="non-inferiority",
            datasets=("digits", "digits_half"),
            task_args={"levels": "binary"},
            arm={"name": "cauchy_schwarz", "variant": "binary", "weight": 10.0},
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(Baseline("no regularizer"),),
            control=Baselines.shorter_training(10, 40),
            settings="as above",
            source="Taner et al. 2025, Sec. 5",
        ),
    )
