"""Lab task ``posthoc_pruning``: one-shot pruning of a trained MLP on digits, no retraining.

A dense MLP d-``hidden``-…-10 (``depth`` ReLU hidden layers; 128 wide, one
hidden layer by default) trains with Adam 1e-3, batch 64, for ``epochs`` (30;
3 in quick mode); the epoch with the best validation accuracy is kept (the
test split never selects). The arm then prunes a copy of that model once, in
place, with no fine-tuning:

* ``net_trim``: ``NetTrim(model, x)`` on the calibration inputs (its sparsity
  follows from its ε);
* ``ecoflap``: ``ECoFLaP(model, batches, loss_fn)`` with the cross-entropy on
  the calibration batches (its target sparsity is in its config);
* no arm: no pruning (the dense model).

Calibration data: the training split (inputs, and labels for ECoFLaP's loss),
in its stored order, in batches of 128 for ECoFLaP; in quick mode its first
128 samples and at most 300 Net-Trim ADMM iterations per layer. The arm's pruned model fixes the non-zero counts; in the same
run, from the same dense model, the task prunes four comparison models to
those counts (Linear weights only; biases stay as they are):

* ``magnitude_matched``: each Linear keeps the arm's number of non-zero weights
  in that layer, the largest |W| (Net-Trim's comparison: hard thresholding at
  the same non-zeros per layer);
* ``wanda_matched``: each output row keeps the arm's number of non-zeros in
  that row, the largest |W_ij|·‖X_j‖₂ (Wanda's score, ``wanda_mask``; layers in
  forward order, each on the inputs of the already pruned network, as Wanda);
* ``magnitude_uniform``: every Linear at the arm's overall sparsity ŝ (zeros
  over all Linear weights): the round(n·ŝ) smallest |W| of each layer zeroed;
* ``wanda_uniform``: every row at ŝ, its round(in·ŝ) smallest |W_ij|·‖X_j‖₂ zeroed
  (uniform Wanda, calibrated like ``wanda_matched``; ``wanda_mask``'s score).

Because the comparison models need the arm's counts, they are computed in
the arm's run, so the pairing is exact: the same split, initialization,
batch order, dense model and calibration data; a claim's baseline reads
another metric of the same run.

Metrics (test split): ``accuracy`` (the arm's pruned model; no arm: the dense
model), ``dense_accuracy``, ``sparsity`` (ŝ) and ``nonzeros`` (non-zero Linear
weights of the arm's model), ``uniform_sparsity`` (the share of zeros of
``wanda_uniform``, equal to ŝ up to the per-row rounding), and
``{magnitude,wanda}_{matched,uniform}_accuracy``; ``layer{i}_sparsity`` per
Linear of the arm's model.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.data import load
from reglab.bench.experiments._train import SelectOnValidation, accuracy, mlp, result, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task
from reglab.methods.ecoflap import ECoFLaP
from reglab.methods.net_trim import NetTrim, net_trim_

LR = 1e-3
BATCH = 64
CALIB_BATCH = 128
QUICK_CALIB = 128
QUICK_ITERATIONS = 300  # Net-Trim's ADMM in quick mode (a smoke test, not a result)


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


@torch.no_grad()
def _magnitude_keep(weight: torch.Tensor, keep: int) -> torch.Tensor:
    """Keep-mask of the ``keep`` largest |W| of one layer (stable order on ties)."""
    flat = weight.detach().abs().flatten()
    mask = torch.zeros_like(flat, dtype=torch.bool)
    if keep > 0:
        mask[torch.sort(flat, descending=True, stable=True)[1][:keep]] = True
    return mask.view_as(weight)


@torch.no_grad()
def _wanda_row_keep(weight: torch.Tensor, inputs: torch.Tensor, keep_per_row: torch.Tensor) -> torch.Tensor:
    """Keep-mask of the ``keep_per_row[r]`` largest |W_rj|·‖X_j‖₂ in each row r (Wanda's score)."""
    metric = weight.detach().abs().double() * inputs.double().pow(2).sum(0).sqrt()[None, :]
    order = torch.sort(metric, dim=1, descending=True, stable=True)[1]
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(weight.shape[1]).expand_as(order).contiguous())
    return ranks < keep_per_row[:, None]


@torch.no_grad()
def _sequential_prune(model: nn.Module, x: torch.Tensor, mask_of) -> nn.Module:
    """A copy of ``model`` pruned layer by layer in forward order; ``mask_of(i, weight, inputs)`` gives the
    keep-mask of Linear i from its inputs in the already pruned copy (Wanda's sequential calibration)."""
    out = copy.deepcopy(model).eval()
    for i, layer in enumerate(_linears(out)):
        seen: list[torch.Tensor] = []
        handle = layer.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0].detach()))
        try:
            out(x)
        finally:
            handle.remove()
        layer.weight.mul_(mask_of(i, layer.weight, seen[0]).to(layer.weight.dtype))
    return out


