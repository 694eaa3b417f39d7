"""Lab task ``semi_supervised``: few labels, many unlabelled digits.

A stratified share ``labeled`` (default 10%) of the training split keeps its
labels; the rest is unlabelled. The validation split is cut to the same share
(labelled data is scarce for model selection too). An MLP 64-256-10 is
trained with Adam 1e-3 for 60 epochs over the unlabelled data (4 in quick
mode): each step takes a batch of 128 unlabelled and 32 labelled images. The
labelled batch is always augmented (random ±1-pixel shift + Gaussian pixel
noise, ``augment_digits``), so every arm gets the same augmentation and
the comparison isolates the use of the unlabelled data:

* ``None``: cross-entropy on the labelled batch only;
* an output penalty on one batch of logits (``entropy``: entropy
  minimization) is added on the unlabelled batch's logits;
* a two-view output penalty (``consistency``) is added on the logits of two
  augmented views of the unlabelled batch.

Metrics: ``test_accuracy`` at the epoch of best (labelled, scarce)
validation accuracy, ``final_accuracy``. Curves: ``test_accuracy``,
``val_accuracy``.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from reglab.bench.data import augment_digits, load, stratified_share
from reglab.bench.experiments._train import SelectOnValidation, Timing, accuracy, fused_optimizer, mlp, result
from reglab.bench.tasks import TaskResult, build_arm, task

EPOCHS, QUICK_EPOCHS, UNLABELED_BATCH, LABELED_BATCH = 60, 4, 128, 32


@task("semi_supervised", datasets=("digits", "digits_half"))  # the views shift 8×8 images
def semi_supervised(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", labeled: float = 0.1
) -> TaskResult:
    t0 = time.perf_counter()
    data = load(dataset, seed)
    lab, unlab = stratified_share(data.y_train, labeled, seed)  # a stratified share keeps its labels
    x_lab, y_lab, x_unlab = data.x_train[lab], data.y_train[lab], data.x_train[unlab]
    val = stratified_share(data.y_val, labeled, seed + 1)[0]
    x_val, y_val = data.x_val[val], data.y_val[val]
    epochs = QUICK_EPOCHS if quick else EPOCHS
    torch.manual_seed(seed)
    model = mlp(data.num_features, 256, data.num_classes)
    reg = build_arm(arm)
    views = getattr(reg, "num_inputs", 1)
    opt = fused_optimizer(torch.optim.Adam, model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed + 1)
    selection = SelectOnValidation(model)
    test_curve: list[float] = []
    val_curve: list[float] = []
    steps, wall, cpu = 0, 0.0, 0.0
    epoch_cpu: list[float] = []
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x_unlab), generator=gen)
        w0, c0 = time.perf_counter(), time.process_time()
        for start in range(0, len(x_unlab), UNLABELED_BATCH):
            xu = x_unlab[perm[start : start + UNLABELED_BATCH]]
            pick = torch.randint(0, len(y_lab), (LABELED_BATCH,), generator=gen)
            loss = F.cross_entropy(model(augment_digits(x_lab[pick], gen)), y_lab[pick])
            if reg is not None:
                if views == 2:
                    loss = loss + reg(model(augment_digits(xu, gen)), model(augment_digits(xu, gen)))
                else:
                    loss = loss + reg(model(xu))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        epoch_cpu.append(cpu)
        model.eval()
        val_curve.append(accuracy(model, x_val, y_val))
        test_curve.append(accuracy(model, data.x_test, data.y_test))
        selection.update(val_curve[-1], epoch)
    timing = Timing(wall / max(steps, 1), cpu / max(steps, 1), epoch_cpu)
    metrics = {
        "test_accuracy": accuracy(selection.best_model(), data.x_test, data.y_test),
        "final_accuracy": test_curve[-1],
    }
    setup = {
        "data": f"{data.describe()}; {labeled:.0%} of train and val labelled ({len(y_lab)} train labels), the rest "
        "of train unlabelled",
        "model": "MLP 64-256-10",
        "training": f"Adam lr 1e-3, {epochs} epochs over the unlabelled data, batches of {UNLABELED_BATCH} "
        f"unlabelled + {LABELED_BATCH} labelled (augmented) images",
        "selection": "epoch of best accuracy on the labelled share of the validation split",
    }
    return result(metrics, {"test_accuracy": test_curve, "val_accuracy": val_curve}, timing, t0, setup)
