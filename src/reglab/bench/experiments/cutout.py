"""Lab task ``small_data_cnn``: Cutout on a small CNN with 20% of the training data.

A two-layer CNN (``_train.small_cnn``, width 16) is trained on 20% of the
digits training split (about 250 8×8 images), Adam 1e-3, batch 32, 100
epochs. The treated arm applies a transform (``cutout``, or any registered
input transform) to each training batch. Metrics: clean test accuracy and
test accuracy under one random 3×3 occlusion per image (a fixed draw per
seed, the same for every arm).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from reglab.bench.data import digits
from reglab.bench.experiments._train import accuracy, occlude, small_cnn, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task


@task("small_data_cnn")
def small_data_cnn(arm: dict | None, *, seed: int, quick: bool = False, train_fraction: float = 0.2) -> TaskResult:
    """Metrics: ``test_accuracy``, ``occluded_accuracy``. Curve: ``test_accuracy`` per epoch."""
    t0 = time.perf_counter()
    data = digits(seed, train_fraction=train_fraction)
    x_tr, x_te = data.images(data.x_train), data.images(data.x_test)
    x_occ = occlude(x_te, 3, torch.Generator().manual_seed(seed + 7))
    epochs = 6 if quick else 100
    torch.manual_seed(seed)
    model = small_cnn(data.num_classes)
    transform = build_arm(arm)

    def step_loss(xb, yb, idx, epoch):
        if transform is not None:
            transform.train()
            xb = transform(xb)
        return F.cross_entropy(model(xb), yb)

    curve: list[float] = []

    def on_epoch_end(epoch):
        curve.append(accuracy(model, x_te, data.y_test))

    step_s = train_loop(
        model, x_tr, data.y_train, step_loss,
        epochs=epochs, batch_size=32, seed=seed, on_epoch_end=on_epoch_end,
    )  # fmt: skip
    metrics = {"test_accuracy": curve[-1], "occluded_accuracy": accuracy(model, x_occ, data.y_test)}
    return TaskResult(metrics, {"test_accuracy": curve}, step_s, time.perf_counter() - t0)
