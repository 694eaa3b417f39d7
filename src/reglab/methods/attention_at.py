"""Adversarial training for attention (Attention AT / iAT; Kitada & Iyatomi, IEEE Access 2021).

The perturbation of the pre-softmax attention scores a: a ← a + ε·g/‖g‖,
g = ∇_a L, normalized per example over the attended positions; the model is
trained on L(a) + λ·L(a + r). Pinned from the official code
(shunk031/attention-meets-perturbation ``amep/modules/attention_layer/bc/advt.py``,
``TanhBCAttentionAT._advt_step`` and ``TanhBCAttentioniAT._advt_step``;
the two-pass training step in ``amep/models/bc/at_advt.py``, ``forward``).
"""

from __future__ import annotations

import torch

from reglab.core import Claim, FunctionModule, Paper, RegularizerInputError, register
from reglab.ops import check_same_shape, check_tensor, hyperparameters, one_of, positive

PAPER = Paper(
    "Attention Meets Perturbations: Robust and Interpretable Attention with Adversarial Training",
    "Kitada, Iyatomi", 2021, arxiv="2009.12064", venue="IEEE Access",
    code="https://github.com/shunk031/attention-meets-perturbation")

_WHO = "AttentionAT"


@hyperparameters(_WHO, epsilon=positive, variant=one_of("at", "iat"))
def attention_at(
    scores: torch.Tensor,
    grad: torch.Tensor,
    epsilon: float | None = None,
    variant: str = "at",
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention AT (Kitada & Iyatomi, 2021): ``a + ε·s·g/max(‖g‖₂, 1e-12)`` per example.

    ``scores`` are the pre-softmax attention scores a (last dimension: the
    attended positions); ``grad`` is ∇_a L from a first forward/backward pass
    at a (it is detached: the perturbation is a constant). The norm is taken
    over the last dimension, as ``F.normalize(grad)`` over dim 1 of the
    official (batch, length) scores. ``mask`` (bool or 0/1, broadcastable to
    ``scores``; True = a real token) zeroes ``grad`` on padding first: in the
    official code the masked softmax already gives padding zero gradient.
    ``variant="at"`` is Attention AT, s = +1 (``TanhBCAttentionAT``);
    ``variant="iat"`` is the official ``TanhBCAttentioniAT``'s effective
    rule, s = −1 (see the class docstring). ε has no default: it is a
    required argument (``xi``) in the official code, so ``None`` raises.
    """
    if epsilon is None:
        raise RegularizerInputError(
            f"{_WHO} needs epsilon (the perturbation size ε > 0); the official code has no default for it")
    check_tensor(_WHO, scores, arg="scores", min_ndim=1)
    check_tensor(_WHO, grad, arg="grad", min_ndim=1)
    check_same_shape(_WHO, scores, grad, what="scores and grad")
    g = grad.detach().to(scores.dtype)
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            raise RegularizerInputError(f"{_WHO} expects mask to be a torch.Tensor or None, got {type(mask).__name__}")
        try:
            g = g * torch.broadcast_to(mask, g.shape).to(g.dtype)
        except RuntimeError:
            raise RegularizerInputError(
                f"{_WHO} expects a mask broadcastable to scores of shape {tuple(scores.shape)}, "
                f"got shape {tuple(mask.shape)}") from None
    norm = torch.linalg.vector_norm(g, dim=-1, keepdim=True).clamp_min(1e-12)
    sign = 1.0 if variant == "at" else -1.0
    return scores + (sign * epsilon) * (g / norm)


@register
class AttentionAT(FunctionModule):
    """Attention AT / iAT: perturb the attention scores along the normalized loss gradient.

    Kitada & Iyatomi (2021) train an attention model on ``L(a) + λ·L(a + r)``
    with ``r = ε·g/‖g‖₂``, ``g = ∇_a L`` taken at the pre-softmax attention
    scores a, normalized per example over the attended positions. This is
    that perturbation: ``at(scores, grad, mask=None)`` returns ``a + r``.
    The official training step (``amep/models/bc/at_advt.py``, ``forward``)
    runs the model twice more per batch: a pass with a zero perturbation
    variable on a, ``backward`` to get g, then a pass on ``a + r`` whose loss
    is added with λ = ``lam_adv`` = 1 (its default). Only the scores carry
    gradient in that second pass (g is a constant).

    Pinned from ``amep/modules/attention_layer/bc/advt.py``: Attention AT
    (``TanhBCAttentionAT._advt_step``) adds ``xi * F.normalize(d.grad)``;
    ``F.normalize`` is the L2 norm over dim 1 of the (batch, length) scores
    with ``eps = 1e-12`` (here: the last dimension, so (batch, heads,
    queries, keys) scores work too). ε (``xi``) is a required argument with
    no default in the code and is not set in its shipped configs, so it has
    none here either. The iAT layer (``TanhBCAttentioniAT._advt_step``)
    builds the normalized pairwise differences of the batch's scores as the
    directions of the paper's interpretable perturbation, but multiplies
    them by a zero-initialized variable and normalizes the zero sum, so the
    first pass adds 0 and its perturbation variable's gradient is g itself;
    the second pass adds ``xi * F.normalize(-g)``. ``variant="iat"`` is that
    effective rule (``a − ε·g/‖g‖``) and nothing more: the paper's
    difference-spanned direction is not what the official code computes,
    and is not implemented here.
    """

    name = "attention_at"
    kind = "stochastic"
    form = "transform"
    paper = PAPER
    formula = "a ← a + s·ε·g/‖g‖₂,  g = ∇_a L (per example, over positions);  s = +1 (AT), −1 (official iAT)"
    function = attention_at
    call_args = ("mask",)
    example_args = {"epsilon": 1.0}
    claims = (
        Claim(
            "Attention AT/iAT improves test accuracy and the agreement of attention with gradient-based word "
            "importance over the same attention model without it",
            testable=False,
            untestable_reason="no lab task has a recurrent encoder with additive attention over token sequences "
            "(the paper's BiLSTM + tanh attention on SST, IMDB, AG News, 20News, bAbI, CNN, SNLI, MultiNLI); the "
            "only attention task (transformer) is 9 s per run and its attention scores are not exposed for a "
            "two-pass perturbation, and ε has no official default to test",
            source="Kitada & Iyatomi 2021, Tables 2-4 (Vanilla vs Attention AT vs Attention iAT)",
        ),
    )

    def forward(  # type: ignore[override]
        self, scores: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return super().forward(scores, grad, mask=mask)
