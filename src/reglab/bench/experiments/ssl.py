"""Lab task ``ssl_collapse``: two-view self-supervised training on digits.

An MLP encoder 64→256→32 is trained on two augmented views (a random pixel
shift of up to one pixel plus Gaussian noise, ``augment_digits``) of each
training image. The baseline (``arm=None``) minimizes only the invariance
term, the mean squared distance between the views' embeddings, which the
encoder can satisfy by collapsing. An arm is either a two-view regularizer
that is the whole SSL loss (``{"name": "vicreg"}``: invariance + variance +
covariance) or a single-view regularizer bound to the encoder's hidden layer
with ``.on(activations=...)`` and added to the invariance loss (``{"name":
"vcreg"}``). Metrics on the test split: the effective rank of the embeddings
(exp of the entropy of their normalized singular values, see ``_rank``),
the number of embedding dimensions with std < 1e-2, and the accuracy of a
logistic-regression probe trained on frozen train-split embeddings. Every
run also reports the probe accuracy of the same encoder before training
(``untrained_probe_accuracy``) and of the raw pixels
(``raw_probe_accuracy``): the baselines an SSL claim must beat.

Task arguments for single-view arms: ``bind`` is where the arm is bound,
``"hidden"`` (the 256-unit ReLU layer, default) or ``"output"`` (the 32-d
embedding that is probed, as DINOv2 puts KoLeo on the backbone output);
``base`` is the loss it is added to, ``"invariance"`` (default) or
``"vicreg"`` (the full VICReg loss, to test a regularizer added to a working
SSL loss). With ``arm=None`` the run trains ``base`` alone.

Spread and retrieval metrics, on the L2-normalized test embeddings
x_i = z_i/‖z_i‖ (``_spread_metrics``):

* ``nn_distance``: mean over test rows of min_{j≠i} ‖x_i − x_j‖ (the
  distance KoLeo maximizes), higher = more spread;
* ``uniformity``: Wang & Isola's log mean_{i<j} exp(−2‖x_i − x_j‖²),
  lower = more uniform on the sphere;
* ``recall_float``: recall@1 of the same class: the share of test queries
  whose nearest train embedding (L2 on normalized vectors, the train split
  as database) has the query's class;
* ``recall_sq8``: the same with the database stored in 8 bits per
  dimension: per dimension, min and max over the normalized train
  embeddings, codes round(255·(x − min)/(max − min)) clamped to [0, 255],
  decoded to min + code·(max − min)/255; the queries stay in float
  (asymmetric distance, as a faiss ``IndexScalarQuantizer`` QT_8bit
  searches);
* ``recall_sq4``: the same at 4 bits per dimension (codes
  round(15·(x − min)/(max − min)), 16 levels): the compression where a
  badly spread embedding loses neighbours;
* ``recall_binary``: the same at 1 bit per dimension: code x ≥ μ per
  dimension (μ the train mean), decoded to the mean of the train values on
  that side (the best 1-bit reconstruction for that threshold); queries in
  float, L2 to the decoded database (asymmetric, as the scalar codes).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.data import augment_digits, load
from reglab.bench.experiments._train import fused_optimizer, probe_accuracy
from reglab.bench.tasks import TaskResult, build_arm, task

__all__ = ["ssl_collapse"]


def _encoder() -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 32))


#: Where a single-view arm is bound (``bind``): the hidden ReLU layer or the embedding.
_BIND = {"hidden": "1", "output": "2"}

#: A principal direction whose standard deviation is below this counts as
#: collapsed (the catalog's collapse criterion, std < 1e-2).
COLLAPSE_STD = 1e-2


def _rank(z: torch.Tensor) -> float:
    """Effective rank (exp of the entropy of the normalized singular values) of
    the centred embeddings over their non-collapsed principal directions.

    Centred, because collapse to one point would otherwise count as one
    healthy direction (the mean); floored at ``COLLAPSE_STD`` because the
    entropy is scale-free and would call a shrunken but still full-rank cloud
    of std 1e-4 healthy. No surviving direction gives 1 (complete collapse).
    """
    zc = (z - z.mean(dim=0)).double()
    s = torch.linalg.svdvals(zc) / (z.shape[0] - 1) ** 0.5  # std along each principal direction
    s = s[s >= COLLAPSE_STD]
    if s.numel() == 0:
        return 1.0
    p = s / s.sum()
    return float(torch.exp(-(p * p.log()).sum()))


@torch.no_grad()
def _embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    z = model(x)
    model.train()
    return z


def _nearest_other(x: torch.Tensor) -> torch.Tensor:
    """For each row, the distance to its nearest other row."""
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    return d.min(dim=1).values


def _scalar_quantized(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """Encode to ``bits`` bits per dimension on [lo, hi] and decode (see the module docstring)."""
    top = float(2**bits - 1)
    scale = (hi - lo).clamp_min(1e-12)
    codes = torch.round((x - lo) / scale * top).clamp(0.0, top)
    return lo + codes * scale / top


def _binary_quantized(x: torch.Tensor) -> torch.Tensor:
    """One bit per dimension: x ≥ the column mean, decoded to the mean of the column's values on that side."""
    mean = x.mean(dim=0)
    high = x >= mean
    n_high = high.sum(dim=0)
    n_low = x.shape[0] - n_high
    high_value = (x * high).sum(dim=0) / n_high.clamp_min(1)
    low_value = (x * ~high).sum(dim=0) / n_low.clamp_min(1)
    # a constant column has no low side: both sides decode to its mean
    low_value = torch.where(n_low > 0, low_value, mean)
    return torch.where(high, high_value, low_value)


