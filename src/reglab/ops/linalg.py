"""Linear algebra shared by several methods: row views, Grams, pairwise distances, covariances, spectra."""

from __future__ import annotations

import torch

__all__ = [
    "flatten_rows", "power_of_two_scale", "safe_norm", "normalize_rows", "gram", "pairwise_sq_dists", "off_diagonal", "covariance",
    "spectrum_entropy", "weighted_moments", "eigh_descending",
]  # fmt: skip


def flatten_rows(w: torch.Tensor) -> torch.Tensor:
    """View a weight as a matrix of output units: (out, in * k...)."""
    return w.reshape(w.shape[0], -1)


def power_of_two_scale(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """The power of two at or below ``max|x|`` (over ``dim``, kept), detached. Dividing
    by it is exact in floating point, so scaled computations round exactly as the
    unscaled ones wherever those do not overflow."""
    amax = x.detach().abs().amax(dim=dim, keepdim=True) if dim is not None else x.detach().abs().amax()
    return torch.exp2(torch.floor(torch.log2(amax.clamp_min(torch.finfo(x.dtype).tiny))))


def safe_norm(x: torch.Tensor, ord: float = 2.0, dim: int | None = None, keepdim: bool = False) -> torch.Tensor:
    """``‖x‖_ord`` computed as ``s·‖x/s‖`` with ``s`` a power of two near ``max|x|``
    (held constant): the squares never overflow (1e20-scale input in float32 gives a
    1e21 norm, not inf) nor underflow, and the value and gradient ``x/‖x‖`` are those
    of the plain norm."""
    scale = power_of_two_scale(x, dim)
    out = torch.linalg.vector_norm(x / scale, ord=ord, dim=dim, keepdim=dim is not None) * scale
    return out if keepdim or dim is None else out.squeeze(dim)


def normalize_rows(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows scaled to unit L2 norm (rows of zero norm stay zero); overflow-safe."""
    return x / safe_norm(x, dim=1, keepdim=True).clamp_min(eps)


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


def spectrum_entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy ``−Σ p log p`` of a spectrum, with 0·log 0 = 0."""
    return -torch.special.xlogy(p, p).sum()


def weighted_moments(x: torch.Tensor, p: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population covariance of the rows of x, optionally weighted by p (Σp = 1)."""
    if p is None:
        return x.mean(dim=0), covariance(x, unbiased=False)
    mu = p @ x
    xc = (x - mu) * p.sqrt()[:, None]
    return mu, xc.T @ xc


def eigh_descending(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors of a symmetric matrix, with a deterministic sign.

    Each eigenvector's largest-magnitude entry is made positive so numpy and
    torch inputs, and repeated fits, give the same matrix.
    """
    evals, evecs = torch.linalg.eigh(cov)
    evals, evecs = evals.flip(0), evecs.flip(1)
    idx = evecs.abs().argmax(dim=0)
    signs = torch.sign(evecs[idx, torch.arange(evecs.shape[1])])
    signs[signs == 0] = 1.0
    return evals, evecs * signs
