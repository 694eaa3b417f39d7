"""Lab task ``calibration``: confidence calibration with little data.

An MLP (64-256-10, Adam 1e-3, batch 64, 300 epochs: trained to
convergence, where plain CE turns over-confident) is trained on 20% of the
digits training split. Arms: none (plain CE), ``pskd``, ``label_smoothing``
or any output regularizer usable on logits. Metrics on the clean test split:
expected calibration error with 15 equal-width bins and accuracy.
"""

from __future__ import annotations

import time

import torch

from reglab.bench.data import digits
from reglab.bench.experiments._train import accuracy, ece, train_output_mlp
from reglab.bench.tasks import TaskResult, task


@task("calibration")
def calibration(arm: dict | None, *, seed: int, quick: bool = False, train_fraction: float = 0.2) -> TaskResult:
    """Metrics: ``ece`` (15 bins), ``accuracy``, ``nll`` (test). Curve: test ``ece`` per epoch."""
    t0 = time.perf_counter()
    data = digits(seed, train_fraction=train_fraction)
    # PS-KD's α ramp runs over this task's epochs, not the paper's 300.
    epochs = 8 if quick else 300
    curve: list[float] = []

    def on_epoch_end(model, epoch):
        curve.append(ece(model(data.x_test).softmax(dim=1), data.y_test))

    model, step_s = train_output_mlp(data, arm, seed=seed, epochs=epochs, batch_size=64, on_epoch_end=on_epoch_end)
    model.eval()
    with torch.no_grad():
        logits = model(data.x_test)
    metrics = {
        "ece": ece(logits.softmax(dim=1), data.y_test),
        "accuracy": accuracy(model, data.x_test, data.y_test),
        "nll": float(torch.nn.functional.cross_entropy(logits, data.y_test)),
    }
    return TaskResult(metrics, {"ece": curve}, step_s, time.perf_counter() - t0)
