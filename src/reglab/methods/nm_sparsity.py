"""N:M structured sparsity training: SR-STE (Zhou et al. 2021) and decaying gradient flow (Bambhaniya et al. 2024).

In each group of M consecutive weights along the input dimension (a Linear row;
for a convolution, along the input channels at each output channel and kernel
position), only the N of largest magnitude are kept. The mask is recomputed from the
dense weights at every forward. Official code: abhibambhaniya/
progressive_gradient_flow_nm_sparsity, ``timm/sparse_pruning/sparse_functions.py``
(``get_sparse_mask``, ``SparseSRSTE``, ``StepDecay``, ``LinearDecay``,
``ExponentialDecay``; SR-STE there is taken from aojunzz/NM-sparsity):

* mask: ``argsort(|w|.reshape(groups, M))[:, :M−N]`` set to 0 (convolutions are
  permuted (0, 2, 3, 1) first, so groups run over input channels);
* forward: ``w ⊙ (mask + (1 − mask)·β_t)``;
* backward: the dense gradient ``g`` (straight-through), plus ``λ_W·(1 − mask)⊙w``
  for SR-STE (``SparseSRSTE.backward``, λ_W = 2e-4).

``method`` picks β_t and λ_W:

* ``"ste"``: β = 0, λ_W = 0 (``StepDecay``: plain straight-through N:M training);
* ``"srste"``: β = 0, λ_W = ``decay`` (SR-STE, default 2e-4);
* ``"linear"``: β_t = max(1 − c·t, 0), λ_W = 0 (MdGf-Linear, ``LinearDecay``);
* ``"exp"``: β_t = exp(−c·t), λ_W = 0 (MdGf-Exponential, ``ExponentialDecay``).

``c`` is ``decay_coef`` (official ``--decay-coef`` default 2e-4) and t the number of
optimizer steps taken (``step()`` after each, or ``regs``-free: call ``nm.step()``).
The masked-decay methods (MdGf) let the pruned weights keep a shrinking share of the
forward pass, so their gradient flow fades out instead of being cut at once.
Not included: the structure-decay schedules (SdGf, N:M patterns sparsified over
epochs) and the dense warm-up / final fine-tune phases of the official training
script (set ``method`` per phase yourself).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from reglab.core import Baseline, Claim, Paper, RegularizerInputError, register
from reglab.core.config import Configurable
from reglab.core.paper import Tuning
from reglab.core.registry import Registered
from reglab.ops import check_tensor, hyperparameters, integer, non_negative, one_of
from reglab.ops.validation import describe

__all__ = ["nm_mask", "nm_sparse", "gradient_flow_scale", "NMSparseWeight", "nm_sparsity_", "NMSparsity"]

PAPER = Paper(
    "Progressive Gradient Flow for Robust N:M Sparsity Training in Transformers",
    "Bambhaniya, A. R., Yazdanbakhsh, A., Subramanian, S., Kao, S.-C., Agrawal, S., Evci, U. and Krishna, T.", 2024,
    arxiv="2402.04744", code="https://github.com/abhibambhaniya/progressive_gradient_flow_nm_sparsity")
SR_STE = Paper(
    "Learning N:M Fine-grained Structured Sparse Neural Networks From Scratch",
    "Zhou, A., Ma, Y., Zhu, J., Liu, J., Zhang, Z., Yuan, K., Sun, W. and Li, H.", 2021, arxiv="2102.04010",
    venue="ICLR", code="https://github.com/aojunzz/NM-sparsity")

WHO = "NMSparsity"
METHODS = ("ste", "srste", "linear", "exp")


def _groups_view(w: torch.Tensor, m: int) -> tuple[torch.Tensor, tuple[int, ...] | None]:
    """|w| as (groups, m) rows in the official order; also the permutation used (conv) or None."""
    if w.ndim == 4:
        perm = (0, 2, 3, 1)
        t = w.detach().abs().permute(*perm)
    else:
        perm, t = None, w.detach().abs()
    if t.shape[-1] % m:
        raise RegularizerInputError(
            f"{WHO} groups M = {m} consecutive weights along the input dimension; a weight of shape "
            f"{tuple(w.shape)} has {t.shape[-1]} there, not a multiple of {m}")
    return t.reshape(-1, m), perm


@torch.no_grad()
def nm_mask(w: torch.Tensor, n: int = 2, m: int = 4) -> torch.Tensor:
    """Keep-mask (w's dtype, 0/1) of the ``n`` largest |w| in each group of ``m`` along the input dim."""
    check_tensor(WHO, w, arg="weight", min_ndim=2)
    if not 1 <= n <= m:
        raise RegularizerInputError(f"{WHO} expects 1 ≤ N ≤ M, got N = {n}, M = {m}")
    groups, perm = _groups_view(w, m)
    drop = torch.argsort(groups, dim=1, stable=True)[:, : m - n]
    keep = torch.ones_like(groups, dtype=w.dtype).scatter_(1, drop, 0.0)
    if perm is None:
        return keep.reshape(w.shape)
    return keep.reshape(w.permute(*perm).shape).permute(0, 3, 1, 2)


class _NMSparse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, mask, beta, decay):  # noqa: D102
        ctx.save_for_backward(w, mask)
        ctx.decay = decay
        return w * (mask + (1.0 - mask) * beta)

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        w, mask = ctx.saved_tensors
        grad = g if ctx.decay == 0 else g + ctx.decay * (1.0 - mask) * w
        return grad, None, None, None


