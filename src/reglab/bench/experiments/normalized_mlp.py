"""Lab task ``normalized_mlp``: an MLP whose hidden weights are scale-invariant (each Linear followed by BatchNorm).

The model is d-256-256-C: ``Linear(bias=False) → BatchNorm1d → ReLU`` twice,
then a linear head. BatchNorm (training mode) makes the output of each
hidden layer independent of the norm of every row of the Linear weight
before it, so those weights are scale-invariant, the setting of AdamP/SGDP
(Heo et al., ICLR 2021): the loss gradient is orthogonal to each row, and
a momentum optimizer's update, which is not, makes the row norms grow,
lowering the effective step size (∝ 1/‖w‖²). The head is not
scale-invariant.

The task owns the optimizer, so that the baselines are plain optimizers:

* ``optimizer="adam"``: Adam (lr 1e-3, the official AdamP default), with
  ``weight_decay`` as torch's L2 term for the plain run;
* ``optimizer="adamw"``: AdamW (decoupled weight decay ``weight_decay``),
  no arm;
* ``optimizer="sgd"``: SGD (lr 0.1, Nesterov momentum 0.9, the official
  SGDP usage), ``weight_decay`` as torch's L2 term.

An arm is an optimizer wrapper (``adamp``, ``sgdp``, ``sam``...), built
around the task's base optimizer (Adam for ``"adam"``, SGD with Nesterov
momentum 0.9 for ``"sgd"``) with the same learning rate and
``weight_decay`` (AdamP/SGDP apply it decoupled), and stepped with a
closure. Every optimizer runs its fused CPU kernel, as in the other lab
tasks. Batch 256, 30 epochs (3 in quick mode), the epoch with the best
validation accuracy is kept (never the test split).

Metrics: ``test_accuracy`` (selected epoch), ``val_accuracy`` (its
validation accuracy) and ``norm_growth``: the mean over the two hidden
Linear weights of ``‖W_T‖_F / ‖W_0‖_F`` after the last epoch (the whole
trajectory, not the selected epoch), the mechanism AdamP/SGDP act on.
Curves per epoch: ``val_accuracy`` and ``norm_growth``.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.data import load
from reglab.bench.experiments._train import FUSED, SelectOnValidation, Timing, accuracy, result
from reglab.bench.tasks import TaskResult, build_arm, task

EPOCHS, QUICK_EPOCHS, BATCH, HIDDEN = 30, 3, 256, 256
#: learning rates of the official AdamP/SGDP usage (clovaai/AdamP README): Adam-family 1e-3, SGD-family 0.1
LR = {"adam": 1e-3, "adamw": 1e-3, "sgd": 0.1}
SGD_MOMENTUM = {"momentum": 0.9, "nesterov": True}


class NormalizedMLP(nn.Module):
    """d-H-H-C with ``Linear(bias=False) → BatchNorm1d → ReLU`` hidden layers: scale-invariant hidden weights."""

    def __init__(self, d_in: int, hidden: int, d_out: int):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, hidden, bias=False)
        self.bn2 = nn.BatchNorm1d(hidden)
        self.head = nn.Linear(hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.fc1(x)))
        h = F.relu(self.bn2(self.fc2(h)))
        return self.head(h)

    def scale_invariant_weights(self) -> list[torch.Tensor]:
        return [self.fc1.weight, self.fc2.weight]


def _optimizer(arm: dict | None, params: list, optimizer: str, weight_decay: float) -> torch.optim.Optimizer:
    lr = LR[optimizer]
    if arm is None:
        if optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **FUSED)
        if optimizer == "adamw":
            return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **FUSED)
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, **SGD_MOMENTUM, **FUSED)
    if optimizer == "adamw":
        raise ValueError("normalized_mlp: an arm wraps 'adam' or 'sgd' (its own weight decay); 'adamw' is for the plain run")
    from reglab.core.registry import get

    if get(arm["name"]).form != "optimizer":
        raise ValueError(f"normalized_mlp: the arm must be an optimizer wrapper, got {arm['name']!r}")
    owned = sorted(set(arm) & {"lr", "weight_decay", "momentum", "nesterov", "dampening"})
    if owned:
        raise ValueError(f"normalized_mlp: the task sets {owned} for every arm (task_args weight_decay); "
                         "leave them out of the arm's config")
    base = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    extra = SGD_MOMENTUM if optimizer == "sgd" else {}
    return build_arm(arm, params=params, base_optimizer=base, lr=lr, weight_decay=weight_decay, **extra, **FUSED)


@torch.no_grad()
def _norm_growth(weights: list[torch.Tensor], initial: list[torch.Tensor]) -> float:
    return float(sum(float(w.norm() / w0) for w, w0 in zip(weights, initial)) / len(weights))


@task("normalized_mlp", datasets=("digits", "digits_half"))
def normalized_mlp(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", optimizer: str = "adam",
    weight_decay: float = 0.0, epochs: int | None = None,
) -> TaskResult:
    """Metrics: ``test_accuracy`` at the epoch with the best validation accuracy, and ``norm_growth``
    (mean ``‖W_T‖/‖W_0‖`` of the scale-invariant hidden weights after the last epoch)."""
    if optimizer not in LR:
        raise ValueError(f"normalized_mlp: optimizer must be one of {sorted(LR)}, got {optimizer!r}")
    t0 = time.perf_counter()
    data = load(dataset, seed)
    torch.manual_seed(seed)
    model = NormalizedMLP(data.num_features, HIDDEN, data.num_classes)
    weights = model.scale_invariant_weights()
    initial = [float(w.detach().norm()) for w in weights]
    opt = _optimizer(arm, list(model.parameters()), optimizer, weight_decay)
    wrapped = arm is not None
    epochs = (QUICK_EPOCHS if quick else EPOCHS) if epochs is None else int(epochs)
    x, y = data.x_train, data.y_train
    gen = torch.Generator().manual_seed(seed + 1)
    select = SelectOnValidation(model)
    curves: dict[str, list[float]] = {"val_accuracy": [], "norm_growth": []}
    steps, wall, cpu = 0, 0.0, 0.0
    epoch_cpu: list[float] = []
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(x.shape[0], generator=gen)
        w0, c0 = time.perf_counter(), time.process_time()
        for start in range(0, x.shape[0], BATCH):
            idx = perm[start : start + BATCH]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue

            def closure(idx=idx):
                loss = F.cross_entropy(model(x[idx]), y[idx])
                loss.backward()
                return loss

            opt.zero_grad(set_to_none=True)
            if wrapped:
                opt.step(closure)
            else:
                closure()
                opt.step()
            steps += 1
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        epoch_cpu.append(cpu)
        val = accuracy(model, data.x_val, data.y_val)
        select.update(val, epoch)
        curves["val_accuracy"].append(val)
        curves["norm_growth"].append(_norm_growth(weights, initial))
    best = select.best_model()
    metrics = {
        "test_accuracy": accuracy(best, data.x_test, data.y_test),
        "val_accuracy": select.best_score,
        "norm_growth": curves["norm_growth"][-1] if epochs else 1.0,
    }
    timing = Timing(wall / max(steps, 1), cpu / max(steps, 1), epoch_cpu)
    base = {"adam": "Adam", "adamw": "AdamW (decoupled weight decay)", "sgd": "SGD (Nesterov momentum 0.9)"}[optimizer]
    setup = {
        "data": data.describe(),
        "model": f"MLP {data.num_features}-{HIDDEN}-{HIDDEN}-{data.num_classes}, each hidden Linear (no bias) followed "
        "by BatchNorm1d then ReLU (scale-invariant hidden weights)",
        "training": f"{base} lr {LR[optimizer]}, weight decay {weight_decay}, batch {BATCH}, {epochs} epochs, "
        "constant learning rate; an optimizer arm wraps the same base optimizer",
        "selection": "epoch with the best validation accuracy (test accuracy there); norm growth after the last epoch",
    }
    return result(metrics, curves, timing, t0, setup)
