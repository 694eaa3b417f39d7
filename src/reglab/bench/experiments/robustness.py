"""Lab task ``robustness``: accuracy of an MLP under Gaussian input noise, and its Lipschitz bound.

The MLP of the other tasks (d-256-10, ReLU; Adam 1e-3, batch 128, 60 epochs,
5 in quick mode) is trained on the clean training split; the epoch is
selected on *clean* validation accuracy (a practitioner does not know the
test-time noise). The test images are then corrupted with Gaussian noise of
a fixed σ (``noise_sigma``, 0.3 on pixels in [0, 1]; five fixed draws per
seed, the same for every arm) and classified.

The arm is used in its natural form: a weight regularizer (``gram_iteration``,
``spectral_norm``, ``l2``…) is attached to every weight matrix with
``reglab.attach`` (biases excluded) and its penalty added to the loss; a
penalty taking the input and the logits (``jacobian``) gets ``(x, logits)``
with ``x.requires_grad_(True)`` set before the forward; an input transform
(``gaussian_noise``) is applied to each training batch; output regularizers
go through ``_train.output_loss``.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from reglab.bench.data import load
from reglab.bench.experiments._train import SelectOnValidation, accuracy, classifier, output_loss, result, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task

EPOCHS, QUICK_EPOCHS, BATCH, NOISE_DRAWS = 60, 5, 128, 5


def _jacobian_norm(model: torch.nn.Module, x: torch.Tensor) -> float:
    """√(mean_b ‖∂y_b/∂x_b‖²_F) on ``x`` (exact: one VJP per class), independent of any arm."""
    x = x.clone().requires_grad_(True)
    with torch.enable_grad():
        y = model(x)
        total = 0.0
        for c in range(y.shape[1]):
            (g,) = torch.autograd.grad(y[:, c].sum(), x, retain_graph=True)
            total += float(g.pow(2).sum())
    return math.sqrt(total / x.shape[0])


@task("robustness", datasets=("digits", "digits_half"))
def robustness(
    arm: dict | None,
    *,
    seed: int,
    quick: bool = False,
    dataset: str = "digits",
    noise_sigma: float = 0.3,
    epochs: int = EPOCHS,
) -> TaskResult:
    """Metrics: ``test_accuracy`` (clean), ``noisy_accuracy`` (mean over five Gaussian draws of σ =
    ``noise_sigma``), ``lipschitz_bound`` and ``log10_lipschitz_bound`` (product of the layers'
    Gram-iteration spectral bounds, ReLU 1-Lipschitz), ``jacobian_norm`` (√ of the mean ‖J_b‖²_F of
    the logits on the test inputs), all at the validation-selected epoch. Curves: ``val_accuracy``,
    ``test_accuracy``, ``noisy_accuracy`` per epoch."""
    from reglab.diagnostics import lipschitz_bound

    t0 = time.perf_counter()
    data = load(dataset, seed)
    epochs = QUICK_EPOCHS if quick else epochs
    noise_gen = torch.Generator().manual_seed(seed + 11)
    x_noisy = [data.x_test + noise_sigma * torch.randn(data.x_test.shape, generator=noise_gen)
               for _ in range(NOISE_DRAWS)]  # fmt: skip
    torch.manual_seed(seed)
    model, model_text = classifier(data)
    reg = build_arm(arm)
    kind, form = getattr(reg, "kind", None), getattr(reg, "form", None)
    regs = None
    if kind == "weight":
        import reglab

        regs = reglab.attach(model, [reg])
    input_and_logits = form == "penalty" and getattr(reg, "num_inputs", 1) == 2 and kind == "procedure"
    proj_gen = torch.Generator().manual_seed(seed + 5)
    aug_gen = torch.Generator().manual_seed(seed + 3)

    def step_loss(xb, yb, idx, epoch):
        if form == "transform":
            reg.train()
            xb = reg(xb, generator=aug_gen) if "generator" in getattr(reg, "call_args", ()) else reg(xb)
        if input_and_logits:
            xb = xb.clone().requires_grad_(True)
            logits = model(xb)
            return F.cross_entropy(logits, yb) + reg(xb, logits, generator=proj_gen)
        logits = model(xb)
        if regs is not None:
            return F.cross_entropy(logits, yb) + regs.penalty()
        if form == "transform" or reg is None:
            return F.cross_entropy(logits, yb)
        return output_loss(reg, logits, yb, idx)

    def noisy_acc(m) -> float:
        return sum(accuracy(m, xn, data.y_test) for xn in x_noisy) / len(x_noisy)

    val_curve: list[float] = []
    test_curve: list[float] = []
    noisy_curve: list[float] = []
    selection = SelectOnValidation(model)

    def on_epoch_end(epoch):
        val_curve.append(accuracy(model, data.x_val, data.y_val))
        test_curve.append(accuracy(model, data.x_test, data.y_test))
        noisy_curve.append(noisy_acc(model))
        selection.update(val_curve[-1], epoch)

    timing = train_loop(
        model, data.x_train, data.y_train, step_loss,
        epochs=epochs, batch_size=BATCH, seed=seed, on_epoch_end=on_epoch_end,
    )  # fmt: skip
    best = selection.best_model()
    bound = lipschitz_bound(best)
    metrics = {
        "test_accuracy": accuracy(best, data.x_test, data.y_test),
        "noisy_accuracy": noisy_acc(best),
        "lipschitz_bound": bound,
        "log10_lipschitz_bound": math.log10(bound),
        "jacobian_norm": _jacobian_norm(best, data.x_test),
    }
    curves = {"val_accuracy": val_curve, "test_accuracy": test_curve, "noisy_accuracy": noisy_curve}
    setup = {
        "data": data.describe(),
        "model": f"{model_text}; weight arms bind to every weight matrix, jacobian gets (x, logits), "
        "input transforms act on each training batch",
        "training": f"Adam lr 1e-3, batch {BATCH}, {epochs} epochs",
        "selection": "epoch of best clean validation accuracy",
        "noise": f"test inputs + N(0, {noise_sigma}²) per pixel (pixels in [0, 1]), mean over {NOISE_DRAWS} "
        "fixed draws per seed",
    }
    return result(metrics, curves, timing, t0, setup)