def nm_sparse(w: torch.Tensor, n: int = 2, m: int = 4, beta: float = 0.0, decay: float = 0.0) -> torch.Tensor:
    """``w ⊙ (mask + (1 − mask)·β)`` forward; backward the dense gradient ``+ decay·(1 − mask)⊙w``.

    β = 0, decay = 2e-4: SR-STE; β = 0, decay = 0: STE; β ∈ (0, 1], decay = 0: MdGf at that step.
    """
    if not 0.0 <= beta <= 1.0:
        raise RegularizerInputError(f"{WHO} expects beta in [0, 1], got {beta!r}")
    if decay < 0:
        raise RegularizerInputError(f"{WHO} expects decay ≥ 0, got {decay!r}")
    return _NMSparse.apply(w, nm_mask(w, n, m), float(beta), float(decay))


def gradient_flow_scale(step: int, method: str = "linear", decay_coef: float = 2e-4) -> float:
    """β_t: ``max(1 − c·t, 0)`` (linear), ``exp(−c·t)`` (exp), 0 (ste, srste)."""
    if method == "linear":
        return max(1.0 - decay_coef * step, 0.0)
    if method == "exp":
        return math.exp(-decay_coef * step)
    return 0.0


class NMSparseWeight(nn.Module):
    """The parametrization ``W ↦ nm_sparse(W, N, M, β_t, λ_W)`` of one weight; t is a buffer."""

    def __init__(self, n: int, m: int, method: str, decay: float, decay_coef: float):
        super().__init__()
        self.n, self.m, self.method, self.decay, self.decay_coef = n, m, method, decay, decay_coef
        self.register_buffer("t", torch.zeros((), dtype=torch.long))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        beta = gradient_flow_scale(int(self.t), self.method, self.decay_coef)
        decay = self.decay if self.method == "srste" else 0.0
        return nm_sparse(w, self.n, self.m, beta, decay)


@hyperparameters(WHO, n=integer(1), m=integer(1), method=one_of(*METHODS), decay=non_negative,
                 decay_coef=non_negative)
def nm_sparsity_(
    module: nn.Module, n: int = 2, m: int = 4, method: str = "srste", decay: float = 2e-4, decay_coef: float = 2e-4,
) -> list[NMSparseWeight]:
    """Register ``NMSparseWeight`` on every ``nn.Linear`` and ``nn.Conv2d`` weight of ``module``
    (or on ``module`` if it is one); returns the parametrizations (their ``t`` counts the steps)."""
    if not isinstance(module, nn.Module):
        raise RegularizerInputError(f"{WHO} is applied to an nn.Module, got {describe(module)}")
    if n > m:
        raise RegularizerInputError(f"{WHO} expects N ≤ M, got N = {n}, M = {m}")
    layers = [x for x in module.modules() if isinstance(x, (nn.Linear, nn.Conv2d))]
    if not layers:
        raise RegularizerInputError(f"{WHO} found no nn.Linear or nn.Conv2d layer in {type(module).__name__}")
    out = []
    for layer in layers:
        _groups_view(layer.weight, m)  # the shape check, before anything is registered
    for layer in layers:
        p = NMSparseWeight(n, m, method, decay, decay_coef)
        parametrize.register_parametrization(layer, "weight", p)
        out.append(p)
    return out


