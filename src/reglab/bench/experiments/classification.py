"""Lab task ``clean_classification``: an MLP on clean data.

The MLP (d-256-10, Adam 1e-3, batch 128, 60 epochs; 5 in quick mode) of
the other tasks, trained on the clean training split; the epoch is selected
on the validation split. The arm is
used in its natural form: a weight regularizer is attached to every weight
matrix (``reglab.attach``; biases excluded) and its penalty added to the
loss; an output regularizer goes through ``_train.output_loss`` (targets,
logit modules, penalties on logits); ``gaussian_noise`` perturbs the training
inputs; a training procedure (``sam``, ``amp_perturbation``,
``gradient_norm``) replaces the update around the same Adam
(``_train.optimizer_step``).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from reglab.bench.data import load
from reglab.bench.experiments._train import (
    SelectOnValidation, accuracy, classifier, ece, is_procedure, output_loss, result, train_loop,
)  # fmt: skip
from reglab.bench.tasks import TaskResult, build_arm, task


def sizes_for(arm: dict | None, **sizes: int) -> dict[str, int]:
    """The dataset sizes (``num_samples``, ``num_classes``) the arm's class takes, if any."""
    if arm is None:
        return {}
    import inspect

    from reglab.core.registry import get

    params = inspect.signature(get(arm["name"]).__init__).parameters
    return {k: v for k, v in sizes.items() if k in params and k not in arm}


@torch.no_grad()
def weight_structure(model: torch.nn.Module) -> dict[str, float]:
    """``weight_rank99``: mean over weight matrices of the number of singular values holding 99% of
    Σσ² (the energy rank); ``weight_near_zero``: share of weight-matrix entries with |w| < 1e-3."""
    mats = [p.flatten(1) for name, p in model.named_parameters() if p.ndim >= 2]
    ranks = []
    for w in mats:
        energy = torch.linalg.svdvals(w.double()).pow(2).cumsum(0)
        ranks.append(float((energy < 0.99 * energy[-1]).sum() + 1))
    entries = torch.cat([w.flatten() for w in mats])
    return {"weight_rank99": sum(ranks) / len(ranks), "weight_near_zero": float((entries.abs() < 1e-3).float().mean())}


@task("clean_classification", datasets=("digits", "digits_half", "mnist1d"))
def clean_classification(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", epochs: int = 60
) -> TaskResult:
    """Metrics: ``test_accuracy``, ``test_nll``, ``ece`` (15 bins) at the validation-selected
    epoch, ``final_accuracy``, and the selected weights' structure (``weight_structure``). Curves: ``test_accuracy``, ``val_accuracy``, ``train_loss`` per epoch."""
    t0 = time.perf_counter()
    data = load(dataset, seed)
    n, c = data.x_train.shape[0], data.num_classes
    epochs = 5 if quick else epochs
    torch.manual_seed(seed)
    model, model_text = classifier(data)
    procedure = arm if is_procedure(arm) else None
    reg = None if procedure else build_arm(arm, **sizes_for(arm, num_samples=n, num_classes=c))
    input_noise = reg if getattr(reg, "name", None) == "gaussian_noise" else None
    if input_noise is not None:
        reg = None
    regs = None
    if reg is not None and getattr(reg, "kind", None) == "weight":
        import reglab

        regs = reglab.attach(model, [reg])
    losses: list[float] = []

    def step_loss(xb, yb, idx, epoch):
        logits = model(xb if input_noise is None else input_noise(xb))
        if regs is not None:
            loss = F.cross_entropy(logits, yb) + regs.penalty()
        else:
            loss = output_loss(reg, logits, yb, idx)
        losses.append(float(loss.detach()))
        return loss

    acc_curve: list[float] = []
    val_curve: list[float] = []
    loss_curve: list[float] = []
    selection = SelectOnValidation(model)

    def on_epoch_end(epoch):
        val_curve.append(accuracy(model, data.x_val, data.y_val))
        acc_curve.append(accuracy(model, data.x_test, data.y_test))
        selection.update(val_curve[-1], epoch)
        loss_curve.append(sum(losses) / max(len(losses), 1))
        losses.clear()

    timing = train_loop(
        model, data.x_train, data.y_train, step_loss,
        epochs=epochs, batch_size=128, seed=seed, on_epoch_end=on_epoch_end,
        on_epoch_start=getattr(reg, "set_epoch", None), procedure=procedure,
    )  # fmt: skip
    best = selection.best_model()
    with torch.no_grad():
        logits = best(data.x_test)
    metrics = {
        "test_accuracy": accuracy(best, data.x_test, data.y_test),
        "test_nll": float(F.cross_entropy(logits, data.y_test)),
        "ece": ece(logits.softmax(dim=1), data.y_test),
        "final_accuracy": acc_curve[-1],
        **weight_structure(best),
    }
    curves = {"test_accuracy": acc_curve, "val_accuracy": val_curve, "train_loss": loss_curve}
    setup = {
        "data": data.describe(),
        "model": f"{model_text}; weight arms bind to every weight matrix",
        "training": f"Adam lr 1e-3, batch 128, {epochs} epochs",
        "selection": "epoch of best validation accuracy",
    }
    return result(metrics, curves, timing, t0, setup)
