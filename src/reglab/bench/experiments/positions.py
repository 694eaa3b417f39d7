"""Lab task ``positions``: position-encoder regularizers (SeqPE, DropPos) on the tiny transformer.

Reuses ``reglab.bench.experiments.transformer`` (tokens, blocks, built-in position
modules): 8×8 digits cut into 2×2 patches, 16 tokens on a 4×4 grid, d_model 32, 2 pre-norm
blocks, 4 heads, mean pooling; AdamW lr 1e-3, batch 64, 25 epochs (3 in quick mode), the epoch
selected on validation accuracy.

``train_tokens=k`` (0: all) trains and validates on the first k tokens (raster order: the top
k/4 rows); ``test_accuracy`` is measured on all 16 tokens, i.e. on positions never seen in
training, ``test_accuracy_short`` on the first k.

**Arms.**

* none: the built-in ``positional`` module (``"learned"`` table, default, or ``"sinusoidal"``).
* ``seqpe``: the positions come from a SeqPE encoder (``DigitPositionEncoder``: each
  token's grid cell (r, c) as its 4 decimal digits, embedded per digit slot, an MLP to d) and
  the arm's regularizer is added to the loss at every step: the contrastive term on 16 pivots ×
  16 candidates drawn in the 16×16 position universe, the transfer term on 8 shifted copies of
  the training block (8 offsets each), with the samplers of ``reglab.methods.seqpe``
  (pools of 32 batches drawn once per run from the seed).
* ``droppos``: learned positions; in training, the position embeddings of 75 % of the tokens are
  replaced by a learned mask token and a linear head on the final token states predicts each
  token's position; ``weight·L_pos`` over the dropped tokens is added to the loss (σ decays
  linearly from the arm's σ to 0 over the epochs, the official ``--sigma_decay``).
  With ``weight=0`` the arm is position dropping without the reconstruction loss.

Metrics: ``test_accuracy`` (selected epoch, all tokens), ``final_accuracy``,
``test_accuracy_short`` (with ``train_tokens``), ``dropped_position_accuracy`` (selected model,
test accuracy when the positions of 75 % of the tokens are dropped: the mask token for a
DropPos model, no position for the others; fixed per seed).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.data import load
from reglab.bench.experiments._train import SelectOnValidation, Timing, fused_optimizer, result
from reglab.bench.experiments.transformer import D_MODEL, TinyTransformer, builtin_positions, tokenize
from reglab.bench.tasks import TaskResult, build_arm, task
from reglab.methods.droppos import droppos, droppos_masks, droppos_sigma
from reglab.methods.seqpe import seqpe_contrastive_positions, seqpe_transfer_positions

EPOCHS, QUICK_EPOCHS, BATCH, PATCH = 25, 3, 64, 2
UNIVERSE = 16  # SeqPE positions: cells of a 16×16 grid (2 digits per coordinate)
CT_PIVOTS, CT_CANDIDATES, TR_BLOCKS, TR_NUM, POOL = 16, 16, 8, 8, 32
POS_MASK_RATIO = 0.75


class DigitPositionEncoder(nn.Module):
    """SeqPE-style encoder: a grid cell (r, c) as its digit sequence (2 digits each), one embedding
    per (slot, digit), an MLP to ``dim``. (The official encoder is a small causal transformer over
    the digit tokens.) ``forward(h, positions)`` adds the encodings of ``positions`` (token indices
    on a ``width``-wide grid); ``encode`` maps (…, 2) cells to (…, dim)."""

    def __init__(self, dim: int, width: int, digits: int = 2, emb: int = 16):
        super().__init__()
        self.width, self.digits = width, digits
        self.embed = nn.Embedding(2 * digits * 10, emb)
        self.mlp = nn.Sequential(nn.Linear(2 * digits * emb, 64), nn.GELU(), nn.Linear(64, dim), nn.LayerNorm(dim))

    def encode(self, cells: torch.Tensor) -> torch.Tensor:
        powers = 10 ** torch.arange(self.digits - 1, -1, -1)
        d = (cells.long()[..., None] // powers) % 10  # (…, 2, digits)
        slots = torch.arange(2 * self.digits).reshape(2, self.digits) * 10
        e = self.embed(d + slots)  # (…, 2, digits, emb)
        return self.mlp(e.flatten(-3))

    def cells(self, positions: torch.Tensor) -> torch.Tensor:
        return torch.stack([positions // self.width, positions % self.width], dim=-1)

    def forward(self, h: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return h + self.encode(self.cells(positions))


class DroppablePositions(nn.Module):
    """Wraps a position module: where ``self.drop`` (B, T) is 1, the token gets the learned mask
    token instead of its position embedding (DropPos); ``drop=None`` keeps every position."""

    def __init__(self, base: nn.Module, dim: int, mask_token: bool = True):
        super().__init__()
        self.base = base
        self.mask_token = nn.Parameter(torch.zeros(dim)) if mask_token else None
        if self.mask_token is not None:
            nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.drop: torch.Tensor | None = None

    def forward(self, h: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        with_pos = self.base(h, positions)
        if self.drop is None:
            return with_pos
        without = h + self.mask_token if self.mask_token is not None else h
        m = self.drop[..., None].to(h.dtype)
        return m * without + (1 - m) * with_pos


def hidden(model: TinyTransformer, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The final normalised token states (B, T, d) of ``TinyTransformer`` (its forward before pooling)."""
    h = model.positions(model.embed(tokens), positions)
    for block in model.blocks:
        h = block(h)
    return model.norm(h)


