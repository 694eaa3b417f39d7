"""Diagnostics on a batch of embeddings ``z`` of shape (n, d).

Each function validates its input (``RegularizerInputError`` naming the
diagnostic), computes in float64 without autograd, and returns a Python
float (or a tensor for spectra), so it is safe to call in a training loop.
"""

from __future__ import annotations

import torch

from reglab import functional as RF
from reglab.core.errors import RegularizerInputError
from reglab.ops.linalg import normalize_rows
from reglab.ops.validation import check_tensor

__all__ = [
    "singular_values",
    "effective_rank",
    "rankme",
    "mean_pairwise_cosine",
    "partition_isotropy",
    "uniformity",
    "alignment",
    "dead_units",
    "matrix_nuclear_norm",
]

#: RankMe's ε (Garrido et al. 2023, Eq. 1: p_k = σ_k/‖σ‖₁ + ε, "ε = 1e-7" for float32).
RANKME_EPS = 1e-7


def _embeddings(who: str, z: object, *, min_rows: int = 1) -> torch.Tensor:
    z = check_tensor(who, z, arg="embeddings", ndim=2)
    if z.shape[0] < min_rows:
        raise RegularizerInputError(
            f"{who} needs a batch of at least {min_rows} embeddings, got shape {tuple(z.shape)}"
        )
    return z.detach().to(torch.float64)


def singular_values(z: torch.Tensor, *, center: bool = False) -> torch.Tensor:
    """Singular values of the (n, d) embedding matrix, descending (float64).

    ``center=True`` subtracts the batch mean first (the spectrum of the
    covariance, up to a square and a factor ``n − 1``).
    """
    x = _embeddings("singular_values", z)
    if center:
        x = x - x.mean(dim=0, keepdim=True)
    with torch.no_grad():
        return torch.linalg.svdvals(x)


def effective_rank(z: torch.Tensor) -> float:
    """Effective rank (Roy & Vetterli 2007, "The effective rank: a measure of
    effective dimensionality", EUSIPCO, Def. 1): ``exp(H(p))`` with
    ``p_k = σ_k / Σ_j σ_j`` the L1-normalized singular values and
    ``H(p) = −Σ p_k log p_k`` (0·log 0 = 0). Between 1 (rank one) and
    ``min(n, d)`` (all singular values equal). Computed by
    ``reglab.functional.effective_rank`` with ``ε = 0``.
    """
    x = _embeddings("effective_rank", z, min_rows=2)
    return float(RF.effective_rank(x, eps=0.0, gather=False))


def rankme(z: torch.Tensor, *, eps: float = RANKME_EPS) -> float:
    """RankMe (Garrido et al. 2023, "RankMe: Assessing the downstream
    performance of pretrained self-supervised representations by their
    rank", ICML, Eq. 1): the effective rank with ``p_k = σ_k/‖σ‖₁ + ε``,
    ``ε = 1e-7``, on the uncentered embeddings as in the paper.
    """
    x = _embeddings("rankme", z, min_rows=2)
    return float(RF.effective_rank(x, eps=eps, gather=False))


def mean_pairwise_cosine(z: torch.Tensor) -> float:
    """Mean cosine similarity over all distinct pairs of embeddings.

    The anisotropy measure of Ethayarajh (2019, "How contextual are
    contextualized word representations?", Sec. 3.3), computed on every pair
    instead of a random sample: about 0 for isotropic embeddings, near 1
    when all embeddings point the same way.
    """
    x = normalize_rows(_embeddings("mean_pairwise_cosine", z, min_rows=2))
    n = x.shape[0]
    # Σ_{i≠j} cos = ‖Σ_i x̂_i‖² − Σ_i ‖x̂_i‖², one pass instead of an n×n matrix
    total = x.sum(dim=0).pow(2).sum() - x.pow(2).sum()
    return float(total / (n * (n - 1)))


