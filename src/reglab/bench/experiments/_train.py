"""Small training helpers shared by the lab tasks: models, a minibatch loop, metrics.

Everything is seeded from the task's ``seed`` (initialization and batch
order), runs on CPU in a few seconds, and uses only torch.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from reglab import functional as RF

__all__ = [
    "mlp",
    "small_cnn",
    "mnist1d_cnn",
    "classifier",
    "train_loop",
    "train_output_model",
    "fused_optimizer",
    "Timing",
    "SelectOnValidation",
    "fit_temperature",
    "result",
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


class _Signal(nn.Module):
    """(n, L) signals -> (n, 1, L) for a Conv1d stack."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1)


def mnist1d_cnn(length: int = 40, num_classes: int = 10, channels: int = 25) -> nn.Sequential:
    """The convolutional baseline of MNIST-1D (Greydanus & Kobak 2024, ``ConvBase`` in the
    official repository's ``models.py``): three stride-2 Conv1d layers of 25 channels
    (kernels 5, 3, 3, padding 1) with ReLU, then a linear head."""
    convs = nn.Sequential(
        _Signal(),
        nn.Conv1d(1, channels, 5, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
    )
    with torch.no_grad():
        width = convs(torch.zeros(1, length)).shape[1]
    return nn.Sequential(*convs, nn.Linear(width, num_classes))


def classifier(data) -> tuple[nn.Module, str]:
    """The lab's classifier for a dataset, and its description: the MLP d-256-C on
    digits, MNIST-1D's own convolutional baseline on MNIST-1D (an MLP of this size
    reaches only about half its accuracy there, too weak to say anything about
    regularization)."""
    if data.name == "mnist1d":
        return mnist1d_cnn(data.num_features, data.num_classes), "MNIST-1D ConvBase: 3× Conv1d(25, stride 2)-ReLU, linear head"
    return mlp(data.num_features, 256, data.num_classes), f"MLP {data.num_features}-256-{data.num_classes} (ReLU)"


StepFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


@dataclass
class Timing:
    """What a training loop cost: per optimizer step, and cumulative per epoch."""

    step_seconds: float  # mean wall time of one step
    step_cpu_seconds: float  # mean process CPU time of one step (the lab's workers are single-threaded)
    epoch_cpu_seconds: list[float]  # process CPU time spent in training steps up to the end of each epoch


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
    procedure: dict | None = None,
    optimizer: str = "adam",
) -> Timing:
    """Adam over shuffled minibatches; ``step_loss(xb, yb, idx, epoch)`` returns the loss.

    ``idx`` are the dataset indices of the batch (for per-sample buffers).
    ``after_step(optimizer)`` runs after each ``optimizer.step()`` (e.g.
    ``regs.step`` for proximal updates and schedules). ``procedure`` is the
    config of a training-procedure arm that replaces backward + step (see
    ``optimizer_step``); ``optimizer`` is ``"adam"`` or ``"sgd"``
    (momentum 0.9). Only the steps are timed, not the per-epoch
    evaluation.
    """
    opt, update = optimizer_step(model, procedure, lr=lr, weight_decay=weight_decay, optimizer=optimizer)
    gen = torch.Generator().manual_seed(seed + 1)
    n = x.shape[0]
    steps, wall, cpu = 0, 0.0, 0.0
    epoch_cpu: list[float] = []
    for epoch in range(epochs):
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        model.train()
        perm = torch.randperm(n, generator=gen)
        w0, c0 = time.perf_counter(), time.process_time()
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            update(lambda: step_loss(x[idx], y[idx], idx, epoch))
            if after_step is not None:
                after_step(opt)
            steps += 1
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        epoch_cpu.append(cpu)
        if on_epoch_end is not None:
            model.eval()
            with torch.no_grad():
                on_epoch_end(epoch)
    return Timing(wall / max(steps, 1), cpu / max(steps, 1), epoch_cpu)


#: Every lab optimizer runs its fused CPU kernel: the same update as the default
#: per-tensor loop (to float rounding), 10-20% less time per step on the lab's
#: small models, where the optimizer is a visible share of the step.
FUSED = {"fused": True}


def fused_optimizer(kind: type[torch.optim.Optimizer], params: Any, **hyper: Any) -> torch.optim.Optimizer:
    """``kind(params, **hyper)`` with its fused kernel (see ``FUSED``)."""
    return kind(params, **hyper, **FUSED)


def is_procedure(arm: dict | None) -> bool:
    """Whether an arm's config names a training procedure (SAM, AMP, gradient norm)."""
    if arm is None:
        return False
    from reglab.core.registry import get

    return get(arm["name"]).kind == "procedure"


