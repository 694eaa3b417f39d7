"""Weight penalties: pure functions of one parameter tensor.

Each returns a scalar tensor, is differentiable, and validates its input
(floating dtype, non-empty, finite) with an error naming the penalty.

Matrix views: a weight of shape ``(out, in, *k)`` is read as the matrix
``(out, in·k…)`` whose rows are output units/filters
(:func:`reglab.functional._common.flatten_rows`).
"""

from __future__ import annotations

import math

import torch

from reglab._validation import RegularizerInputError, check_choice, check_tensor
from reglab.functional._common import flatten_rows, gram, hyperspherical_energy

__all__ = [
    "l1",
    "l2",
    "elastic_net",
    "group_lasso",
    "group_lasso_global",
    "sparse_group_lasso",
    "soft_orthogonality",
    "srip",
    "norm_loss",
    "mhe",
    "spectral_norm",
    "nuclear_norm",
    "l2_sp",
]


def l1(w: torch.Tensor) -> torch.Tensor:
    """Lasso penalty ``‖w‖₁ = Σ|w_i|`` (Tibshirani, 1996)."""
    check_tensor("l1", w, arg="weight")
    return w.abs().sum()


def l2(w: torch.Tensor) -> torch.Tensor:
    """Ridge / weight-decay penalty ``½‖w‖₂²``.

    The ½ makes the gradient ``w``, so ``L2(λ)`` matches SGD weight decay
    ``λ`` exactly (``torch.optim.SGD(weight_decay=λ)``).
    """
    check_tensor("l2", w, arg="weight")
    return 0.5 * w.pow(2).sum()


def _check_ratio(who: str, name: str, value: float) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0
    if not ok:
        raise RegularizerInputError(f"{who} expects {name} in [0, 1], got {value!r}")
    return float(value)


def elastic_net(w: torch.Tensor, l1_ratio: float = 0.5) -> torch.Tensor:
    """Elastic net ``ρ‖w‖₁ + (1−ρ)·½‖w‖₂²`` (Zou & Hastie, 2005).

    The glmnet / scikit-learn parameterization with ``ρ = l1_ratio``.
    """
    check_tensor("elastic_net", w, arg="weight")
    rho = _check_ratio("elastic_net", "l1_ratio", l1_ratio)
    return rho * w.abs().sum() + (1.0 - rho) * 0.5 * w.pow(2).sum()


# ------------------------------------------------------------------ groups
def group_rows(who: str, w: torch.Tensor, groups: str) -> torch.Tensor:
    """The weight as a matrix with one group per row.

    ``"out"``: rows of the flattened weight (output units / filters).
    ``"in"``: input units / channels, i.e. dim 1 with every other dim
    flattened into the group.
    """
    if groups == "out":
        return w.reshape(w.shape[0], -1) if w.ndim != 1 else w.reshape(-1, 1)
    if w.ndim < 2:
        raise RegularizerInputError(
            f"{who} with groups='in' needs a weight with at least 2 dimensions, got shape {tuple(w.shape)}"
        )
    return w.transpose(0, 1).reshape(w.shape[1], -1)


