"""LogitClip (Wei, Zhuang, Xie, Feng, Niu, An & Li, ICML 2023): clamp the norm of each logit vector.

z ← z·min(1, δ/‖z‖_p); cross-entropy on the clipped logits is bounded, which
limits memorization of noisy labels (their Eq. 3). The paper writes δ = 1/τ;
the official code (hongxin001/LogitClip, ``algorithms/clip.py``,
``train.py``) uses p = 2 and ``--temp`` τ = 1 by default, i.e. δ = 1 (our
default); its README example uses τ = 1.5. For τ ≠ 1 that code tests
``‖z‖ > τ`` but rescales to ``1/τ``; we follow the paper: rows with
``‖z‖ > δ`` are rescaled to norm δ.
"""

from __future__ import annotations

import torch

from reglab.core import FunctionModule, Paper, register
from reglab.ops import check_logits, hyperparameters, positive, safe_norm

PAPER = Paper(
    "Mitigating Memorization of Noisy Labels by Clipping the Model Prediction",
    "Wei, Zhuang, Xie, Feng, Niu, An, Li", 2023, arxiv="2212.04055", venue="ICML", code="https://github.com/hongxin001/LogitClip")


@hyperparameters("LogitClip", delta=positive, p=positive)
def logit_clip(logits: torch.Tensor, delta: float = 1.0, p: float = 2.0) -> torch.Tensor:
    """LogitClip (Wei et al., 2023): ``z ← z·min(1, δ/‖z‖_p)`` per row.

    A transform, not a penalty: it returns the clipped logits (same shape);
    the gradient flows through the rescaling.
    """
    check_logits("LogitClip", logits)
    norms = safe_norm(logits, ord=p, dim=1, keepdim=True)  # 1e20-scale logits: no overflow to inf
    # clamp_min keeps rows of zero norm at scale 1 instead of 0/0
    scale = (delta / norms.clamp_min(1e-12)).clamp(max=1.0)
    return logits * scale


@register
class LogitClip(FunctionModule):
    """LogitClip: clamp the norm of each logit vector to at most δ.

    ``z ← z·min(1, δ/‖z‖_p)``; cross-entropy (or any loss) on the clipped
    logits is bounded, which limits memorization of noisy labels (Wei et al.,
    2023, Eq. 3). A module: ``loss = F.cross_entropy(clip(model(x)), y)``;
    the gradient flows through the rescaling. Clipping is applied in
    training and in eval alike (it never changes the argmax).

    The paper writes δ = 1/τ. The official code (hongxin001/LogitClip,
    ``algorithms/clip.py``, ``train.py``) uses p = 2 and ``--temp`` τ = 1
    by default, i.e. δ = 1 (our default); its README example uses τ = 1.5.
    (For τ ≠ 1 that code tests ``‖z‖ > τ`` but rescales to ``1/τ``; we
    follow the paper: rows with ``‖z‖ > δ`` are rescaled to norm δ.) δ is a
    hyperparameter to tune per dataset; too small a δ underfits.
    """

    name = "logit_clip"
    kind = "output"
    form = "module"
    paper = PAPER
    formula = "z ← z · min(1, δ / ‖z‖_p)"
    function = logit_clip
