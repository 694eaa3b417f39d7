"""StableMax and ⊥Grad (Prieto, Barsbey, Mediano & Birdal, ICLR 2025: "Grokking at the Edge of
Numerical Stability").

StableMax replaces exp in the softmax by s(x) = x + 1 (x ≥ 0), 1/(1 − x) (x < 0), so that
p_i = s(x_i)/Σ_j s(x_j): the probabilities saturate polynomially, not exponentially, and the
cross-entropy does not round to exactly 0 in floating point (Softmax Collapse). ⊥Grad (OrthoGrad)
removes from each parameter's gradient its component along the parameter, the direction that only
scales the logits (the paper's "naïve loss minimization"), and rescales the remainder to the
gradient's norm.

Both are pinned from the official code (LucasPrietoAl/grokking-at-the-edge-of-numerical-stability,
commit 0cc9e8dc): ``utils.py`` ``s``/``log_stablemax``/``stablemax_cross_entropy`` (lines 31-49: s in
float64, log(s(x)/Σ s(x)), the CE the mean of −log p_y) and ``orthograd.py`` (per parameter tensor,
flattened: g⊥ = g − (⟨w, g⟩/(⟨w, w⟩ + 1e-30))·w, then g⊥·‖g‖/(‖g⊥‖ + 1e-30), then the base
optimizer's step).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from reglab.core import Baseline, Baselines, Claim, FunctionModule, Paper, WrappedOptimizer, register
from reglab.ops import check_logits

__all__ = ["log_stablemax", "stablemax_cross_entropy", "StableMax", "OrthoGrad"]

PAPER = Paper(
    "Grokking at the Edge of Numerical Stability", "Prieto, Barsbey, Mediano, Birdal", 2025,
    arxiv="2501.04697", venue="ICLR", code="https://github.com/LucasPrietoAl/grokking-at-the-edge-of-numerical-stability")

_GROKKING = (
    "the paper's evidence is grokking on modular arithmetic (an MLP or transformer on mod-113 addition, 30-40% of "
    "the pairs, thousands of full-batch epochs, measuring the epoch test accuracy leaves chance); the lab has no "
    "algorithmic task, and on its digits tasks the float32 cross-entropy never rounds to zero in 60 epochs, so the "
    "mechanism (no Softmax Collapse) has nothing to act on"
)


def log_stablemax(logits: torch.Tensor) -> torch.Tensor:
    """``log p`` with ``p_i = s(x_i)/Σ_j s(x_j)``, ``s(x) = x + 1`` for x ≥ 0 and ``1/(1 − x)`` for
    x < 0 (Prieto et al., 2025), per row of (batch, classes) logits.

    Computed in float64 as the official ``log_stablemax`` (``utils.py``), returned in the logits'
    dtype. ``F.cross_entropy(log_stablemax(z), y)`` is the StableMax cross-entropy (the log-softmax
    of log-probabilities is themselves), as is ``F.nll_loss``.
    """
    check_logits("StableMax", logits)
    x = logits.to(torch.float64)
    # s(x): continuous with a continuous first derivative (1 at 0 from both sides)
    s = torch.where(x >= 0, x + 1.0, 1.0 / (1.0 - x.clamp(max=0.0)))
    return (s.log() - s.sum(dim=1, keepdim=True).log()).to(logits.dtype)


def stablemax_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``−log p_y`` under StableMax (the official ``stablemax_cross_entropy``)."""
    logp = log_stablemax(logits)
    if not isinstance(target, torch.Tensor) or target.dtype not in (torch.int64, torch.int32) \
            or target.shape != logits.shape[:1]:
        raise ValueError(
            f"stablemax_cross_entropy expects integer class labels of shape {tuple(logits.shape[:1])}, got "
            f"{type(target).__name__ if not isinstance(target, torch.Tensor) else (target.dtype, tuple(target.shape))}"
        )
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= logits.shape[1]):
        raise ValueError(f"stablemax_cross_entropy: labels must lie in [0, {logits.shape[1]}), got "
                         f"[{int(target.min())}, {int(target.max())}]")
    return -logp.gather(1, target.long()[:, None]).mean()


