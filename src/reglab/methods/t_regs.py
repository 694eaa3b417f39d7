"""T-REGS: minimum-spanning-tree length regularization (Mordacq, Loiseaux, Kalogeiton & Oudot, NeurIPS 2025).

For a batch Z = {z_1..z_n} of one view's embeddings, MST(Z) is the minimum
spanning tree of the complete Euclidean graph on Z and E(MST(Z)) the sum of
its n−1 edge lengths (paper Eq. 4–6, Sec. 5):

    L_E(Z) = −(1/n)·E(MST(Z))                    (length maximisation)
    L_S(Z) = (1/n)·Σ_i (‖z_i‖₂ − 1)²              (soft sphere constraint)
    T-REG(Z) = γ·L_E(Z) + λ·L_S(Z)
    L = β·L_MSE(Z, Z') + T-REG(Z) + T-REG(Z'),   L_MSE = (1/n)·Σ_i ‖z_i − z'_i‖²₂

one MST per view batch. The tree is chosen on the detached distances (Prim's
algorithm; ties between equal-length trees do not change the value), and its
n−1 edges are re-gathered so that the gradient flows through their lengths:
each MST edge is a repulsive force (z_u − z_v)/‖z_u − z_v‖ (paper Eq. 3; the
edge set is piecewise constant, so the loss is differentiable almost
everywhere).

What the registered ``t_regs`` computes: the whole standalone objective
above (as ``vicreg`` computes its own invariance term), with the paper's
standalone defaults β = 10, γ = 0.2, λ = 8e-4 (Sec. 5.1, Table 4: 66.1 %
top-1 on ImageNet-1k). As an auxiliary regularizer next to another SSL loss
(BYOL, Barlow Twins, CLIP fine-tuning: the paper's L = β·L_SSL + T-REGS), set
``beta=0``: the β weight then belongs to the user's own loss. Table 4's rule
β ≥ γ ≥ λ (otherwise training collapses) is enforced: γ ≥ λ always, β ≥ γ
unless β = 0.

Pinned from the paper's full text (the official code could not be read):
no hard normalisation of z before L_E (the sphere is soft), and the MST of
each view on the local batch (the paper describes no all-gather). reglab's
default ``gather=True`` (one rule for every batch statistic) computes it on
the global batch under DDP; ``gather=False`` gives the paper's per-rank MST.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from reglab.core import Baselines, Claim, Paper, RegularizerInputError, RepresentationRegularizer, register
from reglab.core.paper import PARTIAL_COLLAPSE, PARTIAL_COLLAPSE_SETTINGS
from reglab.ops import has_data, hyperparameters, no_autocast, non_negative, prepare_batch, prepare_views

PAPER = Paper(
    "T-REGS: Minimum Spanning Tree Regularization for Self-Supervised Learning",
    "Mordacq, Loiseaux, Kalogeiton, Oudot", 2025, arxiv="2510.23484", venue="NeurIPS")

__all__ = ["mst_edges", "mst_length", "t_reg", "t_regs_terms", "t_regs", "TRegsTerms", "TREGS"]


def mst_edges(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The n−1 edges ``(u, v)`` of a Euclidean minimum spanning tree of the rows of ``z``.

    Prim's algorithm on the detached squared distances (the same tree as on the
    distances), in float64 on the CPU: O(n²·d) for the distances and O(n²) for
    the tree. Coincident rows are joined by zero-length edges, so the tree
    always has n−1 edges (scipy's ``minimum_spanning_tree`` would drop them).
    Among trees of equal length the first found is returned. No gradient.
    Tensors without readable values (meta, ``torch.compile``'s fake tensors)
    get the path 0–1–…–(n−1), so shape inference still runs.
    """
    n = z.shape[0]
    if not has_data(z):
        path = torch.arange(n, device=z.device)
        return path[:-1], path[1:]
    x = z.detach().to("cpu", torch.float64).numpy()
    sq = (x * x).sum(axis=1)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    in_tree = np.zeros(n, dtype=bool)
    in_tree[0] = True
    best = dist[0].copy()
    best[0] = np.inf
    parent = np.zeros(n, dtype=np.int64)
    us = np.empty(n - 1, dtype=np.int64)
    vs = np.empty(n - 1, dtype=np.int64)
    for e in range(n - 1):
        k = int(np.argmin(best))
        us[e], vs[e] = parent[k], k
        in_tree[k] = True
        best[k] = np.inf
        closer = (dist[k] < best) & ~in_tree
        best[closer] = dist[k][closer]
        parent[closer] = k
    return torch.from_numpy(us).to(z.device), torch.from_numpy(vs).to(z.device)


