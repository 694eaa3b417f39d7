"""Lab task ``label_noise``: training under symmetric label noise.

An MLP (d-256-10, Adam 1e-3, batch 128, 100 epochs) is trained on a
training split with a share ``noise`` of labels flipped to a random other
class; the validation split is noisy in the same way (a practitioner's
validation labels are no cleaner than their training labels), the test
split is clean. Plain cross-entropy first fits the clean majority, then
memorizes the wrong labels and its clean-test accuracy falls; the standard
remedy is early stopping on the (noisy) validation split, which every arm
gets here: ``test_accuracy`` is the clean-test accuracy of the epoch with
the best noisy-validation accuracy. ``final_accuracy`` is the last epoch's
(no early stopping).
"""

from __future__ import annotations

import time

from reglab.bench.data import load
from reglab.bench.experiments._train import classifier, SelectOnValidation, accuracy, memorization_rate, result, train_output_model
from reglab.bench.tasks import TaskResult, task

EPOCHS, QUICK_EPOCHS, BATCH = 100, 8, 128


@task("label_noise", datasets=("digits", "digits_half", "mnist1d"))
def label_noise(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", noise: float = 0.4
) -> TaskResult:
    """Metrics: ``test_accuracy`` (clean test, epoch selected on the noisy validation split),
    ``final_accuracy`` (clean test, last epoch), ``memorization`` (share of noisy training
    samples predicted as their wrong label at the last epoch), ``val_accuracy`` (best, noisy).
    Curves: ``test_accuracy`` and ``val_accuracy`` per epoch."""
    t0 = time.perf_counter()
    data = load(dataset, seed, label_noise=noise)
    test_curve: list[float] = []
    val_curve: list[float] = []
    selection: SelectOnValidation | None = None

    def on_epoch_end(model, epoch):
        nonlocal selection
        selection = selection or SelectOnValidation(model)
        val_curve.append(accuracy(model, data.x_val, data.y_val))
        test_curve.append(accuracy(model, data.x_test, data.y_test))
        selection.update(val_curve[-1], epoch)

    epochs = QUICK_EPOCHS if quick else EPOCHS
    model, timing = train_output_model(data, arm, seed=seed, epochs=epochs, batch_size=BATCH, on_epoch_end=on_epoch_end)
    assert selection is not None
    metrics = {
        "test_accuracy": accuracy(selection.best_model(), data.x_test, data.y_test),
        "final_accuracy": test_curve[-1],
        "memorization": memorization_rate(model, data.x_train, data.y_train, data.y_train_clean),
        "val_accuracy": selection.best_score,
        "selected_epoch": float(selection.best_epoch + 1),
    }
    setup = {
        "data": f"{data.describe()}; {int(noise * 100)}% symmetric noise on train and val labels, clean test",
        "model": classifier(data)[1],
        "training": f"Adam lr 1e-3, batch {BATCH}, {epochs} epochs",
        "selection": "test_accuracy at the epoch of best noisy-validation accuracy; final_accuracy at the last epoch",
    }
    return result(metrics, {"test_accuracy": test_curve, "val_accuracy": val_curve}, timing, t0, setup)