def _check_group_map(who: str, w: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise RegularizerInputError(f"{who} expects an integer tensor of group ids, got dtype {ids.dtype}")
    if ids.shape != w.shape:
        raise RegularizerInputError(
            f"{who} expects a group map with the weight's shape {tuple(w.shape)}, got {tuple(ids.shape)}"
        )
    if ids.numel() and int(ids.min()) < 0:
        raise RegularizerInputError(f"{who} expects non-negative group ids, got a minimum of {int(ids.min())}")
    return ids


def group_map_norms(w: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-group L2 norms for a user map of group ids.

    Returns ``(norms, sizes, inverse)``: one entry per distinct id (ids need
    not be contiguous) and, per element, the index of its group.
    """
    _, inverse = torch.unique(ids.reshape(-1).to(w.device), return_inverse=True)
    num = int(inverse.max()) + 1
    sq = torch.zeros(num, dtype=w.dtype, device=w.device).index_add(0, inverse, w.reshape(-1).pow(2))
    sizes = torch.bincount(inverse, minlength=num).to(w.dtype)
    # sqrt with subgradient 0 at an all-zero group (plain sqrt would give NaN there).
    pos = sq > 0
    norms = torch.where(pos, torch.where(pos, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))
    return norms, sizes, inverse


def group_lasso(w: torch.Tensor, groups: str | torch.Tensor = "out") -> torch.Tensor:
    """Group lasso ``Σ_g √p_g ‖w_g‖₂`` (Yuan & Lin, 2006).

    Each group's norm is scaled by the square root of its size ``p_g`` as in
    Yuan & Lin (2006) and Scardapane et al. (2017, "Group sparse
    regularization for deep neural networks", Eq. 5). ``groups`` is
    ``"out"`` (output units/filters: rows of the flattened weight), ``"in"``
    (input units/channels: dim 1) or an integer tensor of group ids with
    the weight's shape.
    """
    who = "group_lasso"
    check_tensor(who, w, arg="weight")
    if isinstance(groups, torch.Tensor):
        norms, sizes, _ = group_map_norms(w, _check_group_map(who, w, groups))
        return (sizes.sqrt() * norms).sum()
    check_choice(who, "groups", groups, ("out", "in"))
    rows = group_rows(who, w, groups)
    return math.sqrt(rows.shape[1]) * torch.linalg.vector_norm(rows, dim=1).sum()


def group_lasso_global(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Layer-level group lasso: each whole tensor is one group, ``Σ_t √p_t ‖w_t‖₂``."""
    if not tensors:
        raise RegularizerInputError("group_lasso (global scope) got an empty list of tensors")
    for w in tensors:
        check_tensor("group_lasso", w, arg="weight")
    norms = torch.stack(torch._foreach_norm(list(tensors), 2))
    sizes = torch.tensor([math.sqrt(w.numel()) for w in tensors], dtype=norms.dtype, device=norms.device)
    return (sizes * norms).sum()


def sparse_group_lasso(w: torch.Tensor, alpha: float = 0.95, groups: str | torch.Tensor = "out") -> torch.Tensor:
    """Sparse group lasso ``(1−α)·Σ_g √p_g ‖w_g‖₂ + α‖w‖₁`` (Simon et al., 2013)."""
    check_tensor("sparse_group_lasso", w, arg="weight")
    a = _check_ratio("sparse_group_lasso", "alpha", alpha)
    return (1.0 - a) * group_lasso(w, groups) + a * w.abs().sum()


# ------------------------------------------------------------ orthogonality
def _check_matrix(who: str, w: torch.Tensor) -> torch.Tensor:
    check_tensor(who, w, arg="weight", min_ndim=2)
    return flatten_rows(w)


def soft_orthogonality(w: torch.Tensor) -> torch.Tensor:
    """Soft orthogonality ``‖WWᵀ − I‖²_F`` on the flattened rows (Bansal et al., 2018).

    Uses the smaller Gram (``WᵀW − I`` when rows > cols), as the paper does
    for over-complete layers.
    """
    m = _check_matrix("soft_orthogonality", w)
    if m.shape[0] > m.shape[1]:
        m = m.T
    g = gram(m)
    return (g - torch.eye(g.shape[0], dtype=g.dtype, device=g.device)).pow(2).sum()


def _gram_minus_identity_matvec(m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(G − I)·v`` for the smaller Gram ``G`` of ``m``, without forming ``G``."""
    if m.shape[0] > m.shape[1]:
        return m.T @ (m @ v) - v
    return m @ (m.T @ v) - v


def srip(w: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SRIP ``σ(WᵀW − I)`` by two power-iteration steps from ``u`` (Bansal et al., 2018).

    With ``M = G − I`` (``G`` the smaller Gram of the flattened weight):
    ``v = Mu/‖Mu‖``, ``σ ≈ ‖Mv‖``. Returns ``(σ, v)``; feed ``v`` back as the
    next ``u`` (it is detached). Gradients flow through both steps, as in
    the official code (VITA-Group/Orthogonality-in-CNNs, ``l2_reg_ortho``).
    """
    who = "srip"
    m = _check_matrix(who, w)
    k = min(m.shape)
    check_tensor(who, u, arg="power-iteration vector", ndim=1)
    if u.shape[0] != k:
        raise RegularizerInputError(f"{who} expects a power-iteration vector of size {k}, got {tuple(u.shape)}")
    u = u.to(m.dtype)
    v1 = _gram_minus_identity_matvec(m, u)
    v = v1 / torch.linalg.vector_norm(v1).clamp_min(1e-12)
    sigma = torch.linalg.vector_norm(_gram_minus_identity_matvec(m, v))
    return sigma, v.detach()


def norm_loss(w: torch.Tensor) -> torch.Tensor:
    """Norm Loss ``Σ_i (1 − ‖w_i‖₂)²`` over output filters (Georgiou et al., 2021).

    A soft constraint toward the Oblique manifold (unit-norm rows).
    """
    check_tensor("norm_loss", w, arg="weight", min_ndim=2)
    return (1.0 - torch.linalg.vector_norm(flatten_rows(w), dim=1)).pow(2).sum()


#: Added to ‖w_i‖² before the square root, as in the official MHE code
#: (wy1iu/MHE, code/architecture.py, ``_add_thomson_constraint``).
def mhe(w: torch.Tensor, s: float = 0.0, half_space: bool = False) -> torch.Tensor:
    """Minimum hyperspherical energy (Liu et al., 2018).

    ``E_s = 1/(N(N−1)) Σ_{i≠j} f_s(‖ŵ_i − ŵ_j‖)`` with ``ŵ_i = w_i/‖w_i‖``
    over the N output filters, ``f_s(r) = r^{−s}`` (s > 0) or ``log(1/r)``
    (s = 0). ``half_space`` adds the reflected filters −ŵ_j (N → 2N).
    The mean over pairs and ``‖w_i‖ = √(Σw² + 1e-4)`` follow the official
    code; it computes s = 0 as ``−log r²`` (twice ours, a factor λ absorbs).
    r² is floored at 1e-6 (ours, not the paper's) so coincident filters give
    a large finite energy instead of inf/NaN.
    """
    who = "mhe"
    check_tensor(who, w, arg="weight", min_ndim=2)
    if not (isinstance(s, (int, float)) and not isinstance(s, bool) and s >= 0):
        raise RegularizerInputError(f"{who} expects s >= 0, got {s!r}")
    if w.shape[0] < 2 and not half_space:
        raise RegularizerInputError(f"{who} needs at least 2 filters (rows), got shape {tuple(w.shape)}")
    return hyperspherical_energy(flatten_rows(w), float(s), bool(half_space))


# ------------------------------------------------------------------ spectra
def spectral_norm(w: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Spectral norm regularization ``½σ(W)²`` (Yoshida & Miyato, 2017).

    One power-iteration step from the persistent left vector ``u`` (size
    out): ``v = Wᵀu/‖Wᵀu‖``, ``u' = Wv/‖Wv‖``, ``σ = u'ᵀWv`` with ``u', v``
    held constant (Algorithm 1). Returns ``(½σ², u')``.
    """
    who = "spectral_norm"
    m = _check_matrix(who, w)
    check_tensor(who, u, arg="power-iteration vector", ndim=1)
    if u.shape[0] != m.shape[0]:
        raise RegularizerInputError(
            f"{who} expects a power-iteration vector of size {m.shape[0]}, got {tuple(u.shape)}"
        )
    with torch.no_grad():
        md = m.detach()
        v = md.T @ u.to(m.dtype)
        v = v / torch.linalg.vector_norm(v).clamp_min(1e-12)
        u_new = md @ v
        u_new = u_new / torch.linalg.vector_norm(u_new).clamp_min(1e-12)
    sigma = u_new @ (m @ v)
    return 0.5 * sigma.pow(2), u_new


def nuclear_norm(w: torch.Tensor) -> torch.Tensor:
    """Nuclear norm ``‖W‖_* = Σ σ_i`` of the flattened weight."""
    m = _check_matrix("nuclear_norm", w)
    return torch.linalg.svdvals(m).sum()


def l2_sp(w: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """L2-SP ``½‖w − w⁰‖²``: weight decay toward the pre-trained ``w⁰`` (Li et al., 2018)."""
    who = "l2_sp"
    check_tensor(who, w, arg="weight")
    check_tensor(who, anchor, arg="anchor")
    if anchor.shape != w.shape:
        raise RegularizerInputError(
            f"{who} expects an anchor with the weight's shape {tuple(w.shape)}, got {tuple(anchor.shape)}"
        )
    return 0.5 * (w - anchor.to(w.dtype)).pow(2).sum()
