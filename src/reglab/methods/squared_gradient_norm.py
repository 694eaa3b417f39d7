"""Squared gradient-norm penalty with a forward-difference Hessian-vector product (Geiping, Goldblum,
Pope, Moeller & Goldstein, ICLR 2022: "Stochastic Training is Not Necessary for Generalization").

R(θ) = (λ/2)·‖∇L(θ)‖², whose gradient is λ·H·g (g = ∇L(θ), H the Hessian). The official code
(JonasGeiping/fullbatchtraining, ``fullbatch/models/modules.py``, ``GradRegularizer``, default
``implementation: forward-differences``, ``_forward_differences``) estimates H·g by one extra
gradient at a shifted point, without second-order autograd::

    θ' = θ + ε·g/‖g‖,   H·g ≈ ‖g‖·(∇L(θ') − g)/ε,   update direction g + λ·H·g

with ε = 1e-2 (``config/hyp/_default_hyperparams.yaml``: ``grad_reg.eps``). The code's coefficient
is λ = lr·block_strength/4 (``modules.py``: ``correction_factor = lr / 4`` times the
``block_strength``-scaled vector; the ``autograd`` implementation in the same class agrees, its
``autograd-pen`` variant doubles it); their full-batch CIFAR recipe ``config/hyp/gradreg.yaml``
(lr 0.8, ``block_strength: 0.5``) gives λ = 0.1, this class's default. The code applies it per
block of ``sub_batch`` = 128 examples and averages the blocks; here it is applied to the loss the
closure returns (the batch you give it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from reglab.core import Baseline, Claim, Paper, Regularizer, RegularizerInputError, register
from reglab.methods.gradient_norm import _check_loss, _gradient_norm, _params_list
from reglab.ops import check_choice, check_positive, require_values

__all__ = ["SquaredGradientNorm"]

PAPER = Paper(
    "Stochastic Training is Not Necessary for Generalization", "Geiping, Goldblum, Pope, Moeller, Goldstein", 2022,
    arxiv="2109.14119", venue="ICLR", code="https://github.com/JonasGeiping/fullbatchtraining")

WHO = "SquaredGradientNorm"


@register
class SquaredGradientNorm(Regularizer):
    """Squared gradient-norm penalty ``(λ/2)·‖∇_θ L‖²``, the explicit form of SGD's implicit regularizer.

    Its gradient is ``λ·H·g`` (``g = ∇L(θ)``). Two ways to get the gradient of ``L + R``:

    * ``method="finite_difference"`` (the default, as the official code): ``reg.backward(closure,
      params)`` calls the closure (forward, returns the loss) at θ and at ``θ' = θ + ε·g/‖g‖`` and
      writes ``g + λ·‖g‖·(∇L(θ') − g)/ε`` into ``.grad`` (added to what is there); the parameters
      are restored exactly. No second-order graph.
    * ``method="double_backprop"``: ``reg(loss, params)`` returns ``(λ/2)·‖∇L‖²`` with a graph; add
      it to the loss (``backward`` does this for you).

    The two agree as ε → 0 (tested). Geiping et al. (2022) use it, with gradient clipping and longer
    training, to make full-batch gradient descent generalize like SGD. The code's coefficient is
    λ = lr·block_strength/4; their recipe (lr 0.8, block_strength 0.5) gives the default λ = 0.1;
    ε = 1e-2 is their default (JonasGeiping/fullbatchtraining, ``fullbatch/models/modules.py``
    ``GradRegularizer._forward_differences``; ``config/hyp/gradreg.yaml``). Compare
    ``gradient_norm`` (Zhao et al. 2022): ``‖∇L‖`` unsquared, whose gradient ``H·g/‖g‖`` ignores
    the gradient's size. Under DDP the norm is that of each rank's local gradient, as the official
    code's per-block regularizer.
    """

    name = "squared_gradient_norm"
    kind = "procedure"
    form = "penalty"
    paper = PAPER
    formula = "R = (λ/2)‖∇_θ L‖²;  ∇R = λHg ≈ λ‖g‖(∇L(θ + ε g/‖g‖) − g)/ε"
    default_weight = 0.1
    claims = (
        Claim(
            "An explicit squared gradient-norm penalty improves test accuracy",
            task="clean_classification", metric="test_accuracy", direction="higher",
            min_effect=0.005, min_effect_reason="half a point of test accuracy",
            baselines=(
                Baseline("Adam"),
                Baseline("gradient norm ‖∇L‖ (Zhao et al.)", {"name": "gradient_norm"},
                         why="the unsquared gradient-norm penalty already in the library"),
            ),
            datasets=("digits",),
            settings="digits only (two passes per step: the lab's per-claim CPU budget); minibatch Adam (batch 128 = the paper's regularizer block) on an MLP on 8×8 digits, 60 epochs, "
            "instead of full-batch gradient descent with clipping on CIFAR-10 ResNets; λ = 0.1 and ε = 1e-2 from "
            "the official full-batch recipe, not tuned; the forward-difference gradient",
            source="Geiping et al. 2022, Table 1 (full-batch training with the gradient penalty vs without)",
        ),
        Claim(
            "Full-batch gradient descent with the regularizer (and clipping) generalizes as well as SGD",
            testable=False,
            untestable_reason="the claim is about replacing SGD's noise in full-batch training: thousands of "
            "full-batch steps with warmup, clipping and a tuned schedule on CIFAR-10; the lab's tasks train "
            "minibatch Adam and have no full-batch mode",
            source="Geiping et al. 2022, Table 1",
        ),
    )

    def __init__(self, weight: float = 0.1, method: str = "finite_difference", eps: float = 1e-2):
        super().__init__(weight)
        self.method = check_choice(WHO, "method", method, ("finite_difference", "double_backprop"))
        self.eps = check_positive(WHO, "eps", eps)

    def penalty(self, loss: torch.Tensor, params: Iterable[torch.Tensor] | nn.Module) -> torch.Tensor:
        """``½‖∇_θ loss‖²`` with a graph (double backprop); ``reg(loss, params)`` multiplies by λ."""
        if not torch.is_grad_enabled():
            raise RegularizerInputError(
                f"{WHO}.penalty was called with autograd off (torch.no_grad() or inference_mode()): the penalty "
                f"½‖∇L‖² must be differentiated (double backprop); call it with autograd on"
            )
        _check_loss(loss, WHO)
        ps = _params_list(params, WHO)
        if not all(p.is_meta for p in ps):  # a meta loss of real parameters: autograd cannot bring its gradient back
            require_values(WHO, loss, arg="loss", needs="a loss with values to differentiate parameters that hold data")
        grads = torch.autograd.grad(loss, ps, create_graph=True, allow_unused=True)
        return 0.5 * _gradient_norm(ps, grads, "the gradient of the loss", WHO).pow(2)

    def backward(
        self, closure: Callable[[], torch.Tensor], params: Sequence[torch.Tensor] | nn.Module
    ) -> torch.Tensor:
        """Accumulate the gradient of ``L + (λ/2)‖∇L‖²`` into ``.grad``; returns ``L(θ)`` (detached).

        Runs the closure with autograd on. A non-finite gradient raises before any ``.grad`` is
        written (for the finite difference, after the parameters are restored)."""
        ps = _params_list(params, WHO)
        lam = self.current_weight
        with torch.enable_grad():
            loss = closure()
            _check_loss(loss, WHO)
            if self.method == "double_backprop":
                (loss + lam * self.penalty(loss, ps)).backward()
                return loss.detach()
            grads = torch.autograd.grad(loss, ps, allow_unused=True)
        norm = _gradient_norm(ps, grads, "the gradient of the loss", WHO)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(ps, grads)]
        if float(norm) == 0.0:  # a stationary point: H·0 = 0, no shift
            for p, g in zip(ps, grads):
                p.grad = g.detach() if p.grad is None else p.grad + g.detach()
            return loss.detach()
        originals = [p.detach().clone() for p in ps]
        step = self.eps / norm
        with torch.no_grad():
            for p, g in zip(ps, grads):
                p.add_(g * step)
        try:
            with torch.enable_grad():
                shifted_loss = closure()
                _check_loss(shifted_loss, WHO)
                grads_shifted = torch.autograd.grad(shifted_loss, ps, allow_unused=True)
        finally:
            with torch.no_grad():
                for p, o in zip(ps, originals):
                    p.copy_(o)
        _gradient_norm(ps, grads_shifted, f"the gradient at the shifted point θ + ε·g/‖g‖ (ε = {self.eps})", WHO)
        for p, g, gs in zip(ps, grads, grads_shifted):
            gs = torch.zeros_like(p) if gs is None else gs
            total = g + lam * (gs - g) / step  # g + λ·Hg, Hg ≈ ‖g‖(∇L(θ') − g)/ε
            p.grad = total.detach() if p.grad is None else p.grad + total.detach()
        return loss.detach()
