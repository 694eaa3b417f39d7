"""QK-norm: normalize each head's queries and keys before the attention logits (FiTv2; Wang et al., 2024).

Per head, over the head dimension D_h (not the model dimension):

    q̂ = Norm(q),  k̂ = Norm(k),   attention = softmax(q̂ k̂ᵀ / √D_h) v

with Norm a LayerNorm without affine parameters and without bias, eps 1e-6
(FiTv2's configs: ``q_norm: layernorm``, ``k_norm: layernorm``,
``qk_norm_weight: false``), or an RMSNorm; ``affine=True`` adds a learnable
per-dimension gain (FiTv2's ``w_layernorm``/``w_rmsnorm``: a weight, no
bias). A weightless LayerNorm'd vector has norm √D_h, so every logit is
bounded by √D_h: attention logits cannot grow without bound, the failure
QK-norm is used to prevent at high learning rates.

Pinned from the official code (whlzy/FiT, ``fit/model/norms.py``
``create_norm`` (the four norm types, eps 1e-6, ``bias=False``) and
``RMSNorm`` (``x·rsqrt(mean(x²) + eps)`` computed in float32, then the
weight); ``fit/model/modules.py`` ``Attention`` (``q_norm``/``k_norm`` of
size ``head_dim``, applied to q and k of shape (B, heads, N, D_h) before
RoPE)). Apply RoPE, if any, after QK-norm, as FiTv2 does.

This is the row's other drop-ins' status: RMSNorm is ``torch.nn.RMSNorm``
(PyTorch ≥ 2.4); NormFormer's extra LayerNorms, HybridNorm's placement and
SDD's normalized Linear are architecture choices made in model code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reglab.core import Claim, Paper, register
from reglab.core.config import Configurable
from reglab.core.errors import RegularizerInputError
from reglab.core.registry import Registered
from reglab.ops import check_tensor, hyperparameters, one_of, positive

__all__ = ["qk_norm", "QKNorm"]

PAPER = Paper(
    "FiTv2: Scalable and Improved Flexible Vision Transformer for Diffusion Model",
    "Wang, Z., Lu, Z., Huang, D., Zhou, C., Ouyang, W. and Bai, L.", 2024, arxiv="2410.13925",
    code="https://github.com/whlzy/FiT")

WHO = "QKNorm"


def _norm(x: torch.Tensor, norm: str, eps: float, weight: torch.Tensor | None) -> torch.Tensor:
    if norm == "layernorm":
        return F.layer_norm(x, (x.shape[-1],), weight, None, eps)
    xf = x.to(torch.promote_types(x.dtype, torch.float32))  # at least float32, as the official RMSNorm
    out = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).type_as(x)
    return out if weight is None else out * weight


@hyperparameters(WHO, norm=one_of("layernorm", "rmsnorm"), eps=positive)
def qk_norm(
    q: torch.Tensor,
    k: torch.Tensor,
    norm: str = "layernorm",
    eps: float = 1e-6,
    q_weight: torch.Tensor | None = None,
    k_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """QK-norm (FiTv2): ``(Norm(q), Norm(k))`` over the last (head) dimension.

    ``q``, ``k``: (..., N, D_h), e.g. (B, heads, N, D_h); the norm acts on
    each head's D_h-vector. ``norm``: ``"layernorm"`` (no bias) or
    ``"rmsnorm"`` (in at least float32); ``q_weight``/``k_weight`` (D_h,): optional
    gains (FiTv2's ``w_`` variants). Then attend with the usual
    ``1/√D_h`` scale: ``F.scaled_dot_product_attention(q̂, k̂, v)``.
    """
    for arg, t in (("queries", q), ("keys", k)):
        check_tensor(WHO, t, arg=arg, min_ndim=2)
    if q.shape[-1] != k.shape[-1]:
        raise RegularizerInputError(
            f"{WHO} expects queries and keys with one head dimension, got shapes {tuple(q.shape)} and {tuple(k.shape)}"
        )
    for arg, w in (("q_weight", q_weight), ("k_weight", k_weight)):
        if w is not None and tuple(w.shape) != (q.shape[-1],):
            raise RegularizerInputError(
                f"{WHO} expects {arg} of shape ({q.shape[-1]},) (the head dimension), got {tuple(w.shape)}"
            )
    return _norm(q, norm, eps, q_weight), _norm(k, norm, eps, k_weight)


@register
class QKNorm(Registered, Configurable, nn.Module):
    """QK-norm: per-head LayerNorm (or RMSNorm) of queries and keys before the attention logits.

    FiTv2 (Wang et al., 2024; official whlzy/FiT ``Attention``): with
    q, k of shape (B, heads, N, D_h)::

        qk = reglab.QKNorm()                        # LayerNorm, eps 1e-6, no affine (FiTv2's config)
        q, k = qk(q, k)
        out = F.scaled_dot_product_attention(q, k, v)

    ``norm="rmsnorm"`` uses RMS normalization instead; ``affine=True``
    (with ``head_dim``) adds a learnable gain per head dimension for q and
    for k (no bias). Logits of a weightless LayerNorm are bounded by √D_h,
    so attention cannot collapse through logit growth; a model that needs
    sharper attention needs a learnable temperature (as nGPT's s_qk). Cost:
    two normalizations per attention layer.
    """

    name = "qk_norm"
    takes_embedding_batches = False  # a module applied inside the model, not a penalty on an embedding batch
    kind = "representation"
    form = "module"
    formula = "q̂, k̂ = Norm(q), Norm(k) over the head dim; softmax(q̂k̂ᵀ/√D_h)"
    paper = PAPER
    function = qk_norm
    call_args = ("q_weight", "k_weight")
    claims = (
        Claim(
            "QK-norm stabilizes transformer training at high learning rates (no attention-logit growth) and "
            "speeds up convergence",
            testable=False,
            untestable_reason="needs a transformer whose attention takes a per-head norm: the lab's transformer "
            "task has no hook for one (adding it would change that task's fingerprint) and costs 9 s a run; FiTv2's "
            "2× speed-up is measured on ImageNet diffusion with several changes together",
            source="Wang et al. 2024 (FiTv2), Sec. 3 and Table 1 (QK-norm among the changes that give 2× faster "
            "convergence than FiT)",
        ),
    )

    def __init__(self, head_dim: int | None = None, norm: str = "layernorm", eps: float = 1e-6, affine: bool = False):
        nn.Module.__init__(self)
        qk_norm.check_hyperparameters(WHO, {"norm": norm, "eps": eps})
        if affine and (not isinstance(head_dim, int) or head_dim < 1):
            raise RegularizerInputError(f"{WHO}(affine=True) needs head_dim, a positive int, got {head_dim!r}")
        self.head_dim, self.norm, self.eps, self.affine = head_dim, norm, eps, bool(affine)
        if self.affine:
            self.q_weight = nn.Parameter(torch.ones(head_dim))
            self.k_weight = nn.Parameter(torch.ones(head_dim))
        else:
            self.register_parameter("q_weight", None)
            self.register_parameter("k_weight", None)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return qk_norm(q, k, self.norm, self.eps, self.q_weight, self.k_weight)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, norm={self.norm!r}, eps={self.eps}, affine={self.affine}"
