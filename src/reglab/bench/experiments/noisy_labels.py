"""Lab task ``label_noise``: training under symmetric label noise on digits.

An MLP (64-256-10, Adam 1e-3, batch 128) is trained on the digits training
split with a share ``noise`` of labels flipped to a random other class; the
test split stays clean. Plain cross-entropy first fits the clean majority,
then memorizes the wrong labels and its clean-test accuracy falls; a
noise-robust output regularizer should keep it near the early peak.
"""

from __future__ import annotations

import time

from reglab.bench.data import digits
from reglab.bench.experiments._train import accuracy, memorization_rate, train_output_mlp
from reglab.bench.tasks import TaskResult, task


@task("label_noise")
def label_noise(arm: dict | None, *, seed: int, quick: bool = False, noise: float = 0.4) -> TaskResult:
    """Metrics: ``final_accuracy`` (clean test, last epoch), ``best_accuracy`` (max over
    epochs), ``memorization`` (share of noisy training samples predicted as their
    wrong label at the end). Curve: ``test_accuracy`` per epoch."""
    t0 = time.perf_counter()
    data = digits(seed, label_noise=noise)
    curve: list[float] = []

    def on_epoch_end(model, epoch):
        curve.append(accuracy(model, data.x_test, data.y_test))

    epochs = 8 if quick else 150
    model, step_s = train_output_mlp(data, arm, seed=seed, epochs=epochs, batch_size=128, on_epoch_end=on_epoch_end)
    metrics = {
        "final_accuracy": curve[-1],
        "best_accuracy": max(curve),
        "memorization": memorization_rate(model, data.x_train, data.y_train, data.y_train_clean),
    }
    return TaskResult(metrics, {"test_accuracy": curve}, step_s, time.perf_counter() - t0)