@register
class StableMax(FunctionModule):
    """StableMax: ``log p`` with ``p_i = s(x_i)/Σ_j s(x_j)`` in place of the log-softmax.

    ``s(x) = x + 1`` for x ≥ 0 and ``1/(1 − x)`` for x < 0 (Prieto et al., 2025): linear
    growth instead of exp, so the probability of the true class approaches 1 only polynomially
    and the loss of a well-fit sample does not round to exactly 0 (their Softmax Collapse, which
    stops learning without weight decay). A module on the logits that returns log-probabilities:
    ``F.cross_entropy(stablemax(model(x)), y)`` is the StableMax cross-entropy. s is monotone,
    so the argmax (and accuracy) of the raw logits is unchanged. Computed in float64, as the
    official code (``utils.py``, ``log_stablemax``). No hyperparameters.
    """

    name = "stablemax"
    kind = "output"
    form = "module"
    paper = PAPER
    formula = "p_i = s(x_i)/Σ_j s(x_j),  s(x) = x + 1 (x ≥ 0), 1/(1 − x) (x < 0)"
    function = log_stablemax
    claims = (
        Claim(
            "StableMax cross-entropy trains a classifier as well as softmax cross-entropy",
            task="clean_classification", metric="test_accuracy", direction="higher", kind="non-inferiority",
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(Baselines.CE,),
            control=Baselines.shorter_training(15, 60),
            datasets=("digits", "digits_half"),
            settings="an MLP on 8×8 digits (Adam, 60 epochs, epoch selected on validation) instead of grokking "
            "tasks; StableMax has no hyperparameter",
            source="Prieto et al. 2025, StableMax as a drop-in replacement for the softmax in the cross-entropy",
        ),
        Claim(
            "StableMax lets a model grok without weight decay (no Softmax Collapse)",
            testable=False, untestable_reason=_GROKKING,
            source="Prieto et al. 2025, the grokking experiments with StableMax and no weight decay",
        ),
    )


@register
class OrthoGrad(WrappedOptimizer):
    """⊥Grad: step with the part of each gradient orthogonal to its parameter.

    Per parameter tensor w with gradient g (flattened; Prieto et al., 2025, and the
    official ``orthograd.py``)::

        g⊥ = g − (⟨w, g⟩ / (⟨w, w⟩ + 1e-30)) · w
        g  ← g⊥ · ‖g‖ / (‖g⊥‖ + 1e-30)          (the official rescaling to the original norm)

    then the base optimizer steps with the projected gradients. The removed component is the
    direction that grows ‖w‖, which, in a network homogeneous in its weights, only scales the
    logits toward Softmax Collapse. No hyperparameters of its own; the base optimizer (class,
    plus its kwargs such as ``lr``) makes the update, the paper's experiments use it without
    weight decay. ``step(closure)`` calls the closure once (forward + backward, returns the loss).
    Non-finite weights or gradients raise ``RegularizerInputError`` before anything moves.
    """

    name = "orthograd"
    paper = PAPER
    formula = "g⊥ = g − (⟨w,g⟩/⟨w,w⟩)·w;  w ← base_step(g⊥·‖g‖/‖g⊥‖)"
    claims = (
        Claim(
            "⊥Grad without weight decay improves test accuracy over the base optimizer",
            task="clean_classification", metric="test_accuracy", direction="higher",
            min_effect=0.005, min_effect_reason="half a point of test accuracy",
            baselines=(
                Baseline("Adam", why="the base optimizer ⊥Grad wraps"),
                Baseline("Adam + L2 5e-4", {"name": "l2", "weight": 5e-4},
                         why="weight decay, which ⊥Grad is proposed to replace"),
            ),
            datasets=("digits", "digits_half"),
            settings="⊥Grad around Adam (lr 1e-3), an MLP on 8×8 digits, 60 epochs, epoch selected on validation, "
            "instead of grokking on modular arithmetic; no hyperparameter to tune",
            source="Prieto et al. 2025, the ⊥Grad experiments (generalization without weight decay)",
        ),
        Claim(
            "⊥Grad speeds up grokking (test accuracy rises earlier than with weight decay)",
            testable=False, untestable_reason=_GROKKING,
            source="Prieto et al. 2025, the ⊥Grad experiments",
        ),
    )

    def __init__(self, params: Iterable[Any], base_optimizer: type = torch.optim.SGD, **kwargs: Any):
        self._setup(params, base_optimizer, {}, kwargs)

    @torch.no_grad()
    def project_(self) -> None:
        """Replace each ``.grad`` by its part orthogonal to the parameter, rescaled to the gradient's norm."""
        for p in self._params_with_grad():
            if p.grad.is_sparse:
                raise ValueError("OrthoGrad does not support sparse gradients")
            w, g = p.detach().reshape(-1), p.grad.reshape(-1)
            wf, gf = w.float() if w.dtype in (torch.float16, torch.bfloat16) else w, \
                g.float() if g.dtype in (torch.float16, torch.bfloat16) else g
            proj = torch.dot(wf, gf) / (torch.dot(wf, wf) + 1e-30)
            g_orth = gf - proj * wf
            g_orth = g_orth * (torch.linalg.vector_norm(gf) / (torch.linalg.vector_norm(g_orth) + 1e-30))
            p.grad.copy_(g_orth.reshape(p.grad.shape))

    def step(self, closure: Callable[[], torch.Tensor] | None = None):  # type: ignore[override]
        self._refuse_meta()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                self.zero_grad()
                loss = closure()
        self._refuse_nonfinite(loss, when="before the projection")
        self.project_()
        self.base_optimizer.step()
        return loss
