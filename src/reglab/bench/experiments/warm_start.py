"""Lab task ``warm_start``: training on a growing dataset, chunk after chunk (Ash & Adams 2020).

The training split is cut into ``chunks`` equal random parts that arrive one
at a time. After each arrival the model trains on all the data seen so far,
with a new Adam optimizer (lr 1e-3, batch 128, no weight decay: the official
JordanAsh/warm_start ``run.py``), until its training accuracy on that data
reaches 99 % (the official stopping rule), at most ``max_epochs`` (100) epochs.
The model is the lab's MLP 64-256-10 (``classifier``). MNIST-1D is not
offered: its ConvBase needs far more than the lab's 10 s per run to reach 99 %
training accuracy on each chunk.

* plain warm start (``arm=None``): each chunk continues from the previous weights;
* ``scratch=True``: the model is re-initialized before each chunk (the reference);
* an ``operation`` arm (``shrink_perturb``) is applied to the model at each
  chunk boundary (before chunks 2, 3, ...), with a seeded fresh initialization;
* a weight-penalty arm (``l2_init``, ``l2``) is attached once, before the
  first chunk, to **every** parameter (``exclude=None``: L2 Init regularizes
  all of them toward their initial values) and added to the loss throughout.

Metrics: ``final_test_accuracy`` (after the last chunk), ``mean_test_accuracy``
(over the chunks), ``final_val_accuracy``, ``epochs`` (total training
epochs, the cost). No model selection: the stopping rule reads training
accuracy only; the test split is never used to choose anything. Curves:
``test_accuracy`` and ``epochs`` per chunk.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

import reglab
from reglab.bench.data import load
from reglab.bench.experiments._train import Timing, accuracy, classifier, fused_optimizer, result
from reglab.bench.tasks import TaskResult, build_arm, task

LR = 1e-3
BATCH = 128
TARGET_TRAIN_ACCURACY = 0.99


@task("warm_start", datasets=("digits", "digits_half"))
def warm_start(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", scratch: bool = False,
    chunks: int = 5, max_epochs: int = 100,
) -> TaskResult:
    t0 = time.perf_counter()
    data = load(dataset, seed)
    max_epochs = 3 if quick else max_epochs
    order = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(seed + 7))
    bounds = [round(len(order) * (k + 1) / chunks) for k in range(chunks)]
    reg = build_arm(arm)
    operation = reg if getattr(reg, "form", None) == "operation" else None
    penalty = reg if getattr(reg, "form", None) == "penalty" else None
    if reg is not None and operation is None and penalty is None:
        raise ValueError(f"warm_start takes weight penalties or operations, got {type(reg).__name__}")

    def new_model(k: int):
        torch.manual_seed(seed + 1000 * k)
        model, desc = classifier(data)
        regs = None
        if penalty is not None:
            fresh = build_arm(arm)  # new anchors for a new model
            regs = reglab.attach(model, fresh.on(exclude=None))
        return model, regs, desc

    model, regs, model_desc = new_model(0)
    test_curve: list[float] = []
    epoch_curve: list[float] = []
    steps, wall, cpu = 0, 0.0, 0.0
    epoch_cpu: list[float] = []
    for k in range(chunks):
        if k > 0 and scratch:
            model, regs, _ = new_model(k)
        elif k > 0 and operation is not None:
            operation(model, generator=torch.Generator().manual_seed(seed + 100 + k))
        idx_seen = order[: bounds[k]]
        x, y = data.x_train[idx_seen], data.y_train[idx_seen]
        opt = fused_optimizer(torch.optim.Adam, model.parameters(), lr=LR)
        gen = torch.Generator().manual_seed(seed + 1 + 10 * k)
        epochs = 0
        while epochs < max_epochs:
            model.train()
            perm = torch.randperm(len(y), generator=gen)
            w0, c0 = time.perf_counter(), time.process_time()
            for start in range(0, len(y), BATCH):
                b = perm[start : start + BATCH]
                loss = F.cross_entropy(model(x[b]), y[b])
                if regs is not None:
                    loss = loss + regs.penalty()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if regs is not None:
                    regs.step(opt)
                steps += 1
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
            epoch_cpu.append(cpu)
            epochs += 1
            if accuracy(model, x, y) >= TARGET_TRAIN_ACCURACY:
                break
        test_curve.append(accuracy(model, data.x_test, data.y_test))
        epoch_curve.append(float(epochs))
    metrics = {
        "final_test_accuracy": test_curve[-1],
        "mean_test_accuracy": sum(test_curve) / len(test_curve),
        "final_val_accuracy": accuracy(model, data.x_val, data.y_val),
        "epochs": sum(epoch_curve),
    }
    timing = Timing(wall / max(steps, 1), cpu / max(steps, 1), epoch_cpu)
    how = (
        "re-initialized before each chunk (from scratch)" if scratch
        else f"{type(operation).__name__} at each chunk boundary" if operation is not None
        else "warm start from the previous chunk's weights"
    )
    setup = {
        "data": f"{data.describe()}; training split in {chunks} equal random chunks, seen cumulatively",
        "model": f"{model_desc}; {how}" + ("; the penalty arm binds to every parameter" if penalty is not None else ""),
        "training": f"per chunk: new Adam lr {LR:g}, batch {BATCH}, until {TARGET_TRAIN_ACCURACY:.0%} training "
        f"accuracy on the data so far or {max_epochs} epochs",
        "selection": "none (stopping rule on training accuracy); metrics after each chunk",
    }
    return result(metrics, {"test_accuracy": test_curve, "epochs": epoch_curve}, timing, t0, setup)
