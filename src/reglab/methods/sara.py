"""SaRA's nuclear-norm constraint on the sparse trainable matrix (Hu et al., 2024).

SaRA fine-tunes only the entries of a pretrained weight whose magnitude is
below a threshold, ``M = {|W₀| < t}``, and adds a nuclear-norm ("low-rank
sparse") term on that sparse matrix: ``R(W) = ‖M ⊙ W‖_*``. Official code
(sjtuplayer/SaRA, ``optim/adamw2.py``: ``set_mask_param`` builds
``param.abs() < threshold`` at construction; ``step`` adds
``lambda_rank * nuclear_norm(param * mask)`` with ``nuclear_norm`` = the sum
of the singular values of ``torch.svd``). Defaults from ``finetune.sh``:
``threshold=2e-3``, ``lambda_rank=5e-4`` (our default weight). The official
optimizer applies the term to one randomly chosen eligible matrix per step
(2-D, ``min(shape) > 64`` and more than 100 masked entries) to save SVDs;
we sum over every bound matrix (bind fewer to save cost).

The mask is fixed when the weights are set up (``reglab.attach``; or at
first use standalone) and kept as buffers ``mask__<param name>``. The
penalty alone does not freeze the other entries: SaRA's optimizer updates
only the masked ones (multiply each gradient by ``reg.mask_of(p)`` for that).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import Claim, Paper, PerTensorState, RegularizerInputError, register
from reglab.ops import as_tensors, check_tensor, flatten_rows, full_precision, hyperparameters, positive, sum_terms

__all__ = ["sara_nuclear", "SaRANuclear"]

PAPER = Paper(
    "SaRA: High-Efficient Diffusion Model Fine-tuning with Progressive Sparse Low-Rank Adaptation",
    "Hu, T., Zhang, J., Yi, R., Huang, H., Wang, Y. and Ma, L.", 2024, arxiv="2409.06633",
    venue="ICLR 2025", code="https://github.com/sjtuplayer/SaRA")


@full_precision
@hyperparameters("SaRANuclear", threshold=positive)
def sara_nuclear(
    w: torch.Tensor | Sequence[torch.Tensor],
    anchor: torch.Tensor | Sequence[torch.Tensor],
    threshold: float = 2e-3,
) -> torch.Tensor:
    """``Σ_t ‖M_t ⊙ W_t‖_*`` with ``M_t = {|W₀,t| < threshold}`` from the pretrained weights ``anchor``.

    The nuclear norm (sum of singular values) of the flattened (out, in·k…)
    masked weight, summed over tensors (SaRA, ``optim/adamw2.py``).
    """
    ws = as_tensors("SaRANuclear", w, min_ndim=2)
    anchors = as_tensors("SaRANuclear", anchor, arg="pretrained weight", min_ndim=2)
    if len(anchors) != len(ws):
        raise RegularizerInputError(f"SaRANuclear got {len(ws)} weights but {len(anchors)} pretrained weights")
    terms = []
    for t, a in zip(ws, anchors):
        check_tensor("SaRANuclear", t, arg="weight")  # LAPACK fails on non-finite input
        check_tensor("SaRANuclear", a, arg="pretrained weight")
        if a.shape != t.shape:
            raise RegularizerInputError(
                f"SaRANuclear expects the pretrained weight with the weight's shape {tuple(t.shape)}, got {tuple(a.shape)}"
            )
        mask = (a.detach().abs() < threshold).to(t.dtype)
        terms.append(torch.linalg.svdvals(flatten_rows(t * mask)).sum())
    return sum_terms(terms)


@register
class SaRANuclear(PerTensorState):
    """SaRA's low-rank constraint: R(W) = ‖M ⊙ W‖_*, M = {|W₀| < t} fixed from the pretrained weights.

    Hu et al. (2024): the smallest-magnitude pretrained entries are re-used
    as a sparse trainable matrix, and its nuclear norm keeps that update low
    rank (official ``optim/adamw2.py``; ``threshold=2e-3`` and
    ``lambda_rank=5e-4``, our default weight, from ``finetune.sh``). The
    pretrained values W₀ are recorded when the weights are set up
    (``reglab.attach`` right after loading the pretrained model) in buffers
    ``anchor__<param name>``; the mask is recomputed from them. The official
    optimizer penalizes one random eligible matrix per step; this sums over
    every bound matrix. SaRA also trains only the masked entries: multiply
    each gradient by ``reg.mask_of(p)`` to do the same.
    """

    name = "sara_nuclear"
    formula = "R(W) = ‖M ⊙ W‖_*,  M = {|W₀| < t} (W₀ = pretrained weights)"
    paper = PAPER
    function = sara_nuclear
    default_weight = 5e-4
    example_args = {"threshold": 0.5}
    _state_prefix = "anchor__"
    claims = (
        Claim(
            "Sparse fine-tuning of the small pretrained weights with the nuclear-norm constraint keeps "
            "generalization better than LoRA",
            testable=False,
            untestable_reason="the claim is about fine-tuning Stable Diffusion with updates restricted to the masked "
            "entries (SaRA's optimizer); the lab's transfer task updates every weight of an MLP and no task "
            "restricts updates to a mask or has a LoRA baseline",
            source="Hu et al. 2024, Sec. 4 and Table 1 (SaRA vs LoRA and other PEFT on SD 1.5/2.0/3.0)",
        ),
    )

    def _state_shape(self, w: torch.Tensor) -> tuple[int, ...]:
        return tuple(w.shape)

    def _new_state(self, w: torch.Tensor) -> torch.Tensor:
        return w.detach().clone()

    def mask_of(self, w: torch.Tensor) -> torch.Tensor:
        """The fixed 0/1 mask ``|W₀| < threshold`` of a set-up weight (multiply its gradient by it)."""
        return (self.state_of(w).abs() < self.threshold).to(w.dtype)

    def penalty(self, w: torch.Tensor | Sequence[torch.Tensor], anchor=None) -> torch.Tensor:
        if anchor is not None:
            return sara_nuclear(w, anchor, threshold=self.threshold)
        ws = as_tensors("SaRANuclear", w, upcast=False, min_ndim=2)
        return sara_nuclear(ws, [self.state_of(t) for t in ws], threshold=self.threshold)
