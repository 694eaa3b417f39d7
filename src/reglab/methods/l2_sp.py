"""L2-SP: weight decay toward the starting point (Li, Grandvalet & Davoine, ICML 2018).

Their Eq. 3: Ω(w) = (α/2)‖w_S − w⁰_S‖² + (β/2)‖w_S̄‖², where w⁰ are the
pre-trained values of the parameters shared with the source model and S̄
the new parameters (the new head), pulled to 0, not to their random
initialization. ``L2SP(α, new_params="fc.*", beta_ratio=β/α)`` is all of
Eq. 3: the weight α multiplies the whole Ω, so the second term's
coefficient is given relative to it. The defaults α = 0.1 and β = 0
(``beta_ratio=0``: new parameters matched by ``new_params`` are left
alone) are library choices; the paper selects α and β by cross-validation.
"""

from __future__ import annotations

import fnmatch
import inspect
import weakref
from collections.abc import Sequence
from typing import Any

import torch

from reglab.core import AnchorState, Baseline, Claim, Paper, register
from reglab.ops import (
    add_scaled_, as_tensors, checked_total, hyperparameters, non_negative, squared_distance, squared_norm,
)

PAPER = Paper(
    "Explicit Inductive Bias for Transfer Learning with Convolutional Networks",
    "Li, X., Grandvalet, Y. and Davoine, F.", 2018, arxiv="1802.01483", venue="ICML")


def _given(tensors: Any) -> bool:
    return tensors is not None and not (isinstance(tensors, (list, tuple)) and len(tensors) == 0)


@hyperparameters(beta_ratio=non_negative)
def l2_sp(
    w: torch.Tensor | Sequence[torch.Tensor],
    anchor: torch.Tensor | Sequence[torch.Tensor],
    new: torch.Tensor | Sequence[torch.Tensor] = (),
    beta_ratio: float = 0.0,
) -> torch.Tensor:
    """L2-SP ``½‖w − w⁰‖² + (beta_ratio/2)·‖v‖²``: weight decay toward the pre-trained ``w⁰``
    for the shared weights ``w`` and toward 0 for the ``new`` ones ``v`` (Li et al., 2018, Eq. 3
    divided by α, so ``beta_ratio = β/α``), summed over tensors. ``w`` may be an empty list
    when every tensor is new."""
    who = "l2_sp"
    has_new = _given(new)
    total = None
    if not (has_new and isinstance(w, (list, tuple)) and len(w) == 0):
        total = 0.5 * squared_distance(who, w, anchor)
    if has_new:
        news = as_tensors(who, new, arg="new weight")
        term = (0.5 * beta_ratio) * checked_total(who, squared_norm(news), news, arg="new weight")
        total = term if total is None else total + term
    return total


