"""Lab task ``nm_sparsity``: test accuracy of an N:M-sparse MLP on digits.

An MLP 64-256-10 (ReLU) trains with Adam 1e-3, batch 64, for ``epochs`` (30)
+ ``finetune_epochs`` (5) epochs (3 + 1 in quick mode) for every arm.

* An ``nm_sparsity`` arm is applied to both Linear weights before training
  (``arm`` gives N, M and the method) and ``step()``-ed after every optimizer
  step, through all the epochs.
* No arm: dense training for ``epochs``, then the arm-free route to an N:M model:
  ``nm_sparsity`` with ``method="ste"`` at the task's ``n``:``m`` applied once
  (one-shot magnitude N:M masks, recomputed as the weights move) and
  ``finetune_epochs`` of fine-tuning.

Metrics (test split, last epoch, fixed schedule): ``test_accuracy`` of the model
with the hard N:M mask (β = 0: the pruned weights are zeroed whatever the
method's β_t), ``dense_equivalent_sparsity`` (the share of zeros in the two
weights of that model) and ``soft_accuracy`` (the model as the method's own
forward computes it at the end).
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from reglab.bench.data import load
from reglab.bench.experiments._train import accuracy, mlp, result, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task
from reglab.methods.nm_sparsity import NMSparsity, nm_mask

LR = 1e-3
BATCH = 64


@torch.no_grad()
def _hard_sparse_copy(model: nn.Module, n: int, m: int) -> tuple[nn.Module, float]:
    """A plain copy whose Linear weights are the dense ones times their N:M keep-mask."""
    out = copy.deepcopy(model)
    zeros = total = 0
    for layer in out.modules():
        if isinstance(layer, nn.Linear):
            if parametrize.is_parametrized(layer, "weight"):
                parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
            layer.weight.mul_(nm_mask(layer.weight, n, m))
            zeros += int((layer.weight == 0).sum())
            total += layer.weight.numel()
    return out, zeros / total


@task("nm_sparsity", datasets=("digits", "digits_half"))
def nm_sparsity(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", epochs: int = 30,
    finetune_epochs: int = 5, n: int = 1, m: int = 8,
) -> TaskResult:
    t0 = time.perf_counter()
    data = load(dataset, seed)
    epochs, finetune_epochs = (3, 1) if quick else (epochs, finetune_epochs)
    torch.manual_seed(seed)
    model = mlp(data.num_features, 256, data.num_classes)

    def step_loss(xb, yb, idx, epoch):
        return F.cross_entropy(model(xb), yb)

    nm = build_arm(arm)
    if nm is not None:
        if not isinstance(nm, NMSparsity):
            raise ValueError(f"nm_sparsity task: the arm must be an nm_sparsity config, got {arm!r}")
        n, m = nm.n, nm.m
        nm(model)
        timing = train_loop(model, data.x_train, data.y_train, step_loss, epochs=epochs + finetune_epochs,
                            batch_size=BATCH, seed=seed, lr=LR, after_step=lambda opt: nm.step())
    else:
        dense = train_loop(model, data.x_train, data.y_train, step_loss, epochs=epochs, batch_size=BATCH,
                           seed=seed, lr=LR)
        NMSparsity(n=n, m=m, method="ste")(model)
        tune = train_loop(model, data.x_train, data.y_train, step_loss, epochs=finetune_epochs, batch_size=BATCH,
                          seed=seed + 7, lr=LR)
        timing = dense
        timing.epoch_cpu_seconds = list(dense.epoch_cpu_seconds) + [
            dense.epoch_cpu_seconds[-1] + c for c in tune.epoch_cpu_seconds]
    soft = accuracy(model, data.x_test, data.y_test)
    hard, sparsity = _hard_sparse_copy(model, n, m)
    metrics = {
        "test_accuracy": accuracy(hard, data.x_test, data.y_test),
        "soft_accuracy": soft,
        "dense_equivalent_sparsity": sparsity,
    }
    setup = {
        "data": data.describe(),
        "model": f"MLP {data.num_features}-256-{data.num_classes} (ReLU); {n}:{m} sparsity on both Linear weights "
                 "(groups along the input dimension)",
        "training": f"Adam lr {LR:g}, batch {BATCH}, {epochs} + {finetune_epochs} epochs for every arm (the arm's "
                    "method throughout; no arm: dense, then one-shot N:M with STE fine-tuning)",
        "selection": "last epoch (fixed schedule); test split only for the reported metrics",
    }
    return result(metrics, {}, timing, t0, setup)
