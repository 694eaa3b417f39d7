"""Sparse envelope function (SEF): the convex envelope of ½‖w‖² + δ(‖w‖₀ ≤ k), with its proximal map.

    s_k(w) = ½ (‖w‖^{sp}_k)²,
    (‖w‖^{sp}_k)² = Σ_{i=1}^{k−r−1} (|w|↓_i)²  +  (1/(r+1))·( Σ_{i=k−r}^{d} |w|↓_i )²

with |w|↓ sorted decreasingly (|w|↓₀ = +∞) and r ∈ {0, …, k−1} the unique integer with
|w|↓_{k−r−1} > (1/(r+1)) Σ_{i ≥ k−r} |w|↓_i ≥ |w|↓_{k−r}: one half of the squared k-support
norm (Argyriou, Foygel & Srebro, NeurIPS 2012, Prop. 2.1), which Beck & Refael ("Sparse
regularization via bidualization", 2022) show is the biconjugate of ½‖w‖² + δ(‖w‖₀ ≤ k).
k = 1 gives ½‖w‖₁², k ≥ d gives ½‖w‖₂². It is computed per tensor (flattened), k entries kept.

Proximal map (``mode="prox"``, step t): from the variational form
‖w‖²_sp = min {Σ w_i²/θ_i : 0 < θ_i ≤ 1, Σθ_i ≤ k} (McDonald, Pontil & Stamos 2016),
prox_{t·s_k}(v)_i = v_i·θ_i/(θ_i + t) with θ_i = clip(c·|v_i| − t, 0, 1) and c ≥ 0 such
that Σθ_i = k (θ = 1 if d ≤ k): c is bracketed by bisection, then solved exactly on its
linear piece. Entries with
θ_i = 0 become exact zeros.

This is the base SEF of the WGSEF paper (Refael, Arbel & Huleihel, "Learning k-Level
Structured Sparse Neural Networks Using Group Envelope Regularization", arXiv:2212.12921);
its weighted group version is not shipped: no official code, and how groups and weights
enter is not pinned (see the formula sheet wgsef.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import Claim, Paper, RegularizerInputError, WeightRegularizer, register
from reglab.ops import as_tensors, checked_total, integer, hyperparameters, require_values, sum_terms

__all__ = ["sparse_envelope", "sparse_envelope_prox", "SparseEnvelope"]

PAPER = Paper(
    "Sparse Prediction with the k-Support Norm", "Argyriou, A., Foygel, R. and Srebro, N.", 2012,
    arxiv="1204.5043", venue="NeurIPS")

_WHO = "sparse_envelope"


def _ksupport_sq(w: torch.Tensor, k: int) -> torch.Tensor:
    """(‖w‖^{sp}_k)² of the flattened w (differentiable through the sort)."""
    z = w.abs().flatten().sort(descending=True).values
    d = z.numel()
    if k >= d:
        return z.pow(2).sum()
    tail = z.flip(0).cumsum(0).flip(0)  # tail[j] = Σ_{i ≥ j} z_i (0-based)
    head = torch.cat([z.new_zeros(1), z.pow(2).cumsum(0)])  # head[j] = Σ_{i < j} z_i²
    r = torch.arange(k, device=z.device)
    j = k - 1 - r  # 0-based index of |w|↓_{k−r}
    avg = tail[j] / (r + 1).to(z.dtype)
    left = torch.where(j > 0, z[(j - 1).clamp_min(0)], torch.full_like(avg, float("inf")))
    ok = (left > avg) & (avg >= z[j])
    ri = int(torch.nonzero(ok)[0]) if bool(ok.any()) else k - 1  # unique r (ties: the first)
    jj = k - 1 - ri
    return head[jj] + tail[jj].pow(2) / (ri + 1)


@hyperparameters(_WHO, k=integer(1))
def sparse_envelope(w: torch.Tensor | Sequence[torch.Tensor], k: int = 1) -> torch.Tensor:
    """SEF ``½(‖w‖^{sp}_k)²`` of each flattened tensor, summed over tensors (Argyriou et al. 2012, Prop. 2.1)."""
    ws = as_tensors(_WHO, w)
    require_values(_WHO, *ws, arg="weight",
                   needs="the weights' values (the k-support norm searches their sorted magnitudes)")
    return checked_total(_WHO, sum_terms([0.5 * _ksupport_sq(t, k) for t in ws]), ws)


@torch.no_grad()
def sparse_envelope_prox(v: torch.Tensor, step: float, k: int) -> torch.Tensor:
    """``prox_{step·s_k}(v)`` of the flattened tensor (same shape back): v_i·θ_i/(θ_i + step),
    θ_i = clip(c|v_i| − step, 0, 1), Σθ_i = k."""
    if step < 0:
        raise RegularizerInputError(f"{_WHO} prox expects a step ≥ 0, got {step!r}")
    a = v.abs().flatten().double()
    d = a.numel()
    if step == 0:
        return v.clone()
    if k >= d:
        return v / (1 + step)
    # g(c) = Σ clip(c·a_i − t, 0, 1) is continuous, piecewise linear and non-decreasing in c; g = k has a
    # solution in [0, (1 + t)/a↓_k] (there the k largest entries saturate). Bisection brackets it, then the
    # linear piece is solved exactly: with S saturated (θ = 1) and A active (0 < θ < 1) entries,
    # |S| + Σ_A (c·a_i − t) = k  ⇒  c = (k − |S| + t·|A|)/Σ_A a_i.
    pos = a[a > 0]
    if pos.numel() <= k:  # at most k non-zeros: all their θ can reach 1
        theta = (a > 0).double()
    else:
        lo, hi = 0.0, float((1 + step) / pos.topk(k).values[-1])
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            if float((mid * pos - step).clamp(0, 1).sum()) < k:
                lo = mid
            else:
                hi = mid
        c = 0.5 * (lo + hi)
        t = c * pos - step
        active = (t > 0) & (t < 1)
        if bool(active.any()):
            c = float((k - (t >= 1).sum() + step * active.sum()) / pos[active].sum())
        theta = (c * a - step).clamp(0, 1)
    x = a * theta / (theta + step)
    return (torch.sign(v.flatten()) * x.to(v.dtype)).view_as(v)


@register
class SparseEnvelope(WeightRegularizer):
    """Sparse envelope function (SEF) = ½·(k-support norm)², the convex envelope of ½‖w‖² on k-sparse w.

    Per tensor (flattened): it penalizes like ½‖w‖₂² on the k largest |w| and like ½‖·‖₁² on the rest
    (Argyriou et al. 2012; Beck & Refael 2022). Exact prox (``mode="prox"``): a
    one-dimensional search for the multiplier of Σθ = k: entries outside the envelope's support become exact zeros. The weighted
    group version of WGSEF (Refael et al.) is not pinnable and not shipped.
    """

    name = "sparse_envelope"
    paper = PAPER
    formula = "s_k(w) = ½(‖w‖^{sp}_k)²,  (‖w‖^{sp}_k)² = Σ_{i<k−r}|w|↓_i² + (Σ_{i≥k−r}|w|↓_i)²/(r+1)"
    function = sparse_envelope
    default_weight = 1e-4
    claims = (
        Claim(
            "Proximal training with the sparse envelope reaches a pre-set sparsity level k at convergence",
            task="structured_sparsity", metric="zero_groups", direction="higher", role="mechanism",
            testable=False,
            untestable_reason="the claim is WGSEF's (a pre-defined number k of surviving groups), and its "
            "weighted group version is not pinnable (no code; the group weighting and λ-to-k rule are not "
            "retrievable); the base SEF has no network claim of its own — Argyriou et al. and Beck & Refael "
            "study linear models",
            source="Refael et al., arXiv:2212.12921, abstract; Argyriou et al. 2012, Sec. 5",
        ),
    )

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        w.copy_(sparse_envelope_prox(w, step_size, self.k))