def _recall_at_1(queries: torch.Tensor, y_q: torch.Tensor, database: torch.Tensor, y_db: torch.Tensor) -> float:
    nearest = torch.cdist(queries, database).argmin(dim=1)
    return float((y_db[nearest] == y_q).double().mean())


def _spread_metrics(
    z_tr: torch.Tensor, y_tr: torch.Tensor, z_te: torch.Tensor, y_te: torch.Tensor
) -> dict[str, float]:
    """nn_distance, uniformity, recall_float, recall_sq8, recall_sq4, recall_binary (module docstring)."""
    x_tr = F.normalize(z_tr.double(), dim=1)
    x_te = F.normalize(z_te.double(), dim=1)
    iu = torch.triu_indices(x_te.shape[0], x_te.shape[0], offset=1)
    sq = torch.cdist(x_te, x_te).pow(2)[iu[0], iu[1]]
    lo, hi = x_tr.amin(dim=0), x_tr.amax(dim=0)
    return {
        "nn_distance": float(_nearest_other(x_te).mean()),
        "uniformity": float(torch.logsumexp(-2.0 * sq, dim=0) - math.log(sq.numel())),
        "recall_float": _recall_at_1(x_te, y_te, x_tr, y_tr),
        "recall_sq8": _recall_at_1(x_te, y_te, _scalar_quantized(x_tr, lo, hi, 8), y_tr),
        "recall_sq4": _recall_at_1(x_te, y_te, _scalar_quantized(x_tr, lo, hi, 4), y_tr),
        "recall_binary": _recall_at_1(x_te, y_te, _binary_quantized(x_tr), y_tr),
    }


#: (dataset, seed) -> the reference metrics of that split and initial encoder (per worker process)
_REFERENCE: dict[tuple[str, int], dict[str, float]] = {}


def _reference_metrics(
    dataset: str, seed: int, data: Any, untrained: tuple[torch.Tensor, torch.Tensor]
) -> dict[str, float]:
    """``untrained_probe_accuracy``, ``untrained_effective_rank``, ``raw_probe_accuracy``: the same for
    every arm of a (dataset, seed), since all start from the same split and the same initial encoder,
    so a worker computes them once per (dataset, seed), not once per arm (the probes are a third of
    an SSL run's time)."""
    key = (dataset, seed)
    if key not in _REFERENCE:
        if len(_REFERENCE) >= 16:
            _REFERENCE.clear()
        _REFERENCE[key] = {
            "untrained_probe_accuracy": probe_accuracy(untrained[0], data.y_train, untrained[1], data.y_test),
            "untrained_effective_rank": _rank(untrained[1]),
            "raw_probe_accuracy": probe_accuracy(data.x_train, data.y_train, data.x_test, data.y_test),
        }
    return dict(_REFERENCE[key])


