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
Their s = 0 term is −log r², twice the paper's log(1/r) used here by
default; ``s0_form="official"`` gives theirs. r² is floored at 1e-6 (ours,
not the paper's) so coincident vectors give a large finite energy instead of
inf/NaN.

Angular MHE (the paper's A-MHE; the official ``--power_s a0|a1|a2``):
``distance="angular"`` replaces ‖ŵ_i − ŵ_j‖ by the normalized angle
θ_ij = arccos⟨ŵ_i, ŵ_j⟩/π + 1e-4 (official code), f_s(θ) = θ^{−s} or
−log θ (s = 0). The official code scales a1/a2 by 0.1 on hidden layers
(1 on the last); pass ``weight=0.1`` for theirs. It also weights the last
layer's energy 10× that of a hidden layer (every power); ``last_layer_weight``
multiplies the energy of the last tensor given (the output layer when
attached: parameters come in model order), 1 by default (the paper states no
such factor). The cosine is clamped to ±(1 − machine ε) so arccos keeps a
finite gradient for coincident filters.

Cost: an N×N Gram per layer (a GEMM) in forward and backward. On large
models apply it lazily (Karras et al. 2020): ``MHE(λ).on(every=k)``
computes it on every k-th step only, with weight k·λ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from reglab.core import Baseline, Claim, Paper, Regularizer, RegularizerInputError, WeightRegularizer, register, ssl_claims
from reglab.core.paper import PARTIAL_COLLAPSE, PARTIAL_COLLAPSE_SETTINGS
from reglab.ops import (
    as_tensors, checked_total, flatten_rows, full_precision, gram, hyperparameters, no_autocast, non_negative,
    one_of, power_of_two_scale, prepare_batch, stack_by_shape, sum_terms,
)

PAPER = Paper(
    "Learning towards Minimum Hyperspherical Energy",
    "Liu, W., Lin, R., Liu, Z., Liu, L., Yu, Z., Dai, B. and Song, L.", 2018, arxiv="1805.09298", venue="NeurIPS", code="https://github.com/wy1iu/MHE")

#: Added to ‖w_i‖² before the square root, as in the official code.
MHE_EPS = 1e-4
#: Floor on r²: coincident vectors (r = 0) would give inf/NaN energy; with the
#: floor they give a large finite energy that still pushes them apart.
MHE_MIN_SQ_DIST = 1e-6
#: Added to the normalized angle arccos(cos)/π of angular MHE, as in the official code.
MHE_ANGLE_EPS = 1e-4
DISTANCES = ("euclidean", "angular")
S0_FORMS = ("paper", "official")


def hyperspherical_energy(
    rows: torch.Tensor, s: float, half_space: bool = False, distance: str = "euclidean", s0_form: str = "paper"
) -> torch.Tensor:
    """The energy of the rows of a (n, d) matrix or a batch (b, n, d): the mean over
    pairs i<j of f_s(‖ŵ_i − ŵ_j‖), f_s(r) = r^{−s} (s > 0) or log(1/r) (s = 0; −log r²
    with ``s0_form="official"``); ``distance="angular"``: of f_s(arccos⟨ŵ_i, ŵ_j⟩/π + 1e-4)
    with f_0 = −log. No validation."""
    # ŵ = w/√(‖w‖² + ε), computed on w/s (s a power of two, exact) so ‖w‖² cannot
    # overflow: √(‖w/s‖² + ε/s²) · s is the same number.
    scale = power_of_two_scale(rows, dim=-1).clamp_min(1.0)
    scaled = rows / scale
    w_hat = scaled / (scaled.pow(2).sum(-1, keepdim=True) + MHE_EPS / scale.pow(2)).sqrt()
    if half_space:
        w_hat = torch.cat([w_hat, -w_hat], dim=-2)
    n = w_hat.shape[-2]
    iu = torch.triu_indices(n, n, offset=1, device=rows.device)
    cos = gram(w_hat)[..., iu[0], iu[1]]
    if distance == "angular":
        # θ = arccos(cos)/π + 1e-4 (official); the clamp keeps arccos' gradient finite at ±1
        bound = 1.0 - torch.finfo(cos.dtype).eps
        theta = torch.acos(cos.clamp(-bound, bound)) / math.pi + MHE_ANGLE_EPS
        energy = -torch.log(theta) if s == 0 else theta.pow(-s)
        return energy.mean(-1)
    # r² = 2 − 2⟨ŵ_i, ŵ_j⟩, the official code's squared distance (exact for unit rows).
    pair = (2.0 - 2.0 * cos).clamp_min(MHE_MIN_SQ_DIST)
    if s == 0:
        energy = -torch.log(pair) if s0_form == "official" else -0.5 * torch.log(pair)
    else:
        energy = pair.pow(-0.5 * s)
    return energy.mean(-1)


@hyperparameters(
    s=non_negative, distance=one_of(*DISTANCES), s0_form=one_of(*S0_FORMS), last_layer_weight=non_negative
)
@full_precision
def mhe(
    w: torch.Tensor | Sequence[torch.Tensor],
    s: float = 0.0,
    half_space: bool = False,
    distance: str = "euclidean",
    s0_form: str = "paper",
    last_layer_weight: float = 1.0,
) -> torch.Tensor:
    """Minimum hyperspherical energy of each weight's output filters (Liu et al., 2018), summed over tensors.

    ``distance="angular"``: the official a0/a1/a2 energies of θ = arccos⟨ŵ_i, ŵ_j⟩/π + 1e-4.
    ``s0_form="official"``: −log r² for s = 0 (twice the paper's log(1/r)).
    ``last_layer_weight``: multiplies the energy of the last tensor given (official: 10).
    """
    who = "mhe"
    ws = as_tensors(who, w, min_ndim=2)
    if not half_space:
        for t in ws:
            if t.shape[0] < 2:
                raise RegularizerInputError(f"{who} needs at least 2 filters (rows), got shape {tuple(t.shape)}")
    opts = (float(s), bool(half_space), distance, s0_form)
    hidden = ws[:-1] if last_layer_weight != 1 else ws
    terms = [hyperspherical_energy(b, *opts).sum() for b in stack_by_shape([flatten_rows(t) for t in hidden])]
    if last_layer_weight != 1:
        terms.append(last_layer_weight * hyperspherical_energy(flatten_rows(ws[-1]), *opts))
    return checked_total(who, sum_terms(terms), ws)


@hyperparameters("MHEFeatures", s=non_negative, distance=one_of(*DISTANCES), s0_form=one_of(*S0_FORMS))
def mhe_features(
    z: torch.Tensor, *, s: float = 0.0, half_space: bool = False, distance: str = "euclidean",
    s0_form: str = "paper", gather: bool = True,
) -> torch.Tensor:
    """Hyperspherical energy of a batch of embeddings: MHE with the batch's feature
    vectors in place of a layer's filters; minimizing it spreads them over the
    sphere. ``gather=True`` uses all pairs of the global batch under DDP."""
    z = prepare_batch("MHEFeatures", z, gather=gather)
    with no_autocast(z):
        return hyperspherical_energy(z, float(s), bool(half_space), distance, s0_form)


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
    Their s = 0 term is −log r², twice the paper's log(1/r) used here by
    default (``s0_form="official"`` for theirs).

    ``distance="angular"`` is angular MHE (the paper's A-MHE, the official
    ``--power_s a0/a1/a2``): θ_ij = arccos⟨ŵ_i, ŵ_j⟩/π + 1e-4 in place of
    ‖ŵ_i − ŵ_j‖, f_s(θ) = θ^{−s} or −log θ; the official code weights a1/a2
    by 0.1 on hidden layers (``weight=0.1``). ``last_layer_weight`` multiplies
    the energy of the last tensor given (the output layer when attached, in
    model order; with one tensor, that tensor): the official code uses 10
    (every power; their last layer never uses the half-space form), 1 here
    by default as in the paper. With it ≠ 1, a sum of per-tensor calls differs
    from one call on the list.
    """

    name = "mhe"
    claims = (
        Claim(
            "MHE on the hidden layers improves accuracy, as much as orthogonality does",
            task="deep_plain", metric="test_accuracy", direction="higher",
            min_effect=0.005, min_effect_reason="half a point of test accuracy",
            baselines=(
                Baseline("no regularizer"),
                Baseline("soft orthogonality (1e-4)", {"name": "soft_orthogonality"},
                         why="the orthogonality regularizer MHE is compared with"),
            ),
            datasets=("digits", "digits_half"),
            settings="a 12-layer plain ReLU MLP without normalization (SGD 0.01, 30 epochs) instead of CNNs on "
            "CIFAR/ImageNet; s = 0 and weight 1 (the official defaults on hidden layers), every weight matrix "
            "treated alike (the official code weights the last layer 10×)",
            source="Liu et al. 2018, Tables 2-4 (MHE vs orthogonality and the plain CNN)",
        ),
    )
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
    ``half_space`` adds the reflected vectors −ẑ_j; ``distance="angular"``
    and ``s0_form`` as for ``mhe``.
    """

    name = "mhe_features"
    claims = ssl_claims(
        "MHE on the features spreads them (higher effective rank)",
        "MHE on the features gives a better linear probe",
        settings="the paper applies MHE to filters and classifier weights; MHE on features is this class's "
            "extension, tested in two-view SSL on 8×8 digits (MLP encoder 64-256-32, Adam) next to the "
            "invariance MSE; s = 0, weight 1; " + PARTIAL_COLLAPSE_SETTINGS,
        task_args=PARTIAL_COLLAPSE,
        source_mechanism="Liu et al. 2018, Sec. 3 (minimum energy = evenly spread points on the sphere)",
        source_outcome="Liu et al. 2018, Sec. 5 (better-spread neurons generalize better)",
    )
    kind = "representation"
    target = "activations"
    paper = PAPER
    formula = "mean_{i<j} f_s(‖ẑ_i − ẑ_j‖),  f_s(r) = r^{−s} or log(1/r)"
    function = mhe_features
