"""Lab task ``transformer``: a tiny vision transformer on digit patches (attention regularizers).

**Data as tokens.** A digit (8×8) is cut into ``patch``×``patch`` patches in
raster order: ``patch=2`` gives 16 tokens of 4 pixels (default), ``patch=4``
4 tokens of 16, ``patch=1`` 64 tokens of 1. An MNIST-1D signal (length 40)
is cut into consecutive chunks of ``patch²`` samples (10 tokens of 4).

**Model** (``TinyTransformer``): a linear token embedding (d_model 32),
a position module (below), ``depth=2`` pre-norm blocks
``h += Attn(LN(h)); h += MLP(LN(h))`` with ``heads=4`` heads (head dim 8) and
a GELU MLP of width 64, then mean pooling over the tokens, LayerNorm and a
linear head. The attention is written out (``Attention``): every forward
keeps each layer's attention probabilities, (B, H, T, T) rows summing to 1,
with their graph, so ``model.attention_maps()`` returns the list over layers
that ``attention_entropy`` takes.

**Training.** AdamW (``lr`` default 1e-3, ``weight_decay`` default 0, i.e.
Adam), batch 64, 40 epochs (12 on MNIST-1D, 3 in quick mode; ``epochs`` overrides); optional linear learning-rate
warm-up over the first ``warmup`` optimizer steps and gradient-norm clipping
at ``clip`` (0: off). The epoch is selected on validation accuracy (the
weights before training count as epoch −1, so a run that diverges at once
still has a finite selection). When the training loss becomes non-finite the
run stops: ``diverged`` = 1, and the last finite epoch's weights are the
"final" model.

**Arms** (``arm`` config; routed by what the registered class is):

* ``attention_entropy``: built with ``num_heads`` = the model's heads; its
  weighted penalty on ``model.attention_maps()`` is added to the training
  loss; its own parameters (the learnable per-head thresholds θ) are
  trained by the same optimizer;
* ``sigma_reparam``: applied to every ``nn.Linear`` of the model before the
  optimizer is built (``arm(model)``), σReparam as a parametrization;
* a registered weight penalty (``l2``, …): attached to every Linear weight
  with ``reglab.attach`` (its penalty added to the loss);
* any other registered **module** (form ``"module"``): a position-encoding
  arm; it replaces the ``positional`` module (next paragraph).

**Position encodings (for SeqPE, DropPos, ... arms).** ``positional`` picks
the built-in module: ``"learned"`` (default: a trainable (T, d) table,
truncated-normal std 0.02, added to the tokens), ``"sinusoidal"`` (fixed
sin/cos of Vaswani et al., added), ``"none"``. Every position module is
called as ``pe(h, positions) -> h``: ``h`` (B, T, d) token embeddings,
``positions`` (T,) long, the index of each token in the *full* sequence
(so a shorter training sequence still carries the true positions). A
position-encoding arm is a registered ``nn.Module`` (form ``"module"``) with
that forward; the task builds it with ``build_arm(arm, **runtime)`` passing,
among ``dim`` (d_model), ``num_positions`` (full sequence length) and
``base`` (the built-in module ``positional`` selects, e.g. to wrap the
learned table), only those its constructor accepts. It follows
``model.train()``/``.eval()`` (a DropPos-style module drops only in
training).

**Length / position generalization.** ``train_tokens=k`` (0: all) trains
and validates on the first ``k`` tokens only (positions 0…k−1; raster order,
so the top rows of a digit); ``test_accuracy`` is then measured on the full
sequence (positions never seen in training) and ``test_accuracy_short`` on
the first ``k`` tokens as in training. Model selection stays on the
(short) validation split.

Metrics: ``test_accuracy`` (selected epoch; full length), ``final_accuracy``
(final model), ``attention_entropy`` (final model: mean over layers, heads,
test samples and query rows of the row entropy −Σⱼ Aᵢⱼ log Aᵢⱼ in nats; a
collapse drives it toward 0; log T is the maximum), ``min_head_entropy``
(final model: the lowest per-(layer, head) mean entropy),
``selected_attention_entropy`` (the same mean for the selected model),
``diverged`` (1 if the training loss became non-finite), and
``test_accuracy_short`` when ``train_tokens`` is set. Curves:
``test_accuracy``, ``val_accuracy``, ``train_loss``, ``attention_entropy``
(on validation) per epoch.
"""

