"""Lab task ``vq_code``: a vector-quantized autoencoder on digits, for the codebook-collapse remedies.

Encoder 64-128-16 (ReLU hidden); its output is cut into 4 tokens of 4
dimensions, each replaced by its nearest code of one shared codebook of 64
codes (straight-through estimator); decoder 16-128-64 (sigmoid output). Loss:
MSE reconstruction + the VQ loss β·mean((sg(z_q) − z)²) + mean((z_q − sg(z))²),
β = 0.25. Adam lr 1e-3, batch 128, 40 epochs (3 in quick mode); the epoch with
the best validation reconstruction is kept.

The plain baseline (arm None) is the taming-transformers VQ: a learnable
(64, 4) codebook initialized uniform(−1/K, 1/K), the init known to collapse.
Arms, each in its natural form:

* ``simvq``: the quantizer is ``reglab.create("simvq", num_codes=64, dim=4)``
  (frozen random basis, learnable linear map);
* ``codebook_entropy``: the plain VQ plus the penalty on the affinities
  −‖z − e_k‖² of the batch's tokens, with its default weight and temperature;
* ``sinkhorn_codes``: the plain VQ, but training tokens take RepCONC's
  balanced (Sinkhorn) codes instead of the nearest code (evaluation uses the
  nearest code).

Metrics (test split, kept epoch, nearest-code assignment): ``utilization``
(the fraction of the 64 codes that some test token uses), ``perplexity``
(exp of the entropy of the test tokens' code histogram), ``test_mse``
(reconstruction through the quantizer), ``probe_accuracy`` (logistic
regression on the quantized train codes).
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

import reglab
from reglab.bench.data import load
from reglab.bench.experiments._train import probe_accuracy, result, train_loop
from reglab.bench.tasks import TaskResult, task

HIDDEN, TOKENS, DIM, CODES, BETA = 128, 4, 4, 64, 0.25
EPOCHS, QUICK_EPOCHS, BATCH = 40, 3, 128
ARMS = ("simvq", "codebook_entropy", "sinkhorn_codes")


class PlainVQ(nn.Module):
    """taming-transformers' VectorQuantizer (legacy=False loss), uniform(−1/K, 1/K) init."""

    def __init__(self):
        super().__init__()
        self.codebook = nn.Parameter(torch.empty(CODES, DIM).uniform_(-1.0 / CODES, 1.0 / CODES))

    def forward(self, z: torch.Tensor, codes: torch.Tensor | None = None):
        if codes is None:
            with torch.no_grad():
                codes = torch.cdist(z, self.codebook).argmin(dim=1)
        zq = self.codebook[codes]
        loss = BETA * (zq.detach() - z).pow(2).mean() + (zq - z.detach()).pow(2).mean()
        return z + (zq - z).detach(), loss, codes


class VQAutoEncoder(nn.Module):
    def __init__(self, d_in: int, quantizer: nn.Module):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d_in, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, TOKENS * DIM))
        self.quantizer = quantizer
        self.decoder = nn.Sequential(nn.Linear(TOKENS * DIM, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, d_in), nn.Sigmoid())

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(1)).reshape(-1, DIM)

    def codebook(self) -> torch.Tensor:
        q = self.quantizer
        return q.codebook if isinstance(q, PlainVQ) else q.codebook

    def forward(self, x: torch.Tensor, codes: torch.Tensor | None = None):
        z = self.tokens(x)
        if isinstance(self.quantizer, PlainVQ):
            zq, vq_loss, idx = self.quantizer(z, codes)
        else:
            zq, vq_loss, idx = self.quantizer(z)
        return self.decoder(zq.reshape(x.shape[0], -1)), vq_loss, z, idx


@torch.no_grad()
def code_metrics(idx: torch.Tensor) -> dict[str, float]:
    counts = torch.bincount(idx.flatten(), minlength=CODES).double()
    p = counts / counts.sum()
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
    return {"utilization": float((counts > 0).double().mean()), "perplexity": math.exp(entropy)}


@task("vq_code", datasets=("digits", "digits_half"))
def vq_code(arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits") -> TaskResult:
    t0 = time.perf_counter()
    name = None if arm is None else arm.get("name")
    if name is not None and name not in ARMS:
        raise ValueError(f"vq_code task: the arm must be one of {ARMS} (or None), got {name!r}")
    data = load(dataset, seed)
    epochs = QUICK_EPOCHS if quick else EPOCHS
    torch.manual_seed(seed)
    if name == "simvq":
        quantizer = reglab.from_config({**arm, "num_codes": CODES, "dim": DIM})
    else:
        quantizer = PlainVQ()
    model = VQAutoEncoder(data.num_features, quantizer)
    penalty = reglab.from_config(arm) if name == "codebook_entropy" else None
    balance = reglab.from_config(arm) if name == "sinkhorn_codes" else None
    best = {"val": float("inf"), "state": None}
    curve: list[float] = []

    def step_loss(xb, yb, idx, epoch):
        codes = None
        if balance is not None:
            codes = balance(model.tokens(xb).detach(), model.codebook().detach()[None])[:, 0]
        recon, vq_loss, z, _ = model(xb, codes)
        loss = F.mse_loss(recon, xb.flatten(1)) + vq_loss
        if penalty is not None:
            loss = loss + penalty(-torch.cdist(z, model.codebook()).pow(2))
        return loss

    def on_epoch_end(epoch):
        model.eval()
        with torch.no_grad():
            val = float(F.mse_loss(model(data.x_val)[0], data.x_val.flatten(1)))
        curve.append(val)
        if val < best["val"]:
            best["val"], best["state"] = val, {k: v.clone() for k, v in model.state_dict().items()}

    timing = train_loop(
        model, data.x_train, data.y_train, step_loss, epochs=epochs, batch_size=BATCH, seed=seed,
        on_epoch_end=on_epoch_end,
    )  # fmt: skip
    model.load_state_dict(best["state"])
    model.eval()
    with torch.no_grad():
        recon, _, _, idx_te = model(data.x_test)
        zq_tr = model.codebook()[model(data.x_train)[3]].reshape(data.x_train.shape[0], -1)
        zq_te = model.codebook()[idx_te].reshape(data.x_test.shape[0], -1)
    metrics = {
        "test_mse": float(F.mse_loss(recon, data.x_test.flatten(1))),
        **code_metrics(idx_te),
        "probe_accuracy": probe_accuracy(zq_tr, data.y_train, zq_te, data.y_test),
    }
    setup = {
        "data": data.describe(),
        "model": f"VQ autoencoder 64-{HIDDEN}-({TOKENS} tokens × {DIM} dims, one shared codebook of {CODES}) / "
        f"{TOKENS * DIM}-{HIDDEN}-64 sigmoid; quantizer: " + (name or "plain VQ (taming init uniform(±1/K))"),
        "training": f"Adam lr 1e-3, batch {BATCH}, {epochs} epochs, MSE reconstruction + VQ loss (β = {BETA})",
        "selection": "epoch of best validation reconstruction MSE",
    }
    return result(metrics, {"val_mse": curve}, timing, t0, setup)
