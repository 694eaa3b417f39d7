"""Lab task ``sparse_ids``: click-through-like prediction from long-tailed categorical ids (synthetic).

The data (generated here, never downloaded; a fixed pool per dataset, the seed
draws the split): records of three categorical fields, a *user* (``USERS`` ids),
an *item* (``ITEMS`` ids) and a *context* slot (``SLOTS`` ids, uniform). User and
item ids follow a Zipf law, P(id = k) ∝ (k + 1)^(−s), the ranks shuffled over the
ids, with the exponent s named by the dataset (``zipf1.0``: s = 1.0;
``zipf1.2``: s = 1.2, a heavier head and fewer distinct rare ids). A hidden
ground-truth model gives each record its click probability,

    logit = b + a_user + a_item + c_slot + ⟨p_user, q_item⟩,
    a ~ N(0, 1), c ~ N(0, 0.3²), p, q ~ N(0, 0.3² I_4), b: the median logit at log(1/3) (a click rate near 31%),

and the label is one Bernoulli draw of sigmoid(logit) (the label noise: the
best possible test AUC, that of the true logit, is about 0.82, not 1). ``POOL``
records per dataset, drawn once from a fixed generator (``DATA_SEED``: the
ground truth and the records do not change with the run's seed); the seed draws
a 25% test split, 20% of the rest for validation, the initialization and the
batch order. Most user ids occur only a few times in the training split, so
the embedding table overfits as in DIN's Fig. 4: without a regularizer the
validation AUC peaks after two or three epochs and then falls.

The model is DIN's Embedding&MLP base model in small: one embedding table over
all fields' ids (d = 8 per field, rows initialized N(0, 0.01²)), the three
embeddings concatenated, an MLP 24-64-1 (ReLU), the log-loss; Adam lr 1e-3,
batch 256, ``EPOCHS`` epochs; the epoch with the best validation AUC is kept and
scored on the test split (``test_auc``, scikit-learn's ``roc_auc_score``;
``val_auc`` is the selected epoch's validation AUC).

Arms: ``mba`` is called with the table, the batch's ids and the per-id counts n_j
over the training split (``mba(W, ids, counts)``); any other weight penalty
(``l2``) is applied to the whole embedding table (``reg([W])``). The task
argument ``min_count`` is the paper's frequency filter: ids seen fewer than
``min_count`` times in the training split share one out-of-vocabulary row per
field (so do ids never seen in training, whatever ``min_count``).
"""

from __future__ import annotations

import functools
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.experiments._train import SelectOnValidation, result, train_loop
from reglab.bench.tasks import build_arm, task

EPOCHS, QUICK_EPOCHS, BATCH, DIM, HIDDEN = 8, 2, 256, 8, 64
POOL, QUICK_POOL, USERS, ITEMS, SLOTS, RANK = 40_000, 4_000, 20_000, 5_000, 24, 4
BIAS_SD, SLOT_SD, FACTOR_SD = 1.0, 0.3, 0.3  # the hidden model's scales
TEST_FRACTION, VAL_FRACTION, DATA_SEED = 0.25, 0.2, 20180819  # the pool's generator: fixed, not the run's seed
EXPONENTS = {"zipf1.0": 1.0, "zipf1.2": 1.2}


def zipf_ids(rng: np.random.Generator, vocab: int, exponent: float, n: int) -> np.ndarray:
    """``n`` ids in ``[0, vocab)`` with P(k) ∝ (k + 1)^(−exponent), the ids' ranks shuffled (id 0 is not the head)."""
    p = np.arange(1, vocab + 1, dtype=np.float64) ** -exponent
    ranks = rng.choice(vocab, size=n, p=p / p.sum())
    return rng.permutation(vocab)[ranks]


@functools.lru_cache(maxsize=4)
def make_pool(dataset: str, size: int = POOL) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's records: ``(ids (size, 3) int64: user, item, slot; labels (size,) float32)``."""
    if dataset not in EXPONENTS:
        raise KeyError(f"sparse_ids runs on {sorted(EXPONENTS)}, got {dataset!r}")
    s = EXPONENTS[dataset]
    rng = np.random.default_rng(DATA_SEED)
    a_user, a_item = rng.normal(0, BIAS_SD, USERS), rng.normal(0, BIAS_SD, ITEMS)
    c_slot = rng.normal(0, SLOT_SD, SLOTS)
    p, q = rng.normal(0, FACTOR_SD, (USERS, RANK)), rng.normal(0, FACTOR_SD, (ITEMS, RANK))
    user, item = zipf_ids(rng, USERS, s, size), zipf_ids(rng, ITEMS, s, size)
    slot = rng.integers(0, SLOTS, size)
    logit = a_user[user] + a_item[item] + c_slot[slot] + (p[user] * q[item]).sum(axis=1)
    logit += np.log(0.25 / 0.75) - np.median(logit)  # the median logit at log(1/3)
    labels = (rng.random(size) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return np.stack([user, item, slot], axis=1).astype(np.int64), labels


def auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels.numpy(), scores.double().numpy()))


