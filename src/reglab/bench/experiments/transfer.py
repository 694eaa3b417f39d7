"""Lab task ``transfer``: pre-train on digits 0-4, fine-tune on few examples of 5-9.

Source: an MLP body 64-256-256 (ReLU) with a 5-way head is trained on the
digits 0-4 of the training split (Adam 1e-3, batch 128, 30 epochs). Target:
a stratified share ``share`` (default 10%) of the 5-9 training images, the
same share of their validation images; the body starts from the source
weights and a new 5-way head (``head``) from a fresh initialization. The
fine-tuning (Adam 1e-3, batch 32, 60 epochs; 4 + 4 in quick mode) keeps the
epoch of best target-validation accuracy; ``test_accuracy`` is on the 5-9
test images.

A weight-regularizer arm is attached to every weight matrix of the
fine-tuned model (body and new head) when fine-tuning starts, so an anchored
penalty (``l2_sp``) anchors at the pre-trained values; its ``new_params``
selects the new head (``"head.*"``).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.data import load, stratified_share
from reglab.bench.experiments._train import SelectOnValidation, accuracy, result, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task

SOURCE_EPOCHS, TARGET_EPOCHS, QUICK_EPOCHS = 30, 60, 4


class Net(nn.Module):
    def __init__(self, d_in: int, classes: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d_in, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
        self.head = nn.Linear(256, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x.flatten(1)))


def _classes(x: torch.Tensor, y: torch.Tensor, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
    keep = (y >= lo) & (y < hi)
    return x[keep], y[keep] - lo


@task("transfer", datasets=("digits", "digits_half"))
def transfer(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", share: float = 0.1
) -> TaskResult:
    t0 = time.perf_counter()
    data = load(dataset, seed)
    torch.manual_seed(seed)
    source = Net(data.num_features, 5)
    xs, ys = _classes(data.x_train, data.y_train, 0, 5)
    loss_fn = lambda model: (lambda xb, yb, idx, epoch: F.cross_entropy(model(xb), yb))  # noqa: E731
    train_loop(source, xs, ys, loss_fn(source), epochs=QUICK_EPOCHS if quick else SOURCE_EPOCHS,
               batch_size=128, seed=seed)  # fmt: skip

    x_tr, y_tr = _classes(data.x_train, data.y_train, 5, 10)
    keep = stratified_share(y_tr, share, seed)[0]
    x_tr, y_tr = x_tr[keep], y_tr[keep]
    x_va, y_va = _classes(data.x_val, data.y_val, 5, 10)
    keep = stratified_share(y_va, share, seed + 1)[0]
    x_va, y_va = x_va[keep], y_va[keep]
    x_te, y_te = _classes(data.x_test, data.y_test, 5, 10)
    model = Net(data.num_features, 5)
    model.body.load_state_dict(source.body.state_dict())  # the new head keeps its fresh initialization
    reg = build_arm(arm)
    regs = None
    if reg is not None:
        import reglab

        regs = reglab.attach(model, reg.on(modules=nn.Linear))

    def step_loss(xb, yb, idx, epoch):
        loss = F.cross_entropy(model(xb), yb)
        return loss if regs is None else loss + regs.penalty()

    selection = SelectOnValidation(model)
    test_curve: list[float] = []
    val_curve: list[float] = []

    def on_epoch_end(epoch):
        val_curve.append(accuracy(model, x_va, y_va))
        test_curve.append(accuracy(model, x_te, y_te))
        selection.update(val_curve[-1], epoch)

    epochs = QUICK_EPOCHS if quick else TARGET_EPOCHS
    timing = train_loop(
        model, x_tr, y_tr, step_loss, epochs=epochs, batch_size=32, seed=seed, on_epoch_end=on_epoch_end,
        after_step=None if regs is None else regs.step,
    )  # fmt: skip
    metrics = {
        "test_accuracy": accuracy(selection.best_model(), x_te, y_te),
        "final_accuracy": test_curve[-1],
    }
    setup = {
        "data": f"{data.describe()}; source: digits 0-4 of train; target: {share:.0%} of the 5-9 train/val images, "
        "all 5-9 test images",
        "model": "MLP body 64-256-256 (ReLU) + 5-way head; fine-tuning starts from the source body and a new head",
        "training": f"source: Adam 1e-3, batch 128, {QUICK_EPOCHS if quick else SOURCE_EPOCHS} epochs; target: Adam "
        f"1e-3, batch 32, {epochs} epochs; the arm binds to every weight matrix when fine-tuning starts",
        "selection": "epoch of best target-validation accuracy",
    }
    return result(metrics, {"test_accuracy": test_curve, "val_accuracy": val_curve}, timing, t0, setup)
