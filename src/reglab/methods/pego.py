"""PEGO: orthogonality among parallel LoRA modules and to the pretrained weight (Hu et al., ECCV 2024).

A group of LoRA modules ΔW_i = B_i·A_i is injected beside a frozen weight
W₀; an L1 penalty on their products keeps each update away from the
pretrained row space ("preserve") and the updates apart from one another
("diversify"). Official code (JudgingH/PEGO, ``domainbed/algorithms/algorithms.py``,
class ``PEGO.update``): for the q and v projections of every block,

``loss_o = Σ_i ‖W₀·ΔW_iᵀ‖₁ + Σ_{i<j} ‖ΔW_i·ΔW_jᵀ‖₁``  (‖·‖₁ = sum of absolute entries),

scaled by ``ld`` = 0.1 (``config.yaml``, our default weight); the paper's
group has several LoRAs (``LoRA_ViT_timm`` default ``lora_nums=3``; rank
``peft_hp``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import Claim, Paper, Regularizer, RegularizerInputError, register
from reglab.ops import check_tensor, checked_total, sum_terms

__all__ = ["pego", "PEGO"]

PAPER = Paper(
    "Learn to Preserve and Diversify: Parameter-Efficient Group with Orthogonal Regularization for Domain "
    "Generalization",
    "Hu, J., Zhang, J., Qi, L., Shi, Y. and Gao, Y.", 2024, arxiv="2407.15085", venue="ECCV",
    code="https://github.com/JudgingH/PEGO")


def pego(deltas: torch.Tensor | Sequence[torch.Tensor], pretrained: torch.Tensor | None = None) -> torch.Tensor:
    """``Σ_i ‖W₀·ΔW_iᵀ‖₁ + Σ_{i<j} ‖ΔW_i·ΔW_jᵀ‖₁`` for the LoRA updates ``ΔW_i = B_i·A_i`` of one layer.

    ``deltas``: a (G, out, in) tensor or a list of G (out, in) tensors;
    ``pretrained``: the frozen (out', in) weight W₀, or None for the
    pairwise (diversity) term alone.
    """
    if isinstance(deltas, torch.Tensor):
        check_tensor("PEGO", deltas, arg="stacked LoRA updates (G, out, in)", ndim=3)
        ds = list(deltas.unbind(0))
    elif isinstance(deltas, (list, tuple)) and deltas:
        ds = [check_tensor("PEGO", d, arg="LoRA update", ndim=2) for d in deltas]
    else:
        raise RegularizerInputError(
            f"PEGO expects the LoRA updates ΔW_i = B_i·A_i as a (G, out, in) tensor or a list of (out, in) tensors, "
            f"got {type(deltas).__name__}"
        )
    if len({tuple(d.shape) for d in ds}) != 1:
        raise RegularizerInputError(f"PEGO expects LoRA updates of one shape, got {[tuple(d.shape) for d in ds]}")
    terms = []
    if pretrained is not None:
        w0 = check_tensor("PEGO", pretrained, arg="pretrained weight", ndim=2)
        if w0.shape[1] != ds[0].shape[1]:
            raise RegularizerInputError(
                f"PEGO expects the pretrained weight with {ds[0].shape[1]} columns (the layer's input), got "
                f"shape {tuple(w0.shape)}"
            )
        terms += [(w0.detach().to(d.dtype) @ d.T).abs().sum() for d in ds]
    terms += [(ds[i] @ ds[j].T).abs().sum() for i in range(len(ds)) for j in range(i + 1, len(ds))]
    if not terms:
        return ds[0].sum() * 0.0
    return checked_total("PEGO", sum_terms(terms), ds, arg="LoRA update")


@register
class PEGO(Regularizer):
    """PEGO: R = Σ_i ‖W₀·ΔW_iᵀ‖₁ + Σ_{i<j} ‖ΔW_i·ΔW_jᵀ‖₁ over a group of LoRA updates ΔW_i = B_i·A_i.

    Preserve (each update orthogonal to the frozen pretrained rows W₀) and
    diversify (updates orthogonal to each other), with entry-wise L1 norms
    (official ``PEGO.update``; ``ld`` = 0.1, our default weight). Call
    ``reg([b1 @ a1, b2 @ a2, …], w0)`` per adapted layer and add the sum.
    """

    name = "pego"
    kind = "weight"
    paper = PAPER
    formula = "R = Σ_i ‖W₀ΔW_iᵀ‖₁ + Σ_{i<j} ‖ΔW_iΔW_jᵀ‖₁,  ΔW_i = B_iA_i"
    function = pego
    call_args = ("pretrained",)
    num_inputs = 2
    default_weight = 0.1
    claims = (
        Claim(
            "Orthogonal LoRA groups on a frozen ViT improve domain generalization",
            testable=False,
            untestable_reason="the claim is domain generalization of CLIP ViT-B/16 with LoRA groups on five "
            "DomainBed benchmarks (PACS, VLCS, OfficeHome, TerraInc, DomainNet); the lab has no LoRA model and "
            "no multi-domain task",
            source="Hu et al. 2024, Table 1 (DomainBed leave-one-domain-out accuracy)",
        ),
    )
