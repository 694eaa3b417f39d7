"""Lab task ``attention_logits``: attention-logit growth of a tiny transformer at a high learning rate.

Wortsman et al. 2023 ("Small-scale proxies for large-scale Transformer
training instabilities", arXiv 2309.14322, Sec. 3.1, Fig. 1-2) show that
the attention-logit growth instability of large transformers reproduces in
small ones trained at a high learning rate: the logits q·k/√D_h grow, the
attention becomes one-hot and the final loss degrades; normalizing queries
and keys (qk-layernorm, Dehghani et al. 2023) removes it. This task is that
proxy at the lab's scale, with its own attention so that an arm can act on
each head's queries and keys.

**Data as tokens.** A digit (8×8) is cut into 2×2 patches in raster order
(16 tokens of 4 pixels); an MNIST-1D signal (length 40) into 10 chunks of 4
samples. The split is the lab's (``reglab.bench.data``), drawn by the seed.

**Model**: a linear token embedding (d_model 32), a learned position table
(truncated-normal std 0.02), ``depth`` (default 2) pre-norm blocks
``h += Attn(LN(h)); h += MLP(LN(h))`` with ``heads`` (default 4) heads and a
GELU MLP of width 64, mean pooling, LayerNorm and a linear head. The
attention is written out: q, k, v of shape (B, heads, T, D_h), then
``q, k = arm(q, k)`` when an arm is given, logits ``q kᵀ/√D_h``, softmax.

**Training.** AdamW (``lr`` default 3e-2, deliberately high; ``weight_decay``
default 0), batch 64, ``epochs`` (default 15 on digits, 240 steps; 5 on MNIST-1D, 250
steps; 2 in quick mode), an optional
linear learning-rate warm-up over the first ``warmup`` optimizer steps and
global gradient-norm clipping at ``clip`` (0: off). When the training loss
or a weight becomes non-finite the run stops (``diverged`` = 1).

**Arm** (``arm`` config): a registered module of form ``"module"`` called as
``arm(q, k) -> (q, k)`` on (B, heads, T, D_h) tensors, e.g. ``qk_norm``;
each block builds its own (with ``head_dim`` when the constructor takes it,
for a learnable gain).

Metrics (test split):

* ``final_loss``: cross-entropy of the final model, as Wortsman et al.
  score a run: min(final loss, loss at initialization); a diverged run
  scores the loss at initialization;
* ``final_accuracy``: accuracy of the final model (a diverged run: that of
  its last finite epoch);
* ``test_accuracy``: accuracy of the epoch selected on validation accuracy
  (the weights before training count as epoch −1);
* ``max_attention_logit``: the largest |q·k|/√D_h over layers, heads, test
  samples and query-key pairs of the final model (after the arm), the
  quantity whose growth Wortsman et al. Fig. 2 track;
* ``attention_entropy``: mean row entropy of the final model's attention
  (nats; log 16 = 2.77 is uniform);
* ``diverged``.

Curves per epoch: ``train_loss``, ``val_loss``, ``val_accuracy``,
``max_attention_logit`` (on validation).
"""

from __future__ import annotations

import copy
import inspect
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.data import load
from reglab.bench.experiments._train import SelectOnValidation, Timing, fused_optimizer, result
from reglab.bench.tasks import TaskResult, build_arm, task
from reglab.core.registry import get

D_MODEL, MLP_WIDTH, BATCH, PATCH = 32, 64, 64, 2
DEPTH, HEADS, LR, EPOCHS, MNIST1D_EPOCHS, QUICK_EPOCHS = 2, 4, 3e-2, 15, 5, 2