@torch.no_grad()
def accuracy(model: TinyTransformer, tokens: torch.Tensor, y: torch.Tensor, positions: torch.Tensor,
             drop: torch.Tensor | None = None) -> float:
    model.eval()
    pe = model.positions
    if isinstance(pe, DroppablePositions):
        pe.drop = drop
    acc = float((model.head(hidden(model, tokens, positions).mean(dim=1)).argmax(dim=1) == y).float().mean())
    if isinstance(pe, DroppablePositions):
        pe.drop = None
    return acc


@task("positions", datasets=("digits",))
def positions(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", positional: str = "learned",
    train_tokens: int = 0, epochs: int = EPOCHS, lr: float = 1e-3,
) -> TaskResult:
    """See the module docstring."""
    t0 = time.perf_counter()
    data = load(dataset, seed)
    epochs = QUICK_EPOCHS if quick else epochs
    x_tr, x_va, x_te = (tokenize(x, data.image_shape, PATCH) for x in (data.x_train, data.x_val, data.x_test))
    num_positions, token_dim = x_te.shape[1], x_te.shape[2]
    width = data.image_shape[-1] // PATCH
    short = train_tokens or num_positions
    if not 0 < short <= num_positions or short % width:
        raise ValueError(f"positions: train_tokens must be a multiple of {width} up to {num_positions}, got {train_tokens}")
    train_pos, full_pos = torch.arange(short), torch.arange(num_positions)
    x_tr, x_va = x_tr[:, :short], x_va[:, :short]

    torch.manual_seed(seed)
    name = None if arm is None else arm["name"]
    if name not in (None, "seqpe", "droppos"):
        raise ValueError(f"positions takes the seqpe or droppos arm, got {name!r}")
    reg = build_arm(arm)
    gen = torch.Generator().manual_seed(seed + 1)
    if name == "seqpe":
        base: nn.Module = DigitPositionEncoder(D_MODEL, width)
    else:
        base = builtin_positions(positional, num_positions, D_MODEL)
    pe = DroppablePositions(base, D_MODEL, mask_token=name == "droppos")
    model = TinyTransformer(token_dim, data.num_classes, pe)
    params = list(model.parameters())
    pos_head = None
    if name == "droppos":
        pos_head = nn.Linear(D_MODEL, num_positions)
        params += list(pos_head.parameters())
    ct_pool, tr_pool = [], []
    if name == "seqpe":
        universe = [(r, c) for r in range(UNIVERSE) for c in range(UNIVERSE)]
        for _ in range(1 if quick else POOL):
            piv = torch.tensor([universe[int(i)] for i in torch.randint(len(universe), (CT_PIVOTS,), generator=gen)])
            cand, labels = seqpe_contrastive_positions(piv, side=UNIVERSE, num_candidates=CT_CANDIDATES, dims=2,
                                                       generator=gen)
            idx, shifted = seqpe_transfer_positions(short, max_position=UNIVERSE, batch_size=TR_BLOCKS, num=TR_NUM,
                                                    width=width, generator=gen)
            ct_pool.append((piv, cand, labels))
            tr_pool.append((idx, shifted))
    opt = fused_optimizer(torch.optim.AdamW, params, lr=lr, weight_decay=0.0)
    selection = SelectOnValidation(model)
    selection.update(accuracy(model, x_va, data.y_val, train_pos), -1)
    curves: dict[str, list[float]] = {"val_accuracy": [], "test_accuracy": [], "train_loss": []}
    n, steps, wall, cpu = x_tr.shape[0], 0, 0.0, 0.0
    epoch_cpu: list[float] = []
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        w0, c0, total = time.perf_counter(), time.process_time(), 0.0
        for start in range(0, n, BATCH):
            idx = perm[start:start + BATCH]
            xb = x_tr[idx]
            if name == "droppos":
                _, mask_pos = droppos_masks(xb.shape[0], short, mask_ratio=0.0, pos_mask_ratio=POS_MASK_RATIO,
                                            generator=gen)
                order = torch.arange(short).expand(xb.shape[0], short)
                pe.drop = mask_pos
                h = hidden(model, xb, train_pos)
                pe.drop = None
                loss = F.cross_entropy(model.head(h.mean(dim=1)), data.y_train[idx])
                sigma = droppos_sigma(epoch, epochs, reg.sigma)
                lpos = droppos(pos_head(h)[..., :short], order, mask_pos, sigma=sigma, normalize=reg.normalize,
                               grid_width=width)
                loss = loss + reg.current_weight * lpos
            else:
                loss = F.cross_entropy(model(xb, train_pos), data.y_train[idx])
            if name == "seqpe":
                piv, cand, labels = ct_pool[steps % len(ct_pool)]
                tidx, shifted = tr_pool[steps % len(tr_pool)]
                enc = base.encode  # type: ignore[union-attr]
                main = enc(base.cells(train_pos))  # type: ignore[union-attr]
                loss = loss + reg(enc(piv), enc(cand).flatten(0, 1), labels, main, tidx, enc(shifted))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            total += float(loss.detach()) * idx.numel()
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        epoch_cpu.append(cpu)
        val = accuracy(model, x_va, data.y_val, train_pos)
        curves["val_accuracy"].append(val)
        curves["test_accuracy"].append(accuracy(model, x_te, data.y_test, full_pos))
        curves["train_loss"].append(total / n)
        selection.update(val, epoch)
    best = selection.best_model()
    drop_gen = torch.Generator().manual_seed(seed + 2)
    _, test_drop = droppos_masks(x_te.shape[0], num_positions, mask_ratio=0.0, pos_mask_ratio=POS_MASK_RATIO,
                                 generator=drop_gen)
    metrics = {
        "test_accuracy": accuracy(best, x_te, data.y_test, full_pos),  # type: ignore[arg-type]
        "final_accuracy": accuracy(model, x_te, data.y_test, full_pos),
        "dropped_position_accuracy": accuracy(best, x_te, data.y_test, full_pos, test_drop),  # type: ignore[arg-type]
    }
    if train_tokens:
        metrics["test_accuracy_short"] = accuracy(best, x_te[:, :short], data.y_test, train_pos)  # type: ignore[arg-type]
    timing = Timing(wall / max(steps, 1), cpu / max(steps, 1), epoch_cpu)
    kind = {"seqpe": "SeqPE digit encoder", "droppos": "learned positions + DropPos head"}.get(name, positional)
    setup = {
        "data": data.describe() + f" as {num_positions} tokens of {token_dim}"
        + (f", trained on the first {short}" if train_tokens else ""),
        "model": f"pre-norm transformer, d {D_MODEL}, 2 layers, 4 heads, {kind} positions, mean pool",
        "training": f"AdamW lr {lr:g}, batch {BATCH}, {epochs} epochs",
        "selection": "epoch of best validation accuracy",
    }
    return result(metrics, curves, timing, t0, setup)
