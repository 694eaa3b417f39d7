"""Lab task ``bbit_quantization``: accuracy after post-training b-bit uniform rounding of an MLP's weights.

An MLP 64-128-128-128-10 (ReLU) is trained on digits with Adam (lr 1e-3,
batch 64, ``weight_decay`` as given, default 0; ``epochs`` 20, 3 in quick
mode); the epoch with the best full-precision validation accuracy is kept
(the test split never selects). The arm, a weight transform such as
``pseudo_quantization_noise``, is registered as a parametrization
(``torch.nn.utils.parametrize``) of the two hidden-to-hidden Linear weights:
the forward sees the transformed weight in training, the optimizer updates
the clean one, and the transform is off in ``.eval()`` and removed (the clean
weight kept) before evaluation. The first and last layers are neither
transformed nor quantized (as the lab's ``quantization`` task).

After training, each of the two hidden weight tensors is rounded once to
2^``bits`` uniform levels over its own range (min-max, per tensor, the
uniform quantizer whose rounding error pseudo-quantization noise models):

    Δ = (max W − min W)/(2^b − 1),   Q(W) = min W + Δ·round((W − min W)/Δ)

No retraining. Metrics (test split): ``test_accuracy`` (full precision),
``quantized_accuracy``, ``quantization_drop`` (their difference),
``quantization_error`` (‖W − Q(W)‖/‖W‖ averaged over the two tensors), and
``val_quantized_accuracy`` (the quantized model on the validation split, for
tuning a baseline on development seeds without the test split).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from reglab.bench.data import load
from reglab.bench.experiments._train import SelectOnValidation, accuracy, mlp, result, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task

__all__ = ["bbit_quantization", "quantize_uniform"]

LR = 1e-3
BATCH = 64
#: the hidden-to-hidden Linear layers of ``mlp(64, 128, 10, depth=3)``: transformed in training, quantized after
HIDDEN = (2, 4)


@torch.no_grad()
def quantize_uniform(w: torch.Tensor, bits: int) -> torch.Tensor:
    """``w`` rounded to 2^bits uniform levels spanning [min w, max w] (one range per tensor)."""
    lo, hi = w.min(), w.max()
    step = (hi - lo) / (2**bits - 1)
    if float(step) == 0.0:
        return w.clone()
    return lo + step * torch.round((w - lo) / step)


@task("bbit_quantization", datasets=("digits",))
def bbit_quantization(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", bits: int = 4,
    epochs: int = 20, weight_decay: float = 0.0,
) -> TaskResult:
    if int(bits) < 1:
        raise ValueError(f"bbit_quantization task: bits must be >= 1, got {bits!r}")
    t0 = time.perf_counter()
    data = load(dataset, seed)
    epochs = 3 if quick else epochs
    torch.manual_seed(seed)
    model = mlp(data.num_features, 128, data.num_classes, depth=3)
    transform = build_arm(arm)
    if transform is not None:
        if not isinstance(transform, nn.Module) or getattr(transform, "form", None) != "transform":
            raise ValueError(f"bbit_quantization task: the arm must be a weight transform module, got {arm!r}")
        for i in HIDDEN:
            parametrize.register_parametrization(model[i], "weight", transform)
    select = SelectOnValidation(model)

    def step_loss(xb, yb, idx, epoch):
        return F.cross_entropy(model(xb), yb)

    timing = train_loop(
        model, data.x_train, data.y_train, step_loss, epochs=epochs, batch_size=BATCH, seed=seed, lr=LR,
        weight_decay=weight_decay,
        on_epoch_end=lambda e: select.update(accuracy(model, data.x_val, data.y_val), e),
    )  # fmt: skip
    best = select.best_model()
    if transform is not None:
        for i in HIDDEN:
            parametrize.remove_parametrizations(best[i], "weight", leave_parametrized=False)
    best.eval()
    quantized = mlp(data.num_features, 128, data.num_classes, depth=3)
    quantized.load_state_dict(best.state_dict())
    quantized.eval()
    errors = []
    with torch.no_grad():
        for i in HIDDEN:
            w = quantized[i].weight
            q = quantize_uniform(w, int(bits))
            errors.append(float((w - q).norm() / w.norm().clamp_min(1e-12)))
            w.copy_(q)
    full = accuracy(best, data.x_test, data.y_test)
    quant = accuracy(quantized, data.x_test, data.y_test)
    metrics = {
        "test_accuracy": full,
        "quantized_accuracy": quant,
        "quantization_drop": full - quant,
        "quantization_error": sum(errors) / len(errors),
        "val_quantized_accuracy": accuracy(quantized, data.x_val, data.y_val),
        "best_epoch": float(select.best_epoch + 1),
    }
    what = "none" if transform is None else f"{type(transform).__name__} as a parametrization of the hidden weights"
    setup = {
        "data": data.describe(),
        "model": "MLP 64-128-128-128-10 (ReLU); the two hidden-to-hidden Linear weights carry the arm and are quantized",
        "training": f"Adam lr {LR:g}, weight decay {weight_decay:g}, batch {BATCH}, {epochs} epochs; arm: {what}; "
        f"then {bits}-bit uniform min-max rounding per tensor, no retraining",
        "selection": "epoch with the best full-precision validation accuracy; test split only for the metrics",
    }
    return result(metrics, {}, timing, t0, setup)
