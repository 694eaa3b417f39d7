"""Training-procedure regularizers (kind ``"procedure"``).

* ``sam``, ``amp_perturbation``: **optimizer** wrappers around a base
  optimizer (they change the update rule by evaluating the gradient at a
  perturbed point);
* ``gradient_norm``: a **penalty** on ``‖∇_θ L‖₂`` by double backprop, with
  a finite-difference alternative that needs no second-order graph.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from reglab._validation import RegularizerInputError, check_choice, check_positive, check_tensor
from reglab.config import Configurable
from reglab.paper import Paper
from reglab.registry import register
from reglab.regularizers.base import Regularizer

__all__ = ["SAM", "AMPPerturbation", "GradientNorm"]


class _WrappedOptimizer(Configurable, torch.optim.Optimizer):
    """Shares its param groups with ``base_optimizer(params, **kwargs)``.

    The base optimizer's keyword arguments (``lr``, ``momentum``...) are
    configuration: ``get_config`` includes them so ``from_config`` rebuilds
    the same optimizer.
    """

    _runtime_args = ("params", "base_optimizer")

    def _setup(self, params, base_optimizer, defaults: dict[str, Any], kwargs: dict[str, Any]) -> None:
        if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, torch.optim.Optimizer)):
            raise RegularizerInputError(
                f"{type(self).__name__} expects base_optimizer to be an optimizer class such as "
                f"torch.optim.SGD, got {base_optimizer!r}"
            )
        self.base_kwargs = dict(kwargs)
        torch.optim.Optimizer.__init__(self, params, dict(defaults, **kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups
        # One state dict for both, so state_dict() carries the base optimizer's momentum etc.
        self.state = self.base_optimizer.state
        self.defaults.update(self.base_optimizer.defaults)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.base_optimizer.param_groups = self.param_groups
        self.base_optimizer.state = self.state

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(self.base_kwargs)
        return cfg

    def _params_with_grad(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"] if p.grad is not None]


@register
class SAM(_WrappedOptimizer):
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
    **bf16 autocast** needs nothing special: parameters and gradients stay
    in float32; the norm is accumulated in float32.
    """

    name = "sam"
    kind = "procedure"
    form = "optimizer"
    paper = Paper(
        title="Sharpness-Aware Minimization for Efficiently Improving Generalization",
        authors="Foret, Kleiner, Mobahi, Neyshabur",
        year=2021,
        arxiv="2010.01412",
        venue="ICLR",
        code="https://github.com/google-research/sam",
    )
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
        """Move to ``w + ε`` (remembered in state as ``e_w``)."""
        norm = self._grad_norm()
        if not (bool(torch.isfinite(norm)) and float(norm) > 0):
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
        """Return to ``w`` and let the base optimizer step with the gradient taken at ``w + ε``."""
        for group in self.param_groups:
            for p in group["params"]:
                e_w = self.state[p].pop("e_w", None)
                if e_w is not None:
                    p.sub_(e_w)
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    def step(self, closure: Callable[[], torch.Tensor] | None = None):  # type: ignore[override]
        if closure is None:
            self.second_step()
            return None
        closure = torch.enable_grad()(closure)
        self.zero_grad()
        loss = closure()
        self.first_step(zero_grad=True)
        closure()
        self.second_step()
        return loss


