"""Lab task ``diff_transfer``: the ``transfer`` setting, fine-tuned through a reparametrization of the body.

Source and target data, model and source pre-training are those of the
``transfer`` task (same seeds, same code: its ``Net`` and class split). The
target fine-tuning (batch 32, 60 epochs; 4 + 4 in quick mode, epoch of best
target-validation accuracy) differs in what trains:

* no arm: full fine-tuning, Adam 1e-3 on every parameter (the ``transfer``
  baseline, run here with this task's own optimizer loop);
* ``freeze_body=True``: the body is frozen, only the new head trains;
* a ``diff_pruning`` arm: applied to the body (θ₀ frozen), Adam 1e-3 on the
  diffs and the head, Adam 0.1 on the gates' log α (official), loss + its penalty;
* a ``lottery_ticket_sft`` arm: phase 1 full fine-tuning (the same epochs), then
  the top-K |Δ| of the body are kept, the body reset to its pre-trained values
  and phase 2 (the same epochs, a new Adam 1e-3) trains only those entries and
  the head; the epoch is selected within phase 2.

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
from reglab.methods.lottery_ticket_sft import LotteryTicketSFT

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

    reg = build_arm(arm)
    epochs = QUICK_EPOCHS if quick else TARGET_EPOCHS
    cpu_total, steps_total, wall_total, epoch_cpu = 0.0, 0, 0.0, []

    def fit(groups, penalty, fit_seed, on_epoch=None):
        nonlocal cpu_total, steps_total, wall_total
        opt = torch.optim.Adam(groups)
        selection = SelectOnValidation(model)
        gen = torch.Generator().manual_seed(fit_seed)
        curves: tuple[list[float], list[float]] = ([], [])
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
                steps_total += 1
            wall_total += time.perf_counter() - w0
            cpu_total += time.process_time() - c0
            epoch_cpu.append(cpu_total)
            model.eval()
            curves[0].append(accuracy(model, x_va, y_va))
            curves[1].append(accuracy(model, x_te, y_te))
            if on_epoch is not None:
                on_epoch(epoch)
            selection.update(curves[0][-1], epoch)
        return selection, curves

    changed_at: dict[int, float] = {}
    if isinstance(reg, DiffPruning):
        reg(model.body)
        groups = [{"params": reg.diff_parameters() + list(model.head.parameters()), "lr": LR},
                  {"params": reg.alpha_parameters(), "lr": ALPHA_LR}]
        selection, (val_curve, test_curve) = fit(
            groups, reg.penalty, seed + 1, on_epoch=lambda e: changed_at.__setitem__(e, reg.changed_fraction()))
    elif isinstance(reg, LotteryTicketSFT):
        reg.begin(model.body)
        fit([{"params": list(model.parameters()), "lr": LR}], None, seed + 1)  # phase 1: full fine-tuning
        reg(model.body)  # keep the top-K |θ₁ − θ₀|, reset the body to θ₀, mask the other gradients
        selection, (val_curve, test_curve) = fit([{"params": list(model.parameters()), "lr": LR}], None, seed + 2)
        reg.release()
    elif reg is not None:
        raise ValueError(f"diff_transfer task: the arm must be diff_pruning or lottery_ticket_sft, got {arm!r}")
    else:
        if freeze_body:
            for p in model.body.parameters():
                p.requires_grad_(False)
        params = list(model.head.parameters()) if freeze_body else list(model.parameters())
        selection, (val_curve, test_curve) = fit([{"params": params, "lr": LR}], None, seed + 1)
    best = selection.best_model()
    if isinstance(reg, DiffPruning):
        changed = changed_at[selection.best_epoch]
    else:
        with torch.no_grad():
            moved = sum(int((p.detach() != q).sum()) for p, q in zip(best.body.parameters(), body0))
        changed = moved / sum(q.numel() for q in body0)
    metrics = {"test_accuracy": accuracy(best, x_te, y_te), "final_accuracy": test_curve[-1],
               "changed_fraction": changed, "val_accuracy": selection.best_score}
    timing = Timing(wall_total / max(steps_total, 1), cpu_total / max(steps_total, 1), epoch_cpu)
    what = ("diff pruning on the body (Adam 1e-3 diffs + head, Adam 0.1 gates)" if isinstance(reg, DiffPruning)
            else f"LT-SFT on the body (full fine-tuning, keep the top {reg.proportion:.0%} |Δ|, reset, {epochs} "
            "more epochs with the other body gradients masked; Adam 1e-3 recreated)" if reg is not None
            else "head only (body frozen)" if freeze_body else "full fine-tuning (Adam 1e-3)")
    setup = {
        "data": f"{data.describe()}; as the transfer task (source digits 0-4; target {share:.0%} of 5-9)",
        "model": "MLP body 64-256-256 (ReLU) + new 5-way head, body from the source",
        "training": f"source as transfer; target: {what}, batch {BATCH}, {epochs} epochs",
        "selection": "epoch of best target-validation accuracy",
    }
    return result(metrics, {"test_accuracy": test_curve, "val_accuracy": val_curve}, timing, t0, setup)
