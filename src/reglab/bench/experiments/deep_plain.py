"""Lab task ``deep_plain``: a deep plain MLP without normalization, where conditioning matters.

``depth`` hidden layers of width 128 (ReLU, He initialization, zero biases,
no normalization, no skip connections; depth 12 by default)
are trained with SGD (lr 0.01, momentum 0.9: the optimizer of the
orthogonality papers), batch 128, 30 epochs (4 in quick mode) on the clean
training split; the epoch is selected on validation. Without normalization
or skips the signal shrinks through the layers and training is slow: what
orthogonality regularizers (soft orthogonality, SRIP, MHE...) claim to fix.

A weight regularizer is attached to every weight matrix with
``reglab.attach`` (its penalty added to the loss; ``regs.step`` after each
optimizer step). Metrics: ``test_accuracy`` (selected epoch),
``final_accuracy``, ``train_loss_first_half`` (mean training loss over the
first half of the epochs: how fast it trains), ``orthogonality_gap``
(mean over the square hidden layers of ‖WᵀW − I‖_F/√d at the end).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.data import load
from reglab.bench.experiments._train import SelectOnValidation, accuracy, mlp, result, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task

WIDTH, EPOCHS, QUICK_EPOCHS, BATCH, LR = 128, 30, 4, 128, 0.01


@torch.no_grad()
def orthogonality_gap(model: nn.Module) -> float:
    gaps = []
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.in_features == m.out_features:
            w = m.weight.double()
            gram = w.T @ w
            gaps.append(float(torch.linalg.matrix_norm(gram - torch.eye(w.shape[1], dtype=w.dtype)) / w.shape[1] ** 0.5))
    return sum(gaps) / max(len(gaps), 1)


@task("deep_plain", datasets=("digits", "digits_half"))
def deep_plain(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", depth: int = 12
) -> TaskResult:
    t0 = time.perf_counter()
    data = load(dataset, seed)
    epochs = QUICK_EPOCHS if quick else EPOCHS
    torch.manual_seed(seed)
    model = mlp(data.num_features, WIDTH, data.num_classes, depth=depth)
    for m in model.modules():
        if isinstance(m, nn.Linear):  # He initialization: the plain net trains, but is not well conditioned
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    reg = build_arm(arm)
    regs = None
    if reg is not None:
        import reglab

        regs = reglab.attach(model, reg.on(modules=nn.Linear))
    selection = SelectOnValidation(model)
    test_curve: list[float] = []
    val_curve: list[float] = []
    loss_curve: list[float] = []
    losses: list[float] = []

    def step_loss(xb, yb, idx, epoch):
        loss = F.cross_entropy(model(xb), yb)
        losses.append(float(loss.detach()))
        return loss if regs is None else loss + regs.penalty()

    def on_epoch_end(epoch):
        loss_curve.append(sum(losses) / max(len(losses), 1))
        losses.clear()
        val_curve.append(accuracy(model, data.x_val, data.y_val))
        test_curve.append(accuracy(model, data.x_test, data.y_test))
        selection.update(val_curve[-1], epoch)

    timing = train_loop(
        model, data.x_train, data.y_train, step_loss,
        epochs=epochs, batch_size=BATCH, seed=seed, on_epoch_end=on_epoch_end,
        after_step=None if regs is None else regs.step, optimizer="sgd", lr=LR,
    )  # fmt: skip
    half = max(len(loss_curve) // 2, 1)
    metrics = {
        "test_accuracy": accuracy(selection.best_model(), data.x_test, data.y_test),
        "final_accuracy": test_curve[-1],
        "train_loss_first_half": sum(loss_curve[:half]) / half,
        "orthogonality_gap": orthogonality_gap(model),
    }
    setup = {
        "data": data.describe(),
        "model": f"plain MLP, {depth} hidden layers of {WIDTH} (ReLU), no normalization, no skips; the arm binds "
        "to every weight matrix",
        "training": f"SGD lr {LR:g} momentum 0.9, batch {BATCH}, {epochs} epochs",
        "selection": "epoch of best validation accuracy",
    }
    curves = {"test_accuracy": test_curve, "val_accuracy": val_curve, "train_loss": loss_curve}
    return result(metrics, curves, timing, t0, setup)
