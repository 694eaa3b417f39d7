"""Lab task ``latent_code``: an autoencoder on digits, with the arm on its latent code.

Encoder 64-128-``latent`` (ReLU hidden), decoder ``latent``-128-64
(sigmoid output), MSE reconstruction, Adam 1e-3, batch 128, 60 epochs (4
in quick mode); the epoch with the best validation reconstruction is kept.
A representation arm (``least_volume``, ``l1_activation``, ``flops``) is
added to the loss on the latent batch, with its default weight.

Task arguments: ``code`` = ``"relu"`` (a non-negative code, where sparsity
means exact zeros: what activation-sparsity and FLOPS penalties act on) or
``"linear"``; ``lipschitz_decoder=True`` wraps the decoder's linear layers
in ``torch.nn.utils.parametrizations.spectral_norm`` (Least Volume needs a
Lipschitz decoder, Chen & Fuge 2024 §2; otherwise the decoder rescales what
the penalty shrinks).

Metrics (test split, kept epoch): ``test_mse``; ``active_dims``: latent
dimensions whose standard deviation is at least 1% of the largest one (Chen
& Fuge count dimensions by their std the same way, relative to the largest);
``zero_fraction``: share of exactly-zero latent entries; ``expected_flops``:
Σ_j P(z_j ≠ 0)², the cost of a sparse dot product with an inverted index
(Paria et al. 2020, Sec. 3); ``probe_accuracy``: logistic regression on the
frozen train-split codes.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.data import load
from reglab.bench.experiments._train import probe_accuracy, result, train_loop
from reglab.bench.tasks import TaskResult, build_arm, task

HIDDEN, EPOCHS, QUICK_EPOCHS, BATCH = 128, 60, 4, 128
ACTIVE_STD = 0.01  # a dimension is active when its std is ≥ 1% of the largest


class AutoEncoder(nn.Module):
    def __init__(self, d_in: int, latent: int, code: str, lipschitz_decoder: bool):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d_in, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, latent))
        self.code = nn.ReLU() if code == "relu" else nn.Identity()
        layers = [nn.Linear(latent, HIDDEN), nn.Linear(HIDDEN, d_in)]
        if lipschitz_decoder:
            layers = [nn.utils.parametrizations.spectral_norm(m) for m in layers]
        self.decoder = nn.Sequential(layers[0], nn.ReLU(), layers[1], nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.code(self.encoder(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return self.decoder(z), z


@torch.no_grad()
def code_metrics(z: torch.Tensor) -> dict[str, float]:
    std = z.std(dim=0)
    active = std >= ACTIVE_STD * std.max().clamp_min(1e-12)
    nonzero = (z != 0).float().mean(dim=0)
    return {
        "active_dims": float(active.sum()),
        "zero_fraction": float((z == 0).float().mean()),
        "expected_flops": float((nonzero**2).sum()),
    }


@task("latent_code", datasets=("digits", "digits_half"))
def latent_code(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", latent: int = 32,
    code: str = "relu", lipschitz_decoder: bool = False,
) -> TaskResult:
    t0 = time.perf_counter()
    data = load(dataset, seed)
    epochs = QUICK_EPOCHS if quick else EPOCHS
    torch.manual_seed(seed)
    model = AutoEncoder(data.num_features, latent, code, lipschitz_decoder)
    reg = build_arm(arm)
    best = {"val": float("inf"), "state": None}
    curve: list[float] = []

    def step_loss(xb, yb, idx, epoch):
        recon, z = model(xb)
        loss = F.mse_loss(recon, xb.flatten(1))
        return loss if reg is None else loss + reg(z)

    def on_epoch_end(epoch):
        val = float(F.mse_loss(model(data.x_val)[0], data.x_val.flatten(1)))
        curve.append(val)
        if val < best["val"]:
            best["val"], best["state"] = val, {k: v.clone() for k, v in model.state_dict().items()}

    timing = train_loop(
        model, data.x_train, data.y_train, step_loss,
        epochs=epochs, batch_size=BATCH, seed=seed, on_epoch_end=on_epoch_end,
    )  # fmt: skip
    model.load_state_dict(best["state"])
    model.eval()
    with torch.no_grad():
        recon, z_te = model(data.x_test)
        z_tr = model.encode(data.x_train)
    metrics = {
        "test_mse": float(F.mse_loss(recon, data.x_test.flatten(1))),
        **code_metrics(z_te),
        "probe_accuracy": probe_accuracy(z_tr, data.y_train, z_te, data.y_test),
    }
    setup = {
        "data": data.describe(),
        "model": f"autoencoder 64-{HIDDEN}-{latent} ({code} code) / {latent}-{HIDDEN}-64 sigmoid"
        + (", spectral-normalized decoder" if lipschitz_decoder else "") + "; the arm acts on the latent batch",
        "training": f"Adam lr 1e-3, batch {BATCH}, {epochs} epochs, MSE reconstruction",
        "selection": "epoch of best validation reconstruction MSE",
    }
    return result(metrics, {"val_mse": curve}, timing, t0, setup)
