"""nGPT (Loshchilov, Hsieh, Sun & Ginsburg, 2024): weights and hidden states on the unit hypersphere.

Two reusable pieces, pinned from the official code (NVIDIA/ngpt):

* **Hypersphere projection of the weights** (``train.py`` ``justnorm`` /
  ``normalize_matrices``, called after initialization and after every
  optimizer step): every matrix is normalized to unit norm along its
  embedding dimension, ``w ← w/‖w‖₂`` with no eps: rows (``dim=-1``) for the
  embedding, lm_head, W_q, W_k, W_v and the MLP's input matrix, columns
  (``dim=0``) for the two output projections (attention and MLP
  ``c_proj``), whose embedding dimension is their output. Weight decay 0 and
  no warm-up (``train.py``). ``HypersphereProjection`` wraps any optimizer
  and does this after each step (and once at construction).
* **The normalized residual update** (``model.py`` ``Block.forward``): with
  ``Norm(x) = x/‖x‖₂`` over the last dimension,
  ``h ← Norm(Norm(h) + α ⊙ (Norm(f(h)) − Norm(h)))``, α ≥ 0 per dimension
  (the "eigen learning rate"), stored as a parameter ``α_p`` initialized to
  ``α_scale`` and used as ``|α_p · α_init/α_scale|`` (α_init = 0.05,
  α_scale = base_scale = 1/√n_embd), separately for attention and MLP.
  ``NGPTResidual`` is that module.

The other parts of nGPT (s_qk on normalized q and k with softmax scale
√D_h, s_uv on the MLP, s_z on the logits, no LayerNorm) are model code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from reglab.core import Claim, Paper, RegularizerInputError, WrappedOptimizer, register
from reglab.core.config import Configurable
from reglab.core.registry import Registered
from reglab.ops import check_positive, check_tensor

__all__ = ["hypersphere_normalize", "ngpt_residual", "HypersphereProjection", "NGPTResidual"]

PAPER = Paper(
    "nGPT: Normalized Transformer with Representation Learning on the Hypersphere",
    "Loshchilov, Hsieh, Sun, Ginsburg", 2024, arxiv="2410.01131", code="https://github.com/NVIDIA/ngpt")


def _unit(x: torch.Tensor, dim: int, who: str, arg: str) -> torch.Tensor:
    norms = torch.linalg.vector_norm(x, dim=dim, keepdim=True)
    if bool((norms == 0).any()):
        raise RegularizerInputError(
            f"{who}: a {arg} vector of shape {tuple(x.shape)} has zero norm along dim {dim}; it has no direction "
            f"to project onto the unit sphere"
        )
    return x / norms


def hypersphere_normalize(w: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """nGPT's ``justnorm``: ``w/‖w‖₂`` along ``dim`` (no eps; a zero vector raises)."""
    check_tensor("hypersphere_normalize", w, arg="weight", min_ndim=1)
    if not -w.ndim <= dim < w.ndim:
        raise RegularizerInputError(f"hypersphere_normalize: dim {dim} is out of range for shape {tuple(w.shape)}")
    return _unit(w, dim, "hypersphere_normalize", "weight")


