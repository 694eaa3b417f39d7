"""Batches of embeddings for the representation penalties: validate, gather, upcast; shared statistics.

Batch-statistic penalties compute their statistics on the global batch under
DDP (:func:`reglab.core.distributed.gather`, whose backward makes every
rank's gradient that of the single-process loss on the concatenated batch).
Statistics are computed in float32 with autocast disabled, so a bf16/fp16
forward gives the float32 value (a bf16 covariance or log-sum-exp is not
accurate enough to train on). Inputs already in float64 stay float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reglab.core.distributed import gather as _gather
from reglab.core.errors import RegularizerInputError
from reglab.ops.linalg import off_diagonal
from reglab.ops.validation import check_tensor

__all__ = ["prepare_batch", "no_autocast", "variance_hinge", "covariance_offdiag"]


def prepare_batch(
    who: str, z: torch.Tensor, *, arg: str = "embeddings", min_batch: int = 2, gather: bool = True
) -> torch.Tensor:
    """Validate a (n, d) batch, gather it over ranks, upcast to >= float32."""
    check_tensor(who, z, arg=arg, ndim=2)
    if z.shape[0] < min_batch:
        raise RegularizerInputError(
            f"{who} needs a batch of at least {min_batch} embeddings, got shape {tuple(z.shape)}"
        )
    z = _gather(z, enabled=gather)
    if z.dtype not in (torch.float32, torch.float64):
        z = z.float()
    return z


def no_autocast(z: torch.Tensor) -> torch.autocast:
    """A context that turns autocast off on ``z``'s device."""
    return torch.autocast(device_type=z.device.type, enabled=False)


def variance_hinge(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """VICReg's variance term ``mean_j max(0, γ − sqrt(Var(z_·j) + ε))`` (unbiased Var).

    Shared by VICReg and VCReg. No validation: called on already-validated
    float tensors.
    """
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def covariance_offdiag(z: torch.Tensor) -> torch.Tensor:
    """VICReg's covariance term ``(1/d) Σ_{i≠j} Cov(z)_ij²`` (unbiased Cov).

    Shared by VICReg and VCReg. Without forming the d×d matrix when n < d:
    with centred ``Zc`` (n, d), ``Σ_ij C_ij² = ‖ZcᵀZc‖_F²/(n−1)² =
    ‖Zc Zcᵀ‖_F²/(n−1)²`` (the two Gram matrices share their non-zero
    spectrum), and the diagonal is the per-column variance. That costs
    O(n²d) time and O(n²) memory instead of O(nd²) and O(d²).
    """
    n, d = z.shape
    zc = z - z.mean(dim=0, keepdim=True)
    if n < d:
        k = zc @ zc.T
        total = k.pow(2).sum()
        diag = zc.pow(2).sum(dim=0)
        off = (total - diag.pow(2).sum()) / (n - 1) ** 2
    else:
        cov = (zc.T @ zc) / (n - 1)
        off = off_diagonal(cov).pow(2).sum()
    return off / d