@register
class NMSparsity(Registered, Configurable):
    """N:M sparse training: keep the N largest |w| of every M along the input dim, mask recomputed each forward.

    ``method="srste"`` (default): SR-STE (Zhou et al. 2021), dense straight-through gradient
    plus λ_W·(1 − mask)⊙w, λ_W = ``decay`` = 2e-4. ``"ste"``: the plain straight-through
    estimator. ``"linear"`` / ``"exp"``: the decaying gradient flow (MdGf) of Bambhaniya et
    al. (2024): the pruned weights enter the forward scaled by β_t = max(1 − c·t, 0) or
    exp(−c·t), c = ``decay_coef`` (official default 2e-4; pick it so β reaches 0 well before
    the end of training). Apply it to the model (a ``torch.nn.utils.parametrize``
    parametrization on every Linear and Conv2d weight) and call ``step()`` after each
    optimizer step::

        nm = reglab.NMSparsity(n=1, m=8, method="linear", decay_coef=1e-3)
        nm(model)
        ... loss.backward(); opt.step(); nm.step()

    Default N:M = 2:4 (the sparse-tensor-core pattern SR-STE targets).
    """

    name = "nm_sparsity"
    kind = "weight"
    form = "reparametrization"
    paper = PAPER
    formula = "W̃ = W ⊙ (M_{N:M}(|W|) + (1 − M)·β_t);  ∂/∂W = g (+ λ_W(1 − M)⊙W for SR-STE)"
    function = nm_sparsity_
    claims = (
        Claim(
            "At high N:M sparsity (1:8) a decaying gradient flow to the pruned weights (MdGf-Linear) trains a more "
            "accurate sparse model than SR-STE (Bambhaniya et al. 2024: up to 2 % better in vision at high sparsity)",
            task="nm_sparsity", metric="test_accuracy", direction="higher",
            arm={"name": "nm_sparsity", "n": 1, "m": 8, "method": "linear", "decay_coef": 0.0025},
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(
                Baseline("SR-STE (λ_W = 2e-4)", {"name": "nm_sparsity", "n": 1, "m": 8, "method": "srste"},
                         why="the standard N:M training recipe the paper improves on"),
                Baseline("dense training, one-shot 1:8 by magnitude, STE fine-tune (same epochs)",
                         why="the simplest route to an N:M model"),
            ),
            datasets=("digits",),
            settings="the nm_sparsity task: MLP 64-256-10 on digits, 1:8 on both Linear weights (87.5 %), Adam "
            "1e-3, 35 epochs for every arm (paper: ViT/Swin/T5 on ImageNet, C4); c = 0.0025 so β_t reaches 0 "
            "after 400 steps, about 70 % of the run on digits (paper: β reaching 0 before the final fine-tune "
            "phase); no dense warm-up and no separate fine-tune phase; set before any run; digits only (1.3 CPU-s "
            "per run)",
            source="Bambhaniya et al. 2024, Sec. 4-5, Tables 2-4 (MdGf vs SR-STE at 1:8 to 1:128)",
            tuning=Tuning(note="nothing tuned: c = 0.0025 set from the run length (β_t = 0 at ~70 % of the steps), "
                          "SR-STE at its official λ_W = 2e-4"),
        ),
    )

    def __call__(self, module: nn.Module) -> nn.Module:
        self.__dict__.setdefault("_weights", []).extend(
            nm_sparsity_(module, self.n, self.m, self.method, self.decay, self.decay_coef))
        return module

    apply = __call__

    def step(self) -> None:
        """After each optimizer step: advance t (β_t of the MdGf methods)."""
        for p in self.__dict__.get("_weights", []):
            p.t += 1

    def beta(self) -> float:
        """The current β_t."""
        ws = self.__dict__.get("_weights", [])
        t = int(ws[0].t) if ws else 0
        return gradient_flow_scale(t, self.method, self.decay_coef)

    def __repr__(self) -> str:
        return (f"NMSparsity(n={self.n}, m={self.m}, method={self.method!r}, decay={self.decay!r}, "
                f"decay_coef={self.decay_coef!r})")