@task("ssl_collapse", datasets=("digits", "digits_half"))  # the views shift 8×8 images
def ssl_collapse(
    arm: dict[str, Any] | None,
    *,
    seed: int,
    quick: bool = False,
    dataset: str = "digits",
    epochs: int = 50,
    batch_size: int = 128,
    lr: float = 1e-3,
    bind: str = "hidden",
    base: str = "invariance",
) -> TaskResult:
    if bind not in _BIND:
        raise ValueError(f"ssl_collapse: bind must be one of {sorted(_BIND)}, got {bind!r}")
    if base not in ("invariance", "vicreg"):
        raise ValueError(f"ssl_collapse: base must be 'invariance' or 'vicreg', got {base!r}")
    start = time.perf_counter()
    torch.manual_seed(seed)
    data = load(dataset, seed)
    gen = torch.Generator().manual_seed(seed)
    model = _encoder()
    # The two reference points every SSL claim must beat, from the same seed:
    # the encoder at its initialization, and a probe on the raw pixels.
    untrained = _embed(model, data.x_train), _embed(model, data.x_test)
    reg = build_arm(arm)
    regs = None
    if reg is not None and getattr(reg, "num_inputs", 1) == 1:
        from reglab import attach

        # single-view arm: regularize the hidden layer's activations, next to the invariance term
        regs = attach(model, reg.on(activations=_BIND[bind]))
    base_loss = build_arm({"name": "vicreg"}) if base == "vicreg" else None
    opt = fused_optimizer(torch.optim.Adam, model.parameters(), lr=lr)
    epochs = 6 if quick else epochs
    n = data.x_train.shape[0]
    ranks: list[float] = []
    step_times: list[float] = []
    step_cpu: list[float] = []
    epoch_cpu: list[float] = []
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - batch_size + 1, batch_size):  # full batches: stable batch statistics
            x = data.x_train[perm[i : i + batch_size]]
            t0, c0 = time.perf_counter(), time.process_time()
            views = augment_digits(torch.cat([x, x]), gen)  # both views' augmentations in one call
            if regs is None:  # one forward over both views (an MLP treats rows independently)
                z1, z2 = model(views).chunk(2)
            else:  # two forwards: the bound regularizer sees each view's activations as its own batch
                z1, z2 = model(views[: len(x)]), model(views[len(x) :])
            if reg is None or regs is not None:
                loss = F.mse_loss(z1, z2) if base_loss is None else base_loss(z1, z2)
                if regs is not None:
                    loss = loss + regs.penalty()
            else:
                loss = reg(z1, z2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step_times.append(time.perf_counter() - t0)
            step_cpu.append(time.process_time() - c0)
        epoch_cpu.append(sum(step_cpu))
        ranks.append(_rank(_embed(model, data.x_test)))
    if regs is not None:
        regs.detach()
    z_tr, z_te = _embed(model, data.x_train), _embed(model, data.x_test)
    metrics = {
        "effective_rank": _rank(z_te),
        "collapsed_dims": float((z_te.std(dim=0) < COLLAPSE_STD).sum()),
        "linear_probe_accuracy": probe_accuracy(z_tr, data.y_train, z_te, data.y_test),
        **_reference_metrics(dataset, seed, data, untrained),
        **_spread_metrics(z_tr, data.y_train, z_te, data.y_test),
    }
    setup = {
        "data": f"{data.describe()}; two views per image: ±1-pixel shift + Gaussian pixel noise (σ 0.1)",
        "model": "MLP encoder 64-256-32 (ReLU); probe: logistic regression (C=1) on frozen train embeddings",
        "training": f"Adam lr {lr:g}, batch {batch_size} (full batches only), {epochs} epochs",
        "selection": "last epoch (fixed schedule); the validation split is not used",
    }
    if bind != "hidden" or base != "invariance":
        setup["loss"] = f"{base} loss" + (f" + the arm on the {bind} layer" if regs is not None else "")
    return TaskResult(
        metrics=metrics,
        curves={"effective_rank": ranks, "cpu_seconds": epoch_cpu},
        step_seconds=sum(step_times) / max(len(step_times), 1),
        seconds=time.perf_counter() - start,
        step_cpu_seconds=sum(step_cpu) / max(len(step_cpu), 1),
        setup=setup,
    )