@register
class L2SP(AnchorState):
    """L2-SP: weight decay toward the starting point, R(w) = ½‖w_S − w⁰_S‖² + (β/α)/2·‖w_S̄‖².

    Li, Grandvalet & Davoine (2018), Eq. 3: Ω(w) = (α/2)‖w_S − w⁰_S‖² +
    (β/2)‖w_S̄‖², where w⁰ are the pre-trained values of the parameters
    shared with the source model and S̄ the new ones (the new head).
    ``weight`` is α and multiplies all of Ω, so ``beta_ratio`` is β/α:
    ``L2SP(0.1, new_params="fc.*", beta_ratio=0.1)`` is α = 0.1, β = 0.01.
    ``new_params`` (globs on the parameter names given to ``setup``,
    as ``.on(params=...)``) marks S̄: those parameters get no anchor and
    are pulled to 0, not to their random initialization; with the default
    ``beta_ratio=0`` they are left alone (the β = 0 case). The default α =
    0.1 is a library choice (the paper selects α and β by cross-validation).

    Anchors w⁰ are copied at attach time (``setup``, which
    ``reglab.attach`` calls) into buffers ``anchor__<param name>``, so
    they live in state_dict; a tensor's anchor is found by identity.
    Standalone: ``reg.setup([(name, p), ...])`` or ``reg.penalty(w, anchor=w0)``
    (plus ``new=[v, ...]`` for new tensors).
    """

    name = "l2_sp"
    claims = (
        Claim(
            "Fine-tuning with L2-SP (pull toward the pre-trained weights) beats fine-tuning with plain weight decay",
            task="transfer", metric="test_accuracy", direction="higher",
            arm={"name": "l2_sp", "weight": 0.1, "new_params": "head.*", "beta_ratio": 0.1},
            min_effect=0.01, min_effect_reason="one point of target test accuracy",
            baselines=(
                Baseline("fine-tuning, no regularizer", why="plain fine-tuning with early stopping on validation"),
                Baseline("fine-tuning with L2 5e-4", {"name": "l2", "weight": 5e-4},
                         why="the weight decay L2-SP replaces"),
            ),
            datasets=("digits", "digits_half"),
            settings="source = digits 0-4, target = 10% of digits 5-9 (an MLP, Adam) instead of ImageNet/Places365 "
            "ResNets fine-tuned on Caltech/Stanford Dogs/MIT Indoor with SGD; α = 0.1, β = 0.01 (the values the "
            "paper reports most often after cross-validation), not tuned here",
            source="Li et al. 2018, Tables 2-3 (L2-SP vs L2 fine-tuning)",
        ),
    )
    formula = "R(w) = ½ ‖w_S − w⁰_S‖² + (β/α)/2 ‖w_S̄‖²,  w⁰ = weights at attach time, S̄ = new_params"
    paper = PAPER
    function = l2_sp
    call_args = ("new",)
    default_weight = 0.1

    @classmethod
    def leading_parameters(cls) -> list[inspect.Parameter]:
        new = inspect.Parameter("new_params", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
        return [*super().leading_parameters(), new]

    def _init_from_values(self, values: dict[str, Any]) -> None:
        spec = values.get("new_params")
        globs = [spec] if isinstance(spec, str) else spec
        if spec is not None and not (isinstance(globs, (list, tuple)) and all(isinstance(g, str) for g in globs)):
            raise ValueError(f"L2SP: new_params takes a glob or a list of globs on parameter names, got {spec!r}")
        super()._init_from_values(values)
        self._new_globs = tuple(globs or ())
        self._new: dict[int, weakref.ref] = {}

    def _is_new_name(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, g) for g in self._new_globs)

    def _is_new(self, w: torch.Tensor) -> bool:
        ref = self._new.get(id(w))
        return ref is not None and ref() is w

    def setup(self, named_params: Sequence[tuple[str, torch.Tensor]]) -> None:
        """Anchor each (name, parameter) at its current value, except those ``new_params`` matches (S̄)."""
        named = list(named_params)
        super().setup([(n, p) for n, p in named if not self._is_new_name(n)])
        self._new.update({id(p): weakref.ref(p) for n, p in named if self._is_new_name(n)})

    def penalty(
        self, w: torch.Tensor | Sequence[torch.Tensor], anchor: torch.Tensor | None = None,
        new: torch.Tensor | Sequence[torch.Tensor] = (),
    ) -> torch.Tensor:
        if anchor is not None:
            return l2_sp(w, anchor, new, self.beta_ratio)
        ws = as_tensors("l2_sp", w, upcast=False)
        shared = [t for t in ws if not self._is_new(t)]
        fresh = [t for t in ws if self._is_new(t)]
        return l2_sp(shared, [self._anchor(t) for t in shared], fresh, self.beta_ratio)

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        if self._is_new(w):  # prox of (β/α)/2·‖w‖²
            w.div_(1.0 + step_size * self.beta_ratio)
            return
        anchor = self._anchor(w)
        w.copy_(anchor + (w - anchor) / (1.0 + step_size))

    @torch.no_grad()
    def grad_(self, tensors, grads, alpha):
        """``g += α·(w − w⁰)`` on anchored tensors and ``α·(β/α)·v`` on new ones (the derivative of
        ``l2_sp``); returns the penalty from the norms of those same differences."""
        who = "l2_sp"
        raw = as_tensors(who, list(tensors), upcast=False)
        anchors = [None if self._is_new(t) else self._anchor(t) for t in raw]
        ws = as_tensors(who, raw)
        diffs = [w if a is None else w - a.to(w.dtype) for w, a in zip(ws, anchors)]
        coefs = [self.beta_ratio if a is None else 1.0 for a in anchors]
        sq = torch._foreach_pow(torch._foreach_norm(diffs, 2), 2)
        torch._foreach_mul_(sq, coefs)
        value = checked_total(who, 0.5 * torch.stack(sq).sum(), ws)
        if any(c != 1.0 for c in coefs):
            diffs = [d * c if c != 1.0 else d for d, c in zip(diffs, coefs)]
        add_scaled_(grads, diffs, alpha)
        return value
