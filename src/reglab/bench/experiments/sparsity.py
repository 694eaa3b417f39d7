"""Lab task ``structured_sparsity``: filter sparsity of a small CNN on digits.

The CNN of ``_train.small_cnn`` (two 3×3 conv layers of 16 and 32 filters,
max-pool, linear head; Adam 1e-3, batch 64, 40 epochs; 3 in quick mode) is
trained on the clean training split (``digits`` or ``digits_half``). The arm, a weight regularizer,
is bound with ``reglab.attach`` to the convolution weights: in proximal mode
when it has a proximal operator (group lasso: exact zero filters,
Scardapane et al. 2017), as a loss penalty otherwise. The proximal step uses
the nominal learning rate, as ``regs.step`` (``reglab.core.attach``) does for Adam.

Metrics: ``test_accuracy``; ``zero_filter_fraction`` (share of conv filters
with exactly zero weights); ``pruned50_accuracy`` (test accuracy after
removing the half of each layer's filters with the smallest norm, weights
and bias). Curves: ``test_accuracy`` and ``zero_filter_fraction`` per
epoch, and ``accuracy_vs_sparsity`` against ``accuracy_vs_sparsity_x``
(fraction of filters removed by norm, 0 to 0.9).
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn

import reglab

from reglab.bench.data import load
from reglab.bench.experiments._train import accuracy, result, small_cnn, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task
from reglab.diagnostics import group_sparsity

LR = 1e-3  # train_loop's Adam learning rate
PRUNE_FRACTIONS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


@torch.no_grad()
def pruned_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, fraction: float) -> float:
    """Test accuracy after zeroing the ``fraction`` of each conv layer's filters of smallest norm."""
    pruned = copy.deepcopy(model)
    for conv in _convs(pruned):
        k = int(fraction * conv.out_channels)
        if k == 0:
            continue
        drop = conv.weight.flatten(1).norm(dim=1).argsort()[:k]
        conv.weight[drop] = 0.0
        if conv.bias is not None:
            conv.bias[drop] = 0.0
    return accuracy(pruned, x, y)


@task("structured_sparsity", datasets=("digits", "digits_half"))
def structured_sparsity(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", epochs: int = 40
) -> TaskResult:
    t0 = time.perf_counter()
    data = load(dataset, seed)
    x_tr, x_te = data.images(data.x_train), data.images(data.x_test)
    epochs = 3 if quick else epochs
    torch.manual_seed(seed)
    model = small_cnn(data.num_classes)
    convs = nn.ModuleList(_convs(model))
    reg = build_arm(arm)
    regs = None
    if reg is not None:
        mode = "prox" if getattr(reg, "has_prox", False) else "penalty"
        regs = reglab.attach(model, reg.on(modules=nn.Conv2d, mode=mode))

    def step_loss(xb, yb, idx, epoch):
        loss = F.cross_entropy(model(xb), yb)
        return loss if regs is None else loss + regs.penalty()

    acc_curve: list[float] = []
    zero_curve: list[float] = []

    def on_epoch_end(epoch):
        acc_curve.append(accuracy(model, x_te, data.y_test))
        zero_curve.append(group_sparsity(convs))

    timing = train_loop(
        model, x_tr, data.y_train, step_loss,
        epochs=epochs, batch_size=64, seed=seed, lr=LR, on_epoch_end=on_epoch_end,
        after_step=None if regs is None else regs.step,
    )  # fmt: skip
    pruned = [pruned_accuracy(model, x_te, data.y_test, f) for f in PRUNE_FRACTIONS]
    metrics = {
        "test_accuracy": accuracy(model, x_te, data.y_test),
        "zero_filter_fraction": group_sparsity(convs),
        "pruned50_accuracy": pruned[PRUNE_FRACTIONS.index(0.5)],
    }
    curves = {
        "test_accuracy": acc_curve,
        "zero_filter_fraction": zero_curve,
        "accuracy_vs_sparsity": pruned,
        "accuracy_vs_sparsity_x": PRUNE_FRACTIONS,
    }
    setup = {
        "data": data.describe(),
        "model": "CNN: conv3×3(16)-ReLU-conv3×3(32)-ReLU-maxpool2-linear; the arm binds to both conv weights",
        "training": f"Adam lr {LR:g}, batch 64, {epochs} epochs; prox step after each Adam step when the arm has one",
        "selection": "last epoch (fixed schedule; sparsity grows with training); pruning by filter norm, no retraining",
    }
    return result(metrics, curves, timing, t0, setup)
