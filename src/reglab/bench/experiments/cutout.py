"""Lab task ``small_data_cnn``: data augmentation on a small CNN with 20% of the training data.

A two-layer CNN (``_train.small_cnn``, width 16) is trained on 20% of the
training split (about 200 8×8 digits), Adam 1e-3, batch 32, 60 epochs. The
treated arm applies a transform (``cutout``, or any registered input
transform) to each training batch. ``augment="shift"`` (no arm) is the
augmentation a practitioner reaches for first: a random ±1-pixel shift of
each image, zero fill. The epoch is selected on the validation split (cut
to 20% like the training split). Metrics: clean test accuracy and test
accuracy under one random 3×3 occlusion per image (a fixed draw per seed,
the same for every arm).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from reglab.bench.data import augment_digits, load
from reglab.bench.experiments._train import SelectOnValidation, accuracy, occlude, result, small_cnn, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task

EPOCHS, QUICK_EPOCHS, BATCH = 60, 6, 32


@task("small_data_cnn", datasets=("digits", "digits_half"))
def small_data_cnn(
    arm: dict | None,
    *,
    seed: int,
    quick: bool = False,
    dataset: str = "digits",
    train_fraction: float = 0.2,
    augment: str = "none",
) -> TaskResult:
    """Metrics: ``test_accuracy``, ``occluded_accuracy`` (both at the validation-selected
    epoch), ``final_accuracy``. Curves: ``test_accuracy``, ``val_accuracy`` per epoch."""
    if augment not in ("none", "shift"):
        raise ValueError(f"small_data_cnn: augment must be 'none' or 'shift', got {augment!r}")
    t0 = time.perf_counter()
    data = load(dataset, seed, train_fraction=train_fraction)
    x_tr, x_va, x_te = data.images(data.x_train), data.images(data.x_val), data.images(data.x_test)
    x_occ = occlude(x_te, 3, torch.Generator().manual_seed(seed + 7))
    epochs = QUICK_EPOCHS if quick else EPOCHS
    torch.manual_seed(seed)
    model = small_cnn(data.num_classes)
    transform = build_arm(arm)
    aug_gen = torch.Generator().manual_seed(seed + 3)

    def step_loss(xb, yb, idx, epoch):
        if transform is not None:
            transform.train()
            xb = transform(xb)
        if augment == "shift":
            xb = augment_digits(xb.reshape(len(xb), -1), aug_gen, noise=0.0).reshape(xb.shape)
        return F.cross_entropy(model(xb), yb)

    test_curve: list[float] = []
    val_curve: list[float] = []
    selection = SelectOnValidation(model)

    def on_epoch_end(epoch):
        val_curve.append(accuracy(model, x_va, data.y_val))
        test_curve.append(accuracy(model, x_te, data.y_test))
        selection.update(val_curve[-1], epoch)

    timing = train_loop(
        model, x_tr, data.y_train, step_loss,
        epochs=epochs, batch_size=BATCH, seed=seed, on_epoch_end=on_epoch_end,
    )  # fmt: skip
    best = selection.best_model()
    metrics = {
        "test_accuracy": accuracy(best, x_te, data.y_test),
        "occluded_accuracy": accuracy(best, x_occ, data.y_test),
        "final_accuracy": test_curve[-1],
    }
    setup = {
        "data": f"{data.describe()} ({int(train_fraction * 100)}% of the training and validation splits)",
        "model": "CNN: conv3×3(16)-ReLU-conv3×3(32)-ReLU-maxpool2-linear",
        "training": f"Adam lr 1e-3, batch {BATCH}, {epochs} epochs" + ("; random ±1-pixel shifts" if augment == "shift" else ""),
        "selection": "epoch of best validation accuracy",
    }
    return result(metrics, {"test_accuracy": test_curve, "val_accuracy": val_curve}, timing, t0, setup)
