"""LDReg: Local Dimensionality Regularized SSL (ICLR 2024): raise each sample's local intrinsic dimensionality.

L = mean_i −|log LID_i|, LID_i = m_i / (r_{k,i} − m_i), with r_{j,i} the
sorted distances from sample i to the (detached, all-gathered) batch and m_i
the mean of the k−1 nearest: the method-of-moments estimator and the ``l1``
form of the official code (HanxunH/LDReg, ``lid.py: lid_mom_est`` and
``losses/ntxent_lid_reg.py``). Defaults k = 16 and α = 0.01 (the ``weight``)
are the SimCLR ImageNet config
(``configs/simclr_lid_l1_f_mom_bs_2048_e100/.../alpha_0.010000/k_16``); the
paper uses α = 0.005 for BYOL/MoCo.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from reglab.core import Paper, RepresentationRegularizer, register, ssl_claims
from reglab.core.paper import PARTIAL_COLLAPSE, PARTIAL_COLLAPSE_SETTINGS
from reglab.ops import hyperparameters, integer, no_autocast, pairwise_sq_dists, prepare_reference

PAPER = Paper(
    "LDReg: Local Dimensionality Regularized Self-Supervised Learning", "Huang, Campello, Erfani, Ma, Houle, Bailey", 2024,
    arxiv="2401.10474", venue="ICLR", code="https://github.com/HanxunH/LDReg")


class LDRegTerms(NamedTuple):
    penalty: torch.Tensor
    lid: torch.Tensor  # geometric mean of the per-sample LID estimates (detached)


@hyperparameters("LDReg", k=integer(2))
def ldreg_terms(z: torch.Tensor, *, k: int = 16, gather: bool = True) -> LDRegTerms:
    """LDReg (Huang et al., ICLR 2024): ``mean_i −|log LID_i|`` with the
    method-of-moments LID of each row of ``z`` against the detached batch.

    Following HanxunH/LDReg (``lid.py: lid_mom_est``, ``losses/ntxent_lid_reg.py``):
    with ``r_1 ≤ … ≤ r_k`` the sorted distances to the reference set after the
    point itself (index 0), ``m = mean(r_1..r_{k−1})`` and ``LID = m / (r_k − m)``;
    ``k`` is clamped to the reference size − 2. The reference is the batch,
    all-gathered over ranks without gradient (``gather=True``), so each row's
    gradient flows only through its own distances, as in the official code;
    it needs 3 rows, while a rank may hold fewer (with none, its penalty is 0
    and its ``lid`` NaN: there is no local estimate).
    """
    who = "LDReg"
    # the reference needs 3 rows; under DDP a rank may hold fewer (even none) of them
    z, ref = prepare_reference(who, z, arg="features", min_batch=3, gather=gather, flatten=True)
    with no_autocast(z):
        if z.shape[0] == 0:  # no local rows: no local term; keeps the graph for DDP
            return LDRegTerms(z.sum() * 0.0, torch.full((), float("nan"), dtype=z.dtype, device=z.device))
        kk = min(k, ref.shape[0] - 2)
        # clamp before sqrt: the self-distance is ~0, where sqrt's gradient is infinite
        r, _ = torch.sort(pairwise_sq_dists(z, ref).clamp_min(1e-12).sqrt(), dim=1)
        m = r[:, 1:kk].mean(dim=1)
        lid = m / (r[:, kk] - m)
        log_lid = torch.log(lid)
        return LDRegTerms(-log_lid.abs().mean(), log_lid.detach().mean().exp())


def ldreg(z: torch.Tensor, **options: Any) -> torch.Tensor:
    """The LDReg penalty; ``options`` (``k``, ``gather``) as ``ldreg_terms``."""
    return ldreg_terms(z, **options).penalty


@register
class LDReg(RepresentationRegularizer):
    """LDReg: raise each sample's local intrinsic dimensionality (LID),
    L = mean_i −|log LID_i|, LID_i = m_i / (r_{k,i} − m_i).

    r_{j,i} are the sorted distances from sample i to the (detached, all-gathered)
    batch, m_i the mean of the k−1 nearest; method-of-moments estimator and
    the ``l1`` form of the official code (HanxunH/LDReg, ``lid.py`` and
    ``losses/ntxent_lid_reg.py``). Defaults k = 16 and α = 0.01 (the
    ``weight``) are the SimCLR ImageNet config
    (``configs/simclr_lid_l1_f_mom_bs_2048_e100/.../alpha_0.010000/k_16``);
    the paper uses α = 0.005 for BYOL/MoCo. Apply it to backbone features,
    both views concatenated. ``components()`` also reports the geometric-mean LID.
    A per-sample mean, so under DDP equal local batch sizes give the global mean.

    Huang, Campello, Erfani, Ma, Houle & Bailey (2024), "LDReg: Local Dimensionality
    Regularized Self-Supervised Learning", ICLR, arXiv:2401.10474.
    """

    name = "ldreg"
    claims = ssl_claims(
        "LDReg raises the dimensionality of the representation (higher effective rank)",
        "LDReg gives representations with a better linear probe",
        settings="two-view SSL on 8×8 digits (MLP encoder 64-256-32, Adam), LDReg next to the invariance MSE, "
            "instead of SimCLR/BYOL on ImageNet; k = 16, α = 0.01 (the official SimCLR config); "
            + PARTIAL_COLLAPSE_SETTINGS + " (the paper regularizes the representation)",
        task_args=PARTIAL_COLLAPSE,
        source_mechanism="Huang et al. 2024, Sec. 5 (LDReg increases local and global dimensionality)",
        source_outcome="Huang et al. 2024, Tables 1-2 (linear evaluation improves)",
    )
    paper = PAPER
    formula = "mean_i −|log LID_i|, LID_i = m_i/(r_k − m_i), m_i = mean_{j<k} r_j"
    function = ldreg
    terms = ldreg_terms
    default_weight = 0.01
