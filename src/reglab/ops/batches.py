"""Batches of embeddings for the representation penalties: validate, gather, upcast; shared statistics.

Batch-statistic penalties compute their statistics on the global batch under
DDP (``reglab.core.distributed.gather``, whose backward makes every
rank's gradient that of the single-process loss on the concatenated batch).
Statistics are computed in float32 with autocast disabled, so a bf16/fp16
forward gives the float32 value (a bf16 covariance or log-sum-exp is not
accurate enough to train on). Inputs already in float64 stay float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from reglab.core.distributed import agree, all_gather_nograd, gather as _gather, is_distributed
from reglab.core.errors import RegularizerInputError
from reglab.ops.batching import no_autocast
from reglab.ops.linalg import gram_offdiag_sq_sum
from reglab.core import checks as _checks
from reglab.ops.validation import check_same_shape, check_tensor, has_data

__all__ = ["prepare_batch", "prepare_labeled_batch", "prepare_views", "prepare_reference", "no_autocast", "common_dtype", "variance_hinge", "covariance_offdiag"]


def prepare_batch(
    who: str, z: torch.Tensor, *, arg: str = "embeddings", min_batch: int = 2, gather: bool = True,
    flatten: bool = False,
) -> torch.Tensor:
    """Validate a (n, d) batch, gather it over ranks, upcast to >= float32.

    ``flatten``: accept (n, ...) with at least 2 dimensions and flatten each
    sample (activations of a conv layer).

    Under DDP each rank first checks its own tensor's structure (type,
    dimensions, dtype) inside an ``agree``
    block, so every rank raises the same error when one rank's input is
    malformed or ranks disagree on shape or dtype; then the batch is gathered
    and its size and values are checked on the global batch: every rank
    judges the same rows and raises the same error, so a rank holding 0 or 1
    rows (or a NaN) never leaves the others waiting in a collective. On the
    CPU one read of the largest magnitude checks finiteness and, when the
    statistics of a float32 batch could overflow (a squared norm or covariance
    past 3.4e38), moves the computation to float64 so finite input always
    gives the right value. On an accelerator nothing is read: both checks are
    queued (``reglab.core.checks``).
    """
    distributed = gather and is_distributed()
    with agree(who, enabled=distributed) as agreed:
        z = agreed.describe(arg, _check_local(who, z, arg, flatten, distributed))
    z = _gather(z, enabled=gather, sizes=agreed.sizes[0] if agreed.sizes else None)
    return _check_global(who, z, arg, min_batch, distributed)


def prepare_labeled_batch(
    who: str, z: torch.Tensor, labels: object, *, arg: str = "embeddings", min_batch: int = 2, gather: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """``prepare_batch`` for a (n, d) batch with one integer label per row (equal labels: same class).

    The labels are checked (1-D, integer, one per row) in the same agreement over ranks as the
    embeddings, so every rank raises the same error, and gathered with them (without autograd)
    under DDP: row i of the gathered batch keeps its label.
    """
    distributed = gather and is_distributed()
    with agree(who, enabled=distributed) as agreed:
        z = agreed.describe(arg, _check_local(who, z, arg, False, distributed))
        check_tensor(who, labels, arg="labels", ndim=1, floating=False, finite=False, nonempty=not distributed)
        assert isinstance(labels, torch.Tensor)
        if labels.is_floating_point() or labels.is_complex():
            raise RegularizerInputError(
                f"{who} expects integer labels (one per row; equal labels = same class), got dtype {labels.dtype}"
            )
        if labels.shape[0] != z.shape[0]:
            raise RegularizerInputError(
                f"{who} expects one label per row of {arg} ({z.shape[0]}), got labels of shape {tuple(labels.shape)}"
            )
        agreed.describe("labels", labels)
    sizes = agreed.sizes or [None, None]
    z = _check_global(who, _gather(z, enabled=gather, sizes=sizes[0]), arg, min_batch, distributed)
    if distributed:
        labels = all_gather_nograd(labels, sizes=sizes[1])
    return z, labels.to(z.device)


def prepare_views(
    who: str, z1: torch.Tensor, z2: torch.Tensor, *, min_batch: int = 2, gather: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """``prepare_batch`` for two views of one batch (same shape), checked in one agreement over ranks."""
    distributed = gather and is_distributed()
    with agree(who, enabled=distributed) as agreed:
        check_same_shape(who, z1, z2)
        z1 = agreed.describe("first view", _check_local(who, z1, "first view", False, distributed))
        z2 = agreed.describe("second view", _check_local(who, z2, "second view", False, distributed))
    sizes = agreed.sizes or [None, None]
    z1 = _check_global(who, _gather(z1, enabled=gather, sizes=sizes[0]), "first view", min_batch, distributed)
    z2 = _check_global(who, _gather(z2, enabled=gather, sizes=sizes[1]), "second view", min_batch, distributed)
    return z1, z2


def prepare_reference(
    who: str, z: torch.Tensor, *, arg: str = "embeddings", min_batch: int = 2, gather: bool = True,
    flatten: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's batch and the detached global batch it is compared with (``gather=True``: all ranks'
    rows, without autograd; else the batch itself), validated as ``prepare_batch`` does.

    ``min_batch`` and the value checks apply to the reference, so under DDP a
    rank may hold 0 or 1 rows; the local batch gets the reference's dtype.
    """
    distributed = gather and is_distributed()
    with agree(who, enabled=distributed) as agreed:
        z = agreed.describe(arg, _check_local(who, z, arg, flatten, distributed))
    ref = all_gather_nograd(z.detach(), sizes=agreed.sizes[0]) if agreed.sizes else z.detach()
    ref = _check_global(who, ref, arg, min_batch, distributed)
    return z.to(ref.dtype), ref


def _check_local(who: str, z: object, arg: str, flatten: bool, distributed: bool) -> torch.Tensor:
    """This rank's structural checks. Under DDP a rank may hold no rows: the size is judged globally."""
    if flatten:
        z = check_tensor(who, z, arg=arg, min_ndim=2, finite=False, nonempty=not distributed).flatten(1)
    return check_tensor(who, z, arg=arg, ndim=2, finite=False, nonempty=not distributed)


def _check_global(who: str, z: torch.Tensor, arg: str, min_batch: int, distributed: bool) -> torch.Tensor:
    """The checks on the (global) batch's size and values, and the upcast; the same on every rank."""
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
    batch is already a queued error, see ``_defer_batch_checks``)."""

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
    ``reglab.ops.linalg.gram_offdiag_sq_sum``: when n < d from the n×n Gram
    (``‖ZcZcᵀ‖_F² − Σ_j Var_j²·(n−1)²``, O(n²d) time and O(n²) memory instead of
    O(nd²) and O(d²)), else from the d×d product with its diagonal zeroed; one
    GEMM forward and one backward either way.
    """
    n, d = z.shape
    zc = z - z.mean(dim=0, keepdim=True)
    return gram_offdiag_sq_sum(zc) / ((n - 1) ** 2 * d)
