"""Alignment and uniformity on the hypersphere (Wang & Isola, ICML 2020).

* Alignment of positive pairs: E‖f(x) − f(y)‖₂^α, α = 2.
* Uniformity: log E_{i<j} exp(−t‖f(x_i) − f(x_j)‖²), t = 2, over the
  n(n−1)/2 distinct pairs.

Defaults from the paper's §4 and ``align_loss`` / ``uniform_loss`` in
ssnl/align_uniform. The paper's features are L2-normalized; ``normalize=True``
does that here (the official functions expect normalized inputs).
"""

from __future__ import annotations

import math

import torch

from reglab.core import BEIR_ADAPTER_SETTINGS, Baselines, Claim, Paper, RepresentationRegularizer, register, ssl_claims
from reglab.ops import hyperparameters, no_autocast, normalize_rows, positive, prepare_batch, prepare_views
from reglab.ops.linalg import neg_sq_dist_logsumexp

PAPER = Paper(
    "Understanding Contrastive Representation Learning through Alignment and Uniformity on the Hypersphere",
    "Wang, Isola", 2020, arxiv="2005.10242", venue="ICML", code="https://github.com/ssnl/align_uniform")


@hyperparameters("Alignment", alpha=positive)
def alignment(z1: torch.Tensor, z2: torch.Tensor, *, alpha: float = 2.0, normalize: bool = True) -> torch.Tensor:
    """Wang & Isola (2020) alignment ``E‖f(x) − f(y)‖₂^α`` over positive pairs.

    Per-pair, so a mean over ranks needs no gather (DDP's averaging of equal
    local batch sizes gives the global mean).
    """
    who = "Alignment"
    z1, z2 = prepare_views(who, z1, z2, min_batch=1, gather=False)
    with no_autocast(z1):
        if normalize:
            z1, z2 = normalize_rows(z1), normalize_rows(z2)
        return (z1 - z2).norm(dim=1).pow(alpha).mean()


@hyperparameters("Uniformity", t=positive)
def uniformity(z: torch.Tensor, *, t: float = 2.0, normalize: bool = True, gather: bool = True) -> torch.Tensor:
    """Wang & Isola (2020) uniformity ``log E_{i<j} exp(−t‖z_i − z_j‖²)``."""
    z = prepare_batch("Uniformity", z, gather=gather)
    with no_autocast(z):
        if normalize:
            z = normalize_rows(z)
        n = z.shape[0]
        # Σ_{i≠j} counts each of the n(n−1)/2 distinct pairs twice: the same mean
        return neg_sq_dist_logsumexp(z, t) - math.log(n * (n - 1))


@register
class Alignment(RepresentationRegularizer):
    """Alignment of positive pairs: L = E‖f(x) − f(y)‖₂^α on the unit sphere.

    α = 2 (the paper's default, §4 and ``align_loss`` in ssnl/align_uniform).
    The paper's features are L2-normalized; ``normalize=True`` does that here
    (the official function expects normalized inputs). A mean over pairs, so
    DDP's gradient averaging already gives the global value: no gather.

    Wang & Isola (2020), ICML, arXiv:2005.10242.
    """

    name = "alignment"
    claims = (
        Claim(
            "Alignment and uniformity together give good representations; alignment alone collapses",
            testable=False,
            untestable_reason="alignment is half of Wang & Isola's objective, and the ssl_collapse task's "
            "invariance term already is an alignment loss (α = 2): the pair is tested under `uniformity`, which "
            "adds uniformity to it",
        ),
    )
    paper = PAPER
    formula = "E_{(x,y)~pos} ‖f(x) − f(y)‖₂^α"
    num_inputs = 2
    function = alignment


@register
class Uniformity(RepresentationRegularizer):
    """Uniformity on the hypersphere: L = log E_{i<j} exp(−t‖f(x_i) − f(x_j)‖²).

    t = 2 (paper §4 and ``uniform_loss`` in ssnl/align_uniform, which averages
    over the n(n−1)/2 distinct pairs from ``torch.pdist``). Inputs are
    L2-normalized first (``normalize=True``); ``gather=True`` uses all pairs of
    the global batch under DDP.

    Wang & Isola (2020), ICML, arXiv:2005.10242.
    """

    name = "uniformity"
    claims = ssl_claims(
        "Adding uniformity to the alignment (invariance) loss prevents collapse (higher effective rank)",
        "Optimizing alignment + uniformity gives representations with a better linear probe",
        settings="uniformity (t = 2, normalized features) on the encoder's 32-d output next to the task's "
            "invariance MSE (alignment with α = 2 on unnormalized embeddings, weight 1 each), MLP encoder on "
            "8×8 digits, Adam, 50 epochs, instead of AlexNet/ResNet encoders on STL-10/ImageNet-100",
        source_mechanism="Wang & Isola 2020, Sec. 4 (both terms are needed; alignment alone collapses)",
        source_outcome="Wang & Isola 2020, Table 1 (as good as or better than contrastive learning)",
        task_args={'bind': 'output'},
    ) + (
        Claim(
            "Adding uniformity to the InfoNCE fine-tuning of a retrieval adapter on a real encoder improves test "
            "nDCG@10",
            task="beir_adapter", metric="ndcg10", direction="higher",
            min_effect=0.01, min_effect_reason="0.01 nDCG@10, the issue's δ for BEIR comparisons",
            baselines=(Baselines.INFONCE_ADAPTER, Baselines.INFONCE_ADAPTER_KOLEO), datasets=("scifact",),
            settings=BEIR_ADAPTER_SETTINGS + "; uniformity (t = 2, λ = 1) added to InfoNCE (which already "
            "contains an alignment and a uniformity term asymptotically, the paper's Sec. 4.1)",
            source="Wang & Isola 2020, Sec. 5 and Table 1 (more uniform embeddings transfer better; optimizing "
            "uniformity directly matches or beats the contrastive loss)",
        ),
    )
    paper = PAPER
    formula = "log E_{i<j} exp(−t‖z_i − z_j‖²)"
    function = uniformity