def _lengths(diff: torch.Tensor) -> torch.Tensor:
    """Row norms of ``diff`` with a zero (not NaN) gradient at zero rows."""
    sq = diff.pow(2).sum(dim=-1)
    nonzero = sq > 0
    return torch.where(nonzero, torch.where(nonzero, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


def mst_length(z: torch.Tensor) -> torch.Tensor:
    """E(MST(Z)): the total length of a Euclidean minimum spanning tree of the rows of ``z``,
    differentiable w.r.t. the lengths of the chosen edges (the tree itself has no gradient)."""
    u, v = mst_edges(z)
    return _lengths(z[u] - z[v]).sum()


def _length_and_sphere(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_E(Z), L_S(Z)) of one validated view."""
    n = z.shape[0]
    return -mst_length(z) / n, (_lengths(z) - 1.0).pow(2).mean()


def _check_order(who: str, beta: float, gamma: float, lam: float) -> None:
    """Table 4's rule: β ≥ γ ≥ λ, or training collapses (β = 0: auxiliary use, the β is the user's)."""
    if gamma < lam:
        raise RegularizerInputError(
            f"{who} expects gamma >= lam (Mordacq et al. 2025, Table 4: training collapses otherwise), "
            f"got gamma={gamma!r}, lam={lam!r}"
        )
    if beta != 0 and beta < gamma:
        raise RegularizerInputError(
            f"{who} expects beta >= gamma, or beta = 0 for auxiliary use (Mordacq et al. 2025, Table 4: "
            f"training collapses otherwise), got beta={beta!r}, gamma={gamma!r}"
        )


@hyperparameters("TREGS", gamma=non_negative, lam=non_negative)
def t_reg(z: torch.Tensor, *, gamma: float = 0.2, lam: float = 8e-4, gather: bool = True) -> torch.Tensor:
    """T-REG of one view (Mordacq et al., 2025, Eq. 6): ``γ·L_E(Z) + λ·L_S(Z)``, with
    ``L_E = −E(MST(Z))/n`` and ``L_S = mean_i (‖z_i‖ − 1)²``; for use on one branch or
    modality next to another loss. ``gather=True``: the MST of the global batch under DDP."""
    _check_order("TREGS", 0.0, gamma, lam)
    z = prepare_batch("TREGS", z, arg="embeddings", gather=gather)
    with no_autocast(z):
        length, sphere = _length_and_sphere(z)
        return gamma * length + lam * sphere


class TRegsTerms(NamedTuple):
    invariance: torch.Tensor  # L_MSE(Z, Z') = (1/n) Σ_i ‖z_i − z'_i‖²
    length: torch.Tensor  # L_E(Z) + L_E(Z') = −(E(MST(Z)) + E(MST(Z')))/n (negative)
    sphere: torch.Tensor  # L_S(Z) + L_S(Z')


def t_regs_terms(z1: torch.Tensor, z2: torch.Tensor, *, gather: bool = True) -> TRegsTerms:
    """The three unweighted T-REGS terms of two views (Mordacq et al., 2025, Sec. 5): the
    invariance ``(1/n)Σ‖z_i − z'_i‖²`` (summed over dimensions, averaged over the batch),
    and the MST-length and sphere terms of each view, one MST per view, summed."""
    who = "TREGS"
    z1, z2 = prepare_views(who, z1, z2, gather=gather)
    with no_autocast(z1):
        inv = (z1 - z2).pow(2).sum(dim=1).mean()
        e1, s1 = _length_and_sphere(z1)
        e2, s2 = _length_and_sphere(z2)
    return TRegsTerms(inv, e1 + e2, s1 + s2)


@hyperparameters("TREGS", beta=non_negative, gamma=non_negative, lam=non_negative)
def t_regs(
    z1: torch.Tensor, z2: torch.Tensor, *, beta: float = 10.0, gamma: float = 0.2, lam: float = 8e-4,
    **options: Any,
) -> torch.Tensor:
    """T-REGS standalone loss ``β·L_MSE(Z, Z') + T-REG(Z) + T-REG(Z')`` (Mordacq et al., 2025,
    Sec. 5.1: β = 10, γ = 0.2, λ = 8e-4); ``beta=0`` leaves only the regularizer for use next to
    another SSL loss. ``options`` (``gather``) go to ``t_regs_terms``."""
    _check_order("TREGS", beta, gamma, lam)
    t = t_regs_terms(z1, z2, **options)
    return beta * t.invariance + gamma * t.length + lam * t.sphere


_plain_check = t_regs.check_hyperparameters  # type: ignore[attr-defined]


def _check_with_order(owner: str, values: dict[str, Any]) -> None:
    _plain_check(owner, values)
    _check_order(owner, values.get("beta", 10.0), values.get("gamma", 0.2), values.get("lam", 8e-4))


t_regs.check_hyperparameters = _check_with_order  # type: ignore[attr-defined]


@register
class TREGS(RepresentationRegularizer):
    """T-REGS: maximise the minimum-spanning-tree length of each view's batch of
    embeddings on a soft unit sphere, next to the views' invariance.

    L = β·(1/n)Σ‖z_i − z'_i‖² + γ·[L_E(Z) + L_E(Z')] + λ·[L_S(Z) + L_S(Z')],
    L_E(Z) = −E(MST(Z))/n (the total Euclidean length of the batch's minimum
    spanning tree, one tree per view), L_S(Z) = mean_i (‖z_i‖ − 1)² (paper
    Eq. 4–6). The tree is chosen without gradient (Prim's algorithm on the
    detached distances) and the gradient flows through its edges' lengths.

    Defaults β = 10, γ = 0.2, λ = 8e-4 are the paper's standalone setting
    (Sec. 5.1, Table 4). ``beta=0`` gives the regularizer alone, for use as an
    auxiliary term next to another SSL loss (the paper's BYOL / Barlow Twins /
    CLIP experiments). β ≥ γ ≥ λ is required (Table 4: otherwise collapse);
    γ ≥ λ is checked always, β ≥ γ unless β = 0. Under DDP the MST is computed
    on the global batch (``gather=True``, reglab's rule for batch statistics);
    the paper describes no all-gather, ``gather=False`` computes it per rank. Cost per view: O(n²d) distances + O(n²) Prim.

    Mordacq, Loiseaux, Kalogeiton & Oudot (2025), NeurIPS, arXiv:2510.23484.
    """

    name = "t_regs"
    paper = PAPER
    formula = "β·mean_i‖z_i−z'_i‖² − γ·[E(MST(Z)) + E(MST(Z'))]/n + λ·[mean_i(‖z_i‖−1)² + mean_i(‖z'_i‖−1)²]"
    num_inputs = 2
    function = t_regs
    terms = t_regs_terms
    claims = (
        Claim(
            "The MST-length term prevents the collapse of invariance-only training",
            task="ssl_collapse", metric="effective_rank", direction="higher", role="mechanism",
            task_args=PARTIAL_COLLAPSE, min_effect=1.0, min_effect_reason="one effective dimension (of 32)",
            baselines=(Baselines.INVARIANCE_ONLY,),
            datasets=("digits", "digits_half"),
            settings="MLP encoder 64-256-32 on 8×8 digits, Adam, batch 128, instead of ResNet-18/50 with LARS on "
            "CIFAR/ImageNet; β=10, γ=0.2, λ=8e-4 are the paper's standalone values, not tuned (developed on "
            "seeds 0-4); " + PARTIAL_COLLAPSE_SETTINGS + " (T-REGS is the whole two-view loss on the embedding, "
            "so the binding does not apply to it)",
            source="Mordacq et al. 2025, Sec. 4-5 (T-REGS prevents dimensional collapse)",
        ),
        Claim(
            "T-REGS learns representations that give a better linear probe than invariance-only training "
            "and than VICReg",
            task="ssl_collapse", metric="linear_probe_accuracy", direction="higher", task_args=PARTIAL_COLLAPSE,
            min_effect=0.01, min_effect_reason="one point of probe accuracy",
            baselines=(
                Baselines.INVARIANCE_ONLY,
                Baselines.VICREG,
                Baselines.UNTRAINED_ENCODER,
            ),
            datasets=("digits", "digits_half"),
            settings="as above",
            source="Mordacq et al. 2025, Tables 2-5 (linear evaluation, competitive with or above VICReg)",
        ),
    )
