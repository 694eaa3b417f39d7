"""Representation penalties: pure functions of a batch of embeddings.

Each takes (n, d) embeddings (or two views of them), returns a scalar tensor,
and validates its input with an error naming the penalty. Batch-statistic
penalties take ``gather=True``: under a multi-process group they compute
their statistics on the global batch through :func:`reglab.distributed.gather`
(whose backward makes every rank's gradient that of the single-process loss
on the concatenated batch, once DDP has averaged it).

Statistics are computed in float32 with autocast disabled, so a bf16/fp16
forward gives the float32 value (a bf16 covariance or log-sum-exp is not
accurate enough to train on). Inputs already in float64 stay float64.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from reglab._validation import RegularizerInputError, check_positive, check_tensor
from reglab.distributed import all_gather_nograd
from reglab.distributed import gather as _gather
from reglab.functional._common import gram, hyperspherical_energy, normalize_rows, off_diagonal, pairwise_sq_dists

__all__ = [
    "VICRegTerms",
    "VCRegTerms",
    "BarlowTwinsTerms",
    "vicreg_terms",
    "vicreg",
    "vcreg_terms",
    "vcreg",
    "barlow_twins_terms",
    "barlow_twins",
    "alignment",
    "uniformity",
    "mhe_features",
    "vne",
    "spectral_entropy",
    "effective_rank",
    "dispersive",
    "flops",
    "l1_activation",
    "least_volume",
    "LDRegTerms",
    "ldreg_terms",
    "ldreg",
    "variance_hinge",
    "covariance_offdiag",
]


# ------------------------------------------------------------------ helpers
def _prep(who: str, z: torch.Tensor, *, arg: str = "embeddings", min_batch: int = 2, gather: bool = True) -> torch.Tensor:
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


def _same_shape(who: str, a: torch.Tensor, b: torch.Tensor) -> None:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape != b.shape:
        raise RegularizerInputError(
            f"{who} expects two views of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def _no_autocast(z: torch.Tensor) -> torch.autocast:
    return torch.autocast(device_type=z.device.type, enabled=False)


def variance_hinge(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """VICReg's variance term ``mean_j max(0, γ − sqrt(Var(z_·j) + ε))`` (unbiased Var).

    No validation: called on already-validated float tensors.
    """
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def covariance_offdiag(z: torch.Tensor) -> torch.Tensor:
    """VICReg's covariance term ``(1/d) Σ_{i≠j} Cov(z)_ij²`` (unbiased Cov).

    Without forming the d×d matrix when n < d: with centred ``Zc`` (n, d),
    ``Σ_ij C_ij² = ‖ZcᵀZc‖_F²/(n−1)² = ‖Zc Zcᵀ‖_F²/(n−1)²`` (the two Gram
    matrices share their non-zero spectrum), and the diagonal is the
    per-column variance. That costs O(n²d) time and O(n²) memory instead of
    O(nd²) and O(d²).
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


# ------------------------------------------------------------------ VICReg
class VICRegTerms(NamedTuple):
    invariance: torch.Tensor
    variance: torch.Tensor
    covariance: torch.Tensor


def vicreg_terms(
    z1: torch.Tensor, z2: torch.Tensor, *, gamma: float = 1.0, eps: float = 1e-4, gather: bool = True
) -> VICRegTerms:
    """The three unweighted VICReg terms (Bardes et al., 2022), as in the official code.

    invariance = mean over all entries of (z1 − z2)²; variance = the mean of
    the two views' hinge terms; covariance = the sum of the two views'
    off-diagonal terms (facebookresearch/vicreg, main_vicreg.py).
    """
    who = "VICReg"
    _same_shape(who, z1, z2)
    z1 = _prep(who, z1, arg="first view", gather=gather)
    z2 = _prep(who, z2, arg="second view", gather=gather)
    with _no_autocast(z1):
        inv = F.mse_loss(z1, z2)
        var = 0.5 * (variance_hinge(z1, gamma, eps) + variance_hinge(z2, gamma, eps))
        cov = covariance_offdiag(z1) + covariance_offdiag(z2)
    return VICRegTerms(inv, var, cov)


