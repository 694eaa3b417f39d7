"""Lab task ``compatible_embedding``: an old embedding model on digits 0-4, a new one on 0-9, cross-model retrieval.

BCT's protocol (Shen et al., CVPR 2020, Sec. 3-4: the old model trained on a
subset of the classes, ImageNet-500 of 1,000; the new one on all of them) at
the lab's scale. Both models are an MLP d-256-``dim`` (ReLU) giving a
``dim``-d embedding φ(x), followed by a bias-free linear classifier
(``W φ(x)``), trained with cross-entropy (Adam 1e-3, batch 128, 30 epochs;
3 in quick mode; last epoch, no selection):

* old model φ_old: on the training images of the digits 0-4 (5-way classifier);
* new model φ_new: on every training image (10-way classifier), from its own
  initialization, with the arm added to its loss.

The arm (``bct``) is called as ``arm(φ_new(x), y, W_infl)`` on each batch:
``W_infl`` (10, dim) is BCT's influence classifier, frozen: the old model's
classifier rows for the classes it was trained on (0-4) and, for the classes
it never saw (5-9), the mean old embedding φ_old of their training images
(the paper's synthesized classifier, Sec. 3.2). ``l2_weight`` > 0 adds instead
``l2_weight · mean_i ‖φ_new(x_i) − φ_old(x_i)‖²`` (the paper's ℓ2 baseline:
pull the new embedding onto the old one of the same image).

Retrieval metrics (cosine 1-NN, leave-one-out: every image of the split is a
query, every other image of the split the gallery; a hit is a gallery
nearest neighbour of the query's class), on the whole test split (all 10
digits):

* ``new_new_recall_at_1``: M(φ_new, φ_new), queries and gallery by the new model;
* ``old_old_recall_at_1``: M(φ_old, φ_old), the old model alone (the same for every arm of a seed);
* ``cross_recall_at_1``: M(φ_new, φ_old), new-model queries against the old model's gallery;
* ``cross_minus_old_old``: cross − old-old (BCT's compatibility criterion is > 0);
* ``val_cross_recall_at_1`` and ``val_new_new_recall_at_1``: the same on the validation split (for tuning);
* ``new_test_accuracy``: the new model's 10-way classification accuracy on the test split.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.data import load
from reglab.bench.experiments._train import Timing, result, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task

EPOCHS, QUICK_EPOCHS, BATCH, OLD_CLASSES = 30, 3, 128, 5
#: arms that take (new embeddings, labels, frozen influence classifier)
COMPATIBILITY_ARMS = ("bct",)


class Embedder(nn.Module):
    """MLP d-256-dim (ReLU) embedding and a bias-free linear classifier on it."""

    def __init__(self, d_in: int, dim: int, classes: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d_in, 256), nn.ReLU(), nn.Linear(256, dim))
        self.classifier = nn.Linear(dim, classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))


@torch.no_grad()
def recall_at_1(queries: torch.Tensor, gallery: torch.Tensor, y: torch.Tensor) -> float:
    """Leave-one-out cosine 1-NN recall: row i of ``queries`` searches the rows j ≠ i of ``gallery``
    (the same images, embedded by the gallery's model); a hit when the nearest has the class of i."""
    q, g = F.normalize(queries.double(), dim=1), F.normalize(gallery.double(), dim=1)
    s = q @ g.T
    s.fill_diagonal_(-2.0)
    return float((y[s.argmax(dim=1)] == y).double().mean())


@torch.no_grad()
def influence_classifier(old: Embedder, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """BCT's frozen influence classifier (num_classes, dim): the old classifier's rows for the classes
    it saw, the old model's mean embedding of the training images of each class it never saw."""
    from reglab.methods.bct import bct_pseudo_classifier

    old.eval()
    means = bct_pseudo_classifier(old(x), y, num_classes)
    seen = old.classifier.weight.shape[0]
    return torch.cat([old.classifier.weight.detach(), means[seen:]]).clone()


def _train(model: Embedder, x, y, extra, *, epochs: int, seed: int) -> Timing:
    def step_loss(xb, yb, idx, epoch):
        z = model(xb)
        loss = F.cross_entropy(model.classifier(z), yb)
        return loss if extra is None else loss + extra(z, yb, idx)

    return train_loop(model, x, y, step_loss, epochs=epochs, batch_size=BATCH, seed=seed)


@task("compatible_embedding", datasets=("digits", "digits_half"))
def compatible_embedding(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", dim: int = 32,
    l2_weight: float = 0.0,
) -> TaskResult:
    """Metrics: the retrieval recalls of the module docstring (last epoch of both models)."""
    t0 = time.perf_counter()
    reg = build_arm(arm)
    if reg is not None and getattr(reg, "name", None) not in COMPATIBILITY_ARMS:
        raise ValueError(f"compatible_embedding: the arm must take (new embeddings, labels, old classifier), "
                         f"one of {COMPATIBILITY_ARMS}; got {arm!r}")  # fmt: skip
    if reg is not None and l2_weight > 0:
        raise ValueError("compatible_embedding: give either an arm or l2_weight, not both")
    data = load(dataset, seed)
    epochs = QUICK_EPOCHS if quick else EPOCHS
    c = data.num_classes

    torch.manual_seed(seed)
    old = Embedder(data.num_features, dim, OLD_CLASSES)
    seen = data.y_train < OLD_CLASSES
    _train(old, data.x_train[seen], data.y_train[seen], None, epochs=epochs, seed=seed)
    old.eval().requires_grad_(False)
    with torch.no_grad():
        old_train = old(data.x_train)

    torch.manual_seed(seed + 1)
    new = Embedder(data.num_features, dim, c)
    extra = None
    if reg is not None:
        w_infl = influence_classifier(old, data.x_train, data.y_train, c)
        extra = lambda z, yb, idx: reg(z, yb, w_infl)  # noqa: E731
    elif l2_weight > 0:
        extra = lambda z, yb, idx: l2_weight * (z - old_train[idx]).pow(2).sum(dim=1).mean()  # noqa: E731
    timing = _train(new, data.x_train, data.y_train, extra, epochs=epochs, seed=seed)
    new.eval()
    with torch.no_grad():
        z_new, z_old = new(data.x_test), old(data.x_test)
        v_new, v_old = new(data.x_val), old(data.x_val)
        accuracy = float((new.classifier(z_new).argmax(dim=1) == data.y_test).double().mean())
    y, yv = data.y_test, data.y_val
    cross, old_old = recall_at_1(z_new, z_old, y), recall_at_1(z_old, z_old, y)
    metrics = {
        "new_new_recall_at_1": recall_at_1(z_new, z_new, y),
        "old_old_recall_at_1": old_old,
        "cross_recall_at_1": cross,
        "cross_minus_old_old": cross - old_old,
        "val_cross_recall_at_1": recall_at_1(v_new, v_old, yv),
        "val_new_new_recall_at_1": recall_at_1(v_new, v_new, yv),
        "new_test_accuracy": accuracy,
    }
    how = "the arm (BCT influence loss on the frozen old classifier + old class means of 5-9)" if reg is not None \
        else (f"{l2_weight:g}·mean ‖φ_new − φ_old‖²" if l2_weight > 0 else "nothing (independent new model)")
    setup = {
        "data": f"{data.describe()}; old model: the training images of digits 0-4; new model: all training images; "
        "retrieval on the whole test split (leave-one-out)",
        "model": f"old and new: MLP {data.num_features}-256-{dim} embedding (ReLU) + bias-free linear classifier "
        f"(5-way old, {c}-way new); the new model adds {how} to its cross-entropy",
        "training": f"both: Adam lr 1e-3, batch {BATCH}, {epochs} epochs",
        "selection": "last epoch of both models",
    }
    return result(metrics, {}, timing, t0, setup)
