"""Lab task ``feature_compression``: a feature layer compressed before the classifier, under label noise.

An MLP d-256-32 (ReLU) gives 32-d features, a linear head the 10 logits; 40%
symmetric noise flips the training and validation labels (the test labels stay
clean). Adam 3e-3, batch 128, 60 epochs (4 in quick mode). The arm is a
feature transform inserted between the features and the head
(``nested_dropout``), identity in evaluation; ``dropout`` (task argument)
inserts a plain ``nn.Dropout(p)`` there instead, the baseline the paper
compares with.

Metrics: ``final_accuracy`` (clean test accuracy at the last epoch: no
early stopping, the setting where memorization shows), ``test_accuracy``
(at the epoch of best noisy-validation accuracy) and ``memorization`` (share
of the noisy training samples predicted as their wrong label at the end).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.data import load
from reglab.bench.experiments._train import SelectOnValidation, accuracy, memorization_rate, result, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task

EPOCHS, QUICK_EPOCHS, BATCH, FEATURES, LR = 60, 4, 128, 32, 3e-3


class CompressedClassifier(nn.Module):
    def __init__(self, d_in: int, classes: int, bottleneck: nn.Module):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d_in, 256), nn.ReLU(), nn.Linear(256, FEATURES), nn.ReLU())
        self.bottleneck = bottleneck
        self.head = nn.Linear(FEATURES, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bottleneck(self.body(x.flatten(1))))


@task("feature_compression", datasets=("digits", "digits_half"))
def feature_compression(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", noise: float = 0.4,
    dropout: float = 0.0,
) -> TaskResult:
    t0 = time.perf_counter()
    data = load(dataset, seed, label_noise=noise)
    torch.manual_seed(seed)
    reg = build_arm(arm)
    if reg is not None and dropout:
        raise ValueError("feature_compression takes either an arm or dropout, not both")
    bottleneck = reg if reg is not None else (nn.Dropout(dropout) if dropout else nn.Identity())
    model = CompressedClassifier(data.num_features, data.num_classes, bottleneck)
    selection = SelectOnValidation(model)
    val_curve: list[float] = []
    test_curve: list[float] = []

    def on_epoch_end(epoch):
        val_curve.append(accuracy(model, data.x_val, data.y_val))
        test_curve.append(accuracy(model, data.x_test, data.y_test))
        selection.update(val_curve[-1], epoch)

    def step_loss(xb, yb, idx, epoch):
        return F.cross_entropy(model(xb), yb)

    epochs = QUICK_EPOCHS if quick else EPOCHS
    timing = train_loop(model, data.x_train, data.y_train, step_loss, epochs=epochs, batch_size=BATCH, seed=seed, lr=LR,
                        on_epoch_end=on_epoch_end)  # fmt: skip
    metrics = {
        "final_accuracy": test_curve[-1],
        "test_accuracy": accuracy(selection.best_model(), data.x_test, data.y_test),
        "memorization": memorization_rate(model, data.x_train, data.y_train, data.y_train_clean),
    }
    setup = {
        "data": f"{data.describe()}; {int(noise * 100)}% symmetric noise on train and val labels, clean test",
        "model": f"MLP {data.num_features}-256-{FEATURES} (ReLU) features, the arm (or dropout {dropout}) on them, "
        f"linear head to {data.num_classes}",
        "training": f"Adam lr {LR:g}, batch {BATCH}, {epochs} epochs",
        "selection": "final_accuracy at the last epoch; test_accuracy at the epoch of best noisy-validation accuracy",
    }
    return result(metrics, {"test_accuracy": test_curve, "val_accuracy": val_curve}, timing, t0, setup)