def vicreg(
    z1: torch.Tensor,
    z2: torch.Tensor,
    *,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    gamma: float = 1.0,
    eps: float = 1e-4,
    gather: bool = True,
) -> torch.Tensor:
    """VICReg loss ``λ·inv + μ·var + ν·cov`` with the paper's 25/25/1."""
    t = vicreg_terms(z1, z2, gamma=gamma, eps=eps, gather=gather)
    return sim_coeff * t.invariance + std_coeff * t.variance + cov_coeff * t.covariance


# ------------------------------------------------------------------ VCReg
class VCRegTerms(NamedTuple):
    variance: torch.Tensor
    covariance: torch.Tensor


def vcreg_terms(z: torch.Tensor, *, gamma: float = 1.0, eps: float = 1e-4, gather: bool = True) -> VCRegTerms:
    """Single-view VICReg variance and covariance terms (unweighted)."""
    z = _prep("VCReg", z, gather=gather)
    with _no_autocast(z):
        return VCRegTerms(variance_hinge(z, gamma, eps), covariance_offdiag(z))


def vcreg(
    z: torch.Tensor,
    *,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    gamma: float = 1.0,
    eps: float = 1e-4,
    gather: bool = True,
) -> torch.Tensor:
    t = vcreg_terms(z, gamma=gamma, eps=eps, gather=gather)
    return std_coeff * t.variance + cov_coeff * t.covariance


# ------------------------------------------------------------- Barlow Twins
class BarlowTwinsTerms(NamedTuple):
    on_diagonal: torch.Tensor
    off_diagonal: torch.Tensor


def _standardize(z: torch.Tensor, eps: float) -> torch.Tensor:
    # BatchNorm1d(affine=False) in training mode: biased variance, eps inside the sqrt.
    return (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + eps)


def barlow_twins_terms(
    z1: torch.Tensor, z2: torch.Tensor, *, eps: float = 1e-5, gather: bool = True
) -> BarlowTwinsTerms:
    """Barlow Twins terms (Zbontar et al., 2021) on the cross-correlation
    ``C = BN(z1)ᵀ BN(z2) / n``: ``Σ_i (1 − C_ii)²`` and ``Σ_{i≠j} C_ij²``.

    The diagonal is O(nd); for n < d the off-diagonal sum comes from the two
    n×n Gram matrices, never forming the d×d C.
    """
    who = "BarlowTwins"
    _same_shape(who, z1, z2)
    z1 = _prep(who, z1, arg="first view", gather=gather)
    z2 = _prep(who, z2, arg="second view", gather=gather)
    with _no_autocast(z1):
        n, d = z1.shape
        a, b = _standardize(z1, eps), _standardize(z2, eps)
        diag = (a * b).sum(dim=0) / n
        if n < d:
            # ‖AᵀB‖_F² = Σ (AAᵀ)∘(BBᵀ): n×n Gram matrices instead of the d×d C
            total = (gram(a) * gram(b)).sum() / n**2
        else:
            total = (a.T @ b).pow(2).sum() / n**2
        on = (diag - 1).pow(2).sum()
        off = total - diag.pow(2).sum()
    return BarlowTwinsTerms(on, off)


def barlow_twins(
    z1: torch.Tensor, z2: torch.Tensor, *, lambd: float = 0.0051, eps: float = 1e-5, gather: bool = True
) -> torch.Tensor:
    t = barlow_twins_terms(z1, z2, eps=eps, gather=gather)
    return t.on_diagonal + lambd * t.off_diagonal


# ------------------------------------------------ alignment and uniformity
def alignment(z1: torch.Tensor, z2: torch.Tensor, *, alpha: float = 2.0, normalize: bool = True) -> torch.Tensor:
    """Wang & Isola (2020) alignment ``E‖f(x) − f(y)‖₂^α`` over positive pairs.

    Per-pair, so a mean over ranks needs no gather (DDP's averaging of equal
    local batch sizes gives the global mean).
    """
    who = "Alignment"
    check_positive(who, "alpha", alpha)
    _same_shape(who, z1, z2)
    z1 = _prep(who, z1, arg="first view", min_batch=1, gather=False)
    z2 = _prep(who, z2, arg="second view", min_batch=1, gather=False)
    with _no_autocast(z1):
        if normalize:
            z1, z2 = normalize_rows(z1), normalize_rows(z2)
        return (z1 - z2).norm(dim=1).pow(alpha).mean()


