"""Lab task ``calibration``: confidence calibration with little data.

An MLP (d-256-10, Adam 1e-3, batch 64, 200 epochs: trained to convergence
as in PS-KD's recipe, where plain CE turns over-confident) is trained on
20% of the training split (the validation split is cut to 20% as well).
Arms: none (plain CE), ``pskd``, ``label_smoothing`` or any output
regularizer usable on logits. The last epoch is evaluated (a fixed
schedule, no selection). Every run also reports its temperature-scaled
metrics: T fitted on the validation split by NLL (Guo et al., 2017) and
applied to the test logits, so "CE + temperature scaling" is read from the
plain run. ECE uses 15 equal-width confidence bins.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from reglab.bench.data import load
from reglab.bench.experiments._train import classifier, accuracy, ece, fit_temperature, result, train_output_model
from reglab.bench.tasks import TaskResult, task

EPOCHS, QUICK_EPOCHS, BATCH = 200, 8, 64


@task("calibration", datasets=("digits", "mnist1d"))
def calibration(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", train_fraction: float = 0.2
) -> TaskResult:
    """Metrics: ``ece``, ``accuracy``, ``nll`` (test, last epoch) and
    ``ece_temperature_scaled``, ``nll_temperature_scaled``, ``temperature``.
    Curve: test ``ece`` per epoch."""
    t0 = time.perf_counter()
    data = load(dataset, seed, train_fraction=train_fraction)
    # PS-KD's α ramp runs over this task's epochs (T = total epochs), not the paper's 300 when quick.
    epochs = QUICK_EPOCHS if quick else EPOCHS
    curve: list[float] = []

    def on_epoch_end(model, epoch):
        curve.append(ece(model(data.x_test).softmax(dim=1), data.y_test))

    model, timing = train_output_model(data, arm, seed=seed, epochs=epochs, batch_size=BATCH, on_epoch_end=on_epoch_end)
    model.eval()
    with torch.no_grad():
        logits, val_logits = model(data.x_test), model(data.x_val)
    temperature = fit_temperature(val_logits, data.y_val)
    scaled = logits / temperature
    metrics = {
        "ece": ece(logits.softmax(dim=1), data.y_test),
        "accuracy": accuracy(model, data.x_test, data.y_test),
        "nll": float(F.cross_entropy(logits, data.y_test)),
        "ece_temperature_scaled": ece(scaled.softmax(dim=1), data.y_test),
        "nll_temperature_scaled": float(F.cross_entropy(scaled, data.y_test)),
        "temperature": temperature,
    }
    setup = {
        "data": f"{data.describe()} ({int(train_fraction * 100)}% of the training and validation splits)",
        "model": classifier(data)[1],
        "training": f"Adam lr 1e-3, batch {BATCH}, {epochs} epochs",
        "selection": "last epoch (fixed schedule); the validation split fits the temperature only",
    }
    return result(metrics, {"ece": curve}, timing, t0, setup)