def optimizer_step(
    model: nn.Module, procedure: dict | None, *, lr: float, weight_decay: float = 0.0, optimizer: str = "adam"
) -> tuple[torch.optim.Optimizer, Callable[[Callable[[], torch.Tensor]], torch.Tensor]]:
    """The task's optimizer (Adam, or SGD with momentum 0.9) and its update ``update(loss_fn)``
    (zero grads, backward, step).

    A procedure arm changes the update: an optimizer wrapper (``sam``,
    ``amp_perturbation``) wraps the same base optimizer and is stepped with a
    closure (forward + backward, called as often as the method needs);
    ``gradient_norm`` writes the gradient of L + λ‖∇L‖ before the step."""
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    base = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    hyper = {"lr": lr, "weight_decay": weight_decay, **({"momentum": 0.9} if optimizer == "sgd" else {}), **FUSED}
    params = list(model.parameters())
    if procedure is None or not is_procedure(procedure):
        opt = base(params, **hyper)

        def update(loss_fn):
            loss = loss_fn()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss

        return opt, update
    from reglab.core.registry import from_config, get

    if get(procedure["name"]).form == "optimizer":
        wrapped = from_config(procedure, params=params, base_optimizer=base, **hyper)

        def closure_update(loss_fn):
            def closure():
                loss = loss_fn()
                loss.backward()
                return loss

            return wrapped.step(closure)

        return wrapped, closure_update
    method = from_config(procedure)
    opt = base(params, **hyper)

    def penalty_update(loss_fn):
        opt.zero_grad(set_to_none=True)
        loss = method.backward(loss_fn, params)
        opt.step()
        return loss

    return opt, penalty_update


class SelectOnValidation:
    """Early stopping without stopping: keep the weights of the epoch with the best
    validation score (ties keep the earlier epoch). The test split never selects."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.best_score = -float("inf")
        self.best_epoch = -1
        self._state: dict[str, torch.Tensor] | None = None

    def update(self, score: float, epoch: int) -> None:
        if score > self.best_score:
            self.best_score, self.best_epoch = score, epoch
            self._state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def best_model(self) -> nn.Module:
        """A copy of the model with the selected weights (the model itself is left at its last epoch)."""
        best = copy.deepcopy(self.model)
        if self._state is not None:
            best.load_state_dict(self._state)
        best.eval()
        return best


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



def train_output_model(
    data,
    arm: dict | None,
    *,
    seed: int,
    epochs: int,
    batch_size: int,
    on_epoch_end: Callable[[nn.Module, int], None],
) -> tuple[nn.Module, Timing]:
    """Train the dataset's ``classifier`` on ``data``'s training split with an output arm.

    The arm is built with ``build_output_arm`` and used through
    ``output_loss``; ``on_epoch_end(model, epoch)`` records the task's
    curves. Returns the model (at its last epoch) and the timing.
    """
    n, c = data.x_train.shape[0], data.num_classes
    torch.manual_seed(seed)
    model, _ = classifier(data)
    procedure = arm if is_procedure(arm) else None
    reg = None if procedure else build_output_arm(arm, num_samples=n, num_classes=c, total_epochs=epochs)

    def step_loss(xb, yb, idx, epoch):
        return output_loss(reg, model(xb), yb, idx)

    timing = train_loop(
        model, data.x_train, data.y_train, step_loss,
        epochs=epochs, batch_size=batch_size, seed=seed,
        on_epoch_end=lambda epoch: on_epoch_end(model, epoch),
        on_epoch_start=getattr(reg, "set_epoch", None), procedure=procedure,
    )  # fmt: skip
    return model, timing


def result(metrics: dict[str, float], curves: dict[str, list[float]], timing: Timing, started: float,
           setup: dict[str, str]):
    """The task's ``TaskResult``, with the timing and the setup the report prints."""
    from reglab.bench.tasks import TaskResult

    curves = {**curves, "cpu_seconds": list(timing.epoch_cpu_seconds)}
    return TaskResult(
        metrics, curves, timing.step_seconds, time.perf_counter() - started, timing.step_cpu_seconds, setup
    )

def occlude(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one random ``size``×``size`` square fully inside each (N, 1, H, W) image."""
    n, _, h, w = images.shape
    top = torch.randint(0, h - size + 1, (n, 1, 1), generator=generator)
    left = torch.randint(0, w - size + 1, (n, 1, 1), generator=generator)
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return images * (~inside).float()[:, None]


def fit_temperature(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Temperature scaling (Guo et al., 2017): the T > 0 minimizing the NLL of
    ``logits / T`` on held-out (validation) data, by L-BFGS on log T."""
    log_t = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100, line_search_fn="strong_wolfe")
    logits = logits.detach()

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


@torch.no_grad()
def probe_accuracy(z_tr: torch.Tensor, y_tr: torch.Tensor, z_te: torch.Tensor, y_te: torch.Tensor) -> float:
    """Accuracy of a logistic-regression probe (C = 1) trained on frozen train features.

    No per-feature standardization: a probe on frozen features sees them as
    they are, so embeddings shrunk to a point (std ~1e-4) cannot be rescued
    by rescaling noise-level differences back up."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(max_iter=300).fit(z_tr.numpy(), y_tr.numpy())
    return float(clf.score(z_te.numpy(), y_te.numpy()))