def partition_isotropy(z: torch.Tensor) -> float:
    """Partition-function isotropy (Mu & Viswanath 2018, "All-but-the-top",
    ICLR, Sec. 2.2 / Arora et al. 2016): ``I = min_c F(c) / max_c F(c)``
    with ``F(c) = Σ_i exp(cᵀ z_i)`` and ``c`` ranging over the eigenvectors
    of ``ZᵀZ`` (their approximation of the unit sphere), taken with both
    signs so the value does not depend on the eigensolver's sign choice.
    1 is perfectly isotropic; near 0 when a common direction dominates.
    """
    x = _embeddings("partition_isotropy", z)
    _, vecs = torch.linalg.eigh(x.T @ x)
    vecs = torch.cat([vecs, -vecs], dim=1)
    # log-sum-exp keeps large projections finite; the ratio is exp of a difference
    log_f = torch.logsumexp(x @ vecs, dim=0)
    return float(torch.exp(log_f.min() - log_f.max()))


def uniformity(z: torch.Tensor, *, t: float = 2.0) -> float:
    """Uniformity (Wang & Isola 2020, "Understanding contrastive representation
    learning through alignment and uniformity on the hypersphere", ICML,
    Eq. 5): ``log mean_{i<j} exp(−t‖ẑ_i − ẑ_j‖²)`` on L2-normalized
    embeddings, ``t = 2`` (their default); ``reglab.functional.uniformity``
    on detached float64 embeddings. Lower is more uniform; 0 is full collapse.
    """
    x = _embeddings("uniformity", z, min_rows=2)
    return float(RF.uniformity(x, t=t, normalize=True, gather=False))


def alignment(z1: torch.Tensor, z2: torch.Tensor, *, alpha: float = 2.0) -> float:
    """Alignment (Wang & Isola 2020, Eq. 4): ``mean_i ‖ẑ1_i − ẑ2_i‖^α`` over
    positive pairs (row i of both views), L2-normalized, ``α = 2``;
    ``reglab.functional.alignment``. Lower is better aligned.
    """
    a = _embeddings("alignment", z1)
    b = _embeddings("alignment", z2)
    if a.shape != b.shape:
        raise RegularizerInputError(
            f"alignment needs two views of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return float(RF.alignment(a, b, alpha=alpha, normalize=True))


def dead_units(activations: torch.Tensor, *, tol: float = 0.0) -> float:
    """Fraction of units that never fire on the batch: ``|a| ≤ tol`` for every
    sample. Units are the columns of a (n, d) batch, or the channels of a
    (n, c, ...) feature map (a channel is dead when it is zero everywhere).
    """
    a = check_tensor("dead_units", activations, arg="activations", min_ndim=2).detach()
    per_unit = a.transpose(0, 1).reshape(a.shape[1], -1).abs().amax(dim=1)
    return float((per_unit <= tol).double().mean())


def matrix_nuclear_norm(z: torch.Tensor, *, exact: bool = False) -> float:
    """Matrix Nuclear-Norm (Li et al. 2024, "Large Language Model Evaluation via Matrix
    Nuclear-Norm", arXiv:2410.10672) of an (n, d) batch of representations, per row.

    As the official code (MLGroupJLU/MatrixNuclearNorm ``code/MNN.py``,
    ``normalize`` and ``matrix_nuclear_norm``): centre the rows by their mean,
    scale each row to unit L2 norm, then take the L1,2 approximation of the
    nuclear norm, the sum of the D = min(n, d) largest column L2 norms (no
    SVD, O(nd)); divided by n, as the script reports it per token.
    ``exact=True`` returns the exact nuclear norm (sum of singular values) of
    the same normalized matrix divided by n, for comparison. Higher = more
    spread (discriminative and diverse) representations; both at most
    ``√(min(n, d)/n)`` (unit rows). The L1,2 proxy depends on the basis
    (column norms): it sees collapse onto coordinate axes, not onto
    arbitrary directions, unlike the exact value.
    """
    x = _embeddings("matrix_nuclear_norm", z, min_rows=2)
    x = x - x.mean(dim=0, keepdim=True)
    norms = x.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise RegularizerInputError(
            "matrix_nuclear_norm got a row equal to the batch mean (zero norm after centring); "
            "it needs rows that differ from their mean"
        )
    x = x / norms
    if exact:
        return float(torch.linalg.svdvals(x).sum()) / x.shape[0]
    d = min(x.shape)
    return float(x.norm(dim=0).sort(descending=True).values[:d].sum()) / x.shape[0]
