"""Threshold-Consistent Margin (TCM) regularizer (Zhang, Xia, Xiong, Sun, Li, Xiong & Soatto, ICCV 2023).

On the cosine similarities s_ij of the pairs of a labelled batch:

    TCM = λ₊ · mean_{(i,j) positive, s_ij ≤ m₊} (m₊ − s_ij)  +  λ₋ · mean_{(i,j) negative, s_ij ≥ m₋} (s_ij − m₋)

(a mean over the selected hard pairs only; a term with no selected pair is 0),
added to a base metric-learning loss. Positive pairs: i ≠ j with equal labels;
negative pairs: different labels. It pulls the hardest positives above m₊ and
pushes the hardest negatives below m₋, so one distance threshold behaves alike
across classes (the paper's OPIS, not shipped here, measures that).

Pinned from the implementation in pytorch-metric-learning
(KevinMusgrave/pytorch-metric-learning
``src/pytorch_metric_learning/losses/threshold_consistent_margin_loss.py``,
``ThresholdConsistentMarginLoss``, which cites arXiv:2307.04047): defaults
λ₊ = λ₋ = 1, m₊ = 0.9, m₋ = 0.5; inclusive comparisons ``s <= m₊`` and
``s >= m₋``; all pairs of the batch (its ``convert_to_pairs`` without a miner);
cosine similarity.
"""

from __future__ import annotations

import torch

from reglab.core import Baseline, Claim, Paper, RegularizerInputError, RepresentationRegularizer, register
from reglab.ops import hyperparameters, no_autocast, non_negative, normalize_rows, prepare_labeled_batch

PAPER = Paper(
    "Threshold-Consistent Margin Loss for Open-World Deep Metric Learning",
    "Zhang, Xia, Xiong, Sun, Li, Xiong, Soatto", 2023, arxiv="2307.04047", venue="ICCV",
    code="https://github.com/KevinMusgrave/pytorch-metric-learning")

WHO = "TCM"


def _unit_interval_margin(who: str, name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not -1.0 <= float(value) <= 1.0:
        raise RegularizerInputError(f"{who} expects {name} to be a cosine similarity in [-1, 1], got {value!r}")
    return value


@hyperparameters(
    WHO, margin_pos=_unit_interval_margin, margin_neg=_unit_interval_margin, lambda_pos=non_negative,
    lambda_neg=non_negative,
)
def tcm(
    z: torch.Tensor, labels: torch.Tensor, *, margin_pos: float = 0.9, margin_neg: float = 0.5,
    lambda_pos: float = 1.0, lambda_neg: float = 1.0, gather: bool = True,
) -> torch.Tensor:
    """TCM: ``λ₊·mean_{pos, s≤m₊}(m₊ − s) + λ₋·mean_{neg, s≥m₋}(s − m₋)`` on cosine similarities.

    ``z``: (n, d) embeddings; ``labels``: (n,) integer class labels. Each term is
    the mean over the pairs it selects (0 when none is selected).
    ``gather=True``: under DDP the pairs are those of the global batch.
    """
    z, labels = prepare_labeled_batch(WHO, z, labels, gather=gather)
    with no_autocast(z):
        x = normalize_rows(z, 1e-8)
        s = x @ x.T
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=z.device)
        pos = same & ~eye
        neg = ~same
        hard_pos = pos & (s <= margin_pos)
        hard_neg = neg & (s >= margin_neg)
        pos_term = torch.where(hard_pos, margin_pos - s, torch.zeros_like(s)).sum() / hard_pos.sum().clamp_min(1)
        neg_term = torch.where(hard_neg, s - margin_neg, torch.zeros_like(s)).sum() / hard_neg.sum().clamp_min(1)
        return lambda_pos * pos_term + lambda_neg * neg_term


