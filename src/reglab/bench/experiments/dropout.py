"""Lab task ``dropout_training``: multi-sample dropout vs plain dropout.

An MLP trunk (64-256, ReLU) feeds a linear head through dropout 0.5; the
baseline draws one mask (plain dropout), the treated arm M masks with the
shared head and the averaged loss (``multi_sample_dropout``). Adam 1e-3,
batch 64, 60 epochs on the full digits training split. The paper's claim is
about training speed, so the headline metric is the training loss (measured
without dropout, on the whole training split, after each epoch) averaged
over the first half of the epochs; ``cpu_seconds`` (process CPU time spent
in training steps by the end of each epoch) lets the lab compare the arms at
equal compute.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.data import load
from reglab.bench.experiments._train import accuracy, result, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task

_BASELINE = {"name": "multi_sample_dropout", "num_samples": 1, "p": 0.5}


@task("dropout_training", datasets=("digits", "digits_half", "mnist1d"))
def dropout_training(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", hidden: int = 256
) -> TaskResult:
    """Metrics: ``mean_train_loss_first_half``, ``final_train_loss``, ``test_accuracy``.
    Curves: ``train_loss`` and ``test_accuracy`` per epoch. ``arm=None`` is plain dropout."""
    t0 = time.perf_counter()
    data = load(dataset, seed)
    epochs = 4 if quick else 60
    torch.manual_seed(seed)
    trunk = nn.Sequential(nn.Linear(data.num_features, hidden), nn.ReLU())
    head = nn.Linear(hidden, data.num_classes)
    msd = build_arm(arm or _BASELINE, module=head)
    model = nn.Sequential(trunk, msd)

    def step_loss(xb, yb, idx, epoch):
        return msd.loss(trunk(xb), yb)

    losses: list[float] = []
    accs: list[float] = []

    def on_epoch_end(epoch):
        losses.append(float(F.cross_entropy(model(data.x_train), data.y_train)))
        accs.append(accuracy(model, data.x_test, data.y_test))

    timing = train_loop(
        model, data.x_train, data.y_train, step_loss,
        epochs=epochs, batch_size=64, seed=seed, on_epoch_end=on_epoch_end,
    )  # fmt: skip
    half = max(1, epochs // 2)
    metrics = {
        "mean_train_loss_first_half": sum(losses[:half]) / half,
        "final_train_loss": losses[-1],
        "test_accuracy": accs[-1],
    }
    setup = {
        "data": data.describe(),
        "model": f"MLP trunk {data.num_features}-{hidden} (ReLU), dropout 0.5, linear head; M masks share the head",
        "training": f"Adam lr 1e-3, batch 64, {epochs} epochs",
        "selection": "none: the claim is about the training loss per epoch and per CPU second",
    }
    return result(metrics, {"train_loss": losses, "test_accuracy": accs}, timing, t0, setup)
