"""Nested Dropout as feature compression under label noise (Chen, Shen, Hu & Xiao, 2021).

In training, draw one k ∈ {1, …, d} per batch with p(k) ∝ exp(−((k − μ)/σ)²)
and keep only the first k feature units (zero the others, no rescaling); in
evaluation keep all units (or the first k chosen on validation). The features
learn an importance order, and the truncation acts as a compression
constraint that limits memorization of noisy labels (the paper's analysis).

Pinned from the authors' code, yingyichen-cyy/Nested-Co-teaching
``nested/train_resnet.py``: ``GaussianDist(mu, std, N)`` gives
p(k) ∝ exp(−((k − μ)/σ)²) for k = 1..N; one k is drawn per batch
(``np.random.choice``) and the features are multiplied by the mask of their
first k units (``mask_feat_dim[k]``) before the linear classifier; ``--mu``
defaults to 0 and ``--nested`` (σ) is 10 for CIFAR-10 and 100 for CIFAR-100
(``nested/run_cifar.sh``); at test time ``TestNested`` picks the best k on the
validation set. This is their discretized half-Gaussian, not the geometric
distribution of Rippel et al. (2014).
"""

from __future__ import annotations

import torch

from reglab.core import Baseline, Claim, FunctionModule, Paper, register
from reglab.ops import check_tensor, hyperparameters, non_negative, positive

PAPER = Paper(
    "Boosting Co-teaching with Compression Regularization for Label Noise",
    "Chen, Shen, Hu, Xiao", 2021, arxiv="2104.13766", venue="CVPR Workshops",
    code="https://github.com/yingyichen-cyy/Nested-Co-teaching")

WHO = "NestedDropout"


def nested_probabilities(d: int, sigma: float, mu: float = 0.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """p(k) ∝ exp(−((k − μ)/σ)²) for k = 1..d (the official ``GaussianDist``), as a (d,) tensor summing to 1."""
    k = torch.arange(1, d + 1, dtype=torch.float64)
    logits = -(((k - mu) / sigma) ** 2)
    return torch.softmax(logits, dim=0).to(dtype)  # softmax = the normalized exp, without underflow to 0/0


@hyperparameters(WHO, sigma=positive, mu=non_negative)
def nested_dropout(
    x: torch.Tensor, sigma: float = 10.0, mu: float = 0.0, training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Keep the first k units along dim 1 (one k per call, p(k) ∝ exp(−((k − μ)/σ)²)), zero the rest.

    ``x``: (batch, d, …) features. Identity when ``training`` is False.
    """
    check_tensor(WHO, x, arg="features", min_ndim=2)
    if not training:
        return x
    d = x.shape[1]
    p = nested_probabilities(d, sigma, mu)
    k = int(torch.multinomial(p, 1, generator=generator)) + 1
    mask = torch.zeros(d, dtype=x.dtype, device=x.device)
    mask[:k] = 1
    return x * mask.reshape((1, d) + (1,) * (x.ndim - 2))


@register
class NestedDropout(FunctionModule):
    """Nested Dropout: in training keep only the first k feature units, k drawn once per batch.

    p(k) ∝ exp(−((k − μ)/σ)²), k = 1..d, no rescaling of the kept units;
    identity in ``.eval()``. Put it on the features feeding the classifier
    (``logits = head(nested(features))``): the features learn an importance
    order and the truncation compresses them, which limits memorization of
    noisy labels (Chen et al., 2021). At test time all units are kept (or the
    first k, chosen on a validation set, as the authors' ``TestNested`` does).

    Defaults from yingyichen-cyy/Nested-Co-teaching: μ = 0 (``--mu``), σ = 10
    (``--nested 10``, their CIFAR-10 runs; 100 for CIFAR-100 and Clothing1M),
    one k per batch (``nested/train_resnet.py``). Not Rippel et al.'s (2014)
    geometric per-sample draw.

    Chen, Shen, Hu & Xiao (2021), arXiv:2104.13766.
    """

    name = "nested_dropout"
    kind = "stochastic"
    form = "transform"
    paper = PAPER
    formula = "x ← x ⊙ 1[j ≤ k],  k ~ p(k) ∝ exp(−((k − μ)/σ)²), k = 1..d, once per batch"
    function = nested_dropout
    call_args = ("training", "generator")
    _settings = (
        "an MLP 64-256-32 on 8×8 digits with nested dropout on the 32 ReLU features before a linear head, 40% "
        "symmetric label noise, Adam 3e-3, batch 128, 60 epochs, no early stopping, instead of ResNet-18 on "
        "CIFAR with 512 features; σ = 10 and μ = 0 are the authors' CIFAR-10 values, not tuned; the task's learning "
        "rate (3e-3 rather than the lab's usual 1e-3) was set after two development runs (seeds 0-1) so that the "
        "plain model memorizes the noisy labels within the budget; the dropout baseline uses 0.3, the authors' "
        "CIFAR-10 dropout ratio"
    )
    _baselines = (
        Baseline("no compression (cross-entropy)"),
        Baseline("dropout 0.3 on the features", task_args={"dropout": 0.3},
                 why="the compression the paper compares nested dropout with (its CIFAR-10 ratio)"),
    )
    claims = (
        Claim(
            "Nested dropout on the penultimate features improves clean test accuracy at the last epoch under label "
            "noise, over plain cross-entropy and over standard dropout",
            task="feature_compression", metric="final_accuracy", direction="higher",
            arm={"name": "nested_dropout"},
            min_effect=0.01, min_effect_reason="one point of clean test accuracy",
            baselines=_baselines,
            datasets=("digits",),
            settings=_settings,
            source="Chen et al. 2021, Tables 1-2 (CIFAR-10/100 with symmetric noise: nested vs baseline vs dropout)",
        ),
        Claim(
            "Nested dropout limits memorization of the noisy labels (last epoch)",
            task="feature_compression", metric="memorization", direction="lower", role="mechanism",
            arm={"name": "nested_dropout"},
            min_effect=0.05, min_effect_reason="5% of the noisy training samples",
            baselines=_baselines,
            datasets=("digits",),
            settings=_settings,
            source="Chen et al. 2021, Sec. 3 (compression as a constraint against fitting the noisy labels)",
        ),
    )

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return super().forward(x, training=self.training, generator=generator)
