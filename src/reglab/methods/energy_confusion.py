"""Energy confusion (ECAML; Chen & Deng, AAAI 2019): pull random pairs of the batch together to confuse
the metric and curb overfitting to the seen classes.

E = Σ_{(i,j)∈S} ½‖x_i − x_j‖² / w_{ij},   L = log E,

S a random set of pairs: for each row i < n − 2r, r distinct partners j drawn
uniformly from {i+2, …, n−1} (r = ``num_pairs``; the official batches are
sorted in same-class pairs, so j = i+1, row i's positive partner for even
i, is skipped); w_{ij} = the number of same-class pairs (i<j) of the batch
when y_i = y_j, else the number of different-class pairs. Pinned from the
official code, chenbinghui1/ECAML @ decf0480: ``src/energy_confusion.cpp``
(forward: E and its per-pair weights; backward: the gradient of E divided
by E, i.e. of log E) and ``examples/car/train_confusion.prototxt``
(``random_num: 10``, ``loss_weight: 0.13``, on a copy of the embedding
layer ``fc_embedding_a`` sharing its weights, with ``propagate_down: 0``
so that the confusion gradient reaches only the embedding layer).
"""

from __future__ import annotations

import torch

from reglab.core import Baseline, Claim, Paper, RegularizerInputError, RepresentationRegularizer, register
from reglab.core.distributed import agree, all_gather_nograd, is_distributed
from reglab.ops import check_tensor, has_data, hyperparameters, integer, no_autocast, prepare_batch

__all__ = ["energy_confusion", "EnergyConfusion"]

PAPER = Paper(
    "Energy Confused Adversarial Metric Learning for Zero-Shot Image Retrieval and Clustering", "Chen, Deng", 2019,
    arxiv="1901.07169", venue="AAAI", code="https://github.com/chenbinghui1/ECAML")


def _pairs(n: int, r: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The official selection: rows i < n − 2r each get r distinct random partners in {i+2, …, n−1}."""
    rows, cols = [], []
    for i in range(max(n - 2 * r, 0)):
        pick = torch.randperm(n - i - 2, generator=generator)[:r] + i + 2
        rows.append(torch.full((r,), i, dtype=torch.long))
        cols.append(pick)
    if not rows:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return torch.cat(rows), torch.cat(cols)


@hyperparameters("EnergyConfusion", num_pairs=integer(1))
def energy_confusion(
    z: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None, *, num_pairs: int = 10,
    gather: bool = True,
) -> torch.Tensor:
    """ECAML energy confusion ``log Σ_{(i,j)∈S} ½‖z_i − z_j‖²/w_{ij}`` (official ``energy_confusion.cpp``).

    ``labels`` (n,) integer class ids; the random pair set S is drawn from
    ``generator`` (the global RNG by default) over the (gathered) batch, so
    under DDP pass a generator seeded identically on every rank to get the
    single-process value on each. Needs n > 2·``num_pairs`` rows.
    """
    who = "EnergyConfusion"
    local = z.shape[0] if isinstance(z, torch.Tensor) and z.ndim else 0
    distributed = gather and is_distributed()
    with agree(who, enabled=distributed) as agreed:
        check_tensor(who, labels, arg="labels", ndim=1, floating=False, finite=False, nonempty=False)
        if labels.is_floating_point() or labels.is_complex():
            raise RegularizerInputError(f"{who} expects integer class labels, got dtype {labels.dtype}")
        if labels.shape[0] != local:
            raise RegularizerInputError(
                f"{who} expects one label per embedding ({local}), got labels of shape {tuple(labels.shape)}")
        agreed.describe("labels", labels)
    y = all_gather_nograd(labels, sizes=agreed.sizes[0]) if agreed.sizes else labels
    x = prepare_batch(who, z, gather=gather, min_batch=2 * num_pairs + 1)
    n = x.shape[0]
    if not has_data(x) or not has_data(y):  # meta / fake tensors: the shape of the result only
        return x.sum() * 0.0
    y = y.to(x.device)
    same = y[:, None] == y[None, :]
    iu = torch.triu_indices(n, n, offset=1, device=x.device)
    w_pos = int(same[iu[0], iu[1]].sum())
    w_neg = iu.shape[1] - w_pos
    i, j = _pairs(n, num_pairs, generator)
    i, j = i.to(x.device), j.to(x.device)
    with no_autocast(x):
        w = torch.where(same[i, j], float(w_pos), float(w_neg)).to(x.dtype)
        energy = (0.5 * (x[i] - x[j]).pow(2).sum(dim=1) / w).sum()
        return torch.log(energy)


@register
class EnergyConfusion(RepresentationRegularizer):
    """ECAML energy confusion: L = log Σ_{(i,j)∈S} ½‖x_i − x_j‖²/w_{ij} over random pairs S of the batch.

    Each row i < n − 2r gets r random partners among rows i+2…n−1 (r = 10);
    w_{ij} is the batch's count of same-class pairs (for a same-class pair)
    or of different-class pairs. Minimizing it pulls random pairs together,
    against the metric loss (the paper's adversarial "confusion"): weight
    0.13 and r = 10 (chenbinghui1/ECAML ``train_confusion.prototxt``; their
    batches hold 65 classes × 2 images, sorted in pairs). The official code
    applies it to a weight-sharing copy of the embedding layer on
    *detached* backbone features (``propagate_down: 0``), so only the
    embedding layer is confused: do the same (``reg(embed(features.detach()), y)``).
    Random pairs: pass ``generator=`` for reproducibility (and, under DDP,
    the same seed on every rank).

    Chen & Deng (2019), AAAI, arXiv:1901.07169.
    """

    name = "energy_confusion"
    paper = PAPER
    formula = "log Σ_{(i,j)∈S} ½‖x_i − x_j‖² / w_{y_i = y_j}, S random pairs"
    function = energy_confusion
    call_args = ("labels", "generator")
    default_weight = 0.13
    takes_embedding_batches = False  # labels and random pairs: its own tests cover gradients and config
    claims = (
        Claim(
            "Energy confusion improves retrieval of classes unseen in training (zero-shot recall@1)",
            task="open_world_metric", metric="recall_at_1", direction="higher", role="outcome",
            arm={"name": "energy_confusion"}, task_args={"detached_embedding_layer": True},
            min_effect=0.02, min_effect_reason="two points of recall@1 on the unseen digits",
            baselines=(
                Baseline("normalized softmax alone", task_args={"detached_embedding_layer": None}),
                Baseline("+ uniformity (Wang & Isola, t=2, λ=1)", {"name": "uniformity"},
                         task_args={"detached_embedding_layer": None},
                         why="the common embedding-spreading penalty against over-fitting an embedding to the "
                         "training classes"),
            ),
            datasets=("digits", "digits_half"),
            settings="an MLP d-256-32 embedding trained with a normalized-softmax loss (scale 16) on digits 0-6 "
            "and evaluated by leave-one-out recall@1 on the test images of 7-9, instead of GoogLeNet/BN-Inception "
            "with the ECAML metric loss and its adversarial sample generation on CUB, Cars196, SOP and In-Shop; "
            "the official placement (the penalty on the embedding layer applied to detached features) and "
            "defaults (weight 0.13, 10 random partners per row), not tuned; random batches of 128 over 7 "
            "classes instead of the official class-paired batches",
            source="Chen & Deng 2019, experiments (conventional metric losses with and without energy confusion: "
            "Recall@K on the unseen classes of CUB, CARS, SOP and In-Shop)",
        ),
    )
