"""Shared tensor math for the penalties: one place, no copies between families."""

from __future__ import annotations

import torch


def flatten_rows(w: torch.Tensor) -> torch.Tensor:
    """View a weight as a matrix of output units: (out, in * k...)."""
    return w.reshape(w.shape[0], -1)


def normalize_rows(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows scaled to unit L2 norm (rows of zero norm stay zero)."""
    return x / x.norm(dim=1, keepdim=True).clamp_min(eps)


def gram(x: torch.Tensor) -> torch.Tensor:
    """``x @ x.T`` for a (n, d) matrix or a batch (b, n, d)."""
    return x @ x.transpose(-1, -2)


def pairwise_sq_dists(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Squared Euclidean distances between rows, clamped at 0.

    Computed as ‖x‖² + ‖y‖² − 2xyᵀ (one matmul); for ``y is None`` the
    diagonal is set to exactly 0.
    """
    same = y is None
    y = x if y is None else y
    xx = (x * x).sum(-1, keepdim=True)
    yy = (y * y).sum(-1, keepdim=True).transpose(-1, -2)
    d = (xx + yy - 2.0 * (x @ y.transpose(-1, -2))).clamp_min(0.0)
    if same:
        d = d - torch.diag_embed(torch.diagonal(d, dim1=-2, dim2=-1))
    return d


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    """The off-diagonal entries of a square matrix, flattened."""
    n = m.shape[-1]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def covariance(z: torch.Tensor, *, unbiased: bool = True) -> torch.Tensor:
    """Covariance of the columns of a (n, d) batch: (d, d)."""
    zc = z - z.mean(dim=0, keepdim=True)
    denom = z.shape[0] - 1 if unbiased else z.shape[0]
    return (zc.T @ zc) / denom


MHE_EPS = 1e-4
# Floor on r²: coincident filters (r = 0) would give inf/NaN energy; with the
# floor they give a large finite energy that still pushes them apart.
MHE_MIN_SQ_DIST = 1e-6


def hyperspherical_energy(rows: torch.Tensor, s: float, half_space: bool = False) -> torch.Tensor:
    """Minimum-hyperspherical-energy term of Liu et al. (2018) over the rows of
    a (n, d) matrix or a batch (b, n, d): the mean over pairs i<j of
    f_s(‖ŵ_i − ŵ_j‖), f_s(r) = r^{−s} (s > 0) or log(1/r) (s = 0).
    Shared by the weight penalty ``mhe`` and the feature penalty ``mhe_features``."""
    w_hat = rows / (rows.pow(2).sum(-1, keepdim=True) + MHE_EPS).sqrt()
    if half_space:
        w_hat = torch.cat([w_hat, -w_hat], dim=-2)
    n = w_hat.shape[-2]
    # r² = 2 − 2⟨ŵ_i, ŵ_j⟩, the official code's squared distance (exact for unit rows).
    r2 = (2.0 - 2.0 * gram(w_hat)).clamp_min(MHE_MIN_SQ_DIST)
    iu = torch.triu_indices(n, n, offset=1, device=rows.device)
    pair = r2[..., iu[0], iu[1]]
    energy = -0.5 * torch.log(pair) if s == 0 else pair.pow(-0.5 * s)
    return energy.mean(-1)
