"""Adversarial Model Perturbation (Zheng, Zhang & Mao, CVPR 2021).

Minimize L_AMP(θ) = max_{‖Δ‖≤ε} L(θ + Δ): K steps of gradient ascent with
step ζ, each projected onto the ε-ball per parameter tensor, then the base
optimizer's step with the gradient at θ + Δ_K. Pinned from the official code
(hiyouga/AMP-Regularizer ``amp.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from reglab.core import Baseline, Claim, Paper, RegularizerInputError, WrappedOptimizer, register
from reglab.ops import check_int, check_positive

PAPER = Paper(
    "Regularizing Neural Networks via Adversarial Model Perturbation", "Zheng, Zhang, Mao", 2021,
    arxiv="2010.04925", venue="CVPR", code="https://github.com/hiyouga/AMP-Regularizer")


@register
class AMPPerturbation(WrappedOptimizer):
    """Adversarial Model Perturbation: descend on the loss at the worst point of an ε-ball.

    Zheng et al. (2021) minimize ``L_AMP(θ) = max_{‖Δ‖≤ε} L(θ + Δ)``. The
    inner maximization is ``inner_iter`` steps of gradient ascent with step
    ``inner_lr`` (ζ), each projected back onto the ε-ball; the outer step
    applies the base optimizer with the gradient taken at ``θ + Δ_K``, then
    moves back to ``θ``::

        Δ ← 0;  repeat K times:  Δ ← Π_ε(Δ + ζ·∇L(θ + Δ))
        θ ← θ − η·base_update(∇L(θ + Δ_K))

    Pinned from the official code (hiyouga/AMP-Regularizer ``amp.py``): the
    ascent step is the raw gradient times ζ (not normalized, unlike SAM);
    the projection Π_ε rescales **each parameter tensor's** Δ to norm ≤ ε
    separately; defaults ζ = ``inner_lr`` = 1, K = ``inner_iter`` = 1;
    ε has no default in the code; 0.5 is its README example, used here.

    API: ``amp.step(closure)``; ``closure`` runs forward + backward and
    returns the loss; it is called K + 1 times per step (gradients are
    zeroed before each call). A NaN/inf loss, gradient or weight raises
    ``RegularizerInputError`` with the weights back at θ, untouched by the
    base optimizer.
    """

    name = "amp_perturbation"
    claims = (
        Claim(
            "Adversarial model perturbation improves test accuracy over the base optimizer and over SAM",
            task="clean_classification", metric="test_accuracy", direction="higher",
            min_effect=0.005, min_effect_reason="half a point of test accuracy",
            baselines=(
                Baseline("Adam", why="the base optimizer AMP wraps"),
                Baseline("SAM (ρ=0.05)", {"name": "sam"}, why="the flat-minima method AMP compares with"),
            ),
            datasets=("digits", "digits_half"),
            settings="AMP around Adam (lr 1e-3) instead of SGD; an MLP on 8×8 digits, 60 epochs, epoch selected on "
            "validation, instead of PreActResNet/VGG on CIFAR/SVHN; ε = 0.5, ζ = 1, K = 1 from the official code",
            source="Zheng et al. 2021, Tables 1-3 (ERM vs AMP and other regularizers)",
        ),
    )
    paper = PAPER
    formula = "Δ ← Π_ε(Δ + ζ∇L(θ+Δ)) (K times, per tensor);  θ ← θ − η∇L(θ+Δ_K)"

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer: type = torch.optim.SGD,
        epsilon: float = 0.5,
        inner_lr: float = 1.0,
        inner_iter: int = 1,
        **kwargs: Any,
    ):
        self.epsilon = check_positive("AMPPerturbation", "epsilon", epsilon, allow_zero=True)
        self.inner_lr = check_positive("AMPPerturbation", "inner_lr", inner_lr, allow_zero=True)
        self.inner_iter = check_int("AMPPerturbation", "inner_iter", inner_iter, 0)
        defaults = {"epsilon": self.epsilon, "inner_lr": self.inner_lr}
        self._setup(params, base_optimizer, defaults, kwargs)

    def step(self, closure: Callable[[], torch.Tensor] | None = None):  # type: ignore[override]
        if closure is None:
            raise RegularizerInputError("AMPPerturbation.step needs a closure that runs forward + backward")
        closure = torch.enable_grad()(closure)
        self._refuse_meta()
        self.zero_grad()
        loss = closure()
        self._refuse_nonfinite(loss, when="at θ (before the first ascent step)")
        deltas: dict[torch.Tensor, torch.Tensor] = {}
        for k in range(self.inner_iter):
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        if p.grad is None:
                            continue
                        old = deltas.get(p)
                        new = group["inner_lr"] * p.grad if old is None else old + group["inner_lr"] * p.grad
                        norm = torch.linalg.vector_norm(new)
                        if norm > group["epsilon"]:
                            new = new * (group["epsilon"] / norm)
                        p.add_(new if old is None else new - old)
                        deltas[p] = new
            self.zero_grad()
            inner_loss = closure()
            try:
                self._refuse_nonfinite(inner_loss, weights=False, when=f"at θ + Δ (ascent step {k + 1})")
            except RegularizerInputError:
                self._restore(deltas)  # back to θ: the weights are left as they were
                raise
        self._restore(deltas)
        self.base_optimizer.step()
        return loss

    @torch.no_grad()
    def _restore(self, deltas: dict[torch.Tensor, torch.Tensor]) -> None:
        for p, d in deltas.items():
            p.sub_(d)
