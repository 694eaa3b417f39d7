"""Lab task ``sparse_autoencoder``: sparse autoencoders on synthetic superposition data with known features.

The data (generated here, never downloaded; the seed draws the features, the
points, the initialization and the batch order) follow the synthetic generator
of mutual feature regularization's official code (luke-marks0/mutual-feature-
regularization @ e9ec664, ``utils/data_utils.py`` ``generate_synthetic_data``),
scaled down: ``M`` = 64 ground-truth features f_i (unit vectors, N(0, I)
normalized) in d dimensions (d < M: superposition), split into ``GROUPS`` = 4
groups of 16; each point picks one group uniformly, then ``ACTIVE`` = 4
distinct features of that group with probabilities ∝ 0.99^j (j the feature's
rank in its group), with coefficients s_i ~ U[0, 1]: x = Σ_i s_i f_i. (The
official code draws the active set once per group per generation batch; here
each point draws its own.) The data are scaled by one constant so that the
mean of x² over the training split is 1. The dataset names the superposition:
``superposition_2x`` (d = 32) and ``superposition_4x`` (d = 16); 16,384
training and 4,096 test points.

The SAE (``HIDDEN`` = 64 latents, as many as true features, as in the official
config): z = act(W_enc (x − b_dec) + b_enc), x̂ = W_dec z + b_dec, the decoder's
columns normalized to unit norm in the forward pass, the encoder initialized as
the decoder's transpose (Gao et al. 2024, Sec. 2); loss: the mean squared error
over the batch and the d dimensions, Adam lr ``LR``, batch 256, ``EPOCHS``
epochs, the last epoch evaluated (nothing is selected). ``saes`` > 1 trains
that many SAEs side by side on the same batches (their losses summed; Adam is
per parameter, so this is each SAE trained on its own loss).

The activation is ReLU, or TopK when the arm is ``topk`` (its k) or the task
argument ``topk`` gives k. Arms: ``topk`` (the activation module); a
representation penalty such as ``l1_activation`` on the code (each SAE's batch
mean); ``mutual_feature_regularization`` on the SAEs' decoder dictionaries
(d, h), with the official half-cosine warm-up of its weight over the first 100
steps.

Metrics on the test points (the mean over the SAEs of a run): ``nmse``
(Σ‖x − x̂‖² / Σ‖x − x̄_train‖²), ``l0`` (mean number of non-zero latents per
point), ``mmcs`` (mean over the true features of the largest cosine with a
decoder column; Sharkey et al. 2022), ``mmcs_matched`` (the mean cosine of the
one-to-one Hungarian matching of decoder columns to true features, the MMCS of
MFR's official ``calculate_MMCS``), ``dead_fraction`` (latents never active on
the test points).
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.experiments._train import result, train_loop
from reglab.bench.tasks import build_arm, task

M, GROUPS, ACTIVE, DECAY, HIDDEN = 64, 4, 4, 0.99, 64
TRAIN, TEST, QUICK_TRAIN, QUICK_TEST = 16_384, 4_096, 2_048, 512
EPOCHS, QUICK_EPOCHS, BATCH, LR, WARMUP = 12, 2, 256, 1e-3, 100
DIMS = {"superposition_2x": 32, "superposition_4x": 16}
#: the data's generator is seeded with DATA_SEED + seed: a stream of its own, never the one torch.manual_seed(seed)
#: draws the SAEs' initialization from (with the same seed, the first decoder would start at the true features)
DATA_SEED = 1_000_000


def make_data(dataset: str, seed: int, n_train: int, n_test: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(features (M, d) unit rows, x_train, x_test)`` drawn from ``seed`` (see the module)."""
    if dataset not in DIMS:
        raise KeyError(f"sparse_autoencoder runs on {sorted(DIMS)}, got {dataset!r}")
    d = DIMS[dataset]
    gen = torch.Generator().manual_seed(DATA_SEED + seed)
    features = F.normalize(torch.randn(M, d, generator=gen), dim=1)
    size = M // GROUPS
    probs = (DECAY ** torch.arange(size, dtype=torch.float32)).repeat(n_train + n_test, 1)
    group = torch.randint(GROUPS, (n_train + n_test, 1), generator=gen)
    idx = group * size + torch.multinomial(probs, ACTIVE, replacement=False, generator=gen)
    coef = torch.rand(n_train + n_test, ACTIVE, generator=gen)
    x = torch.einsum("nk,nkd->nd", coef, features[idx])
    x = x / x[:n_train].pow(2).mean().sqrt()
    return features, x[:n_train], x[n_train:]


