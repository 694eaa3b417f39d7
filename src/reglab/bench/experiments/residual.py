"""Lab task ``deep_residual``: a deep residual MLP, where stochastic depth acts.

A pre-norm residual MLP (input 64 → width 128, ``depth`` blocks of
LayerNorm-Linear-ReLU-Linear added to the stream, LayerNorm + linear head;
depth 8, i.e. 16 weight layers in the blocks) is trained with Adam 1e-3,
batch 128, 30 epochs (4 in quick mode) on the clean training split; the
epoch is selected on the validation split.

The arm wraps every block's branch output (``h = h + arm(branch(h))``):

* ``drop_path``: block ``l`` of ``L`` (1-based) drops with probability
  ``p·l/L``: the linear decay rule of Huang et al. (2016, Sec. 3, "linear
  decay"), with the arm's ``p`` as the last block's rate p_L
  (``uniform_rate=True``: ``p`` in every block);
* ``scheduled_drop_path``: the same module in every block, its rate ramped
  over the run's optimizer steps (``total_steps`` is the run's step count;
  ``step()`` after every optimizer step), as NASNet does.

``dropout`` (task argument) adds standard dropout inside every branch: the
alternative a practitioner would use instead.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.data import load
from reglab.bench.experiments._train import SelectOnValidation, accuracy, result, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task

WIDTH, EPOCHS, QUICK_EPOCHS, BATCH = 128, 30, 4, 128


class ResidualMLP(nn.Module):
    """Pre-norm residual MLP; ``drops[l]`` wraps block ``l``'s branch output."""

    def __init__(self, d_in: int, num_classes: int, depth: int, drops: list[nn.Module], dropout: float = 0.0):
        super().__init__()
        self.stem = nn.Linear(d_in, WIDTH)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(WIDTH), nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Dropout(dropout), nn.Linear(WIDTH, WIDTH)
            )
            for _ in range(depth)
        )
        self.drops = nn.ModuleList(drops)
        self.head = nn.Sequential(nn.LayerNorm(WIDTH), nn.Linear(WIDTH, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x.flatten(1))
        for block, drop in zip(self.blocks, self.drops):
            h = h + drop(block(h))
        return self.head(h)


def _drops(
    arm: dict | None, depth: int, total_steps: int, uniform_rate: bool
) -> tuple[list[nn.Module], list[nn.Module]]:
    """(one module per block, the modules to ``step()`` after each optimizer step)."""
    if arm is None:
        return [nn.Identity() for _ in range(depth)], []
    if arm["name"] == "scheduled_drop_path":
        shared = build_arm(arm, total_steps=total_steps)
        return [shared] * depth, [shared]
    if arm["name"] == "drop_path":
        if uniform_rate:
            return [build_arm(arm) for _ in range(depth)], []
        p_last = build_arm(arm).p
        return [build_arm({**arm, "p": p_last * (i + 1) / depth}) for i in range(depth)], []
    raise ValueError(f"deep_residual takes drop_path or scheduled_drop_path arms, got {arm['name']!r}")


@task("deep_residual", datasets=("digits", "digits_half"))
def deep_residual(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", depth: int = 8,
    dropout: float = 0.0, uniform_rate: bool = False,
) -> TaskResult:
    """Metrics: ``test_accuracy`` (epoch selected on validation), ``final_accuracy``,
    ``train_accuracy`` (last epoch). Curves: ``test_accuracy``, ``val_accuracy``."""
    t0 = time.perf_counter()
    data = load(dataset, seed)
    epochs = QUICK_EPOCHS if quick else EPOCHS
    steps = epochs * -(-data.x_train.shape[0] // BATCH)
    torch.manual_seed(seed)
    drops, stepped = _drops(arm, depth, steps, uniform_rate)
    model = ResidualMLP(data.num_features, data.num_classes, depth, drops, dropout)
    selection = SelectOnValidation(model)
    test_curve: list[float] = []
    val_curve: list[float] = []

    def on_epoch_end(epoch):
        val_curve.append(accuracy(model, data.x_val, data.y_val))
        test_curve.append(accuracy(model, data.x_test, data.y_test))
        selection.update(val_curve[-1], epoch)

    def after_step(_opt):
        for module in stepped:
            module.step()

    timing = train_loop(
        model, data.x_train, data.y_train, lambda xb, yb, idx, epoch: F.cross_entropy(model(xb), yb),
        epochs=epochs, batch_size=BATCH, seed=seed, on_epoch_end=on_epoch_end, after_step=after_step,
    )  # fmt: skip
    metrics = {
        "test_accuracy": accuracy(selection.best_model(), data.x_test, data.y_test),
        "final_accuracy": test_curve[-1],
        "train_accuracy": accuracy(model, data.x_train, data.y_train),
    }
    setup = {
        "data": data.describe(),
        "model": f"pre-norm residual MLP, width {WIDTH}, {depth} blocks (LN-Linear-ReLU-Linear), dropout {dropout:g} "
        "in each branch; the arm wraps each branch output",
        "training": f"Adam lr 1e-3, batch {BATCH}, {epochs} epochs",
        "selection": "epoch of best validation accuracy",
    }
    return result(metrics, {"test_accuracy": test_curve, "val_accuracy": val_curve}, timing, t0, setup)
