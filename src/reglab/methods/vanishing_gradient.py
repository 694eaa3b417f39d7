"""The vanishing-gradient regularizer Ω of Pascanu, Mikolov & Bengio (ICML 2013: "On the difficulty of
training recurrent neural networks"), Eq. 9-10.

Ω = Σ_k (‖(∂E/∂x_{k+1})·(∂x_{k+1}/∂x_k)‖ / ‖∂E/∂x_{k+1}‖ − 1)²: keep the norm of the error signal
constant as it is propagated back one step, so that it neither vanishes nor explodes. As in the
paper (Sec. 3.3: "we only consider the immediate derivative of Ω with respect to W_rec") the
back-propagated errors ∂E/∂x_k and the states are constants; only the explicit recurrent matrix in
the one-step Jacobian carries a gradient. Pinned from the official code (pascanur/trainingRNNs,
``RNN.py`` lines 195-217): for x_t = φ(x_{t−1}·W_hh + u_t·W_uh + b), with d_k = ∂E/∂x_k (the total
derivative, through the future steps too), the one-step product is (d_k ⊙ φ'(x_k))·W_hhᵀ; the code
takes the ratio of *squared* norms, drops the terms with ‖d_k‖² < ``bound`` = 1e-20, averages over
the batch, sums over k and divides by the summed fraction of kept terms; α = 2 (``state['alpha']``);
gradient clipping at 1 (``cutoff``, ``clipstyle='rescale'``) is ``torch.nn.utils.clip_grad_norm_``.
``squared=False`` gives the paper's Eq. 9 (the ratio of norms).
"""

from __future__ import annotations

import torch

from reglab.core import Claim, Paper, Regularizer, RegularizerInputError, register
from reglab.ops import check_choice, check_positive, check_tensor

__all__ = ["vanishing_gradient_penalty", "VanishingGradient"]

PAPER = Paper(
    "On the difficulty of training recurrent neural networks", "Pascanu, Mikolov, Bengio", 2013,
    arxiv="1211.5063", venue="ICML", code="https://github.com/pascanur/trainingRNNs")

WHO = "VanishingGradient"


def vanishing_gradient_penalty(
    grad_h: torch.Tensor,
    h: torch.Tensor,
    w_hh: torch.Tensor,
    nonlinearity: str = "tanh",
    squared: bool = True,
    bound: float = 1e-20,
) -> torch.Tensor:
    """Ω for a simple RNN x_t = φ(x_{t−1}·w_hhᵀ + …) (``torch.nn.RNN``'s ``weight_hh``, shape (H, H)).

    ``grad_h``: (T, B, H) the total gradients ∂E/∂x_t of the loss with respect to the states
    x_1..x_T; ``h``: (T, B, H) those states (after φ). Both are treated as constants (detached);
    the result is differentiable in ``w_hh`` only. Per step and sample,
    r = ‖(∂E/∂x_t ⊙ φ'(x_t))·w_hh‖^p / ‖∂E/∂x_t‖^p (p = 2 with ``squared``, the official code; 1, the
    paper's Eq. 9); Ω = Σ_t mean_b (r − 1)²·[‖∂E/∂x_t‖² ≥ bound] / Σ_t mean_b [‖∂E/∂x_t‖² ≥ bound].
    """
    check_tensor(WHO, grad_h, arg="grad_h (∂E/∂x_t)", ndim=3)
    check_tensor(WHO, h, arg="h (the states x_t)", ndim=3)
    check_tensor(WHO, w_hh, arg="w_hh", ndim=2)
    check_choice(WHO, "nonlinearity", nonlinearity, ("tanh", "sigmoid", "relu", "linear"))
    check_positive(WHO, "bound", bound)
    if grad_h.shape != h.shape:
        raise RegularizerInputError(f"{WHO} expects grad_h and h of the same shape, got {tuple(grad_h.shape)} and "
                                    f"{tuple(h.shape)}")
    hidden = h.shape[2]
    if tuple(w_hh.shape) != (hidden, hidden):
        raise RegularizerInputError(f"{WHO} expects w_hh of shape ({hidden}, {hidden}), got {tuple(w_hh.shape)}")
    d, x = grad_h.detach().to(w_hh.dtype), h.detach().to(w_hh.dtype)
    if nonlinearity == "tanh":
        d = d * (1 - x**2)
    elif nonlinearity == "sigmoid":
        d = d * x * (1 - x)
    elif nonlinearity == "relu":
        d = d * (x > 0).to(d.dtype)
    back = (d @ w_hh).pow(2).sum(dim=2)  # ‖(∂E/∂x_t ⊙ φ')·W‖² per (t, b)
    norm = grad_h.detach().to(w_hh.dtype).pow(2).sum(dim=2)
    keep = norm >= bound
    ratio = back / torch.where(keep, norm, torch.ones_like(norm))
    if not squared:
        ratio = ratio.sqrt()
    term = torch.where(keep, (ratio - 1) ** 2, torch.zeros_like(ratio))
    kept = keep.to(term.dtype).mean(dim=1).sum()
    if not kept.is_meta and float(kept) == 0.0:  # on the meta device: shapes only
        return (w_hh * 0).sum()  # every error signal vanished below ``bound``: nothing to measure
    out = term.mean(dim=1).sum() / kept
    if not out.is_meta and not bool(torch.isfinite(out.detach())):
        raise RegularizerInputError(
            f"{WHO}: Ω is not finite: the squared norms of grad_h (largest |entry| "
            f"{float(grad_h.detach().abs().max()):.3g}) overflow {w_hh.dtype}; pass float64 w_hh or rescale grad_h "
            f"(Ω does not depend on its scale, only the bound does)")
    return out


