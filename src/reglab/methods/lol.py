"""LoL: a comparative regularization loss over losses (Zhu, Pang, Lan, Shen & Cheng, SIGIR 2022).

For one input processed several times with nested amounts of information
(a query revised with 0, 1, 2, … feedback passages), a revision that saw
more information should not have a larger loss. LoL penalizes every ordered
pair that violates it: ``R = mean_{n, (i, j): i sees less than j} max(0, L_{n,j} − L_{n,i})``.
Official code (zycdev/LoL, ``trainer.py`` lines 414-419 and ``util.py``
``pairwise_hinge``): the per-sample losses of the 1 + n_compare revisions
(sorted by decreasing number of feedback passages, ``qr_dataset.py``),
``revision_effects = −loss``, labels R, R−1, …, 1, and
``F.margin_ranking_loss(s_more, s_less, 1, margin=0, reduction="mean")`` over
the pairs with a larger label, which is the mean of ``max(0, L_more − L_less)``;
added with ``lambda_cr`` = 1 (README), our default weight. Gradients flow
through both losses of a pair (the code's ``.detach()`` is commented out).

Here the columns of ``losses`` are ordered by *increasing* information
(column 0 sees the least).
"""

from __future__ import annotations

import torch

from reglab.core import Claim, Paper, Regularizer, RegularizerInputError, register
from reglab.ops import check_tensor, hyperparameters, non_negative

__all__ = ["lol", "LoL"]

PAPER = Paper(
    "LoL: A Comparative Regularization Loss over Query Reformulation Losses for Pseudo-Relevance Feedback",
    "Zhu, Y., Pang, L., Lan, Y., Shen, H. and Cheng, X.", 2022, arxiv="2204.11545", venue="SIGIR",
    code="https://github.com/zycdev/LoL")


@hyperparameters("LoL", margin=non_negative)
def lol(losses: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """``mean over samples and pairs i < j of max(0, L_j − L_i + margin)`` for ``losses`` (N, K),
    column k seeing more information than column k − 1 (LoL's comparative regularization)."""
    check_tensor("LoL", losses, arg="per-sample losses", ndim=2)
    k = losses.shape[1]
    if k < 2:
        raise RegularizerInputError(
            f"LoL compares at least two versions of each sample, got losses of shape {tuple(losses.shape)}"
        )
    i, j = torch.triu_indices(k, k, offset=1, device=losses.device)
    return (losses[:, j] - losses[:, i] + margin).clamp_min(0).mean()


@register
class LoL(Regularizer):
    """LoL (loss over losses): R = mean over ordered pairs of max(0, L_more_info − L_less_info).

    ``reg(losses)`` with ``losses`` (N, K): the per-sample losses of K
    versions of each sample, column 0 seeing the least information
    (fewest feedback passages, most masked pixels), column K−1 the most.
    Any version with more information but a larger loss is penalized (Zhu
    et al. 2022, Eq. 5; official ``pairwise_hinge`` with margin 0). Weight
    1 (the README's ``lambda_cr``).
    """

    name = "lol"
    kind = "output"
    paper = PAPER
    formula = "R = mean_{n, i<j} max(0, L_{n,j} − L_{n,i} + m),  column j sees more information than i"
    function = lol
    claims = (
        Claim(
            "Comparative regularization over revisions with more feedback improves pseudo-relevance feedback "
            "retrieval",
            testable=False,
            untestable_reason="the claim is query reformulation with pseudo-relevance feedback on MS MARCO (ANCE "
            "and uniCOIL, BERT-size reformulators); the lab's tasks give no nested views of a sample with "
            "increasing information",
            source="Zhu et al. 2022, Tables 2-3 (MRR@10, nDCG@10 with and without LoL)",
        ),
    )