def ngpt_residual(h: torch.Tensor, h_block: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """nGPT's normalized residual update: ``Norm(Norm(h) + α ⊙ (Norm(h_block) − Norm(h)))``.

    ``h``, ``h_block``: (..., d), normalized over the last dimension; ``α``:
    the effective eigen learning rate (a float or a (d,) tensor, ≥ 0): a
    step of relative size α from h toward the block's output on the sphere.
    """
    who = "ngpt_residual"
    check_tensor(who, h, arg="hidden state", min_ndim=1)
    check_tensor(who, h_block, arg="block output", min_ndim=1)
    if h.shape != h_block.shape:
        raise RegularizerInputError(
            f"{who} expects the hidden state and the block output of one shape, got {tuple(h.shape)} and "
            f"{tuple(h_block.shape)}"
        )
    a, b = _unit(h, -1, who, "hidden state"), _unit(h_block, -1, who, "block output")
    return _unit(a + alpha * (b - a), -1, who, "updated hidden state")


@register
class HypersphereProjection(WrappedOptimizer):
    """nGPT's weight projection: after every optimizer step, each matrix back onto the unit sphere.

    Loshchilov et al. (2024), official ``normalize_matrices``: every
    parameter with ≥ 2 dimensions is normalized to unit L2 norm along
    ``dim`` of its param group (default -1: rows of an (out, in) Linear
    weight and of an embedding table); give the output projections (whose
    embedding dimension is dim 0) a group with ``dim=0``, and ``dim=None``
    to a group that should not be projected. 1-D parameters (the scalings)
    are never projected. The weights are also projected once at
    construction (``project_at_init``), as the official code does after
    initialization. nGPT trains without weight decay::

        opt = reglab.HypersphereProjection(
            [{"params": rows}, {"params": [attn.out.weight, mlp.out.weight], "dim": 0}],
            torch.optim.Adam, lr=1e-3)

    Costs one norm per matrix per step.
    """

    name = "ngpt_projection"
    formula = "after each step: W ← W/‖W‖₂ along the embedding dim"
    paper = PAPER
    claims = (
        Claim(
            "nGPT reaches the same validation loss in 4-20× fewer training steps than a GPT baseline",
            testable=False,
            untestable_reason="the claim is for the whole normalized transformer (unit-norm weights and hidden "
            "states, eigen learning rates, s_qk/s_uv/s_z scalings, no LayerNorm) trained on OpenWebText at 1k-8k "
            "context; the projection alone on a lab MLP (whose logits it would bound) is not the method",
            source="Loshchilov et al. 2024, Fig. 1 and Sec. 4 (0.5B/1B models, 4-20× speed-up)",
        ),
    )

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer: type = torch.optim.Adam,
        dim: int | None = -1,
        project_at_init: bool = True,
        **kwargs: Any,
    ):
        if dim is not None and not isinstance(dim, int):
            raise RegularizerInputError(f"HypersphereProjection expects dim to be an int or None, got {dim!r}")
        self.dim = dim
        self.project_at_init = bool(project_at_init)
        self._setup(params, base_optimizer, {"dim": dim}, kwargs)
        if self.project_at_init:
            self.project()

    @torch.no_grad()
    def project(self) -> None:
        """Normalize every ≥ 2-D parameter along its group's ``dim`` (a NaN/zero vector raises first)."""
        planned = []
        for group in self.param_groups:
            if group.get("dim") is None:
                continue
            for p in group["params"]:
                if p.ndim >= 2:
                    planned.append((p, hypersphere_normalize(p.detach(), group["dim"])))
        for p, unit in planned:
            p.copy_(unit)

    def step(self, closure: Callable[[], torch.Tensor] | None = None):  # type: ignore[override]
        loss = self._checked_closure_loss(closure, when="before the step")
        self.base_optimizer.step()
        self.project()
        return loss


@register
class NGPTResidual(Registered, Configurable, nn.Module):
    """nGPT's normalized residual: ``h ← Norm(Norm(h) + α ⊙ (Norm(f(h)) − Norm(h)))``, α learnable per dim.

    Loshchilov et al. (2024), official ``Block.forward``: replaces
    ``h = h + f(h)`` (and the LayerNorm) in a block; one module per residual
    branch (attention, MLP). α is stored as ``alpha`` (initialized to
    ``alpha_scale``) and used as ``|alpha·alpha_init/alpha_scale|``, so its
    effective learning rate is scaled as in the official code
    (α_init = 0.05, α_scale = 1/√dim by default: the official
    ``base_scale = 1/√n_embd``)::

        res = reglab.NGPTResidual(dim=256)
        h = res(h, attention(h))
    """

    name = "ngpt_residual"
    takes_embedding_batches = False  # a module applied inside the model, not a penalty on an embedding batch
    kind = "representation"
    form = "module"
    formula = "h ← Norm(Norm(h) + |α|⊙(Norm(f(h)) − Norm(h)))"
    paper = PAPER
    function = ngpt_residual
    claims = (
        Claim(
            "The normalized residual update (with the hypersphere projection) speeds up transformer training",
            testable=False,
            untestable_reason="as ngpt_projection: a property of the whole normalized transformer, not of one "
            "module in a lab MLP",
            source="Loshchilov et al. 2024, Sec. 2.2.2 and Fig. 1",
        ),
    )
    example_args = {"dim": 4}

    def __init__(self, dim: int, alpha_init: float = 0.05, alpha_scale: float | None = None):
        nn.Module.__init__(self)
        if not isinstance(dim, int) or dim < 1:
            raise RegularizerInputError(f"NGPTResidual expects dim, a positive int, got {dim!r}")
        self.dim = dim
        self.alpha_init = check_positive("NGPTResidual", "alpha_init", alpha_init)
        self.alpha_scale = None if alpha_scale is None else check_positive("NGPTResidual", "alpha_scale", alpha_scale)
        self.alpha = nn.Parameter(torch.full((dim,), self._scale))

    @property
    def _scale(self) -> float:
        return self.alpha_scale if self.alpha_scale is not None else 1.0 / math.sqrt(self.dim)

    def effective_alpha(self) -> torch.Tensor:
        """``|alpha·alpha_init/alpha_scale|``, the step size actually used."""
        return (self.alpha * (self.alpha_init / self._scale)).abs()

    def forward(self, h: torch.Tensor, h_block: torch.Tensor) -> torch.Tensor:
        if h.shape[-1] != self.dim:
            raise RegularizerInputError(
                f"NGPTResidual(dim={self.dim}) got a hidden state of shape {tuple(h.shape)}"
            )
        return ngpt_residual(h, h_block, self.effective_alpha())

    def extra_repr(self) -> str:
        return f"dim={self.dim}, alpha_init={self.alpha_init}, alpha_scale={self.alpha_scale}"