class SAEs(nn.Module):
    """``n`` sparse autoencoders d → h → d with unit-norm decoder columns, run side by side."""

    def __init__(self, n: int, d: int, h: int, activation: nn.Module | None):
        super().__init__()
        dec = F.normalize(torch.randn(n, h, d), dim=2)  # row j of SAE i: its decoder column j
        self.w_dec = nn.Parameter(dec)
        self.w_enc = nn.Parameter(dec.transpose(1, 2).clone())  # (n, d, h), Gao et al.'s tied init
        self.b_enc = nn.Parameter(torch.zeros(n, 1, h))
        self.b_dec = nn.Parameter(torch.zeros(n, 1, d))
        self.activation = activation

    def dictionaries(self) -> torch.Tensor:
        """(n, h, d): each SAE's unit-norm decoder columns, one per row."""
        return F.normalize(self.w_dec, dim=2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, d) -> codes (n, B, h), reconstructions (n, B, d)."""
        a = torch.baddbmm(self.b_enc, x.unsqueeze(0) - self.b_dec, self.w_enc)
        z = torch.relu(a) if self.activation is None else self.activation(a)
        return z, torch.baddbmm(self.b_dec, z, self.dictionaries())


def hungarian_mmcs(cos: torch.Tensor) -> float:
    """Mean cosine of the one-to-one matching of rows to columns of ``cos`` that maximizes it."""
    from scipy.optimize import linear_sum_assignment

    c = cos.detach().double().numpy()
    rows, cols = linear_sum_assignment(1.0 - c)
    return float(c[rows, cols].mean())


@torch.no_grad()
def sae_metrics(model: SAEs, features: torch.Tensor, x: torch.Tensor, mean: torch.Tensor) -> dict[str, float]:
    """The metrics of the module docstring, averaged over the SAEs."""
    z, recon = model(x)
    total = (x - mean).pow(2).sum()
    dicts = model.dictionaries()
    out: dict[str, list[float]] = {k: [] for k in ("nmse", "l0", "mmcs", "mmcs_matched", "dead_fraction")}
    for i in range(z.shape[0]):
        cos = features @ dicts[i].T  # (M, h)
        out["nmse"].append(float((recon[i] - x).pow(2).sum() / total))
        out["l0"].append(float((z[i] != 0).sum(dim=1).double().mean()))
        out["mmcs"].append(float(cos.max(dim=1).values.mean()))
        out["mmcs_matched"].append(hungarian_mmcs(cos))
        out["dead_fraction"].append(float((z[i] != 0).sum(dim=0).eq(0).double().mean()))
    return {k: sum(v) / len(v) for k, v in out.items()}


@task("sparse_autoencoder", datasets=tuple(DIMS))
def sparse_autoencoder(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "superposition_2x", saes: int = 1,
    topk: int | None = None, epochs: int | None = None,
):
    """Metrics: ``nmse``, ``l0``, ``mmcs``, ``mmcs_matched``, ``dead_fraction`` on the test points, last epoch."""
    t0 = time.perf_counter()
    features, x_train, x_test = make_data(dataset, seed, *((QUICK_TRAIN, QUICK_TEST) if quick else (TRAIN, TEST)))
    d = features.shape[1]
    reg = build_arm(arm)
    name = None if reg is None else reg.name
    if reg is not None and name != "topk" and name != "mutual_feature_regularization" \
            and getattr(reg, "kind", None) != "representation":
        raise ValueError(f"sparse_autoencoder takes topk, mutual_feature_regularization or a penalty on the code, "
                         f"got {name!r}")  # fmt: skip
    if name == "topk" and topk is not None:
        raise ValueError("sparse_autoencoder: the topk arm sets k itself; drop the task argument topk")
    if name == "mutual_feature_regularization" and saes < 2:
        raise ValueError(f"sparse_autoencoder: mutual_feature_regularization needs saes >= 2, got {saes}")
    torch.manual_seed(seed)
    activation = reg if name == "topk" else (None if topk is None else build_arm({"name": "topk", "k": topk}))
    model = SAEs(saes, d, HIDDEN, activation)
    penalty = reg if reg is not None and name != "topk" else None
    steps = {"n": 0}

    def step_loss(xb, yb, idx, epoch):
        z, recon = model(xb)
        loss = (recon - xb).pow(2).mean(dim=(1, 2)).sum()
        if name == "mutual_feature_regularization":
            t = steps["n"] = steps["n"] + 1
            warm = 1.0 if t >= WARMUP else 0.5 * (1 + math.cos(math.pi * (WARMUP - t) / WARMUP))
            dicts = model.dictionaries()
            loss = loss + warm * penalty.current_weight * penalty.penalty(*[w.T for w in dicts])
        elif penalty is not None:
            loss = loss + saes * penalty(z.reshape(-1, z.shape[-1]))
        return loss

    epochs = epochs if epochs is not None else (QUICK_EPOCHS if quick else EPOCHS)
    y = torch.zeros(len(x_train))
    timing = train_loop(model, x_train, y, step_loss, epochs=epochs, batch_size=BATCH, seed=seed, lr=LR)
    model.eval()
    metrics = sae_metrics(model, features, x_test, x_train.mean(dim=0))
    act = f"TopK (k = {reg.k if name == 'topk' else topk})" if (name == "topk" or topk is not None) else "ReLU"
    setup = {
        "data": f"synthetic superposition ({dataset}): {M} unit ground-truth features in d = {d}, {GROUPS} groups; "
        f"each point {ACTIVE} features of one group (P ∝ {DECAY}^rank), coefficients U[0, 1], scaled to mean x² = 1; "
        f"train {len(x_train)} / test {len(x_test)}",
        "model": f"{saes} SAE(s) {d}-{HIDDEN}-{d}, {act}, unit-norm decoder columns, encoder init = decoder transpose",
        "training": f"Adam lr {LR:g}, batch {BATCH}, {epochs} epochs, MSE"
        + ("" if penalty is None else f" + {name} (weight {penalty.current_weight:g})"),
        "selection": "last epoch (nothing selected)",
    }
    return result(metrics, {}, timing, t0, setup)
