"""Lab task ``quantization``: accuracy after post-training binarization or ternarization of an MLP's weights.

An MLP 64-128-128-128-10 (ReLU) is trained on digits with Adam (lr 1e-3,
batch 64, 40 epochs; 3 in quick mode). The arm, a weight regularizer, is
bound with ``reglab.attach`` to the two middle Linear weights (the first and
last layers are excluded, as the official Cauchy–Schwarz code excludes the
first conv and the last FC layer). After training, those two weights are
quantized per row with the levels of ``levels`` (the official
``find_sfactors_qweights`` of IIP-Group/CS_regularizers):

* ``"binary"``: w ← mean|w_row| · sign(w);
* ``"ternary"``: per row, the k largest |w| become ±α with α their mean |w|
  and the others 0, with k maximizing (Σ_{top k}|w|)²/k (the optimal ternary
  approximation, their ``discretize_to_ternary``).

No retraining after quantization. Metrics on the test split, last epoch
(fixed schedule, the validation split is not used): ``test_accuracy``
(full precision), ``quantized_accuracy`` and their difference
``quantization_drop``; ``quantization_error`` is the relative Frobenius
error ‖W − Q(W)‖/‖W‖ averaged over the two quantized layers.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F

import reglab
from reglab.bench.data import load
from reglab.bench.experiments._train import accuracy, mlp, result, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task

__all__ = ["quantization", "binarize_rows", "ternarize_rows"]

LR = 1e-3
#: The regularized and quantized weights of ``mlp(64, 128, 10, depth=3)``: the middle layers.
QUANTIZED = ("2.weight", "4.weight")


@torch.no_grad()
def binarize_rows(w: torch.Tensor) -> torch.Tensor:
    """Per-row scaled sign: mean|w_row| · sign(w)."""
    return w.abs().mean(dim=1, keepdim=True) * torch.sign(w)


@torch.no_grad()
def ternarize_rows(w: torch.Tensor) -> torch.Tensor:
    """Per row, the optimal ternary approximation α·t, t ∈ {0, ±1}: the k largest |w| are kept,
    k maximizing (Σ_{top k}|w|)²/k, α = their mean |w|."""
    out = torch.zeros_like(w)
    for i, row in enumerate(w):
        mags, order = row.abs().sort(descending=True)
        csum = mags.cumsum(0)
        ks = torch.arange(1, row.numel() + 1, dtype=row.dtype)
        k = int(torch.argmax(csum.pow(2) / ks)) + 1
        keep = order[:k]
        out[i, keep] = (csum[k - 1] / k) * torch.sign(row[keep])
    return out


QUANTIZERS = {"binary": binarize_rows, "ternary": ternarize_rows}


@task("quantization", datasets=("digits", "digits_half"))
def quantization(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", levels: str = "binary",
    epochs: int = 40,
) -> TaskResult:
    if levels not in QUANTIZERS:
        raise ValueError(f"quantization task: levels must be one of {sorted(QUANTIZERS)}, got {levels!r}")
    t0 = time.perf_counter()
    data = load(dataset, seed)
    epochs = 3 if quick else epochs
    torch.manual_seed(seed)
    model = mlp(data.num_features, 128, data.num_classes, depth=3)
    reg = build_arm(arm)
    regs = None if reg is None else reglab.attach(model, reg.on(params=list(QUANTIZED)))

    def step_loss(xb, yb, idx, epoch):
        loss = F.cross_entropy(model(xb), yb)
        return loss if regs is None else loss + regs.penalty()

    acc_curve: list[float] = []
    timing = train_loop(
        model, data.x_train, data.y_train, step_loss, epochs=epochs, batch_size=64, seed=seed, lr=LR,
        on_epoch_end=lambda epoch: acc_curve.append(accuracy(model, data.x_test, data.y_test)),
    )  # fmt: skip
    if regs is not None:
        regs.detach()
    quantized = copy.deepcopy(model)
    params = dict(quantized.named_parameters())
    errors = []
    with torch.no_grad():
        for name in QUANTIZED:
            w = params[name]
            q = QUANTIZERS[levels](w)
            errors.append(float((w - q).norm() / w.norm().clamp_min(1e-12)))
            w.copy_(q)
    full = accuracy(model, data.x_test, data.y_test)
    quant = accuracy(quantized, data.x_test, data.y_test)
    metrics = {
        "test_accuracy": full,
        "quantized_accuracy": quant,
        "quantization_drop": full - quant,
        "quantization_error": sum(errors) / len(errors),
    }
    setup = {
        "data": data.describe(),
        "model": "MLP 64-128-128-128-10 (ReLU); the arm binds to the two middle Linear weights, which are quantized",
        "training": f"Adam lr {LR:g}, batch 64, {epochs} epochs; then {levels} quantization per row "
        "(official scaling rule), no retraining",
        "selection": "last epoch (fixed schedule); the validation split is not used",
    }
    return result(metrics, {"test_accuracy": acc_curve}, timing, t0, setup)