@register
class TCM(RepresentationRegularizer):
    """Threshold-Consistent Margin: penalize the hard pairs of a labelled batch on cosine similarity.

    TCM = λ₊·mean_{pos pairs with s ≤ m₊}(m₊ − s) + λ₋·mean_{neg pairs with
    s ≥ m₋}(s − m₋), added to a metric-learning loss (``loss = base + tcm(z,
    labels)``). Only the pairs past a margin count, and each term is their mean,
    so the penalty acts on the hard positives and negatives whatever their
    number: the class-wise structure becomes uniform, and one global distance
    threshold gives similar false accept/reject rates across classes
    (Zhang et al., 2023; the OPIS metric of the paper is not shipped here).

    Defaults λ₊ = λ₋ = 1, m₊ = 0.9, m₋ = 0.5 and the inclusive comparisons are
    those of ``ThresholdConsistentMarginLoss`` in KevinMusgrave/pytorch-metric-learning
    (``losses/threshold_consistent_margin_loss.py``); ``weight`` = 1 as there
    (the λ's scale the two terms). Pairs are all ordered pairs i ≠ j of the
    batch (no miner), which gives the same means as unordered pairs.
    Under DDP (``gather=True``) the pairs are those of the global batch.

    Zhang, Xia, Xiong, Sun, Li, Xiong & Soatto (2023), ICCV, arXiv:2307.04047.
    """

    name = "tcm"
    paper = PAPER
    formula = "λ₊·mean_{pos, s≤m₊}(m₊ − s) + λ₋·mean_{neg, s≥m₋}(s − m₋),  s = cos(z_i, z_j)"
    function = tcm
    default_weight = 1.0
    num_inputs = 2
    takes_embedding_batches = False  # (embeddings, labels): tests/methods/test_tcm.py covers gradients and DDP
    _settings = (
        "an MLP 64-256-32 embedding of 8×8 digits trained with a normalized-softmax loss (scale 16, 7 proxies) on "
        "digits 0-6 and evaluated open-world on the test images of 7-9 (Adam, batch 128, 30 epochs), instead of "
        "ResNet-50 on iNaturalist/SOP/CUB/Cars; TCM at the pytorch-metric-learning defaults (λ± = 1, m₊ = 0.9, "
        "m₋ = 0.5, weight 1), not tuned; threshold_inconsistency is an OPIS-like measure (variance across classes "
        "of the per-class TPR/TNR harmonic mean, averaged over thresholds at global false-accept rates 10%…0.1%), "
        "not the paper's exact OPIS"
    )
    claims = (
        Claim(
            "TCM makes one global threshold behave more alike across classes (lower threshold inconsistency, an "
            "OPIS-like measure) on unseen classes",
            task="open_world_metric", metric="threshold_inconsistency", direction="lower", role="mechanism",
            arm={"name": "tcm"},
            min_effect=0.5, min_effect_reason="a spread (std) of about 0.07 in the per-class utility across classes",
            baselines=(
                Baseline("normalized softmax alone"),
                Baseline("+ uniformity (Wang & Isola, t=2, λ=1)", {"name": "uniformity"},
                         why="the common embedding-spreading penalty, which also evens out the class structure"),
            ),
            datasets=("digits", "digits_half"),
            settings=_settings,
            source="Zhang et al. 2023, Tables 1-3 (OPIS lower with TCM on four benchmarks)",
        ),
        Claim(
            "TCM keeps open-world retrieval accuracy (recall@1 on unseen classes)",
            task="open_world_metric", metric="recall_at_1", direction="higher", kind="non-inferiority",
            arm={"name": "tcm"},
            min_effect=0.02, min_effect_reason="two points of recall@1",
            baselines=(Baseline("normalized softmax alone"),),
            datasets=("digits", "digits_half"),
            settings=_settings,
            source="Zhang et al. 2023, abstract and Tables 1-3 (\"while preserving accuracy\")",
            control=Baseline(
                "normalized softmax alone, 4-dimensional embedding", task_args={"dim": 4},
                why="negative control: a weakened embedding (4-d instead of 32) that the same test must reject",
            ),
        ),
    )