@torch.no_grad()
def _magnitude_copy(model: nn.Module, keeps: list[int]) -> nn.Module:
    out = copy.deepcopy(model).eval()
    for layer, k in zip(_linears(out), keeps):
        layer.weight.mul_(_magnitude_keep(layer.weight, k).to(layer.weight.dtype))
    return out


def _zeros(model: nn.Module) -> tuple[int, int]:
    ws = [m.weight for m in _linears(model)]
    return sum(int((w == 0).sum()) for w in ws), sum(w.numel() for w in ws)


@task("posthoc_pruning", datasets=("digits", "digits_half"))
def posthoc_pruning(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", epochs: int = 30,
    hidden: int = 128, depth: int = 1,
) -> TaskResult:
    t0 = time.perf_counter()
    data = load(dataset, seed)
    epochs = 3 if quick else epochs
    torch.manual_seed(seed)
    model = mlp(data.num_features, hidden, data.num_classes, depth=depth)
    select = SelectOnValidation(model)

    def step_loss(xb, yb, idx, epoch):
        return F.cross_entropy(model(xb), yb)

    timing = train_loop(
        model, data.x_train, data.y_train, step_loss, epochs=epochs, batch_size=BATCH, seed=seed, lr=LR,
        on_epoch_end=lambda e: select.update(accuracy(model, data.x_val, data.y_val), e),
    )  # fmt: skip
    dense = select.best_model()
    x_cal, y_cal = data.x_train, data.y_train
    if quick:
        x_cal, y_cal = x_cal[:QUICK_CALIB], y_cal[:QUICK_CALIB]

    pruned = copy.deepcopy(dense)
    method = build_arm(arm)
    if method is None:
        what = "none (the dense model)"
    elif isinstance(method, NetTrim):
        iterations = min(method.max_iteration, QUICK_ITERATIONS) if quick else method.max_iteration
        net_trim_(pruned, x_cal, method.epsilon_gain, method.rho, iterations)
        what = f"Net-Trim (ε = {method.epsilon_gain:g}·‖Y‖_F per layer, ρ = {method.rho:g}, ≤ {iterations} ADMM iterations)"
    elif isinstance(method, ECoFLaP):
        batches = [(x_cal[i : i + CALIB_BATCH], y_cal[i : i + CALIB_BATCH]) for i in range(0, len(y_cal), CALIB_BATCH)]
        method(pruned, batches, lambda m, b: F.cross_entropy(m(b[0]), b[1]))
        what = f"ECoFLaP (target sparsity {method.sparsity:g}, zeroth-order scores, Wanda per layer)"
    else:
        raise ValueError(f"posthoc_pruning task: the arm must be net_trim or ecoflap (or None), got {arm!r}")
    pruned.eval()

    layers = _linears(pruned)
    keeps = [int((m.weight != 0).sum()) for m in layers]
    row_keeps = [(m.weight != 0).sum(1) for m in layers]
    zeros, total = _zeros(pruned)
    s_hat = zeros / total
    magnitude_matched = _magnitude_copy(dense, keeps)
    wanda_matched = _sequential_prune(dense, x_cal, lambda i, w, x: _wanda_row_keep(w, x, row_keeps[i]))
    magnitude_uniform = _magnitude_copy(dense, [m.weight.numel() - round(m.weight.numel() * s_hat) for m in layers])
    wanda_uniform = _sequential_prune(
        dense, x_cal, lambda i, w, x: _wanda_row_keep(w, x, torch.full((w.shape[0],), w.shape[1] - round(w.shape[1] * s_hat))))
    uz, ut = _zeros(wanda_uniform)

    def acc(m: nn.Module) -> float:
        return accuracy(m, data.x_test, data.y_test)

    metrics = {
        "accuracy": acc(pruned),
        "dense_accuracy": acc(dense),
        "sparsity": s_hat,
        "nonzeros": float(total - zeros),
        "uniform_sparsity": uz / ut,
        "magnitude_matched_accuracy": acc(magnitude_matched),
        "wanda_matched_accuracy": acc(wanda_matched),
        "magnitude_uniform_accuracy": acc(magnitude_uniform),
        "wanda_uniform_accuracy": acc(wanda_uniform),
        "dense_epoch": float(select.best_epoch + 1),
    }
    for i, m in enumerate(layers):
        metrics[f"layer{i}_sparsity"] = float((m.weight == 0).float().mean())
    sizes = "-".join(str(v) for v in [data.num_features] + [hidden] * depth + [data.num_classes])
    setup = {
        "data": data.describe(),
        "model": f"MLP {sizes} (ReLU), pruned one-shot after training, no retraining",
        "training": f"dense: Adam lr {LR:g}, batch {BATCH}, {epochs} epochs; then the arm prunes once: {what}; "
                    f"calibration on the {'first ' + str(QUICK_CALIB) + ' ' if quick else ''}training samples",
        "pruning": "comparison models from the same dense model: magnitude per layer and Wanda per row at the "
                   "arm's non-zero counts (matched), and at the arm's overall sparsity in every layer / row (uniform)",
        "selection": "dense epoch with the best validation accuracy; test split only for the reported metrics",
    }
    return result(metrics, {}, timing, t0, setup)
