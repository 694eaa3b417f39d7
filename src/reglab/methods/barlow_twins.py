"""Barlow Twins (Zbontar, Jing, Misra, LeCun & Deny, ICML 2021).

C = BN(Z)ᵀ BN(Z') / n, with BN the affine-free batch normalization over the
batch (biased variance, ε = 1e-5 as ``nn.BatchNorm1d``);
L = Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij². λ = 0.0051 as in the official code
(facebookresearch/barlowtwins, ``main.py``, ``--lambd``; the paper states
5e-3). The official code normalizes with a SyncBatchNorm and divides by the
global batch size; ``gather=True`` does the same.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from reglab.core import Paper, RepresentationRegularizer, register, ssl_claims
from reglab.ops import common_dtype, no_autocast, prepare_views
from reglab.ops.linalg import _uses_gram_route, gram_diag_offdiag_sq_sum

PAPER = Paper(
    "Barlow Twins: Self-Supervised Learning via Redundancy Reduction", "Zbontar, Jing, Misra, LeCun, Deny", 2021,
    arxiv="2103.03230", venue="ICML", code="https://github.com/facebookresearch/barlowtwins")


class BarlowTwinsTerms(NamedTuple):
    on_diagonal: torch.Tensor
    off_diagonal: torch.Tensor


def _standardize(z: torch.Tensor, eps: float) -> torch.Tensor:
    # BatchNorm1d(affine=False) in training mode: (z − mean)/sqrt(biased var + eps), one
    # fused kernel each way (the official code's nn.BatchNorm1d, without running stats).
    return F.batch_norm(z, None, None, training=True, eps=eps)


class _CrossRoute(torch.autograd.Function):
    """Both Barlow Twins terms on the d×d route: ``(Σ_j (1 − C_jj)², Σ_{i≠j} C_ij²)``, ``C = AᵀB/n``
    with ``A``, ``B`` the batch-standardized views.

    Forward: two fused batch-norm kernels and one GEMM. Backward: with ``G`` the
    gradient with respect to ``M = AᵀB`` (``2·g_off·M₀/n² + diag(2·g_on·(C_jj − 1)/n)``,
    ``M₀`` the off-diagonal part), ``∂/∂A = B·Gᵀ`` and, through the
    standardization, ``∂/∂z₁ = σ₁⁻¹ ⊙ (B·Gᵀ − A ⊙ r)`` with ``r_j = (1/n)Σ_i G_ji·M_ji``:
    the batch-norm backward's mean term is zero (``B``'s columns are centred) and
    its projection term comes from d×d matrices, so the backward is two GEMMs (one
    per view, σ⁻¹ folded into ``G``) and one elementwise pass per view. Under
    ``create_graph`` the backward recomputes through autograd (any order).
    """

    @staticmethod
    def forward(ctx, z1: torch.Tensor, z2: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.set_materialize_grads(False)
        a, _, inv1 = torch.native_batch_norm(z1, None, None, None, None, True, 0.0, eps)
        b, _, inv2 = torch.native_batch_norm(z2, None, None, None, None, True, 0.0, eps)
        n = a.shape[0]
        m = a.T @ b
        c = m.diagonal().clone()
        m.diagonal().zero_()  # the off-diagonal part exactly (no cancellation against the diagonal)
        ctx.eps = eps
        ctx.save_for_backward(z1, z2, a, b, m, c, inv1, inv2)
        return (c / n - 1.0).pow_(2).sum(), m.pow(2).sum() / n**2

    @staticmethod
    def backward(ctx, g_on: torch.Tensor | None, g_off: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        z1, z2, a, b, m, c, inv1, inv2 = ctx.saved_tensors
        if g_on is None and g_off is None:
            return None, None, None
        n = a.shape[0]
        if torch.is_grad_enabled():  # create_graph: the same value through autograd, differentiable again
            c_, off_ = gram_diag_offdiag_sq_sum(_standardize(z1, ctx.eps), _standardize(z2, ctx.eps))
            out = [g_on * (c_ / n - 1).pow(2).sum() if g_on is not None else None,
                   g_off * off_ / n**2 if g_off is not None else None]
            g1, g2 = torch.autograd.grad(sum(t for t in out if t is not None), (z1, z2),
                                         create_graph=True, allow_unused=True)
            return g1, g2, None
        g = m * (2.0 * g_off / n**2) if g_off is not None else torch.zeros_like(m)
        if g_on is not None:
            gc = (c / n - 1.0) * (2.0 * g_on / n)  # ∂/∂M_jj of Σ (M_jj/n − 1)²
            g.diagonal().add_(gc)
        # r (rows of G against rows of M: A's columns) and r' (columns: B's columns)
        gm = g * m
        if g_on is not None:
            gm.diagonal().add_(gc * c)  # M's diagonal is c (zeroed in the saved M₀)
        r1, r2 = gm.sum(dim=1) / n, gm.sum(dim=0) / n
        dz1 = dz2 = None  # σ⁻¹ scales G's columns; the projection term in place, one pass
        if ctx.needs_input_grad[0]:
            dz1 = (b @ (g.T * inv1)).addcmul_(a, r1 * inv1, value=-1.0)
        if ctx.needs_input_grad[1]:
            dz2 = (a @ (g * inv2)).addcmul_(b, r2 * inv2, value=-1.0)
        return dz1, dz2, None


def barlow_twins_terms(
    z1: torch.Tensor, z2: torch.Tensor, *, eps: float = 1e-5, gather: bool = True
) -> BarlowTwinsTerms:
    """Barlow Twins terms (Zbontar et al., 2021) on the cross-correlation
    ``C = BN(z1)ᵀ BN(z2) / n``: ``Σ_i (1 − C_ii)²`` and ``Σ_{i≠j} C_ij²``.

    The diagonal is O(nd); for n < 0.75·d the off-diagonal sum comes from the
    two n×n Gram matrices, never forming the d×d C
    (``reglab.ops.linalg.gram_diag_offdiag_sq_sum``).
    """
    who = "BarlowTwins"
    z1, z2 = prepare_views(who, z1, z2, gather=gather)
    z1, z2 = common_dtype(z1, z2)
    with no_autocast(z1):
        n, d = z1.shape
        # diag(AᵀB) and Σ_{i≠j} (AᵀB)_ij² of the standardized views A, B: through the n×n Grams
        # (Σ (AAᵀ)∘(BBᵀ) − Σ_j (AᵀB)_jj²) when n < 0.75·d, never forming the d×d C; else the
        # d×d AᵀB with its diagonal zeroed, the batch norm's backward folded into its GEMMs
        if not _uses_gram_route(n, d, cross=True):
            return BarlowTwinsTerms(*_CrossRoute.apply(z1, z2, eps))
        diag, off = gram_diag_offdiag_sq_sum(_standardize(z1, eps), _standardize(z2, eps))
        on = (diag / n - 1).pow(2).sum()
        off = off / n**2
    return BarlowTwinsTerms(on, off)


def barlow_twins(z1: torch.Tensor, z2: torch.Tensor, *, lambd: float = 0.0051, **options: Any) -> torch.Tensor:
    """``Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij²``; ``options`` (``eps``, ``gather``) go to ``barlow_twins_terms``."""
    t = barlow_twins_terms(z1, z2, **options)
    return t.on_diagonal + lambd * t.off_diagonal


@register
class BarlowTwins(RepresentationRegularizer):
    """Barlow Twins: drive the cross-correlation of two views' embeddings to the identity.

    C = BN(Z)ᵀ BN(Z') / n, with BN the affine-free batch normalization over
    the batch (biased variance, ε = 1e-5 as ``nn.BatchNorm1d``);
    L = Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij².

    λ = 0.0051 as in the official code (facebookresearch/barlowtwins,
    ``main.py``, ``--lambd``; the paper states 5e-3). The official
    code normalizes with a SyncBatchNorm and divides by the global batch size;
    ``gather=True`` does the same.

    Zbontar, Jing, Misra, LeCun & Deny (2021), ICML, arXiv:2103.03230.
    """

    name = "barlow_twins"
    claims = ssl_claims(
        "The redundancy-reduction term prevents collapse (higher effective rank than invariance only)",
        "Barlow Twins learns representations with a better linear probe",
        settings="MLP encoder 64-256-32 on 8×8 digits, Adam, 50 epochs, Barlow Twins as the whole two-view loss, "
            "instead of ResNet-50 + an 8192-d projector on ImageNet with LARS; λ = 5e-3 is the paper's",
        source_mechanism="Zbontar et al. 2021, Sec. 2 (the off-diagonal term decorrelates; the loss avoids collapse)",
        source_outcome="Zbontar et al. 2021, Table 1 (linear evaluation)",
    )
    paper = PAPER
    formula = "Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij², C = BN(z)ᵀBN(z')/n"
    num_inputs = 2
    function = barlow_twins
    terms = barlow_twins_terms