def tokens_of(x: torch.Tensor, image_shape: tuple[int, ...]) -> torch.Tensor:
    """(n, d) flat inputs -> (n, T, 4): 2×2 patches in raster order (8×8 images) or chunks of 4 samples."""
    n = x.shape[0]
    if len(image_shape) == 3:
        _, h, w = image_shape
        t = x.reshape(n, h // PATCH, PATCH, w // PATCH, PATCH).permute(0, 1, 3, 2, 4)
        return t.reshape(n, (h // PATCH) * (w // PATCH), PATCH * PATCH)
    return x.reshape(n, -1, PATCH * PATCH)


class QKAttention(nn.Module):
    """Multi-head self-attention with a hook on each head's queries and keys: ``qk(q, k) -> (q, k)``.

    Keeps the last forward's largest |logit| and mean row entropy (no graph)."""

    def __init__(self, dim: int, heads: int, qk: nn.Module | None = None):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.qk = qk
        self.max_logit = float("nan")
        self.entropy = float("nan")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        q, k, v = self.qkv(h).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if self.qk is not None:
            q, k = self.qk(q, k)
        logits = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)
        probs = logits.softmax(dim=-1)
        with torch.no_grad():
            self.max_logit = float(logits.abs().max())
            self.entropy = float(-torch.special.xlogy(probs, probs).sum(-1).mean())
        return self.proj((probs @ v).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, qk: nn.Module | None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = QKAttention(dim, heads, qk)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, MLP_WIDTH), nn.GELU(), nn.Linear(MLP_WIDTH, dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.norm1(h))
        return h + self.mlp(self.norm2(h))


class LogitTransformer(nn.Module):
    """Token embedding + learned positions, pre-norm blocks whose attention takes ``make_qk()``, mean pool, LN, head."""

    def __init__(self, token_dim: int, num_tokens: int, num_classes: int, *, depth: int, heads: int,
                 make_qk=None, dim: int = D_MODEL):
        super().__init__()
        self.embed = nn.Linear(token_dim, dim)
        self.pos = nn.Parameter(torch.empty(num_tokens, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(
            Block(dim, heads, make_qk() if make_qk is not None else None) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens) + self.pos
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h.mean(dim=1)))


@torch.no_grad()
def evaluate(model: LogitTransformer, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Loss, accuracy, largest |attention logit| and mean attention entropy over the layers, in eval mode."""
    model.eval()
    logits = model(x)
    return {
        "loss": float(F.cross_entropy(logits, y)),
        "accuracy": float((logits.argmax(dim=1) == y).float().mean()),
        "max_logit": max(b.attn.max_logit for b in model.blocks),
        "entropy": sum(b.attn.entropy for b in model.blocks) / len(model.blocks),
    }


def _qk_factory(arm: dict | None, head_dim: int):
    if arm is None:
        return None
    cls = get(arm["name"])
    if getattr(cls, "form", None) != "module" or not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise ValueError(f"attention_logits takes a module arm applied to (q, k) per head, got {arm['name']!r}")
    runtime = {"head_dim": head_dim} if "head_dim" in inspect.signature(cls.__init__).parameters else {}
    return lambda: build_arm(arm, **runtime)


@task("attention_logits", datasets=("digits", "mnist1d"))
def attention_logits(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits", lr: float = LR,
    warmup: int = 0, clip: float = 0.0, weight_decay: float = 0.0, depth: int = DEPTH, heads: int = HEADS,
    epochs: int | None = None,
) -> TaskResult:
    """See the module docstring for the model, the arm and the metrics."""
    t0 = time.perf_counter()
    if D_MODEL % heads:
        raise ValueError(f"attention_logits: heads must divide d_model {D_MODEL}, got {heads}")
    data = load(dataset, seed)
    if epochs is None:  # MNIST-1D has 3.2× the training samples: about the same number of steps (240 and 250)
        epochs = MNIST1D_EPOCHS if dataset == "mnist1d" else EPOCHS
    epochs = QUICK_EPOCHS if quick else epochs
    x_tr, x_va, x_te = (tokens_of(x, data.image_shape) for x in (data.x_train, data.x_val, data.x_test))

    torch.manual_seed(seed)
    make_qk = _qk_factory(arm, D_MODEL // heads)
    model = LogitTransformer(x_te.shape[2], x_te.shape[1], data.num_classes, depth=depth, heads=heads,
                             make_qk=make_qk)
    opt = fused_optimizer(torch.optim.AdamW, model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) if warmup > 0 else 1.0)
    selection = SelectOnValidation(model)
    init = evaluate(model, x_te, data.y_test)
    selection.update(evaluate(model, x_va, data.y_val)["accuracy"], -1)
    curves: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_accuracy": [], "max_attention_logit": []}
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
            loss = F.cross_entropy(model(x_tr[idx]), data.y_train[idx])
            if not torch.isfinite(loss):
                diverged = True
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
            steps += 1
            total += float(loss.detach()) * idx.numel()
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        epoch_cpu.append(cpu)
        if diverged or not all(torch.isfinite(p).all() for p in model.parameters()):
            diverged = True
            break
        val = evaluate(model, x_va, data.y_val)
        curves["train_loss"].append(total / n)
        curves["val_loss"].append(val["loss"])
        curves["val_accuracy"].append(val["accuracy"])
        curves["max_attention_logit"].append(val["max_logit"])
        selection.update(val["accuracy"], epoch)
        last_good = copy.deepcopy(model.state_dict())
    model.load_state_dict(last_good)
    final = evaluate(model, x_te, data.y_test)
    final_loss = init["loss"] if diverged or not math.isfinite(final["loss"]) else min(final["loss"], init["loss"])
    metrics = {
        "final_loss": final_loss,
        "final_accuracy": final["accuracy"],
        "test_accuracy": evaluate(selection.best_model(), x_te, data.y_test)["accuracy"],
        "max_attention_logit": final["max_logit"],
        "attention_entropy": final["entropy"],
        "initial_loss": init["loss"],
        "diverged": float(diverged),
    }
    timing = Timing(wall / max(steps, 1), cpu / max(steps, 1), epoch_cpu)
    setup = {
        "data": data.describe() + f" as {x_te.shape[1]} tokens of {x_te.shape[2]}",
        "model": f"pre-norm transformer, d {D_MODEL}, {depth} layers, {heads} heads (head dim {D_MODEL // heads}), "
        f"MLP {MLP_WIDTH}, learned positions, mean pool + LN",
        "training": f"AdamW lr {lr:g}, weight decay {weight_decay:g}, batch {BATCH}, {epochs} epochs"
        + (f", linear warm-up {warmup} steps" if warmup else "") + (f", grad-norm clip {clip:g}" if clip else ""),
        "selection": "final model (final_loss, max_attention_logit); test_accuracy: epoch of best validation accuracy",
    }
    return result(metrics, curves, timing, t0, setup)
