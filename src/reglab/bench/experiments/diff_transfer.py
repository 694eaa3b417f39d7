"""Lab task ``diff_transfer``: the ``transfer`` setting, fine-tuned through a reparametrization of the body.

Source and target data, model and source pre-training are those of the
``transfer`` task (same seeds, same code: its ``Net`` and class split). The
target fine-tuning (batch 32, 60 epochs; 4 + 4 in quick mode, epoch of best
target-validation accuracy) differs in what trains:

* no arm: full fine-tuning, Adam 1e-3 on every parameter (the ``transfer``
  baseline, run here with this task's own optimizer loop);
* ``freeze_body=True``: the body is frozen, only the new head trains;
* a ``diff_pruning`` arm: applied to the body (θ₀ frozen), Adam 1e-3 on the
  diffs and the head, Adam 0.1 on the gates' log α (official), loss + its penalty.

Metrics: ``test_accuracy`` (selected epoch), ``val_accuracy`` (its validation
accuracy), ``changed_fraction`` (share of body entries the selected model
changes: about 1 for full fine-tuning, 0 frozen).
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F

from reglab.bench.data import load, stratified_share
from reglab.bench.experiments._train import SelectOnValidation, Timing, accuracy, result, train_loop
from reglab.bench.experiments.transfer import QUICK_EPOCHS, SOURCE_EPOCHS, TARGET_EPOCHS, Net, _classes
from reglab.bench.tasks import TaskResult, build_arm, task
from reglab.methods.diff_pruning import DiffPruning

LR, ALPHA_LR, BATCH = 1e-3, 0.1, 32


@task("diff_transfer", datasets=("digits", "digits_half"))
def diff_transfer(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", share: float = 0.1,
    freeze_body: bool = False,
) -> TaskResult:
    t0 = time.perf_counter()
    data = load(dataset, seed)
    torch.manual_seed(seed)
    source = Net(data.num_features, 5)
    xs, ys = _classes(data.x_train, data.y_train, 0, 5)
    train_loop(source, xs, ys, lambda xb, yb, idx, epoch: F.cross_entropy(source(xb), yb),
               epochs=QUICK_EPOCHS if quick else SOURCE_EPOCHS, batch_size=128, seed=seed)  # as transfer

    x_tr, y_tr = _classes(data.x_train, data.y_train, 5, 10)
    keep = stratified_share(y_tr, share, seed)[0]
    x_tr, y_tr = x_tr[keep], y_tr[keep]
    x_va, y_va = _classes(data.x_val, data.y_val, 5, 10)
    keep = stratified_share(y_va, share, seed + 1)[0]
    x_va, y_va = x_va[keep], y_va[keep]
    x_te, y_te = _classes(data.x_test, data.y_test, 5, 10)
    model = Net(data.num_features, 5)
    model.body.load_state_dict(source.body.state_dict())
    body0 = [p.detach().clone() for p in model.body.parameters()]

    dp = build_arm(arm)
    penalty = None
    if dp is not None:
        if not isinstance(dp, DiffPruning):
            raise ValueError(f"diff_transfer task: the arm must be a diff_pruning config, got {arm!r}")
        dp(model.body)
        groups = [{"params": dp.diff_parameters() + list(model.head.parameters()), "lr": LR},
                  {"params": dp.alpha_parameters(), "lr": ALPHA_LR}]
        penalty = dp.penalty
    elif freeze_body:
        for p in model.body.parameters():
            p.requires_grad_(False)
        groups = [{"params": list(model.head.parameters()), "lr": LR}]
    else:
        groups = [{"params": list(model.parameters()), "lr": LR}]
    opt = torch.optim.Adam(groups)

    selection = SelectOnValidation(model)
    changed_at: dict[int, float] = {}
    val_curve: list[float] = []
    test_curve: list[float] = []
    epochs = QUICK_EPOCHS if quick else TARGET_EPOCHS
    gen = torch.Generator().manual_seed(seed + 1)
    steps, wall, cpu = 0, 0.0, 0.0
    epoch_cpu: list[float] = []
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(x_tr.shape[0], generator=gen)
        w0, c0 = time.perf_counter(), time.process_time()
        for start in range(0, x_tr.shape[0], BATCH):
            idx = perm[start:start + BATCH]
            loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
            if penalty is not None:
                loss = loss + penalty()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        epoch_cpu.append(cpu)
        model.eval()
        val_curve.append(accuracy(model, x_va, y_va))
        test_curve.append(accuracy(model, x_te, y_te))
        if dp is not None:
            changed_at[epoch] = dp.changed_fraction()
        selection.update(val_curve[-1], epoch)
    best = selection.best_model()
    if dp is not None:
        changed = changed_at[selection.best_epoch]
    else:
        with torch.no_grad():
            moved = sum(int((p.detach() != q).sum()) for p, q in zip(best.body.parameters(), body0))
        changed = moved / sum(q.numel() for q in body0)
    metrics = {"test_accuracy": accuracy(best, x_te, y_te), "final_accuracy": test_curve[-1],
               "changed_fraction": changed, "val_accuracy": selection.best_score}
    timing = Timing(wall / max(steps, 1), cpu / max(steps, 1), epoch_cpu)
    what = ("diff pruning on the body (Adam 1e-3 diffs + head, Adam 0.1 gates)" if dp is not None else
            "head only (body frozen)" if freeze_body else "full fine-tuning (Adam 1e-3)")
    setup = {
        "data": f"{data.describe()}; as the transfer task (source digits 0-4; target {share:.0%} of 5-9)",
        "model": "MLP body 64-256-256 (ReLU) + new 5-way head, body from the source",
        "training": f"source as transfer; target: {what}, batch {BATCH}, {epochs} epochs",
        "selection": "epoch of best target-validation accuracy",
    }
    return result(metrics, {"test_accuracy": test_curve, "val_accuracy": val_curve}, timing, t0, setup)
