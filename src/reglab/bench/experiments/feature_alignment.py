"""Lab task ``feature_alignment``: a few-label student aligned to a frozen pretrained encoder's features.

Teacher ("pretrained encoder"): an MLP 64-256-256 (ReLU) with a 10-way head,
trained with cross-entropy on the whole training split (Adam 1e-3, batch
128, 15 epochs; 3 in quick mode), then frozen; its 256-d penultimate
features y*(x) are the targets. Student: a fresh MLP of the same shape,
trained on a stratified share ``share`` (default 10%) of the training labels
(Adam 1e-3, batch 32, 40 epochs; 4 in quick mode), keeping the epoch of best
accuracy on the same share of the validation split; ``test_accuracy`` is on
the whole test split.

A two-input arm (``repa``) is added to the cross-entropy as
``arm(projector(h₁), y*(x))``, h₁ the student's first hidden layer (an early
block, as REPA aligns block 8 of 28) and ``projector`` a trainable MLP
256-256-256 with SiLU (REPA's ``build_mlp`` shape, narrower), trained with
the student and discarded. ``distill_mse`` > 0 adds instead
``distill_mse · mean_{b,k} (projector(h₁) − y*(x))²_{b,k}`` (plain feature
distillation through the same projector: the baseline a practitioner would
use). Metrics: ``test_accuracy`` (selected epoch), ``final_accuracy`` (last
epoch), ``alignment_cosine``: mean cosine between projector(h₁) and y* on the
test split (selected epoch).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.data import load, stratified_share
from reglab.bench.experiments._train import SelectOnValidation, accuracy, result, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task

TEACHER_EPOCHS, STUDENT_EPOCHS, QUICK_TEACHER, QUICK_STUDENT = 15, 40, 3, 4


def _mlp(d_in: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


class _Student(nn.Module):
    def __init__(self, d_in: int, d_target: int):
        super().__init__()
        self.net = _mlp(d_in)
        self.projector = nn.Sequential(nn.Linear(256, 256), nn.SiLU(), nn.Linear(256, 256), nn.SiLU(),
                                       nn.Linear(256, d_target))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))

    def aligned(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, projector(h₁)) from one forward."""
        h1 = self.net[1](self.net[0](x.flatten(1)))
        return self.net[2:](h1), self.projector(h1)


@task("feature_alignment", datasets=("digits", "digits_half"))
def feature_alignment(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", share: float = 0.1,
    distill_mse: float = 0.0,
) -> TaskResult:
    t0 = time.perf_counter()
    reg = build_arm(arm)
    if reg is not None and getattr(reg, "num_inputs", 1) != 2:
        raise ValueError(f"feature_alignment: the arm must take (aligned, target) features, got {arm!r}")
    data = load(dataset, seed)
    torch.manual_seed(seed)
    teacher = _mlp(data.num_features)
    train_loop(teacher, data.x_train, data.y_train,
               lambda xb, yb, idx, epoch: F.cross_entropy(teacher(xb.flatten(1)), yb),
               epochs=QUICK_TEACHER if quick else TEACHER_EPOCHS, batch_size=128, seed=seed)  # fmt: skip
    teacher.eval().requires_grad_(False)
    encoder = teacher[:4]  # the 256-d penultimate features

    keep = stratified_share(data.y_train, share, seed)[0]
    x_tr, y_tr = data.x_train[keep], data.y_train[keep]
    keep = stratified_share(data.y_val, share, seed + 1)[0]
    x_va, y_va = data.x_val[keep], data.y_val[keep]
    with torch.no_grad():
        target_tr = encoder(x_tr.flatten(1))
        target_te = encoder(data.x_test.flatten(1))
    model = _Student(data.num_features, target_tr.shape[1])

    def step_loss(xb, yb, idx, epoch):
        logits, z = model.aligned(xb)
        loss = F.cross_entropy(logits, yb)
        if reg is not None:
            loss = loss + reg(z, target_tr[idx])
        if distill_mse > 0:
            loss = loss + distill_mse * F.mse_loss(z, target_tr[idx])
        return loss

    selection = SelectOnValidation(model)
    test_curve: list[float] = []
    val_curve: list[float] = []

    def on_epoch_end(epoch):
        val_curve.append(accuracy(model, x_va, y_va))
        test_curve.append(accuracy(model, data.x_test, data.y_test))
        selection.update(val_curve[-1], epoch)

    epochs = QUICK_STUDENT if quick else STUDENT_EPOCHS
    timing = train_loop(model, x_tr, y_tr, step_loss, epochs=epochs, batch_size=32, seed=seed,
                        on_epoch_end=on_epoch_end)  # fmt: skip
    best = selection.best_model()
    with torch.no_grad():
        _, z_te = best.aligned(data.x_test)
        cosine = float(F.cosine_similarity(z_te, target_te, dim=1).mean())
    metrics = {
        "test_accuracy": accuracy(best, data.x_test, data.y_test),
        "final_accuracy": test_curve[-1],
        "alignment_cosine": cosine,
    }
    setup = {
        "data": f"{data.describe()}; teacher: the whole train split; student: {share:.0%} of the train/val labels",
        "model": "teacher and student MLP 64-256-256-10 (ReLU); the arm aligns the student's first hidden layer "
        "through a trainable projector 256-256-256 (SiLU) to the frozen teacher's 256-d penultimate features",
        "training": f"teacher: Adam 1e-3, batch 128, {QUICK_TEACHER if quick else TEACHER_EPOCHS} epochs; student: "
        f"Adam 1e-3, batch 32, {epochs} epochs" + (f"; + {distill_mse:g}·feature MSE" if distill_mse > 0 else ""),
        "selection": "epoch of best accuracy on the student's validation share",
    }
    return result(metrics, {"test_accuracy": test_curve, "val_accuracy": val_curve}, timing, t0, setup)