def uniformity(z: torch.Tensor, *, t: float = 2.0, normalize: bool = True, gather: bool = True) -> torch.Tensor:
    """Wang & Isola (2020) uniformity ``log E_{i<j} exp(−t‖z_i − z_j‖²)``."""
    who = "Uniformity"
    check_positive(who, "t", t)
    z = _prep(who, z, gather=gather)
    with _no_autocast(z):
        if normalize:
            z = normalize_rows(z)
        n = z.shape[0]
        d2 = pairwise_sq_dists(z)
        iu = torch.triu_indices(n, n, offset=1, device=z.device)
        vals = -t * d2[iu[0], iu[1]]
        return torch.logsumexp(vals, dim=0) - math.log(vals.numel())


def mhe_features(z: torch.Tensor, *, s: float = 0.0, half_space: bool = False, gather: bool = True) -> torch.Tensor:
    """Hyperspherical energy of a batch of embeddings: MHE (Liu et al., 2018)
    with the batch's feature vectors in place of a layer's filters, i.e. the
    mean over pairs i<j of f_s(‖ẑ_i − ẑ_j‖) with f_s(r) = r^{−s} (s > 0) or
    log(1/r) (s = 0); minimizing it spreads the embeddings over the sphere."""
    who = "MHEFeatures"
    if not (isinstance(s, (int, float)) and not isinstance(s, bool) and s >= 0):
        raise RegularizerInputError(f"{who} expects s >= 0, got {s!r}")
    z = _prep(who, z, gather=gather)
    with _no_autocast(z):
        return hyperspherical_energy(z, float(s), bool(half_space))


# --------------------------------------------------------- spectral terms
def _spectrum_entropy(p: torch.Tensor) -> torch.Tensor:
    # 0·log 0 = 0, as the official VNE code's nansum does.
    return -torch.special.xlogy(p, p).sum()


def vne(h: torch.Tensor, *, gather: bool = True) -> torch.Tensor:
    """Von Neumann entropy of ``ρ = ZᵀZ/N`` with ``Z`` the row-normalized batch
    (Kim et al., CVPR 2023; jaeill/CVPR23-VNE). The eigenvalues of ρ are the
    squared singular values of ``Z/√N``; they sum to 1."""
    z = _prep("VNE", h, gather=gather)
    with _no_autocast(z):
        z = normalize_rows(z)
        lam = torch.linalg.svdvals(z / math.sqrt(z.shape[0])).pow(2)
        return _spectrum_entropy(lam)


def spectral_entropy(z: torch.Tensor, *, eps: float = 1e-7, gather: bool = True) -> torch.Tensor:
    """Entropy of the normalized singular values ``p_k = σ_k/Σσ + ε`` of the
    batch (Roy & Vetterli, 2007; ε as in RankMe, Garrido et al., 2023)."""
    z = _prep("EffectiveRank", z, gather=gather)
    with _no_autocast(z):
        s = torch.linalg.svdvals(z)
        # clamp: an all-zero batch gives a uniform-eps spectrum instead of NaN, with no host sync
        p = s / s.sum().clamp_min(torch.finfo(s.dtype).tiny) + eps
        return _spectrum_entropy(p)


def effective_rank(z: torch.Tensor, *, eps: float = 1e-7, gather: bool = True) -> torch.Tensor:
    """``exp(spectral_entropy(z))``: between 1 and min(n, d)."""
    return spectral_entropy(z, eps=eps, gather=gather).exp()


# --------------------------------------------------------------- dispersive
def dispersive(z: torch.Tensor, *, tau: float = 1.0, gather: bool = True) -> torch.Tensor:
    """Dispersive loss, InfoNCE-L2 variant (Wang & He, 2025):
    ``log mean_{i,j} exp(−‖z_i − z_j‖² / (τ·D))`` over all N² ordered pairs
    (the diagonal included, as the paper's snippet does), z flattened per sample."""
    who = "Dispersive"
    check_positive(who, "tau", tau)
    check_tensor(who, z, arg="activations", min_ndim=2)
    z = _prep(who, z.reshape(z.shape[0], -1), arg="activations", gather=gather)
    with _no_autocast(z):
        n, d = z.shape
        vals = -pairwise_sq_dists(z) / (tau * d)
        return torch.logsumexp(vals.flatten(), dim=0) - math.log(n * n)


