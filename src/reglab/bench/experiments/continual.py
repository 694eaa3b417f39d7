"""Lab task ``continual``: two tasks in sequence, digits then permuted digits (Kirkpatrick et al. 2017, Fig. 2A).

Task A is the digits training split; task B the same images under one fixed random pixel
permutation (drawn from the seed). One MLP 64-256-256-10 (ReLU) with a single shared head is
trained on A (Adam 1e-3, batch 128, ``epochs`` = 20; 3 in quick mode), then on B for as many
epochs, with no replay. A weight-regularizer arm is attached to every ``nn.Linear`` weight when
task B starts, so an anchored penalty (``l2_sp``, ``ewc``) anchors at the task-A weights; an arm
with a ``consolidate(model, inputs)`` method (EWC) is then given task A's training inputs (its
Fisher). No epoch selection: the metrics are at the end of task B, on the test split of each task.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.data import load
from reglab.bench.experiments._train import accuracy, result, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task

EPOCHS, QUICK_EPOCHS = 20, 3


def _mlp(d_in: int, classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, classes))


@task("continual", datasets=("digits", "digits_half"))
def continual(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", epochs: int = EPOCHS
) -> TaskResult:
    """Metrics (after task B): ``average_accuracy`` (mean of the two tasks' test accuracies),
    ``task_a_accuracy`` (retention), ``task_b_accuracy`` (learning the new task),
    ``forgetting`` (task-A test accuracy after A minus after B). Curves per epoch of task B:
    ``task_a_accuracy``, ``task_b_accuracy``."""
    t0 = time.perf_counter()
    data = load(dataset, seed)
    epochs = QUICK_EPOCHS if quick else epochs
    perm = torch.randperm(data.num_features, generator=torch.Generator().manual_seed(seed + 17))
    xa_tr, xa_te = data.x_train, data.x_test
    xb_tr, xb_te = data.x_train[:, perm], data.x_test[:, perm]
    torch.manual_seed(seed)
    model = _mlp(data.num_features, data.num_classes)

    def plain(xb, yb, idx, epoch):
        return F.cross_entropy(model(xb), yb)

    timing_a = train_loop(model, xa_tr, data.y_train, plain, epochs=epochs, batch_size=128, seed=seed)
    model.eval()
    after_a = accuracy(model, xa_te, data.y_test)

    reg = build_arm(arm)
    regs = None
    if reg is not None:
        import reglab

        regs = reglab.attach(model, reg.on(modules=nn.Linear))
        if hasattr(reg, "consolidate"):
            reg.consolidate(model, xa_tr, data.y_train)

    def step_loss(xb, yb, idx, epoch):
        loss = F.cross_entropy(model(xb), yb)
        return loss if regs is None else loss + regs.penalty()

    curve_a: list[float] = []
    curve_b: list[float] = []

    def on_epoch_end(epoch):
        curve_a.append(accuracy(model, xa_te, data.y_test))
        curve_b.append(accuracy(model, xb_te, data.y_test))

    timing = train_loop(
        model, xb_tr, data.y_train, step_loss, epochs=epochs, batch_size=128, seed=seed + 1,
        on_epoch_end=on_epoch_end, after_step=None if regs is None else regs.step,
    )  # fmt: skip
    acc_a, acc_b = curve_a[-1], curve_b[-1]
    metrics = {
        "average_accuracy": (acc_a + acc_b) / 2,
        "task_a_accuracy": acc_a,
        "task_b_accuracy": acc_b,
        "forgetting": after_a - acc_a,
    }
    del timing_a
    setup = {
        "data": f"{data.describe()}; task A: the images, task B: the images under a fixed random pixel permutation "
        "(seed + 17); the same labels and splits",
        "model": "MLP 64-256-256-10 (ReLU), one shared head",
        "training": f"task A then task B, Adam 1e-3, batch 128, {epochs} epochs each, no replay; the arm binds to "
        "every Linear weight when task B starts (anchors = task-A weights; EWC's Fisher on task A's training inputs)",
        "selection": "none: the last epoch of task B",
    }
    return result(metrics, {"task_a_accuracy": curve_a, "task_b_accuracy": curve_b}, timing, t0, setup)
