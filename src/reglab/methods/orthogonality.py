"""Orthogonality regularizers of Bansal, Chen & Wang (NeurIPS 2018): soft orthogonality and SRIP.

W is the (out, in·k…) matrix of a layer's filters; G is its smaller Gram
(WWᵀ, or WᵀW when rows > cols, so the penalty is never forced above the
rank bound).

* Soft orthogonality (SO, their Eq. 2): R(W) = ‖G − I‖²_F.
* SRIP (their Eq. 6): R(W) = σ_max(G − I), estimated by power iteration
  with **two** iterations as the paper states and the official code does
  (VITA-Group/Orthogonality-in-CNNs, ``l2_reg_ortho``: v = Mb/‖Mb‖,
  σ ≈ ‖Mv‖, gradients through both steps).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import Paper, PowerIterationState, WeightRegularizer, register
from reglab.ops import (
    as_tensors, checked_total, flatten_rows, full_precision, gram, paired_tensors, per_tensor_result, safe_norm,
    stack_by_shape, sum_terms,
)

PAPER = Paper(
    "Can We Gain More from Orthogonality Regularizations in Training Deep CNNs?",
    "Bansal, N., Chen, X. and Wang, Z.", 2018, arxiv="1810.09102", venue="NeurIPS", code="https://github.com/VITA-Group/Orthogonality-in-CNNs")


def _smaller_gram_side(w: torch.Tensor) -> torch.Tensor:
    """The flattened weight, transposed when rows > cols, so ``m mᵀ`` is the smaller Gram."""
    m = flatten_rows(w)
    return m.T if m.shape[0] > m.shape[1] else m


class _GramDeviation(torch.autograd.Function):
    """Σ_b ‖X_b X_bᵀ − I‖²_F for a batch (B, k, d), with the closed-form gradient 4(XXᵀ − I)X.

    Autograd through ``x @ xᵀ`` would spend two k²d matmuls in backward (one
    per operand); the closed form needs one, which cuts the cost by about a
    third. First-order only.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        d = gram(x)
        d.diagonal(dim1=-2, dim2=-1).sub_(1.0)
        ctx.save_for_backward(x, d)
        return d.pow(2).sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x, d = ctx.saved_tensors
        return (4.0 * grad) * (d @ x)


@full_precision
def soft_orthogonality(w: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Soft orthogonality ``‖WWᵀ − I‖²_F`` on the flattened rows (Bansal et al., 2018), summed over tensors.

    Uses the smaller Gram (``WᵀW − I`` when rows > cols), the convention for
    over-complete layers. Same-shaped weights share one batched matmul on
    accelerators.
    """
    who = "soft_orthogonality"
    ws = as_tensors(who, w, min_ndim=2)
    batches = stack_by_shape([_smaller_gram_side(t) for t in ws])
    return checked_total(who, sum_terms([_GramDeviation.apply(b) for b in batches]), ws)


def _gram_minus_identity_matvec(m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(G − I)·v`` for the smaller Gram ``G`` of ``m``, without forming ``G``."""
    if m.shape[0] > m.shape[1]:
        return m.T @ (m @ v) - v
    return m @ (m.T @ v) - v


@full_precision
def srip(
    w: torch.Tensor | Sequence[torch.Tensor], u: torch.Tensor | Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor | list[torch.Tensor]]:
    """SRIP ``σ(WᵀW − I)`` by two power-iteration steps from ``u`` (Bansal et al., 2018).

    With ``M = G − I`` (``G`` the smaller Gram of the flattened weight):
    ``v = Mu/‖Mu‖``, ``σ ≈ ‖Mv‖``. Returns ``(σ, v)``; feed ``v`` back as the
    next ``u`` (it is detached). Gradients flow through both steps, as in the
    official code. For a list of weights pass a list of vectors: returns
    ``(Σσ, [v…])``.
    """
    who = "srip"
    ws, us = paired_tensors(who, w, u, "power-iteration vector", lambda t: (min(flatten_rows(t).shape),), min_ndim=2)
    sigmas, vs = [], []
    for wt, ut in zip(ws, us):
        m = flatten_rows(wt)
        v1 = _gram_minus_identity_matvec(m, ut.to(m.dtype))
        v = v1 / safe_norm(v1).clamp_min(1e-12)
        sigmas.append(safe_norm(_gram_minus_identity_matvec(m, v)))
        vs.append(v.detach())
    total = checked_total(who, sum_terms(sigmas), ws)
    return per_tensor_result(w, total, vs)


@register
class SoftOrthogonality(WeightRegularizer):
    """Soft orthogonality (SO): R(W) = ‖WWᵀ − I‖²_F on the flattened rows.

    Bansal, Chen & Wang (2018), Eq. 2: W is the (out, in·k…) matrix of
    filters; when rows > cols the smaller Gram WᵀW − I is used (our
    convention: the paper states the penalty for WᵀW and the official code
    has no soft-orthogonality code), so the penalty is never forced above
    the rank bound. The default weight is a library choice for
    ResNet-scale models, not a value from the paper.
    """

    name = "soft_orthogonality"
    formula = "R(W) = ‖WWᵀ − I‖²_F  (WᵀW if rows > cols)"
    paper = PAPER
    function = soft_orthogonality
    default_weight = 1e-4


@register
class SRIP(PowerIterationState):
    """Spectral restricted isometry property (SRIP) regularization: R(W) = σ(WᵀW − I).

    Bansal, Chen & Wang (2018), Eq. 6: the spectral norm of the Gram minus
    identity (smaller Gram of the flattened (out, in·k…) weight), estimated
    by power iteration with **two** iterations, as the paper states and the
    official code does (VITA-Group/Orthogonality-in-CNNs, ``l2_reg_ortho``:
    v = Mb/‖Mb‖, σ ≈ ‖Mv‖, gradients through both steps). Differences from
    that code: the start vector b is kept per tensor in a buffer (warm
    start, in ``state_dict``) instead of redrawn each step, products with
    M = G − I are computed as W(Wᵀv) − v without forming G, and the penalty
    is σ as in the paper's Eq. 6 (their PyTorch script adds σ², their Keras
    script σ). Each call advances the iteration.

    Default weight 0.01 = the official ``--ortho-decay``; the paper then
    decays it (×1e-3 after epoch 20, ×1e-4 after 50, ×1e-6 after 70, 0 after
    120): pass a ``reglab.schedules`` schedule for that.
    """

    name = "srip"
    formula = "R(W) = σ_max(WᵀW − I), 2-step power iteration"
    paper = PAPER
    function = srip
    default_weight = 1e-2


    def _state_shape(self, w: torch.Tensor) -> tuple[int, ...]:
        return (min(flatten_rows(w).shape),)

    def penalty(self, w: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        return super().penalty(as_tensors("srip", w, min_ndim=2, upcast=False))
