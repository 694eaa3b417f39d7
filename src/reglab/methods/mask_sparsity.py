"""MaskSparsity: pruning-aware sparse regularization (Jiang et al., Machine Intelligence Research 2023).

Network-slimming L1 on the BatchNorm scaling factors γ, but only on the channels
a pruning mask M selected for removal (M = 1: will be pruned)::

    R(γ) = Σ_c M_c·|γ_c|          ('L1'; official: γ.grad += s·sign(γ)⊙M after backward)
    R(γ) = ½ Σ_c M_c·γ_c²         ('L2'; official: γ.grad += s·γ⊙M)

so the channels that stay are not regularized. Official code: CASIA-IVA-Lab/MaskSparsity,
``netslim/sparse.py`` → ``update_bn_by_names_dict``, called with the authors' s = 5e-4.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from reglab.core import Claim, Paper, PerTensorState, RegularizerInputError, register
from reglab.ops.validation import has_data
from reglab.ops import (
    as_tensors, check_choice, check_probability, checked_total, hyperparameters, one_of, paired_tensors, sum_terms,
)  # fmt: skip

__all__ = ["mask_sparsity", "slimming_masks", "MaskSparsity"]

PAPER = Paper(
    "Pruning-aware Sparse Regularization for Network Pruning",
    "Jiang, N., Zhao, X., Zhao, C., An, Y., Tang, M. and Wang, J.", 2023, arxiv="2201.06776",
    doi="10.1007/s11633-022-1353-0", venue="Machine Intelligence Research",
    code="https://github.com/CASIA-IVA-Lab/MaskSparsity")


@hyperparameters(method=one_of("L1", "L2"))
def mask_sparsity(
    w: torch.Tensor | Sequence[torch.Tensor], mask: torch.Tensor | Sequence[torch.Tensor], method: str = "L1"
) -> torch.Tensor:
    """``Σ M·|γ|`` (``"L1"``) or ``½ Σ M·γ²`` (``"L2"``) over the masked entries (M = 1: to be pruned), summed over tensors."""
    masks = [m.to(torch.float64) if m.dtype == torch.bool else m for m in ([mask] if isinstance(mask, torch.Tensor) else list(mask))]
    ws, ms = paired_tensors("mask_sparsity", w, masks, "mask", lambda t: tuple(t.shape))
    if method == "L1":
        terms = [(t.abs() * m.to(t.dtype)).sum() for t, m in zip(ws, ms)]
    else:
        terms = [0.5 * (t.pow(2) * m.to(t.dtype)).sum() for t, m in zip(ws, ms)]
    return checked_total("mask_sparsity", sum_terms(terms), ws)


@torch.no_grad()
def slimming_masks(w: torch.Tensor | Sequence[torch.Tensor], prune_ratio: float = 0.5) -> list[torch.Tensor]:
    """Network-slimming pre-pruning: M = 1 on the ⌊ratio·C⌋ entries of smallest |γ| over all tensors
    together (one global threshold, Liu et al. 2017), bool masks; ties by position."""
    ws = as_tensors("mask_sparsity", w, upcast=False)
    check_probability("mask_sparsity", "prune_ratio", prune_ratio)
    if not all(has_data(t) for t in ws):  # meta tensors: no values to rank
        return [torch.zeros_like(t, dtype=torch.bool) for t in ws]
    a = torch.cat([t.detach().abs().flatten().double() for t in ws])
    if not bool(torch.isfinite(a).all()):
        raise RegularizerInputError("mask_sparsity: cannot rank non-finite scaling factors to build the mask")
    drop = torch.zeros_like(a, dtype=torch.bool)
    drop[torch.argsort(a, stable=True)[: int(prune_ratio * a.numel() + 1e-9)]] = True
    return [m.view_as(t) for m, t in zip(drop.split([t.numel() for t in ws]), ws)]


@register
class MaskSparsity(PerTensorState):
    """MaskSparsity: L1 on the BN scaling factors of only the channels chosen for pruning.

    Jiang et al. (2023): R(γ) = Σ_c M_c·|γ_c| with M = 1 on the channels a
    pre-pruning selected (``method="L2"``: ½ Σ M·γ²). Pipeline: (1) a
    criterion picks M — here, at attach time, network slimming's global
    |γ| ranking over the selected tensors (``prune_ratio``, the share of
    channels to remove; ``slimming_masks``), typically after a
    sparsity-training or pre-training phase; or set your own with
    ``set_mask``; (2) train with this penalty (the kept channels are
    unregularized, the paper's point); (3) remove the masked channels,
    now ≈ 0; (4) fine-tune.

    Bind it to the BN scales, which the default selection excludes::

        reglab.MaskSparsity(5e-4, prune_ratio=0.5).on(modules=nn.BatchNorm2d, params="*.weight", exclude=None)

    Masks live in buffers ``mask__<param name>`` (state_dict). Standalone:
    ``reg.penalty(w, mask=M)``, or a tensor never set up gets its own
    per-tensor mask at ``prune_ratio`` on first use. Defaults: s =
    ``weight`` = 5e-4, the authors' run (CASIA-IVA-Lab/MaskSparsity at commit
    2827de4b: ``README.md`` line 52, step 4, ``./mask_sparsity.sh ... 5e-4
    ...``; ``mask_sparsity.sh`` line 6 passes it as ``SPARSE.SPARSITY``,
    which ``pycls/core/trainer.py`` line 148 hands to ``update_BN`` as ``s``);
    the 1e-4 in ``update_bn_by_names_dict``'s signature (``netslim/sparse.py``
    line 70, network slimming's value) is not what their run uses.
    ``prune_ratio`` = 0.5 is a library choice (the paper reports several). The
    official ``'smoothL1'`` variant depends on the learning rate and is not
    offered. ``mode="grad"`` adds s·sign(γ)⊙M to ``.grad`` after backward, as
    the official code does.
    """

    name = "mask_sparsity"
    formula = "R(γ) = Σ_c M_c·|γ_c|,  M = channels chosen for pruning"
    paper = PAPER
    function = mask_sparsity
    default_weight = 5e-4
    _state_prefix = "mask__"
    claims = (
        Claim(
            "Regularizing only the channels chosen for pruning removes them at no accuracy cost, unlike L1 on "
            "every BN scale (network slimming), which under-fits the kept channels",
            testable=False,
            untestable_reason="needs a BatchNorm CNN with channel removal: pre-pruning mask from a sparsity-trained "
            "model, masked sparsity training, physical channel removal and fine-tuning; the lab's pruning task "
            "is unstructured on an MLP without BN (not built yet)",
            source="Jiang et al. 2023, Tables 2-5 (ResNet-56/110 CIFAR-10, ResNet-50 ImageNet)",
        ),
    )

    def __init__(self, weight: float = 5e-4, prune_ratio: float = 0.5, method: str = "L1"):
        super().__init__(weight)
        self.prune_ratio = check_probability("MaskSparsity", "prune_ratio", prune_ratio)
        self.method = check_choice("MaskSparsity", "method", method, ("L1", "L2"))
        self._slots = {}
        self._auto = 0

    def _state_shape(self, w: torch.Tensor) -> tuple[int, ...]:
        return tuple(w.shape)

    def _new_state(self, w: torch.Tensor) -> torch.Tensor:
        return slimming_masks(w, self.prune_ratio)[0].to(torch.float32)

    def setup(self, named_params: Sequence[tuple[str, torch.Tensor]]) -> None:
        """Masks from one global |γ| ranking over all the given tensors (keeps masks already loaded)."""
        named = list(named_params)
        fresh = [(n, p) for n, p in named if self._buffers.get(self._state_prefix + n.replace(".", "__")) is None]
        if fresh:
            masks = slimming_masks([p for _, p in fresh], self.prune_ratio)
            for (n, _), m in zip(fresh, masks):
                self.register_buffer(self._state_prefix + n.replace(".", "__"), m.to(torch.float32))
        super().setup(named)

    def set_mask(self, w: torch.Tensor, mask: torch.Tensor) -> None:
        """Use ``mask`` (1/True: channel to prune) for tensor ``w`` from now on."""
        if tuple(mask.shape) != tuple(w.shape):
            raise RegularizerInputError(f"MaskSparsity expects a mask of shape {tuple(w.shape)}, got {tuple(mask.shape)}")
        self.state_of(w).copy_(mask.to(torch.float32))

    def mask_of(self, w: torch.Tensor) -> torch.Tensor:
        """The mask used for ``w`` (1: channel to prune)."""
        return self.state_of(w)

    def penalty(self, w: Any, mask: Any = None) -> torch.Tensor:  # type: ignore[override]
        if mask is not None:
            return mask_sparsity(w, mask, self.method)
        ws = as_tensors("mask_sparsity", w if isinstance(w, torch.Tensor) else list(w), upcast=False)
        return mask_sparsity(ws, [self.state_of(t) for t in ws], self.method)

    @torch.no_grad()
    def grad_(self, tensors: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], alpha: Any) -> torch.Tensor:
        """``grad += alpha·sign(γ)⊙M`` (L1) or ``alpha·γ⊙M`` (L2): the official ``update_bn_by_names_dict``."""
        value = None
        for t, g in zip(tensors, grads):
            m = self.state_of(t).to(t.dtype)
            d = torch.sign(t) * m if self.method == "L1" else t * m
            g.add_(d * alpha)
            v = (t.abs() * m).sum() if self.method == "L1" else 0.5 * (t.pow(2) * m).sum()
            value = v if value is None else value + v
        return value if value is not None else torch.zeros(())
