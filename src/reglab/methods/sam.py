"""Sharpness-Aware Minimization (Foret, Kleiner, Mobahi & Neyshabur, ICLR 2021); ASAM (Kwon et al., 2021).

Step with the gradient at the worst nearby point: ε = ρ·T_w²g/‖T_w g‖₂
(T_w = I for SAM, |w| for ASAM), w ← w − η·base_update(∇L(w + ε)); ρ = 0.05
is the paper's CIFAR default (Alg. 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from reglab.core import Baseline, Baselines, Claim, Paper, WrappedOptimizer, register
from reglab.ops import check_positive

PAPER = Paper(
    "Sharpness-Aware Minimization for Efficiently Improving Generalization",
    "Foret, Kleiner, Mobahi, Neyshabur", 2021, arxiv="2010.01412", venue="ICLR", code="https://github.com/google-research/sam")


@register
class SAM(WrappedOptimizer):
    """Sharpness-Aware Minimization: step with the gradient at the worst nearby point.

    Foret et al. (2021), Alg. 1. With ``g = ∇L(w)``::

        ε = ρ · T_w² g / ‖T_w g‖₂      (T_w = I for SAM, |w| for ASAM)
        w ← w − η · base_update(∇L(w + ε))

    ``ρ = 0.05`` (the paper's CIFAR default); ``adaptive=True`` is ASAM
    (Kwon et al., 2021; ε scaled by |w| element-wise; they use ρ = 0.5 to 2,
    pass it yourself). The norm is over all parameters together, as in the
    paper. The base optimizer (class, plus its kwargs such as ``lr``) makes
    the actual update; weight decay goes to it.

    Two-step API (as the widely used davda54/sam)::

        loss_fn(model(x), y).backward()
        sam.first_step(zero_grad=True)     # w ← w + ε
        loss_fn(model(x), y).backward()
        sam.second_step(zero_grad=True)    # w ← w − ε, then base step

    or ``sam.step(closure)`` where ``closure`` zeroes nothing, runs
    forward + backward and returns the loss (it is called twice).

    **GradScaler (fp16)**: the direction ``ε`` is invariant to the loss
    scale (``g/‖g‖`` does not change when ``g`` is multiplied by s), so the
    first step needs no unscaling; if the scaled gradient overflowed (inf/
    NaN), ``first_step`` skips the perturbation. Pattern::

        scaler.scale(loss_fn(model(x), y)).backward()
        sam.first_step(zero_grad=True)
        scaler.scale(loss_fn(model(x), y)).backward()
        scaler.step(sam)       # unscales, checks inf, calls sam.step() = second_step
        scaler.update(); sam.zero_grad()

    ``sam.step()`` without a closure is ``second_step`` for that reason.

    **Non-finite values** are refused, never stepped on: NaN/inf weights
    raise ``RegularizerInputError`` in ``first_step``; a NaN/inf loss (from
    the closure) or gradient raises with the weights back at ``w``, before
    the base optimizer moves them (with a closure already at the first pass).
    **bf16 autocast** needs nothing special: parameters and gradients stay
    in float32; the norm is accumulated in float32.
    """

    name = "sam"
    claims = (
        Claim(
            "SAM improves test accuracy over the base optimizer",
            task="clean_classification", metric="test_accuracy", direction="higher",
            min_effect=0.005, min_effect_reason="half a point of test accuracy",
            baselines=(
                Baseline("Adam", why="the base optimizer SAM wraps"),
                Baseline("Adam + L2 5e-4", {"name": "l2", "weight": 5e-4}, why="the usual cheap regularizer"),
            ),
            datasets=("digits", "digits_half"),
            settings="SAM around Adam (lr 1e-3) instead of SGD with momentum; an MLP on 8×8 digits, 60 epochs, "
            "epoch selected on validation, instead of WideResNet/ResNet on CIFAR and ImageNet; ρ = 0.05 is the "
            "paper's CIFAR default. SAM costs two forward-backward passes per step: the comparison is per epoch",
            source="Foret et al. 2021, Tables 1-2",
        ),
        Claim(
            "SAM is robust to label noise",
            task="label_noise", metric="test_accuracy", direction="higher", task_args={"noise": 0.4},
            min_effect=0.01, min_effect_reason="one point of clean test accuracy",
            baselines=(
                Baseline("Adam, early-stopped on the noisy validation split"),
                Baselines.LABEL_SMOOTHING,
            ),
            datasets=("digits", "digits_half"),
            settings="40% symmetric noise on an MLP (digits), every arm early-stopped on the noisy validation "
            "split; SAM around Adam; ρ = 0.05 (the paper uses larger ρ for noisy labels, not tuned here)",
            source="Foret et al. 2021, Sec. 3.3 and Table 4 (robustness to label noise)",
        ),
    )
    paper = PAPER
    formula = "ε = ρ·g/‖g‖₂;  w ← w − η·∇L(w + ε)"

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer: type = torch.optim.SGD,
        rho: float = 0.05,
        adaptive: bool = False,
        **kwargs: Any,
    ):
        self.rho = check_positive("SAM", "rho", rho, allow_zero=True)
        self.adaptive = bool(adaptive)
        self._setup(params, base_optimizer, {"rho": self.rho, "adaptive": self.adaptive}, kwargs)

    @torch.no_grad()
    def _grad_norm(self) -> torch.Tensor:
        norms = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.float()
                if group["adaptive"]:
                    g = g * p.detach().float().abs()
                norms.append(torch.linalg.vector_norm(g))
        if not norms:
            return torch.zeros(())
        return torch.linalg.vector_norm(torch.stack(norms))

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Move to ``w + ε`` (remembered in state as ``e_w``).

        Non-finite weights raise ``RegularizerInputError`` before anything
        moves; a non-finite gradient (a GradScaler overflow) skips the
        perturbation, and ``second_step`` then refuses to step on it."""
        self._first_step(zero_grad)

    @torch.no_grad()
    def _first_step(self, zero_grad: bool, loss: Any = None, closure: bool = False) -> None:
        # One host read checks the weights (and, with a closure, the loss and gradients) and reads ‖g‖.
        self._refuse_meta()
        norm = self._grad_norm()
        norm_value = self._refuse_nonfinite(
            loss, grads=closure, when="at w (the first pass)" if closure else "before the first step (w + ε)",
            extra=norm,
        )
        if not (math.isfinite(norm_value) and norm_value > 0):
            # Overflowed (GradScaler) or zero gradient: no perturbation; inf·0 would write NaN.
            if zero_grad:
                self.zero_grad()
            return
        for group in self.param_groups:
            scale = group["rho"] / (norm + 1e-12)
            for p in group["params"]:
                if p.grad is None:
                    continue
                e_w = p.grad.float() * scale
                if group["adaptive"]:
                    e_w = e_w * p.detach().float().pow(2)
                e_w = e_w.to(p.dtype)
                p.add_(e_w)
                self.state[p]["e_w"] = e_w
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Return to ``w`` and let the base optimizer step with the gradient taken at ``w + ε``.

        A NaN/inf gradient or weight raises ``RegularizerInputError`` after the
        return to ``w`` and before the base step: the weights stay as they were."""
        self._second_step()
        if zero_grad:
            self.zero_grad()

    def _second_step(self, loss: Any = None) -> None:
        self._refuse_meta()
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    e_w = self.state[p].pop("e_w", None)
                    if e_w is not None:
                        p.sub_(e_w)
        self._refuse_nonfinite(loss, when="at w + ε (the second pass), before the base optimizer's step")
        self.base_optimizer.step()

    def step(self, closure: Callable[[], torch.Tensor] | None = None):  # type: ignore[override]
        if closure is None:
            self.second_step()
            return None
        closure = torch.enable_grad()(closure)
        self._refuse_meta()
        self.zero_grad()
        loss = closure()
        self._first_step(True, loss, closure=True)
        self._second_step(closure())
        return loss
