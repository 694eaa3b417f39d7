"""AdamP / SGDP (Heo, Chun, Oh, Han, Yun, Kim, Uh & Ha, ICLR 2021): drop the radial component of the
update on scale-invariant weights.

On a weight followed by a normalization layer the loss does not depend on
‖w‖, the gradient is orthogonal to w, and momentum makes ‖w‖ grow, which
shrinks the effective step size too early. AdamP removes the radial
(norm-changing) part of each update on such weights:

    for view in (channel: (out, −1), layer: (1, −1)):
        if max_rows |cos(g_row, w_row)| < δ/√(row length):          (the weight is scale-invariant)
            ŵ = w_row/(‖w_row‖ + ε);  u_row ← u_row − ŵ·⟨ŵ, u_row⟩;  weight decay × wd_ratio;  stop

Pinned from the official code (clovaai/AdamP, ``adamp/adamp.py`` and
``adamp/sgdp.py``): ``_channel_view``/``_layer_view`` (the two views, the
channel view first), ``_cosine_similarity`` (|cos| of the gradient and the
weight per row, ``F.cosine_similarity`` with eps), ``_projection`` (the
threshold δ/√(row length), the projection, ``wd = wd_ratio``) and ``step``
(1-D tensors are never projected; decoupled weight decay
``w ← w·(1 − lr·wd·wd_ratio)``, divided by ``1 − momentum`` in SGDP, applied
before the step). Defaults δ = 0.1, wd_ratio = 0.1, eps = 1e-8 (their
``__init__``).

reglab ships it as the catalog suggests, as a projection around any base
optimizer: the base optimizer computes its update u (with its weight decay
switched off), the wrapper projects u radially where the test passes and
applies the decoupled weight decay itself. Around ``torch.optim.Adam`` this
is AdamP, around ``torch.optim.SGD`` (momentum, nesterov) SGDP, step for
step (the tests check the trajectories against an independent
re-implementation of the official optimizers).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F

from reglab.core import Baseline, Claim, Paper, RegularizerInputError, WrappedOptimizer, register
from reglab.ops import check_positive

__all__ = ["radial_projection", "AdamP", "SGDP"]

PAPER = Paper(
    "AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights",
    "Heo, Chun, Oh, Han, Yun, Kim, Uh, Ha", 2021, arxiv="2006.08217", venue="ICLR",
    code="https://github.com/clovaai/AdamP")

#: the lab's ``normalized_mlp`` task (an MLP whose hidden Linear layers are each followed by BatchNorm): AdamP and
#: SGDP at the official defaults (δ = 0.1, wd_ratio = 0.1) and the weight decays and learning rates of the official
#: usage (clovaai/AdamP README: AdamP lr 1e-3, weight decay 1e-2; SGDP lr 0.1, weight decay 1e-5, Nesterov
#: momentum 0.9); every arm of a claim has the same learning rate
_ADAM_WD, _SGD_WD = 1e-2, 1e-5
_ADAM_ARGS: dict[str, Any] = {"optimizer": "adam", "weight_decay": _ADAM_WD}
_SGD_ARGS: dict[str, Any] = {"optimizer": "sgd", "weight_decay": _SGD_WD}
_ADAMW = Baseline(
    "AdamW (decoupled weight decay 1e-2)", task_args={"optimizer": "adamw"},
    why="the paper's Adam baseline: decoupled weight decay at the weight decay AdamP uses, the other way to curb ‖w‖",
)
_SGD_WD_BASELINE = Baseline(
    "SGD, Nesterov momentum 0.9 + weight decay 1e-5", task_args={"weight_decay": _SGD_WD},
    why="the paper's SGD baseline: the same optimizer with the weight decay SGDP uses (torch's L2 term)",
)
_COMMON_SETTINGS = (
    "an MLP d-256-256-10 on 8×8 digits whose two hidden Linear layers (no bias) are each followed by BatchNorm1d "
    "(scale-invariant weights; the head is not), batch 256, 30 epochs at a constant learning rate, epoch selected "
    "on validation accuracy, instead of ResNets/MobileNetV2 on ImageNet for 100+ epochs with a cosine or step "
    "schedule; δ = 0.1 and wd_ratio = 0.1 (official defaults); norm growth is ‖W_T‖/‖W_0‖ averaged over the two "
    "hidden weights after the last epoch; nothing tuned"
)
_ADAM_SETTINGS = (
    _COMMON_SETTINGS + "; AdamP around Adam, lr 1e-3 for every arm, weight decay 1e-2 (decoupled, × wd_ratio on "
    "the scale-invariant weights) as in the official usage; the AdamW baseline has the same decoupled weight decay"
)
_SGD_SETTINGS = (
    _COMMON_SETTINGS + "; SGDP around SGD, lr 0.1 and Nesterov momentum 0.9 for every arm, weight decay 1e-5 as in "
    "the official usage (the paper's ImageNet runs use their own weight decay)"
)

_VIEWS = (("channel", lambda t: t.reshape(t.shape[0], -1)), ("layer", lambda t: t.reshape(1, -1)))


def _scale_invariant_view(w: torch.Tensor, grad: torch.Tensor, delta: float, eps: float) -> str | None:
    """The first view (channel, then layer) whose rows all have ``|cos(g, w)| < δ/√(row length)``, else None."""
    if w.ndim < 2:
        return None
    for view_name, view in _VIEWS:
        wv = view(w)
        cos = F.cosine_similarity(view(grad), wv, dim=1, eps=eps).abs()
        if float(cos.max()) < delta / math.sqrt(wv.shape[1]):
            return view_name
    return None


def _project(w: torch.Tensor, update: torch.Tensor, view_name: str, eps: float) -> torch.Tensor:
    """``u_row − ŵ·⟨ŵ, u_row⟩`` per row of the view, ``ŵ = w_row/(‖w_row‖ + eps)``."""
    view = dict(_VIEWS)[view_name]
    wv, uv = view(w), view(update)
    w_hat = wv / (torch.linalg.vector_norm(wv, dim=1, keepdim=True) + eps)
    return (uv - w_hat * (w_hat * uv).sum(dim=1, keepdim=True)).reshape(update.shape)


@torch.no_grad()
def radial_projection(
    w: torch.Tensor, grad: torch.Tensor, update: torch.Tensor, delta: float = 0.1, eps: float = 1e-8
) -> tuple[torch.Tensor, str | None]:
    """AdamP's projection (Heo et al., 2021; official ``_projection``): ``(update', view)``.

    For the channel view (rows = output units), then the layer view (one
    row), if every row has ``|cos(grad_row, w_row)| < δ/√(row length)``
    the weight is taken as scale-invariant and the radial part of the update
    is removed row-wise: ``u_row − ŵ·⟨ŵ, u_row⟩``, ``ŵ = w_row/(‖w_row‖ + eps)``.
    Returns the (new) update and the view that passed (``"channel"``,
    ``"layer"``), or the update unchanged and ``None``. Tensors with fewer
    than 2 dimensions are never projected.
    """
    for name, t in (("w", w), ("grad", grad), ("update", update)):
        if not isinstance(t, torch.Tensor):
            raise RegularizerInputError(f"radial_projection (AdamP) expects {name} to be a tensor, got {type(t).__name__}")
    if grad.shape != w.shape or update.shape != w.shape:
        raise RegularizerInputError(
            f"radial_projection (AdamP) expects w, grad and update of one shape, got {tuple(w.shape)}, "
            f"{tuple(grad.shape)} and {tuple(update.shape)}"
        )
    view = _scale_invariant_view(w, grad, delta, eps)
    return (update, None) if view is None else (_project(w, update, view, eps), view)


@register
class AdamP(WrappedOptimizer):
    """AdamP/SGDP: the base optimizer's update without its radial part on scale-invariant weights.

    Heo et al. (2021). For every parameter with ≥ 2 dimensions, if the
    gradient is nearly orthogonal to the weight (``max |cos| < δ/√n`` per
    output row, else over the whole tensor; a weight followed by BatchNorm or
    LayerNorm passes), the update's component along each row of the weight
    is removed, so the step changes the direction of ``w`` and not its norm,
    and that tensor's weight decay is scaled by ``wd_ratio``::

        opt = reglab.AdamP(model.parameters(), torch.optim.Adam, lr=1e-3, weight_decay=1e-2)   # AdamP
        opt = reglab.SGDP(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)         # SGDP

    A wrapper: the base optimizer (a class, plus its keyword arguments)
    computes the update ``u`` with its weight decay switched off; the wrapper
    then projects ``u`` and applies **decoupled** weight decay
    ``w ← w − lr·wd·r·w_before`` (r = wd_ratio on projected tensors, else
    1; divided by ``1 − momentum`` when the group has a momentum, as
    SGDP does). Around ``torch.optim.Adam`` (or AdamW: its decay is taken
    over the same way) the trajectory is the official AdamP's; around
    ``torch.optim.SGD`` the official SGDP's (``dampening = 0``; the
    official SGDP's first step with dampening ≠ 0 differs from torch's SGD).
    The official AdamP's ``nesterov=True`` has no torch base optimizer and
    is not offered. Any other base optimizer works the same way (its update
    is projected). Costs a copy of the weights and one cosine per tensor
    per step. Defaults δ = 0.1, wd_ratio = 0.1, eps = 1e-8 (official).
    """

    name = "adamp"
    formula = "if max|cos(g, w)| < δ/√n: u ← u − ŵ⟨ŵ, u⟩ (per row), wd × wd_ratio"
    paper = PAPER
    claims = (
        Claim(
            "AdamP slows the growth of the norms of scale-invariant weights compared with Adam and AdamW",
            task="normalized_mlp", metric="norm_growth", direction="lower", role="mechanism",
            task_args=_ADAM_ARGS,
            min_effect=0.01, min_effect_reason="1% of the initial weight norm (about 2% of the effective step "
            "size, which goes as 1/‖w‖²): a smaller difference would not change the training",
            baselines=(
                Baseline("Adam (no weight decay)", task_args={"weight_decay": 0.0},
                         why="the base optimizer AdamP modifies, whose momentum inflates ‖w‖"),
                _ADAMW,
            ),
            datasets=("digits", "digits_half"),
            settings=_ADAM_SETTINGS, source="Heo et al. 2021, Sec. 3 (momentum makes the norms of scale-invariant "
            "weights grow; removing the radial update slows it, for Adam as for SGD)",
        ),
        Claim(
            "AdamP improves test accuracy over Adam and AdamW on networks with scale-invariant (normalized) weights",
            task="normalized_mlp", metric="test_accuracy", direction="higher",
            task_args=_ADAM_ARGS,
            min_effect=0.005, min_effect_reason="half a point of test accuracy, as the lab's other optimizer claims",
            baselines=(
                Baseline("Adam (no weight decay)", task_args={"weight_decay": 0.0},
                         why="the base optimizer AdamP modifies"),
                _ADAMW,
            ),
            datasets=("digits", "digits_half"),
            settings=_ADAM_SETTINGS,
            source="Heo et al. 2021, Table 2 (ImageNet: AdamW vs AdamP) and Tables 3-8 (detection, retrieval, "
            "robustness, audio, language modelling: Adam/AdamW vs AdamP)",
        ),
    )

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer: type = torch.optim.Adam,
        delta: float = 0.1,
        wd_ratio: float = 0.1,
        eps: float = 1e-8,
        **kwargs: Any,
    ):
        who = type(self).__name__
        self.delta = check_positive(who, "delta", delta)
        self.wd_ratio = check_positive(who, "wd_ratio", wd_ratio, allow_zero=True)
        self.eps = check_positive(who, "eps", eps)
        self._setup(params, base_optimizer, {"delta": self.delta, "wd_ratio": self.wd_ratio}, kwargs)
        if "eps" in self.base_optimizer.defaults:  # one eps for Adam and the projection, as the official AdamP
            for group in self.param_groups:
                group["eps"] = self.eps

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None):  # type: ignore[override]
        loss = self._checked_closure_loss(closure, when="before the step")
        plan = []  # (param, weight before, the view that passed or None, decoupled decay coefficient)
        decays = []
        for group in self.param_groups:
            wd = float(group.get("weight_decay", 0.0) or 0.0)
            decays.append(wd)
            group["weight_decay"] = 0.0
            for p in group["params"]:
                if p.grad is None:
                    continue
                view = _scale_invariant_view(p, p.grad, group["delta"], self.eps)
                projected = view is not None
                coef = group["lr"] * wd * (group["wd_ratio"] if projected else 1.0)
                if "momentum" in group and group.get("momentum", 0.0):
                    coef /= 1.0 - group["momentum"]
                if projected or coef:
                    plan.append((p, p.detach().clone(), view, coef))
        try:
            self.base_optimizer.step()
        finally:
            for group, wd in zip(self.param_groups, decays):
                group["weight_decay"] = wd
        for p, before, view, coef in plan:
            if view is not None:
                p.copy_(before + _project(before, p - before, view, self.eps))
            if coef:
                p.sub_(before, alpha=coef)
        return loss


@register
class SGDP(AdamP):
    """SGDP: SGD (with momentum) without the radial update component on scale-invariant weights.

    ``AdamP`` around ``torch.optim.SGD`` (Heo et al., 2021, official
    ``adamp/sgdp.py``): the momentum update ``d`` is projected as in AdamP
    and decoupled weight decay ``w ← w·(1 − lr·wd·r/(1 − momentum))``
    (r = wd_ratio = 0.1 on projected tensors) replaces SGD's L2 term::

        opt = reglab.SGDP(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    """

    name = "sgdp"
    claims = (
        Claim(
            "SGDP slows the growth of the norms of scale-invariant weights compared with momentum SGD",
            task="normalized_mlp", metric="norm_growth", direction="lower", role="mechanism",
            task_args=_SGD_ARGS,
            min_effect=0.01, min_effect_reason="1% of the initial weight norm (about 2% of the effective step "
            "size, which goes as 1/‖w‖²): a smaller difference would not change the training",
            baselines=(
                Baseline("SGD, Nesterov momentum 0.9 (no weight decay)", task_args={"weight_decay": 0.0},
                         why="the base optimizer SGDP modifies, whose momentum inflates ‖w‖"),
                _SGD_WD_BASELINE,
            ),
            datasets=("digits", "digits_half"),
            settings=_SGD_SETTINGS, source="Heo et al. 2021, Sec. 3 (momentum SGD inflates the norms of "
            "scale-invariant weights, SGDP does not; the ResNet-18 ImageNet norms and effective step sizes)",
        ),
        Claim(
            "SGDP improves test accuracy over momentum SGD on networks with scale-invariant (normalized) weights",
            task="normalized_mlp", metric="test_accuracy", direction="higher",
            task_args=_SGD_ARGS,
            min_effect=0.005, min_effect_reason="half a point of test accuracy, as the lab's other optimizer claims",
            baselines=(
                Baseline("SGD, Nesterov momentum 0.9 (no weight decay)", task_args={"weight_decay": 0.0},
                         why="the base optimizer SGDP modifies"),
                _SGD_WD_BASELINE,
            ),
            datasets=("digits", "digits_half"),
            settings=_SGD_SETTINGS, source="Heo et al. 2021, Table 2 (ImageNet: SGD vs SGDP)",
        ),
    )

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer: type = torch.optim.SGD,
        delta: float = 0.1,
        wd_ratio: float = 0.1,
        eps: float = 1e-8,
        **kwargs: Any,
    ):
        super().__init__(params, base_optimizer, delta, wd_ratio, eps, **kwargs)
