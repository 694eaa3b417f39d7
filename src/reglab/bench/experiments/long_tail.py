"""Lab task ``long_tail``: a long-tailed training split, a learned or fixed classifier head.

The training split keeps ``n_c = n_max·ratio^(−c/(C−1))`` images of class c
(class 0 the head, class C−1 the tail; default ratio 50, images drawn by the
seed); validation and test stay balanced. The model is the lab's MLP
d-256-C (ReLU): the baseline learns its last ``nn.Linear``; a head arm (e.g.
``simplex_etf_head``) replaces it, built with ``in_features=256`` and
``num_classes=C``. Adam 1e-3, batch 128, 60 epochs (5 in quick mode); the
epoch is selected on balanced validation accuracy (the mean per-class recall).
Metrics on the test split: ``balanced_accuracy`` (mean per-class recall),
``tail_accuracy`` (mean recall of the C/2 rarest classes) and ``test_accuracy``.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from reglab.bench.data import load
from reglab.bench.experiments._train import SelectOnValidation, mlp, result, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task

EPOCHS, QUICK_EPOCHS, HIDDEN = 60, 5, 256


def long_tailed_indices(y: torch.Tensor, num_classes: int, ratio: float, seed: int) -> np.ndarray:
    """Indices keeping ``n_max·ratio^(−c/(C−1))`` random images of class c (at least one)."""
    rng = np.random.default_rng(seed)
    labels = y.numpy()
    n_max = min(int((labels == c).sum()) for c in range(num_classes))
    keep = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        n_c = max(1, int(round(n_max * ratio ** (-c / (num_classes - 1)))))
        keep.append(rng.choice(idx, size=n_c, replace=False))
    return np.sort(np.concatenate(keep))


@torch.no_grad()
def per_class_recall(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> list[float]:
    model.eval()
    pred = model(x).argmax(dim=1)
    return [float((pred[y == c] == c).float().mean()) for c in range(num_classes) if bool((y == c).any())]


@task("long_tail", datasets=("digits", "digits_half"))
def long_tail(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", ratio: float = 50.0
) -> TaskResult:
    t0 = time.perf_counter()
    data = load(dataset, seed)
    c = data.num_classes
    keep = long_tailed_indices(data.y_train, c, ratio, seed)
    x_tr, y_tr = data.x_train[keep], data.y_train[keep]
    torch.manual_seed(seed)
    model = mlp(data.num_features, HIDDEN, c)
    head = build_arm(arm, in_features=HIDDEN, num_classes=c)
    if head is not None:
        model[-1] = head
    epochs = QUICK_EPOCHS if quick else EPOCHS

    def step_loss(xb, yb, idx, epoch):
        return F.cross_entropy(model(xb), yb)

    selection = SelectOnValidation(model)
    val_curve: list[float] = []

    def on_epoch_end(epoch):
        val_curve.append(float(np.mean(per_class_recall(model, data.x_val, data.y_val, c))))
        selection.update(val_curve[-1], epoch)
        model.train()

    timing = train_loop(model, x_tr, y_tr, step_loss, epochs=epochs, batch_size=128, seed=seed,
                        on_epoch_end=on_epoch_end)  # fmt: skip
    best = selection.best_model()
    recall = per_class_recall(best, data.x_test, data.y_test, c)
    with torch.no_grad():
        test_acc = float((best(data.x_test).argmax(dim=1) == data.y_test).float().mean())
    metrics = {
        "balanced_accuracy": float(np.mean(recall)),
        "tail_accuracy": float(np.mean(recall[c - c // 2:])),
        "test_accuracy": test_acc,
    }
    setup = {
        "data": f"{data.describe()}; training split long-tailed, {len(keep)} images, class c keeps "
        f"n_max·{ratio:g}^(−c/(C−1)); validation and test balanced",
        "model": f"MLP {data.num_features}-{HIDDEN}-{c} (ReLU); a head arm replaces the last Linear",
        "training": f"Adam lr 1e-3, batch 128, {epochs} epochs",
        "selection": "epoch of best balanced validation accuracy",
    }
    return result(metrics, {"val_balanced_accuracy": val_curve}, timing, t0, setup)
