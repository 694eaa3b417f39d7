"""Entropy regularization of attention heads (Jha & Reagen, "Entropy-Guided Attention for Private
LLMs", AAAI-25 PPAI workshop, arXiv:2501.03489).

For attention probabilities A^ℓ (B, H, T, T) of layers ℓ = 1…L (softmax rows),
per-head threshold weights θ_h and Hmax = log(T_ctx)::

    E^ℓ_{b,h,i} = −Σ_j A^ℓ_{b,h,i,j}·log(A^ℓ_{b,h,i,j} + 1e−9)      (entropy of each query row)
    δ = E^ℓ_{b,h,i} − θ_h·Hmax
    R = (1/L) Σ_ℓ (1/H) Σ_h Σ_{b,i} δ²·1[|δ| > κ·Hmax]

and the loss adds c·R. Everything follows the official code
(Nandan91/entropy-guided-attention-llm, ``entropy_regularization.py``,
``EntropyRegularization.compute_loss``): the +1e−9 inside the log, the sum
(not mean) over batch and query positions (so R scales with B·T, hence the
small c), the mean over heads and layers, the hard dead-zone (the squared
deviation, not shifted by the margin: R jumps from 0 to (κHmax)² at the
margin) and Hmax = log(context_size) with context_size defaulting to the
last dim of the attention tensor. Defaults c = 1e−5 (``loss_coeff``), κ =
0.2 (``tolerance_margin_factor``), both from the official code.

θ: the released code takes the thresholds from the attention module
(``block.attn.reg_threshold_weights`` of the first layer, reused for every
layer), whose definition is not released, so their initialisation and
whether they are trained are not pinned. Here θ is one value per head,
initialised to ``threshold`` = 0.5 (a library choice), learnable by default
when the class knows ``num_heads`` (the paper calls them learnable); the
pure function takes a float or an (H,) tensor.

One difference from the official code: it uses ``nansum`` for the row
entropy, which silently skips NaN probabilities; here NaN/inf attention is
an error, as everywhere in reglab. Rows that do not sum to 1 (logits or
scores instead of probabilities) are an error too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from reglab.core.paper import Tuned, Tuning
from reglab.core import Baseline, Claim, Paper, RepresentationRegularizer, register
from reglab.core import checks as _checks
from reglab.core.errors import RegularizerInputError
from reglab.ops import as_tensors, check_tensor, checked_total, hyperparameters, non_negative
from reglab.ops.validation import describe, has_data

__all__ = ["attention_entropy", "AttentionEntropy"]

PAPER = Paper(
    "Entropy-Guided Attention for Private LLMs", "Jha, N. K. and Reagen, B.", 2025, arxiv="2501.03489",
    venue="AAAI-25 PPAI workshop", code="https://github.com/Nandan91/entropy-guided-attention-llm")

WHO = "AttentionEntropy"


def _context_size(who: str, name: str, value: object) -> object:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
        raise RegularizerInputError(f"{who} expects {name} to be None or an integer ≥ 2, got {value!r}")
    return value


def _check_rows(a: torch.Tensor) -> None:
    """Raise unless every row of ``a`` is a probability vector (entries in [0, 1], sum 1)."""
    if not has_data(a):
        return
    tol = 1e-2  # catches scores/logits; loose enough for bf16-rounded rows (whatever dtype they arrive in)
    a = a.detach()
    sums = a.float().sum(dim=-1)
    ok = ((sums - 1).abs() <= tol).all() & (a >= -tol).all()
    message = (
        f"{WHO} expects attention probabilities (softmax rows summing to 1, entries ≥ 0), got a tensor of shape "
        f"{tuple(a.shape)} whose rows sum to values in [{{lo}}, {{hi}}]; pass the probabilities, not the scores"
    )
    if _checks.defers(a):
        _checks.defer_check(ok, message.format(lo="?", hi="?"))
    elif not bool(ok):
        raise RegularizerInputError(message.format(lo=f"{float(sums.min()):.4g}", hi=f"{float(sums.max()):.4g}"))


def _thresholds(threshold: float | torch.Tensor, heads: int, like: torch.Tensor) -> torch.Tensor:
    if isinstance(threshold, torch.Tensor):
        if threshold.ndim > 1 or (threshold.ndim == 1 and threshold.shape[0] != heads):
            raise RegularizerInputError(
                f"{WHO} expects threshold as a float or a tensor of shape ({heads},) (one per head), "
                f"got {describe(threshold)}"
            )
        return threshold.to(like.dtype).reshape(-1, 1) if threshold.ndim else threshold.to(like.dtype)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise RegularizerInputError(f"{WHO} expects threshold as a float or a tensor of shape ({heads},), got {describe(threshold)}")
    return torch.tensor(float(threshold), dtype=like.dtype, device=like.device)


@hyperparameters(WHO, tolerance=non_negative, context_size=_context_size)
def attention_entropy(
    attn: torch.Tensor | Sequence[torch.Tensor],
    threshold: float | torch.Tensor = 0.5,
    tolerance: float = 0.2,
    context_size: int | None = None,
) -> torch.Tensor:
    """Entropy regularization of attention heads, unweighted (Jha & Reagen 2025; official code).

    ``attn``: one layer's attention probabilities (B, H, T, S) or a list over
    layers. ``threshold`` θ: a float, or an (H,) tensor (one per head,
    possibly learnable). ``tolerance`` κ, ``context_size`` T_ctx (Hmax =
    log T_ctx; default S of the first layer). Returns
    ``(1/L) Σ_ℓ (1/H) Σ_h Σ_{b,i} δ²·1[|δ| > κ·Hmax]`` with
    ``δ = −Σ_j A log(A + 1e−9) − θ_h·Hmax``.
    """
    raw = as_tensors(WHO, attn, arg="attention probabilities", upcast=False)  # upcast after the checks
    for a in raw:
        if a.ndim != 4:
            raise RegularizerInputError(
                f"{WHO} expects attention probabilities of shape (batch, heads, queries, keys), got shape "
                f"{tuple(a.shape)}; for nn.MultiheadAttention pass need_weights=True, average_attn_weights=False"
            )
    for a in raw:
        check_tensor(WHO, a, arg="attention probabilities")
        _check_rows(a)
    layers = as_tensors(WHO, raw, arg="attention probabilities")  # float16/bfloat16 -> float32
    ctx = context_size if context_size is not None else layers[0].shape[-1]
    total = None
    for a in layers:
        h_max = math.log(ctx)
        entropy = -(a * torch.log(a + 1e-9)).sum(dim=-1)  # (B, H, T)
        theta = _thresholds(threshold, a.shape[1], a)
        delta = entropy - theta * h_max  # θ: () or (H, 1)
        penalty = torch.where(delta.abs() > tolerance * h_max, delta, torch.zeros_like(delta)).square()
        layer = penalty.sum() / a.shape[1]
        total = layer if total is None else total + layer
    return checked_total(WHO, total / len(layers), layers, arg="attention map")


_TUNING = Tuning(
    arm=Tuned("θ", ("learned (official design)", 0.5), 0.5,
              "dev seeds 0-2 (a learned θ follows the collapsing entropy down)"),
    note="weight 1e-4 from the batch-size argument in the settings, not searched; every arm runs the task's lr "
    "3e-2, picked on dev seeds as the learning rate where the plain model's attention collapses; the baselines' "
    "warm-up length (200 steps) was not tuned",
)


@register
class AttentionEntropy(RepresentationRegularizer):
    """Entropy regularization of attention heads: keep each head's attention entropy near θ_h·log T.

    ``reg(attn)`` with ``attn`` a layer's attention probabilities (B, H, T, S),
    or a list over layers (averaged over layers, as the official code):
    R = (1/L) Σ_ℓ (1/H) Σ_h Σ_{b,i} δ²·1[|δ| > κ·log T], δ = E_{b,h,i} − θ_h·log T,
    E the entropy of query row i (Jha & Reagen 2025, official
    ``entropy_regularization.py``). The default weight c = 1e−5 and κ = 0.2
    are the official code's; R is a *sum* over batch and query positions,
    so c·R grows with B·T (their GPT-2 runs: T = 1024).

    θ: with ``num_heads`` given, θ is an (H,) parameter initialised to
    ``threshold`` (learnable unless ``learn_thresholds=False``; add
    ``reg.parameters()`` to the optimizer); without it, the float
    ``threshold`` for every head. The initial value 0.5 and learning θ are
    library choices: the official attention module that defines θ is not
    released.

    Getting the probabilities: a model that returns them (Hugging Face
    ``output_attentions=True`` → ``outputs.attentions``, a tuple over
    layers); ``nn.MultiheadAttention(...)(q, k, v, need_weights=True,
    average_attn_weights=False)[1]`` (B, H, T, S); or your own attention
    module keeping ``softmax(QKᵀ/√d)``. Pass the list of layers to one call
    (the official 1/L average); ``reglab.attach`` with
    ``.on(activations=[...])`` on modules that output the probabilities
    sums the layers instead (divide the weight by L for the same value).
    Apply in training only, as the official trainer does.
    """

    name = "attention_entropy"
    takes_embedding_batches = False  # its own tests cover gradients, config and bad input
    formula = "R = (1/L)Σ_ℓ (1/H)Σ_h Σ_{b,i} δ²·1[|δ| > κ log T],  δ = −Σ_j A log(A+1e−9) − θ_h log T"
    paper = PAPER
    function = attention_entropy
    default_weight = 1e-5
    claims = (
        Claim(
            "Entropy regularization prevents attention entropy collapse at a high learning rate: the mean attention "
            "entropy of the trained model on test is higher than without it",
            task="transformer", metric="attention_entropy", direction="higher", role="mechanism",
            task_args={"lr": 3e-2}, arm={"name": "attention_entropy", "weight": 1e-4, "learn_thresholds": False},
            min_effect=0.1, min_effect_reason="0.1 nat of mean row entropy (log 16 = 2.77 is uniform attention)",
            baselines=(
                Baseline("no regularizer, lr 3e-2"),
                Baseline("linear warm-up (200 steps), lr 3e-2", task_args={"warmup": 200},
                         why="learning-rate warm-up, the usual remedy for unstable transformer training"),
            ),
            datasets=("digits", "digits_half"),
            settings="a 2-layer, 4-head pre-norm transformer (d 32) on 8×8 digits as 16 patch tokens, AdamW 3e-2 "
            "(the learning rate at which the plain model's attention collapses on dev seeds), 40 epochs, instead of "
            "GPT-2 on CodeParrot; weight c = 1e-4 instead of 1e-5 because R sums over B·T = 64·16 query rows here "
            "vs 8×1024 there (8× fewer), rounded up; θ fixed at 0.5 for every head (learn_thresholds=False): the "
            "released code lacks the module defining θ, and a θ trained by the same AdamW simply follows the "
            "collapsing entropy down (dev seeds 0-2: mean entropy 0.16 vs 0.26 plain), so the dead zone switches "
            "the penalty off; developed on seeds 0-4",
            source="Jha & Reagen 2025, Sec. 4-5 (entropy regularization prevents entropic overload / collapse)",
            tuning=_TUNING,
        ),
        Claim(
            "Entropy regularization keeps test accuracy at a high learning rate",
            task="transformer", metric="test_accuracy", direction="higher", role="outcome",
            task_args={"lr": 3e-2}, arm={"name": "attention_entropy", "weight": 1e-4, "learn_thresholds": False},
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(
                Baseline("no regularizer, lr 3e-2"),
                Baseline("linear warm-up (200 steps), lr 3e-2", task_args={"warmup": 200},
                         why="learning-rate warm-up, the usual remedy for unstable transformer training"),
            ),
            datasets=("digits", "digits_half"),
            settings="as above",
            source="Jha & Reagen 2025, Sec. 5 (perplexity of the entropy-regularized models)",
            tuning=_TUNING,
        ),
    )

    def __init__(
        self,
        weight: float = 1e-5,
        threshold: float = 0.5,
        tolerance: float = 0.2,
        context_size: int | None = None,
        num_heads: int | None = None,
        learn_thresholds: bool = True,
    ):
        super().__init__(weight)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise RegularizerInputError(f"{WHO} expects threshold to be a finite number, got {threshold!r}")
        non_negative(WHO, "tolerance", tolerance)
        _context_size(WHO, "context_size", context_size)
        if num_heads is not None and (isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1):
            raise RegularizerInputError(f"{WHO} expects num_heads to be None or a positive integer, got {num_heads!r}")
        self.threshold = float(threshold)
        self.tolerance = tolerance
        self.context_size = context_size
        self.num_heads = num_heads
        self.learn_thresholds = bool(learn_thresholds)
        init = None if num_heads is None else torch.full((num_heads,), float(threshold))
        if init is not None and self.learn_thresholds:
            self.thresholds = nn.Parameter(init)
        else:
            self.register_buffer("thresholds", init)  # None without num_heads: not in state_dict

    def function_kwargs(self) -> dict:
        theta = self.thresholds if self.thresholds is not None else self.threshold
        return {"threshold": theta, "tolerance": self.tolerance, "context_size": self.context_size}
