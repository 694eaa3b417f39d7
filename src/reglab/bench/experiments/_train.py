"""Small training helpers shared by the lab tasks: models, a minibatch loop, metrics.

Everything is seeded from the task's ``seed`` (initialization and batch
order), runs on CPU in a few seconds, and uses only torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from reglab import functional as RF

__all__ = [
    "mlp",
    "small_cnn",
    "train_loop",
    "accuracy",
    "ece",
    "memorization_rate",
    "output_loss",
    "build_output_arm",
    "occlude",
]


def mlp(d_in: int = 64, hidden: int = 256, d_out: int = 10, depth: int = 1, dropout: float = 0.0) -> nn.Sequential:
    """``depth`` hidden ReLU layers of width ``hidden``; optional dropout before the head."""
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


def small_cnn(num_classes: int = 10, width: int = 16) -> nn.Sequential:
    """Two 3×3 conv layers for 1×8×8 digits, then a linear head."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * 16, num_classes),
    )


StepFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


def train_loop(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    step_loss: StepFn,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    on_epoch_end: Callable[[int], None] | None = None,
    on_epoch_start: Callable[[int], None] | None = None,
    after_step: Callable[[torch.optim.Optimizer], None] | None = None,
) -> float:
    """Adam over shuffled minibatches; ``step_loss(xb, yb, idx, epoch)`` returns the loss.

    ``idx`` are the dataset indices of the batch (for per-sample buffers).
    ``after_step(optimizer)`` runs after each ``optimizer.step()`` (e.g.
    ``regs.step`` for proximal updates and schedules).
    Returns the mean wall time of one optimizer step.
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed + 1)
    n = x.shape[0]
    steps, t0 = 0, time.perf_counter()
    for epoch in range(epochs):
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        model.train()
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            loss = step_loss(x[idx], y[idx], idx, epoch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if after_step is not None:
                after_step(opt)
            steps += 1
        if on_epoch_end is not None:
            model.eval()
            with torch.no_grad():
                on_epoch_end(epoch)
    return (time.perf_counter() - t0) / max(steps, 1)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(dim=1) == y).float().mean())


@torch.no_grad()
def ece(probs: torch.Tensor, y: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error with ``n_bins`` equal-width confidence bins (Guo et al., 2017)."""
    conf, pred = probs.max(dim=1)
    correct = (pred == y).float()
    edges = torch.linspace(0, 1, n_bins + 1)
    total = torch.zeros(())
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            total += in_bin.float().mean() * (conf[in_bin].mean() - correct[in_bin].mean()).abs()
    return float(total)


@torch.no_grad()
def memorization_rate(model: nn.Module, x: torch.Tensor, y_noisy: torch.Tensor, y_clean: torch.Tensor) -> float:
    """Share of the wrongly labelled training samples that the model predicts as their wrong label."""
    noisy = y_noisy != y_clean
    if not noisy.any():
        return 0.0
    model.eval()
    pred = model(x[noisy]).argmax(dim=1)
    return float((pred == y_noisy[noisy]).float().mean())


def output_loss(arm: object, logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus an output regularizer used in its natural form.

    ``arm`` is None (plain CE), a target transform (``pskd``,
    ``label_smoothing``), a logits module (``logit_clip``) or a penalty on
    logits (``elr`` takes the dataset indices too).
    """
    name = getattr(arm, "name", None)
    if arm is None:
        return F.cross_entropy(logits, y)
    if name == "elr":
        return F.cross_entropy(logits, y) + arm(logits, idx)
    if name == "pskd":
        return RF.soft_cross_entropy(logits, arm(y, idx, logits))
    if name == "label_smoothing":
        return RF.soft_cross_entropy(logits, arm(y, logits.shape[1]))
    if getattr(arm, "form", None) == "module":
        return F.cross_entropy(arm(logits), y)
    if getattr(arm, "form", None) == "penalty" and getattr(arm, "num_inputs", 1) == 1:
        return F.cross_entropy(logits, y) + arm(logits)
    raise ValueError(f"output_loss does not know how to use {type(arm).__name__} on logits")


def build_output_arm(arm: dict | None, *, num_samples: int, num_classes: int, total_epochs: int):
    """Build an output-regularizer arm, passing the dataset sizes only to classes that take them.

    ``total_epochs`` (PS-KD's T) is always the task's epoch count, so the α
    ramp spans the run whatever the config says.
    """
    if arm is None:
        return None
    import inspect

    from reglab.bench.tasks import build_arm
    from reglab.core.registry import get

    accepted = inspect.signature(get(arm["name"]).__init__).parameters
    sizes = {"num_samples": num_samples, "num_classes": num_classes, "total_epochs": total_epochs}
    return build_arm(arm, **{k: v for k, v in sizes.items() if k in accepted})



def train_output_mlp(
    data,
    arm: dict | None,
    *,
    seed: int,
    epochs: int,
    batch_size: int,
    on_epoch_end: Callable[[nn.Module, int], None],
) -> tuple[nn.Module, float]:
    """Train ``mlp(64, 256, C)`` on ``data``'s training split with an output arm.

    The arm is built with :func:`build_output_arm` and used through
    :func:`output_loss`; ``on_epoch_end(model, epoch)`` records the task's
    curves. Returns the model and the mean step time.
    """
    n, c = data.x_train.shape[0], data.num_classes
    torch.manual_seed(seed)
    model = mlp(64, 256, c)
    reg = build_output_arm(arm, num_samples=n, num_classes=c, total_epochs=epochs)

    def step_loss(xb, yb, idx, epoch):
        return output_loss(reg, model(xb), yb, idx)

    step_s = train_loop(
        model, data.x_train, data.y_train, step_loss,
        epochs=epochs, batch_size=batch_size, seed=seed,
        on_epoch_end=lambda epoch: on_epoch_end(model, epoch),
        on_epoch_start=getattr(reg, "set_epoch", None),
    )  # fmt: skip
    return model, step_s

def occlude(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one random ``size``×``size`` square fully inside each (N, 1, H, W) image."""
    n, _, h, w = images.shape
    top = torch.randint(0, h - size + 1, (n, 1, 1), generator=generator)
    left = torch.randint(0, w - size + 1, (n, 1, 1), generator=generator)
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return images * (~inside).float()[:, None]