@register
class VanishingGradient(Regularizer):
    """Pascanu et al.'s Ω: keep ‖∂E/∂x_k‖ constant through the recurrence (no vanishing gradient).

    ``reg(grad_h, h, w_hh)`` returns ``α·Ω`` for a tanh (or sigmoid, relu, linear) RNN whose states
    x_1..x_T are ``h`` (T, B, H) and whose recurrent weight is ``w_hh`` (``nn.RNN``'s
    ``weight_hh_l0``: x_t = φ(x_{t−1}·w_hhᵀ + …)). ``grad_h`` are the total gradients of the loss with
    respect to the states (``torch.autograd.grad(loss, states, retain_graph=True)`` on an unrolled
    loop that keeps each x_t). Errors and states are constants, as in the paper (Sec. 3.3): Ω's
    gradient reaches ``w_hh`` only. Defaults from the official code (pascanur/trainingRNNs,
    ``RNN.py``): α = 2, the ratio of squared norms (``squared=True``; ``False`` is the paper's Eq. 9),
    terms with ‖∂E/∂x_k‖² < 1e-20 dropped. Pair it, as the paper does, with gradient-norm clipping
    (``torch.nn.utils.clip_grad_norm_(params, 1.0)``, their cutoff).
    """

    name = "vanishing_gradient"
    kind = "procedure"
    form = "penalty"
    paper = PAPER
    formula = "Ω = Σ_k (‖∂E/∂x_{k+1}·∂x_{k+1}/∂x_k‖² / ‖∂E/∂x_{k+1}‖² − 1)² (mean over the batch, kept terms)"
    default_weight = 2.0
    claims = (
        Claim(
            "With clipping, Ω lets a simple RNN solve long-range synthetic tasks (adding, temporal order) that it "
            "fails without",
            testable=False,
            untestable_reason="the lab has no recurrent task: the paper's evidence is tanh RNNs on the adding, "
            "multiplication, temporal-order and memorization problems at lengths 50-200 trained for up to 5·10⁶ "
            "steps, far outside the per-claim budget",
            source="Pascanu et al. 2013, Sec. 4.1 and Fig. 7 (success rates with MSGD-CR vs MSGD-C vs MSGD)",
        ),
    )

    def __init__(self, weight: float = 2.0, nonlinearity: str = "tanh", squared: bool = True, bound: float = 1e-20):
        super().__init__(weight)
        self.nonlinearity = check_choice(WHO, "nonlinearity", nonlinearity, ("tanh", "sigmoid", "relu", "linear"))
        self.squared = bool(squared)
        self.bound = check_positive(WHO, "bound", bound)

    def penalty(self, grad_h: torch.Tensor, h: torch.Tensor, w_hh: torch.Tensor) -> torch.Tensor:
        return vanishing_gradient_penalty(grad_h, h, w_hh, self.nonlinearity, self.squared, self.bound)
