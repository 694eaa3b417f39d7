"""L2-SP: weight decay toward the starting point (Li, Grandvalet & Davoine, ICML 2018).

Their Eq. 3: Ω(w) = (α/2)‖w_S − w⁰_S‖² + (β/2)‖w_S̄‖², where w⁰ are the
pre-trained values of the parameters shared with the source model.
``L2SP(α)`` is the first term; the paper's β term on the new head is plain
``reglab.L2(β)`` bound to the head's parameters. The default α = 0.1 is a
library choice (the paper selects α and β by cross-validation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import Paper, PerTensorState, RegularizerInputError, register
from reglab.ops import as_tensors, checked_total, paired_tensors, squared_norm

PAPER = Paper(
    "Explicit Inductive Bias for Transfer Learning with Convolutional Networks",
    "Li, X., Grandvalet, Y. and Davoine, F.", 2018, arxiv="1802.01483", venue="ICML")


def l2_sp(
    w: torch.Tensor | Sequence[torch.Tensor], anchor: torch.Tensor | Sequence[torch.Tensor]
) -> torch.Tensor:
    """L2-SP ``½‖w − w⁰‖²``: weight decay toward the pre-trained ``w⁰`` (Li et al., 2018), summed over tensors."""
    who = "l2_sp"
    ws, anchors = paired_tensors(who, w, anchor, "anchor", lambda t: tuple(t.shape))
    diffs = torch._foreach_sub(ws, [a.to(t.dtype) for t, a in zip(ws, anchors)])
    return checked_total(who, 0.5 * squared_norm(diffs), [*ws, *anchors])


@register
class L2SP(PerTensorState):
    """L2-SP: weight decay toward the starting point, R(w) = ½‖w − w⁰‖².

    Li, Grandvalet & Davoine (2018), Eq. 3: Ω(w) = (α/2)‖w_S − w⁰_S‖² +
    (β/2)‖w_S̄‖², where w⁰ are the pre-trained values of the parameters
    shared with the source model. ``L2SP(α)`` is the first term; the
    paper's β term on the new head is plain ``reglab.L2(β)`` bound to the
    head's parameters. The default α = 0.1 is a library choice (the paper
    selects α and β by cross-validation).

    Anchors w⁰ are copied at attach time (:meth:`setup`, which
    :func:`reglab.attach` calls) into buffers ``anchor__<param name>``, so
    they live in state_dict; a tensor's anchor is found by identity.
    Standalone: ``reg.setup([(name, p), ...])`` or ``reg.penalty(w, anchor=w0)``.
    """

    name = "l2_sp"
    formula = "R(w) = ½ ‖w − w⁰‖²,  w⁰ = weights at attach time"
    paper = PAPER
    function = l2_sp
    default_weight = 0.1
    _state_prefix = "anchor__"


    def _state_shape(self, w: torch.Tensor) -> tuple[int, ...]:
        return tuple(w.shape)

    def _new_state(self, w: torch.Tensor) -> torch.Tensor:
        return w.detach().clone()

    def _anchor(self, w: torch.Tensor) -> torch.Tensor:
        slot = self._slots.get(id(w))
        if slot is None or slot[0]() is not w:
            raise RegularizerInputError(
                f"L2SP has no anchor for the weight of shape {tuple(w.shape)}: bind it with reglab.attach "
                f"(which records anchors), call setup([(name, param)]), or pass anchor="
            )
        return self._buffers[slot[1]]

    def penalty(self, w: torch.Tensor | Sequence[torch.Tensor], anchor: torch.Tensor | None = None) -> torch.Tensor:
        if anchor is not None:
            return l2_sp(w, anchor)
        ws = as_tensors("l2_sp", w, upcast=False)
        return l2_sp(ws, [self._anchor(t) for t in ws])

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        anchor = self._anchor(w)
        w.copy_(anchor + (w - anchor) / (1.0 + step_size))
