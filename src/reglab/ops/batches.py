"""Batches of embeddings for the representation penalties: validate, gather, upcast; shared statistics.

Batch-statistic penalties compute their statistics on the global batch under
DDP (:func:`reglab.core.distributed.gather`, whose backward makes every
rank's gradient that of the single-process loss on the concatenated batch).
Statistics are computed in float32 with autocast disabled, so a bf16/fp16
forward gives the float32 value (a bf16 covariance or log-sum-exp is not
accurate enough to train on). Inputs already in float64 stay float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from reglab.core.distributed import gather as _gather, is_distributed
from reglab.core.errors import RegularizerInputError
from reglab.ops.batching import no_autocast
from reglab.ops.linalg import gram_offdiag_sq_sum
from reglab.core import checks as _checks
from reglab.ops.validation import check_tensor, has_data

__all__ = ["prepare_batch", "no_autocast", "common_dtype", "variance_hinge", "covariance_offdiag"]


def prepare_batch(
    who: str, z: torch.Tensor, *, arg: str = "embeddings", min_batch: int = 2, gather: bool = True
) -> torch.Tensor:
    """Validate a (n, d) batch, gather it over ranks, upcast to >= float32.

    Under DDP the batch is gathered *before* its values and size are checked:
    every rank then judges the same global batch and raises the same error,
    so a rank holding 0 or 1 rows (or a NaN) never leaves the others waiting
    in a collective. On the CPU one read of the largest magnitude checks
    finiteness and, when the statistics of a float32 batch could overflow (a
    squared norm or covariance past 3.4e38), moves the computation to
    float64 so finite input always gives the right value. On an accelerator
    nothing is read: both checks are queued (:mod:`reglab.core.checks`).
    """
    distributed = gather and is_distributed()
    check_tensor(who, z, arg=arg, ndim=2, finite=False, nonempty=not distributed)
    z = _gather(z, enabled=gather)
    what = f"{arg} (the global batch over all ranks)" if distributed else arg
    where = " for the global batch over all ranks" if distributed else ""
    if z.shape[0] < min_batch:
        raise RegularizerInputError(
            f"{who} needs a batch of at least {min_batch} embeddings, got shape {tuple(z.shape)}{where}"
        )
    if z.shape[1] == 0:
        raise RegularizerInputError(f"{who} got {what} with no dimensions, shape {tuple(z.shape)}")
    if z.dtype not in (torch.float32, torch.float64):
        z = z.float()
    if has_data(z):
        lo, hi = torch.aminmax(z.detach())  # one pass, no |z| temporary; NaN propagates
        if _checks.defers(z):
            _defer_batch_checks(who, what, z, torch.maximum(-lo, hi))
            return z
        largest = float(torch.maximum(-lo, hi))
        if not math.isfinite(largest):
            bad = "NaN" if math.isnan(largest) else "inf"
            raise RegularizerInputError(
                f"{who} got {bad} values in {what} of shape {tuple(z.shape)}; "
                f"refusing to return a penalty that would poison training"
            )
        if z.dtype == torch.float32 and largest > _float32_safe_magnitude(z):
            z = _Float64Statistics.apply(z, who, what)
    return z


class _Float64Statistics(torch.autograd.Function):
    """``z.double()`` for a float32 batch whose statistics would overflow float32, with a backward
    that refuses to cast an overflowing gradient back to float32.

    The penalty is then right in float64, but its gradient on the float32 input can be far beyond
    float32's range (VICReg's covariance term on 1e20-scale rows: |∂L/∂z| ≈ 1e60): the plain cast
    back would hand the optimizer inf with no word. The backward raises instead, naming the
    regularizer. Only batches that took this route pay the check (CPU only: on accelerators such a
    batch is already a queued error, see :func:`_defer_batch_checks`)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, who: str, what: str) -> torch.Tensor:
        ctx.who, ctx.what, ctx.shape = who, what, tuple(z.shape)
        return z.double()

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        g32 = g.to(torch.float32)
        if has_data(g32) and not bool(torch.isfinite(g32).all()):
            largest = float(g.detach().abs().max())
            cause = (
                f"entries up to {largest:.3g}, beyond float32's range"
                if math.isfinite(largest) else "NaN or inf entries"
            )
            raise RegularizerInputError(
                f"{ctx.who}: the gradient with respect to the float32 {ctx.what} of shape {ctx.shape} has "
                f"{cause} (the penalty itself was computed in float64 because float32 statistics of entries "
                f"this large overflow); refusing to return an inf/NaN gradient: pass the {ctx.what} in float64, "
                f"or rescale"
            )
        return g32, None, None


def _defer_batch_checks(who: str, what: str, z: torch.Tensor, largest: torch.Tensor) -> None:
    """On an accelerator, queue the checks instead of reading ``largest`` (no host sync per step; an
    error names the regularizer at ``regs.step()``, at most one step late). The float64 fallback needs
    the magnitude on the host, so a float32 batch large enough to overflow its statistics becomes a
    queued error asking for float64 input instead."""
    shape = tuple(z.shape)
    _checks.defer_check(
        torch.isfinite(largest),
        f"{who} got NaN or inf values in {what} of shape {shape}; refusing to return a penalty that would "
        f"poison training (checked at the step's end)",
    )
    if z.dtype == torch.float32:
        safe = _float32_safe_magnitude(z)
        _checks.defer_check(
            largest <= safe,
            f"{who} got {what} of shape {shape} with entries beyond {safe:.3g}, where float32 statistics "
            f"overflow; pass float64 embeddings (on accelerators the batch's magnitude is not read every step)",
        )


def _float32_safe_magnitude(z: torch.Tensor) -> float:
    """Entries below this keep every statistic of the batch finite in float32: squared
    row norms (d·m²) and squared covariances ((n·m²)²) stay under float32's max, with a
    factor 1e4 to spare."""
    n, d = z.shape
    return (torch.finfo(torch.float32).max ** 0.25) / math.sqrt(n * d) * 0.1


def common_dtype(*zs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The views in one dtype (the promoted one: a float32 view and a float64 view give float64)."""
    dtype = zs[0].dtype
    for z in zs[1:]:
        dtype = torch.promote_types(dtype, z.dtype)
    return tuple(z.to(dtype) for z in zs)


def variance_hinge(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """VICReg's variance term ``mean_j max(0, γ − sqrt(Var(z_·j) + ε))`` (unbiased Var).

    Shared by VICReg and VCReg. No validation: called on already-validated
    float tensors.
    """
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def covariance_offdiag(z: torch.Tensor) -> torch.Tensor:
    """VICReg's covariance term ``(1/d) Σ_{i≠j} Cov(z)_ij²`` (unbiased Cov).

    Shared by VICReg and VCReg. With centred ``Zc`` (n, d), ``Cov = ZcᵀZc/(n−1)``,
    so the term is ``Σ_{i≠j} (ZcᵀZc)_ij² / ((n−1)²·d)``, computed by
    :func:`reglab.ops.linalg.gram_offdiag_sq_sum`: when n < d from the n×n Gram
    (``‖ZcZcᵀ‖_F² − Σ_j Var_j²·(n−1)²``, O(n²d) time and O(n²) memory instead of
    O(nd²) and O(d²)), else from the d×d product with its diagonal zeroed; one
    GEMM forward and one backward either way.
    """
    n, d = z.shape
    zc = z - z.mean(dim=0, keepdim=True)
    return gram_offdiag_sq_sum(zc) / ((n - 1) ** 2 * d)
