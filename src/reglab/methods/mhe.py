"""Minimum hyperspherical energy (Liu, Lin, Liu, Liu, Yu, Dai & Song, NeurIPS 2018).

With ŵ_i = w_i/‖w_i‖ for the N output filters of a layer (or the N
embeddings of a batch), E_s = 1/(N(N−1)) · Σ_{i≠j} f_s(‖ŵ_i − ŵ_j‖),
f_s(r) = r^{−s} for s > 0 and log(1/r) for s = 0 (their Eq. 1–2);
``half_space=True`` also counts the reflected vectors −ŵ_j (N → 2N).

Pinned from the official code (wy1iu/MHE, code/architecture.py,
``_add_thomson_constraint``): the mean over the N(N−1)/2 pairs,
‖w_i‖ = √(Σw² + 1e-4) (this ε keeps identical filters at a finite energy)
and r² = 2 − 2⟨ŵ_i, ŵ_j⟩; defaults s = 0 and weight 1 (their
``--power_s 0``, multiplier 1 on hidden layers; 10 on the last layer).
Their s = 0 term is −log r², twice the paper's log(1/r) used here. r² is
floored at 1e-6 (ours, not the paper's) so coincident vectors give a large
finite energy instead of inf/NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import Paper, Regularizer, RegularizerInputError, WeightRegularizer, register
from reglab.ops import (
    as_tensors, checked_total, flatten_rows, full_precision, gram, hyperparameters, no_autocast, non_negative,
    power_of_two_scale, prepare_batch, stack_by_shape, sum_terms,
)

PAPER = Paper(
    "Learning towards Minimum Hyperspherical Energy",
    "Liu, W., Lin, R., Liu, Z., Liu, L., Yu, Z., Dai, B. and Song, L.", 2018, arxiv="1805.09298", venue="NeurIPS", code="https://github.com/wy1iu/MHE")

#: Added to ‖w_i‖² before the square root, as in the official code.
MHE_EPS = 1e-4
#: Floor on r²: coincident vectors (r = 0) would give inf/NaN energy; with the
#: floor they give a large finite energy that still pushes them apart.
MHE_MIN_SQ_DIST = 1e-6


def hyperspherical_energy(rows: torch.Tensor, s: float, half_space: bool = False) -> torch.Tensor:
    """The energy of the rows of a (n, d) matrix or a batch (b, n, d): the mean over
    pairs i<j of f_s(‖ŵ_i − ŵ_j‖), f_s(r) = r^{−s} (s > 0) or log(1/r) (s = 0). No validation."""
    # ŵ = w/√(‖w‖² + ε), computed on w/s (s a power of two, exact) so ‖w‖² cannot
    # overflow: √(‖w/s‖² + ε/s²) · s is the same number.
    scale = power_of_two_scale(rows, dim=-1).clamp_min(1.0)
    scaled = rows / scale
    w_hat = scaled / (scaled.pow(2).sum(-1, keepdim=True) + MHE_EPS / scale.pow(2)).sqrt()
    if half_space:
        w_hat = torch.cat([w_hat, -w_hat], dim=-2)
    n = w_hat.shape[-2]
    # r² = 2 − 2⟨ŵ_i, ŵ_j⟩, the official code's squared distance (exact for unit rows).
    r2 = (2.0 - 2.0 * gram(w_hat)).clamp_min(MHE_MIN_SQ_DIST)
    iu = torch.triu_indices(n, n, offset=1, device=rows.device)
    pair = r2[..., iu[0], iu[1]]
    energy = -0.5 * torch.log(pair) if s == 0 else pair.pow(-0.5 * s)
    return energy.mean(-1)


@hyperparameters(s=non_negative)
@full_precision
def mhe(w: torch.Tensor | Sequence[torch.Tensor], s: float = 0.0, half_space: bool = False) -> torch.Tensor:
    """Minimum hyperspherical energy of each weight's output filters (Liu et al., 2018), summed over tensors."""
    who = "mhe"
    ws = as_tensors(who, w, min_ndim=2)
    if not half_space:
        for t in ws:
            if t.shape[0] < 2:
                raise RegularizerInputError(f"{who} needs at least 2 filters (rows), got shape {tuple(t.shape)}")
    batches = stack_by_shape([flatten_rows(t) for t in ws])
    terms = [hyperspherical_energy(b, float(s), bool(half_space)).sum() for b in batches]
    return checked_total(who, sum_terms(terms), ws)


@hyperparameters("MHEFeatures", s=non_negative)
def mhe_features(z: torch.Tensor, *, s: float = 0.0, half_space: bool = False, gather: bool = True) -> torch.Tensor:
    """Hyperspherical energy of a batch of embeddings: MHE with the batch's feature
    vectors in place of a layer's filters; minimizing it spreads them over the
    sphere. ``gather=True`` uses all pairs of the global batch under DDP."""
    z = prepare_batch("MHEFeatures", z, gather=gather)
    with no_autocast(z):
        return hyperspherical_energy(z, float(s), bool(half_space))


@register
class MHE(WeightRegularizer):
    """Minimum hyperspherical energy: spread a layer's filters evenly on the sphere.

    Liu et al. (2018), Eq. 1–2: with ŵ_i = w_i/‖w_i‖
    for the N output filters, E_s = 1/(N(N−1)) · Σ_{i≠j} f_s(‖ŵ_i − ŵ_j‖),
    f_s(r) = r^{−s} for s > 0 and log(1/r) for s = 0. ``half_space=True``
    also counts the reflected filters −ŵ_j (half-space MHE, N → 2N).

    Pinned from the official code (wy1iu/MHE, code/architecture.py,
    ``_add_thomson_constraint``): the mean over the N(N−1)/2 pairs,
    ‖w_i‖ = √(Σw² + 1e-4) (this ε keeps identical filters at a finite
    energy) and r² = 2 − 2⟨ŵ_i, ŵ_j⟩; defaults s = 0 and weight 1 (their
    ``--power_s 0``, multiplier 1 on hidden layers; 10 on the last layer).
    Their s = 0 term is −log r², twice the paper's log(1/r) used here.
    """

    name = "mhe"
    formula = "E_s = 1/(N(N−1)) Σ_{i≠j} f_s(‖ŵ_i − ŵ_j‖), f_s = r^{−s} or log(1/r)"
    paper = PAPER
    function = mhe


@register
class MHEFeatures(Regularizer):
    """Minimum hyperspherical energy of a batch of embeddings.

    MHE (Liu et al., 2018) spreads a layer's filters evenly on the unit
    sphere; here the same energy acts on the batch's feature vectors:
    E_s = mean_{i<j} f_s(‖ẑ_i − ẑ_j‖), ẑ = z/‖z‖, f_s(r) = r^{−s} (s > 0) or
    log(1/r) (s = 0). It is computed by the same function as the weight
    penalty ``mhe`` (the official code's ‖z‖ = √(Σz² + 1e-4) and mean over
    pairs; s = 0 by default, the paper's logarithmic energy), with
    ``gather=True`` using all pairs of the global batch under DDP.
    ``half_space`` adds the reflected vectors −ẑ_j.
    """

    name = "mhe_features"
    kind = "representation"
    target = "activations"
    paper = PAPER
    formula = "mean_{i<j} f_s(‖ẑ_i − ẑ_j‖),  f_s(r) = r^{−s} or log(1/r)"
    function = mhe_features
