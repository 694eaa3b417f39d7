"""Lab task ``open_world_metric``: a metric-learning embedding trained on digits 0-6, tested on 7-9.

An MLP d-256-32 (ReLU) gives L2-normalized 32-d embeddings, trained with a
normalized-softmax (cosine classifier, scale 16) loss over the 7 training
classes (Adam 1e-3, batch 128, 30 epochs; 3 in quick mode) on the 0-6 training
images. The arm is a representation penalty on the embeddings: a penalty whose
function takes ``labels`` (``tcm``, ``energy_confusion``) is called with the
batch's labels, others with the embeddings alone. With
``detached_embedding_layer=True`` the penalty sees the embedding layer applied
to *detached* hidden features, so its gradient reaches that layer only (ECAML's
weight-sharing copy of the embedding layer with ``propagate_down: 0``).
Evaluation is open-world, on the test images of the unseen
digits 7-9:

* ``recall_at_1``: leave-one-out nearest neighbour (cosine) has the same class;
* ``threshold_inconsistency``: how differently one global cosine threshold
  behaves across classes. For thresholds τ at the quantiles 0.90…0.999 of the
  negative-pair similarities (global false-accept rates 10%…0.1%), the per-class
  utility U_c(τ) is the harmonic mean of TPR_c (same-class pairs of c with
  s ≥ τ) and TNR_c (pairs of c with another class with s < τ); the metric is the
  mean over τ of the variance of U_c across the classes, ×100. It follows the
  paper's OPIS (a variance across classes of a utility over a threshold range)
  but is not its exact definition.
"""

from __future__ import annotations

import inspect
import time

import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.data import load
from reglab.bench.experiments._train import result, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task

EPOCHS, QUICK_EPOCHS, BATCH, SCALE, SEEN = 30, 3, 128, 16.0, 7


class Embedder(nn.Module):
    def __init__(self, d_in: int, dim: int, classes: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d_in, 256), nn.ReLU(), nn.Linear(256, dim))
        self.proxies = nn.Parameter(torch.randn(classes, dim) / dim**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return SCALE * F.normalize(z, dim=1) @ F.normalize(self.proxies, dim=1).T


@torch.no_grad()
def open_world_scores(z: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """``recall_at_1`` and ``threshold_inconsistency`` of embeddings ``z`` with labels ``y`` (see the module)."""
    x = F.normalize(z.double(), dim=1)
    s = x @ x.T
    n = len(y)
    eye = torch.eye(n, dtype=torch.bool)
    same = (y[:, None] == y[None, :]) & ~eye
    diff = y[:, None] != y[None, :]
    nearest = s.masked_fill(eye, -2.0).argmax(dim=1)
    recall = float((y[nearest] == y).double().mean())
    taus = torch.quantile(s[diff], torch.linspace(0.90, 0.999, 12, dtype=torch.float64))
    classes = torch.unique(y)
    variances = []
    for tau in taus:
        utilities = []
        for c in classes:
            rows = y == c
            tpr = (s[rows][:, :][same[rows]] >= tau).double().mean()
            tnr = (s[rows][diff[rows]] < tau).double().mean()
            utilities.append(float(2 * tpr * tnr / (tpr + tnr)) if float(tpr + tnr) > 0 else 0.0)
        variances.append(float(torch.tensor(utilities, dtype=torch.float64).var(unbiased=False)))
    return {"recall_at_1": recall, "threshold_inconsistency": 100 * sum(variances) / len(variances)}


@task("open_world_metric", datasets=("digits", "digits_half"))
def open_world_metric(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", dim: int = 32,
    detached_embedding_layer: bool = False,
) -> TaskResult:
    """Metrics: ``recall_at_1`` and ``threshold_inconsistency`` on the unseen digits 7-9 (test split),
    at the last epoch (no selection: the unseen classes have no validation split here)."""
    t0 = time.perf_counter()
    data = load(dataset, seed)
    seen = data.y_train < SEEN
    x_tr, y_tr = data.x_train[seen], data.y_train[seen]
    unseen = data.y_test >= SEEN
    x_te, y_te = data.x_test[unseen], data.y_test[unseen]
    torch.manual_seed(seed)
    model = Embedder(data.num_features, dim, SEEN)
    reg = build_arm(arm)
    if detached_embedding_layer and reg is None:
        raise ValueError("open_world_metric: detached_embedding_layer=True needs an arm to apply")
    function = getattr(reg, "function", None)
    takes_labels = function is not None and "labels" in inspect.signature(function).parameters
    hidden, embedding_layer = model.body[:-1], model.body[-1]

    def step_loss(xb, yb, idx, epoch):
        h = hidden(xb.flatten(1))
        z = embedding_layer(h)
        loss = F.cross_entropy(model.logits(z), yb)
        if reg is not None:
            zr = embedding_layer(h.detach()) if detached_embedding_layer else z
            loss = loss + (reg(zr, yb) if takes_labels else reg(zr))
        return loss

    epochs = QUICK_EPOCHS if quick else EPOCHS
    timing = train_loop(model, x_tr, y_tr, step_loss, epochs=epochs, batch_size=BATCH, seed=seed)
    model.eval()
    with torch.no_grad():
        metrics = open_world_scores(model(x_te), y_te)
    setup = {
        "data": f"{data.describe()}; train on digits 0-6, evaluate on the test images of 7-9",
        "model": f"MLP {data.num_features}-256-{dim} embedding, normalized-softmax loss (scale {SCALE}) over 7 proxies",
        "training": f"Adam lr 1e-3, batch {BATCH}, {epochs} epochs",
        "selection": "last epoch",
        "penalty": "on the embedding layer applied to detached hidden features" if detached_embedding_layer
        else "on the embeddings",
    }
    return result(metrics, {}, timing, t0, setup)