# ---------------------------------------------------------------- sparsity
def flops(z: torch.Tensor, *, gather: bool = True) -> torch.Tensor:
    """FLOPS regularizer (Paria et al., 2020): ``Σ_j (mean_i |z_ij|)²``."""
    z = _prep("FLOPS", z, min_batch=1, gather=gather)
    with _no_autocast(z):
        return z.abs().mean(dim=0).pow(2).sum()


def l1_activation(z: torch.Tensor) -> torch.Tensor:
    """Activation sparsity ``mean_i Σ_j |z_ij|`` (per-sample L1, batch mean)."""
    check_tensor("L1Activation", z, arg="activations", min_ndim=1)
    z = z if z.dtype in (torch.float32, torch.float64) else z.float()
    with _no_autocast(z):
        if z.ndim == 1:
            return z.abs().sum()
        return z.abs().reshape(z.shape[0], -1).sum(dim=1).mean()


# ------------------------------------------------------------- least volume
def least_volume(z: torch.Tensor, *, eta: float = 1e-2, gather: bool = True) -> torch.Tensor:
    """Least Volume penalty (Chen & Fuge, ICLR 2024): the geometric mean of the
    per-dimension standard deviations, ``exp(mean_j log(std_j(z) + η))``
    (unbiased std; IDEALLab/Least_Volume_ICLR2024, ``VolumeAE.loss_spar``)."""
    who = "LeastVolume"
    check_positive(who, "eta", eta)
    z = _prep(who, z, arg="latent codes", gather=gather)
    with _no_autocast(z):
        return torch.exp(torch.log(z.std(dim=0) + eta).mean())


# ------------------------------------------------------------------- LDReg
class LDRegTerms(NamedTuple):
    penalty: torch.Tensor
    lid: torch.Tensor  # geometric mean of the per-sample LID estimates (detached)


def ldreg_terms(z: torch.Tensor, *, k: int = 16, gather: bool = True) -> LDRegTerms:
    """LDReg (Huang et al., ICLR 2024): ``mean_i −|log LID_i|`` with the
    method-of-moments LID of each row of ``z`` against the detached batch.

    Following HanxunH/LDReg (``lid.py: lid_mom_est``, ``losses/ntxent_lid_reg.py``):
    with ``r_1 ≤ … ≤ r_k`` the sorted distances to the reference set after the
    point itself (index 0), ``m = mean(r_1..r_{k−1})`` and ``LID = m / (r_k − m)``;
    ``k`` is clamped to the reference size − 2. The reference is the batch,
    all-gathered over ranks without gradient (``gather=True``), so each row's
    gradient flows only through its own distances, as in the official code.
    """
    who = "LDReg"
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        raise RegularizerInputError(f"{who} expects k to be an integer >= 2, got {k!r}")
    check_tensor(who, z, arg="features", min_ndim=2)
    z = _prep(who, z.reshape(z.shape[0], -1), arg="features", min_batch=3, gather=False)
    ref = all_gather_nograd(z.detach()) if gather else z.detach()
    with _no_autocast(z):
        kk = min(k, ref.shape[0] - 2)
        # clamp before sqrt: the self-distance is ~0, where sqrt's gradient is infinite
        r, _ = torch.sort(pairwise_sq_dists(z, ref).clamp_min(1e-12).sqrt(), dim=1)
        m = r[:, 1:kk].mean(dim=1)
        lid = m / (r[:, kk] - m)
        log_lid = torch.log(lid)
        return LDRegTerms(-log_lid.abs().mean(), log_lid.detach().mean().exp())


def ldreg(z: torch.Tensor, *, k: int = 16, gather: bool = True) -> torch.Tensor:
    return ldreg_terms(z, k=k, gather=gather).penalty