class EmbeddingMLP(nn.Module):
    """One table over every field's ids (offset per field), the fields' embeddings concatenated, an MLP."""

    def __init__(self, rows: int, fields: int):
        super().__init__()
        self.table = nn.Embedding(rows, DIM)
        nn.init.normal_(self.table.weight, std=0.01)
        self.mlp = nn.Sequential(nn.Linear(fields * DIM, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 1))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.table(ids).flatten(1)).squeeze(1)


def encode(ids: np.ndarray, train_counts: list[np.ndarray], min_count: int) -> np.ndarray:
    """Row indices of the table: per field, row 0 of its block is the out-of-vocabulary row (ids unseen in
    training or seen fewer than ``min_count`` times), id k is row k + 1; blocks follow each other."""
    out, offset = np.empty_like(ids), 0
    for f, counts in enumerate(train_counts):
        kept = counts[ids[:, f]] >= max(min_count, 1)
        out[:, f] = offset + np.where(kept, ids[:, f] + 1, 0)
        offset += len(counts) + 1
    return out


@task("sparse_ids", datasets=tuple(EXPONENTS))
def sparse_ids(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "zipf1.0", min_count: int = 0,
    epochs: int | None = None,
):
    """Metrics: ``test_auc`` at the epoch of best validation AUC, and that ``val_auc``."""
    t0 = time.perf_counter()
    ids, labels = make_pool(dataset, QUICK_POOL if quick else POOL)
    n = len(labels)
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(TEST_FRACTION * n))
    n_val = int(round(VAL_FRACTION * (n - n_test)))
    test, val, train = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    vocab = (USERS, ITEMS, SLOTS)
    train_counts = [np.bincount(ids[train, f], minlength=v) for f, v in enumerate(vocab)]
    rows = encode(ids, train_counts, min_count)
    x = torch.from_numpy(rows)
    y = torch.from_numpy(labels)
    # n_j: occurrences of each table row in the training split (the OOV rows count what they stand for)
    counts = torch.from_numpy(np.bincount(rows[train].reshape(-1), minlength=sum(vocab) + len(vocab)))
    torch.manual_seed(seed)
    model = EmbeddingMLP(int(counts.numel()), len(vocab))
    reg = build_arm(arm)
    if reg is not None and reg.name != "mba" and getattr(reg, "kind", None) != "weight":
        raise ValueError(f"sparse_ids takes mba or a weight penalty on the embedding table, got {reg.name!r}")

    def step_loss(xb, yb, idx, epoch):
        loss = F.binary_cross_entropy_with_logits(model(xb), yb)
        if reg is None:
            return loss
        if reg.name == "mba":
            return loss + reg(model.table.weight, xb, counts)
        return loss + reg([model.table.weight])

    selection = SelectOnValidation(model)
    val_curve: list[float] = []
    x_val, y_val = x[val], y[val]

    def on_epoch_end(epoch):
        val_curve.append(auc(model(x_val), y_val))
        selection.update(val_curve[-1], epoch)

    epochs = epochs if epochs is not None else (QUICK_EPOCHS if quick else EPOCHS)
    timing = train_loop(model, x[train], y[train], step_loss, epochs=epochs, batch_size=BATCH, seed=seed,
                        on_epoch_end=on_epoch_end)  # fmt: skip
    best = selection.best_model()
    with torch.no_grad():
        test_auc = auc(best(x[test]), y[test])
    metrics = {"test_auc": test_auc, "val_auc": selection.best_score}
    rare = float((train_counts[0][ids[train, 0]] <= 3).mean())
    setup = {
        "data": f"synthetic CTR ({dataset}: user and item ids Zipf with s = {EXPONENTS[dataset]}, "
        f"{USERS} users, {ITEMS} items, {SLOTS} uniform context slots; labels Bernoulli(sigmoid(hidden logit)), "
        f"see reglab.bench.experiments.sparse_ids): train {len(train)} / val {len(val)} / test {len(test)}; "
        f"{rare:.0%} of training records have a user seen at most 3 times"
        + (f"; frequency filter: ids seen < {min_count} times share an OOV row" if min_count else ""),
        "model": f"embedding table {counts.numel()}×{DIM} (one block per field, N(0, 0.01²) init), "
        f"MLP {len(vocab) * DIM}-{HIDDEN}-1 (ReLU), log-loss",
        "training": f"Adam lr 1e-3, batch {BATCH}, {epochs} epochs",
        "selection": "epoch of best validation AUC",
    }
    return result(metrics, {"val_auc": val_curve}, timing, t0, setup)