from __future__ import annotations

import copy
import inspect
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

import reglab
from reglab.bench.data import load
from reglab.bench.experiments._train import SelectOnValidation, Timing, fused_optimizer, result
from reglab.bench.tasks import TaskResult, build_arm, task
from reglab.core.registry import get

D_MODEL, DEPTH, HEADS, MLP_WIDTH, EPOCHS, MNIST1D_EPOCHS, QUICK_EPOCHS, BATCH = 32, 2, 4, 64, 40, 12, 3, 64
POSITIONAL = ("learned", "sinusoidal", "none")


# ------------------------------------------------------------------ tokens
def tokenize(x: torch.Tensor, image_shape: tuple[int, ...], patch: int) -> torch.Tensor:
    """(n, d) flat inputs -> (n, T, token_dim) tokens: ``patch``×``patch`` image patches in raster
    order for 2-D images, chunks of ``patch²`` consecutive samples for 1-D signals."""
    n = x.shape[0]
    if len(image_shape) == 3:
        _, h, w = image_shape
        if h % patch or w % patch:
            raise ValueError(f"transformer: patch {patch} does not divide the {h}×{w} image")
        t = x.reshape(n, h // patch, patch, w // patch, patch).permute(0, 1, 3, 2, 4)
        return t.reshape(n, (h // patch) * (w // patch), patch * patch)
    length = image_shape[-1]
    size = patch * patch
    if length % size:
        raise ValueError(f"transformer: chunks of patch² = {size} do not divide the signal length {length}")
    return x.reshape(n, length // size, size)


# ------------------------------------------------------- position modules
class LearnedPositions(nn.Module):
    """A trainable (num_positions, dim) table added to the tokens (ViT's learned embedding)."""

    def __init__(self, num_positions: int, dim: int):
        super().__init__()
        self.table = nn.Parameter(torch.empty(num_positions, dim))
        nn.init.trunc_normal_(self.table, std=0.02)

    def forward(self, h: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return h + self.table[positions]


class SinusoidalPositions(nn.Module):
    """Fixed sin/cos encodings (Vaswani et al. 2017) added to the tokens; defined for any position."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, h: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=h.dtype) / half)
        angle = positions.to(h.dtype)[:, None] * freq[None]
        enc = torch.cat([angle.sin(), angle.cos()], dim=1)
        return h + F.pad(enc, (0, self.dim - 2 * half))


class NoPositions(nn.Module):
    def forward(self, h: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return h


def builtin_positions(positional: str, num_positions: int, dim: int) -> nn.Module:
    if positional == "learned":
        return LearnedPositions(num_positions, dim)
    if positional == "sinusoidal":
        return SinusoidalPositions(dim)
    if positional == "none":
        return NoPositions()
    raise ValueError(f"transformer: positional must be one of {POSITIONAL}, got {positional!r}")


# ------------------------------------------------------------------ model
class Attention(nn.Module):
    """Multi-head self-attention that keeps its probabilities (B, H, T, T) from the last forward."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.probs: torch.Tensor | None = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        q, k, v = self.qkv(h).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        probs = (q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)).softmax(dim=-1)
        self.probs = probs
        return self.proj((probs @ v).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_width: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_width), nn.GELU(), nn.Linear(mlp_width, dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.norm1(h))
        return h + self.mlp(self.norm2(h))


class TinyTransformer(nn.Module):
    """Token embedding, a position module ``pe(h, positions)``, pre-norm blocks, mean pool, LN, head.

    ``forward(tokens, positions=None)``: tokens (B, T, token_dim); positions
    (T,) long (default 0…T−1)."""

    def __init__(self, token_dim: int, num_classes: int, positions: nn.Module, *, dim: int = D_MODEL,
                 depth: int = DEPTH, heads: int = HEADS, mlp_width: int = MLP_WIDTH):
        super().__init__()
        self.embed = nn.Linear(token_dim, dim)
        self.positions = positions
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_width) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        if positions is None:
            positions = torch.arange(tokens.shape[1])
        h = self.positions(self.embed(tokens), positions)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h.mean(dim=1)))

    def attention_maps(self) -> list[torch.Tensor]:
        """Each layer's attention probabilities (B, H, T, T) from the last forward (with their graph)."""
        return [block.attn.probs for block in self.blocks]


# --------------------------------------------------------------- metrics
def row_entropy(probs: torch.Tensor) -> torch.Tensor:
    """−Σⱼ p log p over the last dim (0·log 0 = 0)."""
    return -torch.special.xlogy(probs, probs).sum(dim=-1)


@torch.no_grad()
def evaluate(model: TinyTransformer, tokens: torch.Tensor, y: torch.Tensor,
             positions: torch.Tensor | None = None) -> tuple[float, float, float]:
    """(accuracy, mean attention entropy, lowest per-(layer, head) mean entropy) in eval mode."""
    model.eval()
    acc = float((model(tokens, positions).argmax(dim=1) == y).float().mean())
    per_head = torch.stack([row_entropy(p).mean(dim=(0, 2)) for p in model.attention_maps()])  # (L, H)
    return acc, float(per_head.mean()), float(per_head.min())


# ------------------------------------------------------------------ arms
def _accepted(name: str, runtime: dict) -> dict:
    params = inspect.signature(get(name).__init__).parameters
    return {k: v for k, v in runtime.items() if k in params}


def _route(arm: dict | None) -> str:
    """'none', 'attention_entropy', 'sigma_reparam', 'weight_penalty' or 'positions'."""
    if arm is None:
        return "none"
    cls = get(arm["name"])
    if cls.name in ("attention_entropy", "sigma_reparam"):
        return cls.name
    if cls.kind == "weight" and cls.form == "penalty":
        return "weight_penalty"
    if cls.form == "module":
        return "positions"
    raise ValueError(
        f"transformer takes attention_entropy, sigma_reparam, a weight penalty or a position-encoding module "
        f"arm, got {arm['name']!r}"
    )


@task("transformer", datasets=("digits", "digits_half", "mnist1d"))
def transformer(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", lr: float = 1e-3,
    warmup: int = 0, clip: float = 0.0, weight_decay: float = 0.0, positional: str = "learned",
    train_tokens: int = 0, patch: int = 2, epochs: int | None = None,
) -> TaskResult:
    """See the module docstring for the model, the arms and the metrics."""
    t0 = time.perf_counter()
    data = load(dataset, seed)
    if epochs is None:  # MNIST-1D has 3.2× the training samples: fewer epochs, the same ~10 s budget
        epochs = MNIST1D_EPOCHS if dataset == "mnist1d" else EPOCHS
    epochs = QUICK_EPOCHS if quick else epochs
    shape = data.image_shape
    x_tr, x_va, x_te = (tokenize(x, shape, patch) for x in (data.x_train, data.x_val, data.x_test))
    num_positions, token_dim = x_te.shape[1], x_te.shape[2]
    if not 0 <= train_tokens <= num_positions:
        raise ValueError(f"transformer: train_tokens must be in 0..{num_positions}, got {train_tokens}")
    short = train_tokens if train_tokens else num_positions
    train_pos = torch.arange(short)
    x_tr, x_va = x_tr[:, :short], x_va[:, :short]

    torch.manual_seed(seed)
    route = _route(arm)
    base = builtin_positions(positional, num_positions, D_MODEL)
    pe = base
    if route == "positions":
        pe = build_arm(arm, **_accepted(arm["name"], {"dim": D_MODEL, "num_positions": num_positions, "base": base}))
    model = TinyTransformer(token_dim, data.num_classes, pe)
    reg = regs = None
    extra: list[nn.Parameter] = []
    if route == "sigma_reparam":
        build_arm(arm)(model)
    elif route == "attention_entropy":
        reg = build_arm(arm, **_accepted(arm["name"], {"num_heads": HEADS}))
        extra = list(reg.parameters())
    elif route == "weight_penalty":
        regs = reglab.attach(model, build_arm(arm).on(modules=nn.Linear))

    opt = fused_optimizer(torch.optim.AdamW, list(model.parameters()) + extra, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) if warmup > 0 else 1.0)
    selection = SelectOnValidation(model)
    curves: dict[str, list[float]] = {"test_accuracy": [], "val_accuracy": [], "train_loss": [],
                                      "attention_entropy": []}
    selection.update(evaluate(model, x_va, data.y_val, train_pos)[0], -1)
    last_good = copy.deepcopy(model.state_dict())
    gen = torch.Generator().manual_seed(seed + 1)
    n, steps, wall, cpu, diverged = x_tr.shape[0], 0, 0.0, 0.0, False
    epoch_cpu: list[float] = []
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        w0, c0 = time.perf_counter(), time.process_time()
        total = 0.0
        for start in range(0, n, BATCH):
            idx = perm[start : start + BATCH]
            loss = F.cross_entropy(model(x_tr[idx], train_pos), data.y_train[idx])
            if reg is not None:
                loss = loss + reg(model.attention_maps())
            if regs is not None:
                loss = loss + regs.penalty()
            if not torch.isfinite(loss):
                diverged = True
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
            if regs is not None:
                regs.step(opt)
            if reg is not None:
                reg.step()
            steps += 1
            total += float(loss.detach()) * idx.numel()
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        epoch_cpu.append(cpu)
        if diverged or not all(torch.isfinite(p).all() for p in model.parameters()):
            diverged = True
            break
        val_acc, val_ent, _ = evaluate(model, x_va, data.y_val, train_pos)
        curves["val_accuracy"].append(val_acc)
        curves["attention_entropy"].append(val_ent)
        curves["train_loss"].append(total / n)
        curves["test_accuracy"].append(evaluate(model, x_te, data.y_test)[0])
        selection.update(val_acc, epoch)
        last_good = copy.deepcopy(model.state_dict())
    if regs is not None:
        regs.detach()
    model.load_state_dict(last_good)
    final_acc, entropy, min_head = evaluate(model, x_te, data.y_test)  # also drops the last training graph
    best = selection.best_model()
    metrics = {
        "test_accuracy": evaluate(best, x_te, data.y_test)[0],
        "final_accuracy": final_acc,
        "attention_entropy": entropy,
        "min_head_entropy": min_head,
        "selected_attention_entropy": evaluate(best, x_te, data.y_test)[1],
        "diverged": float(diverged),
    }
    if train_tokens:
        metrics["test_accuracy_short"] = evaluate(best, x_te[:, :short], data.y_test, train_pos)[0]
    timing = Timing(wall / max(steps, 1), cpu / max(steps, 1), epoch_cpu)
    tokens = f"{num_positions} tokens of {token_dim}" + (f", trained on the first {short}" if train_tokens else "")
    setup = {
        "data": data.describe() + f" as {tokens}",
        "model": f"pre-norm transformer, d {D_MODEL}, {DEPTH} layers, {HEADS} heads, MLP {MLP_WIDTH}, "
        f"{positional} positions, mean pool + LN",
        "training": f"AdamW lr {lr:g}, weight decay {weight_decay:g}, batch {BATCH}, {epochs} epochs"
        + (f", linear warm-up {warmup} steps" if warmup else "") + (f", grad clip {clip:g}" if clip else ""),
        "selection": "epoch of best validation accuracy",
    }
    return result(metrics, curves, timing, t0, setup)