@register
class AMPPerturbation(_WrappedOptimizer):
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
    zeroed before each call).
    """

    name = "amp_perturbation"
    kind = "procedure"
    form = "optimizer"
    paper = Paper(
        title="Regularizing Neural Networks via Adversarial Model Perturbation",
        authors="Zheng, Zhang, Mao",
        year=2021,
        arxiv="2010.04925",
        venue="CVPR",
        code="https://github.com/hiyouga/AMP-Regularizer",
    )
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
        if not isinstance(inner_iter, int) or isinstance(inner_iter, bool) or inner_iter < 0:
            raise RegularizerInputError(f"AMPPerturbation expects inner_iter to be an integer >= 0, got {inner_iter!r}")
        self.inner_iter = inner_iter
        defaults = {"epsilon": self.epsilon, "inner_lr": self.inner_lr}
        self._setup(params, base_optimizer, defaults, kwargs)

    def step(self, closure: Callable[[], torch.Tensor] | None = None):  # type: ignore[override]
        if closure is None:
            raise RegularizerInputError("AMPPerturbation.step needs a closure that runs forward + backward")
        closure = torch.enable_grad()(closure)
        self.zero_grad()
        loss = closure()
        deltas: dict[torch.Tensor, torch.Tensor] = {}
        for _ in range(self.inner_iter):
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
            closure()
        with torch.no_grad():
            for p, d in deltas.items():
                p.sub_(d)
        self.base_optimizer.step()
        return loss


def _params_list(params: Iterable[torch.Tensor] | nn.Module) -> list[torch.Tensor]:
    if isinstance(params, nn.Module):
        params = params.parameters()
    out = [p for p in params if p.requires_grad]
    if not out:
        raise RegularizerInputError("GradientNorm got no parameters that require grad")
    return out


@register
class GradientNorm(Regularizer):
    """Gradient-norm penalty ``λ·‖∇_θ L(θ)‖₂``: prefer flat regions of the loss.

    Two ways to get the gradient of ``L + λ‖g‖`` (``g = ∇_θ L``):

    * ``method="double_backprop"``: ``gn(loss, params)`` returns
      ``λ·‖g‖₂`` computed with ``create_graph=True``; add it to the loss and
      backpropagate (second-order autograd through the model).
    * ``method="finite_difference"`` (Zhao et al., 2022, Eq. 9-10): with
      ``g = ∇L(θ)`` and ``θ' = θ + r·g/‖g‖``,
      ``∇(λ‖g‖) ≈ λ·(∇L(θ') − ∇L(θ))/r``. ``gn.backward(closure, params)``
      calls the closure (forward, returns the loss) twice and writes
      ``∇L(θ) + λ(∇L(θ') − ∇L(θ))/r`` into ``.grad``; no second-order graph.

    The two agree as r → 0 (tested). Defaults: λ = ``weight`` = 0.1 and
    r = 0.01, in the range Zhao et al. use (their Table 6 tunes α = λ/r
    ∈ [0.1, 0.8] and r ∈ [0.01, 0.1]; no single constant). Under DDP the
    norm is that of the local gradient of each rank, not of the all-reduced
    one.
    """

    name = "gradient_norm"
    kind = "procedure"
    form = "penalty"
    paper = Paper(
        title="Penalizing Gradient Norm for Efficiently Improving Generalization in Deep Learning",
        authors="Zhao, Zhang, Hu",
        year=2022,
        arxiv="2202.03599",
        venue="ICML",
    )
    formula = "R = λ‖∇_θ L‖₂;  FD: ∇R ≈ λ(∇L(θ + r g/‖g‖) − ∇L(θ))/r"

    def __init__(self, weight: float = 0.1, method: str = "double_backprop", r: float = 0.01):
        super().__init__(weight)
        self.method = check_choice("GradientNorm", "method", method, ("double_backprop", "finite_difference"))
        self.r = check_positive("GradientNorm", "r", r)

    def penalty(self, loss: torch.Tensor, params: Iterable[torch.Tensor] | nn.Module) -> torch.Tensor:
        """``‖∇_θ loss‖₂`` with a graph, so it can be backpropagated (double backprop)."""
        check_tensor("GradientNorm", loss, arg="loss")
        if loss.numel() != 1:
            raise RegularizerInputError(f"GradientNorm expects a scalar loss, got shape {tuple(loss.shape)}")
        ps = _params_list(params)
        grads = torch.autograd.grad(loss, ps, create_graph=True, allow_unused=True)
        sq = [g.pow(2).sum() for g in grads if g is not None]
        if not sq:
            raise RegularizerInputError("GradientNorm: the loss does not depend on the given parameters")
        return torch.stack(sq).sum().sqrt()

    def backward(
        self, closure: Callable[[], torch.Tensor], params: Sequence[torch.Tensor] | nn.Module
    ) -> torch.Tensor:
        """Accumulate the gradient of ``L + λ‖∇L‖`` into ``.grad``; returns ``L(θ)``.

        Uses double backprop or the finite difference, per ``method``.
        """
        ps = _params_list(params)
        lam = self.current_weight
        loss = closure()
        if self.method == "double_backprop":
            (loss + lam * self.penalty(loss, ps)).backward()
            return loss.detach()
        grads = torch.autograd.grad(loss, ps, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(ps, grads)]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        if not torch.isfinite(norm):
            raise RegularizerInputError("GradientNorm got a non-finite gradient norm")
        shift = [self.r * g / (norm + 1e-12) for g in grads]
        with torch.no_grad():
            for p, s in zip(ps, shift):
                p.add_(s)
        try:
            grads_shifted = torch.autograd.grad(closure(), ps, allow_unused=True)
        finally:
            with torch.no_grad():
                for p, s in zip(ps, shift):
                    p.sub_(s)
        coef = lam / self.r
        for p, g, gs in zip(ps, grads, grads_shifted):
            gs = torch.zeros_like(p) if gs is None else gs
            total = g + coef * (gs - g)
            p.grad = total.detach() if p.grad is None else p.grad + total.detach()
        return loss.detach()
