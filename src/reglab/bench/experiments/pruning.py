"""Lab task ``pruning``: test accuracy of an MLP on digits at 80/90/95 % weight sparsity.

The MLP d-256-10 (ReLU) trains with Adam 1e-3, batch 64, for ``epochs``
(30; 3 in quick mode), then fine-tunes for ``finetune_epochs`` (5; 1 in quick
mode) with fixed masks. Every arm gets the same number of epochs. Sparsity is
over both Linear weights (biases dense), ranked globally by magnitude with
Global MP's 0.05 % per-layer floor.

* No arm, or a weight penalty (``l1``, ``group_lasso``: bound to the Linear
  weights, in proximal mode where it has one, as ``structured_sparsity``):
  train densely, then for each target s prune one-shot by global magnitude
  and fine-tune with the mask fixed.
* ``magnitude_pruning``: per target s, train from the same initialization
  with the Zhu–Gupta schedule to s (the task sets ``final_sparsity`` = s,
  ``begin_step`` = 25 % and ``end_step`` = 75 % of the training steps,
  ``frequency`` = one epoch; the arm's other settings are kept), then
  fine-tune.
* ``hypersparse``: half the epochs dense (warm-up, shared), then per target s ART:
  each epoch adds λ_e·HS (global scope, κ = s, λ_e = weight·η^e with
  η = ``art_eta``), prunes a copy at s and stops when the buffer-mean
  pruned training accuracy exceeds the dense one (or the epochs run out);
  the best buffer entry is fine-tuned with its mask.

Metrics: ``accuracy_at_80``, ``accuracy_at_90``, ``accuracy_at_95`` (test
accuracy after fine-tuning), ``dense_accuracy`` (before pruning; for the
gradual arms the model before fine-tuning at 95 %). Selection: last epoch
(fixed schedule), no test-set selection.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn

import reglab
from reglab.bench.data import load
from reglab.bench.experiments._train import Timing, accuracy, mlp, result, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task
from reglab.methods.hypersparse import HyperSparseART
from reglab.methods.magnitude_pruning import MagnitudePruning, magnitude_masks

SPARSITIES = (0.8, 0.9, 0.95)
LR = 1e-3
BATCH = 64


def _merge(timings: list[Timing]) -> Timing:
    steps = [t.step_seconds for t in timings]
    cpu = [t.step_cpu_seconds for t in timings]
    epoch_cpu: list[float] = []
    for t in timings:
        offset = epoch_cpu[-1] if epoch_cpu else 0.0
        epoch_cpu += [offset + c for c in t.epoch_cpu_seconds]
    return Timing(sum(steps) / len(steps), sum(cpu) / len(cpu), epoch_cpu)


def _fit(model, data, seed, epochs, regs=None, extra=None, after=None) -> Timing:
    def step_loss(xb, yb, idx, epoch):
        loss = F.cross_entropy(model(xb), yb)
        if regs is not None:
            loss = loss + regs.penalty()
        if extra is not None:
            loss = loss + extra()
        return loss

    after_step = after if after is not None else (None if regs is None else regs.step)
    return train_loop(model, data.x_train, data.y_train, step_loss, epochs=epochs, batch_size=BATCH, seed=seed,
                      lr=LR, after_step=after_step)


def _prune_and_finetune(model, data, seed, sparsity, epochs, masks=None) -> tuple[float, Timing]:
    """One-shot global MP at ``sparsity`` (or the given masks), then fine-tune with the masks fixed."""
    model = copy.deepcopy(model)
    pruner = MagnitudePruning(final_sparsity=sparsity, begin_step=0, end_step=0)
    regs = reglab.attach(model, pruner.on(modules=nn.Linear))
    if masks is None:
        pruner.step()
    else:
        with torch.no_grad():
            for m, keep in zip(pruner.masks().values(), masks):
                m.copy_(keep.to(m.dtype))
        pruner._step = 1  # past its only update step: the masks stay fixed
    timing = _fit(model, data, seed + 7, epochs, regs=regs)
    return accuracy(model, data.x_test, data.y_test), timing


def _linears(model):
    return [m.weight for m in model.modules() if isinstance(m, nn.Linear)]


@torch.no_grad()
def _pruned_copy_accuracy(model, data, sparsity):
    pruned = copy.deepcopy(model)
    ws = _linears(pruned)
    masks = magnitude_masks(ws, sparsity)
    for w, m in zip(ws, masks):
        w.mul_(m.to(w.dtype))
    return accuracy(pruned, data.x_train, data.y_train), pruned, masks


@task("pruning", datasets=("digits", "digits_half"))
def pruning(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", epochs: int = 30,
    finetune_epochs: int = 5, art_eta: float = 1.5,
) -> TaskResult:
    t0 = time.perf_counter()
    data = load(dataset, seed)
    epochs, finetune_epochs = (3, 1) if quick else (epochs, finetune_epochs)
    steps_per_epoch = -(-data.x_train.shape[0] // BATCH)
    name = (arm or {}).get("name")

    def fresh():
        torch.manual_seed(seed)
        return mlp(data.num_features, 256, data.num_classes)

    metrics: dict[str, float] = {}
    timings: list[Timing] = []
    art_epochs: list[float] = []
    if name == "magnitude_pruning":
        for s in SPARSITIES:
            model = fresh()
            total = epochs * steps_per_epoch
            cfg = {**arm, "final_sparsity": s, "begin_step": total // 4, "end_step": (3 * total) // 4,
                   "frequency": steps_per_epoch}
            pruner = build_arm(cfg)
            regs = reglab.attach(model, pruner.on(modules=nn.Linear))
            timings.append(_fit(model, data, seed, epochs + finetune_epochs, regs=regs))
            metrics[f"accuracy_at_{round(s * 100)}"] = accuracy(model, data.x_test, data.y_test)
        metrics["dense_accuracy"] = float("nan")
    elif name == "hypersparse":
        warm = fresh()
        warmup = epochs // 2
        timings.append(_fit(warm, data, seed, warmup))  # the dense warm-up, shared by the three targets
        for s in SPARSITIES:
            model = copy.deepcopy(warm)
            reg = build_arm({**arm, "prune_rate": s})
            ws = _linears(model)
            art = HyperSparseART(lambda_init=reg.current_weight, eta=art_eta)
            for e in range(epochs - warmup):
                lam = art.weight
                timings.append(_fit(model, data, seed + 100 + e, 1, extra=lambda lam=lam: lam * reg.penalty_global(ws)))
                pruned_acc, pruned, masks = _pruned_copy_accuracy(model, data, s)
                if art.update(pruned_acc, accuracy(model, data.x_train, data.y_train), state=(pruned, masks)):
                    break
            art_epochs.append(art.epoch)
            best, masks = art.best
            acc, timing = _prune_and_finetune(best, data, seed, s, finetune_epochs, masks=masks)
            timings.append(timing)
            metrics[f"accuracy_at_{round(s * 100)}"] = acc
        metrics["dense_accuracy"] = float("nan")
        metrics["art_epochs"] = sum(art_epochs) / len(art_epochs)
    else:
        model = fresh()
        reg = build_arm(arm)
        regs = None
        if reg is not None:
            mode = "prox" if getattr(reg, "has_prox", False) else "penalty"
            regs = reglab.attach(model, reg.on(modules=nn.Linear, mode=mode))
        timings.append(_fit(model, data, seed, epochs, regs=regs))
        metrics["dense_accuracy"] = accuracy(model, data.x_test, data.y_test)
        for s in SPARSITIES:
            acc, timing = _prune_and_finetune(model, data, seed, s, finetune_epochs)
            timings.append(timing)
            metrics[f"accuracy_at_{round(s * 100)}"] = acc
    setup = {
        "data": data.describe(),
        "model": f"MLP {data.num_features}-256-{data.num_classes} (ReLU); sparsity over both Linear weights",
        "training": f"Adam lr {LR:g}, batch {BATCH}, {epochs} epochs + {finetune_epochs} fine-tune epochs with "
                    f"fixed masks, for every arm",
        "pruning": "global magnitude, 0.05 % per-layer floor; one-shot after training for penalty arms; "
                   f"gradual (25-75 % of training) for magnitude_pruning; ART (η = {art_eta:g} per epoch) for hypersparse",
        "selection": "last epoch (fixed schedule); test split only for the reported metrics",
    }
    return result(metrics, {}, _merge(timings), t0, setup)
