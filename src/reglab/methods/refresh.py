"""Refresh learning (Wang, Li, Shen & Huang, ICLR 2024: "A Unified and General Framework for Continual
Learning"): before each learning step, unlearn the current batch a little, then relearn it.

The unlearning step is a Fisher-damped, norm-rescaled gradient *ascent* with noise. Pinned from the
official code (joey-wang123/CL-refresh-learning, commit 7c90da58, ``models/derpp.py``):

* ``unlearn``: a copy of the network takes one SGD step (lr 0.01) on −CE, so Δ = 0.01·∇CE(θ); per
  parameter tensor, Δ̂ = ‖θ‖/(‖Δ‖ + 1e-20)·Δ, and θ ← θ + δ·(Δ̂ + 0.001·ξ)/(1 + 0.001·F), ξ ∼ N(0, I),
  δ = 1e-5 (``self.delta``); then the usual learning step on the same batch (``observe``);
* ``end_task``: F_new = mean over the task's samples of p_y(x)·(∇ log p_y(x))² (per sample, the
  squared gradient of the log-likelihood weighted by the probability of the label), and
  F ← τ·F + F_new with τ = 1e-5 (``self.tau``); F starts at 0.

The paper plugs it into replay methods (DER++, ER, ...); the method here is the unlearning step and its
Fisher, the rest of the training loop is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from reglab.core import Claim, Configurable, Paper, Registered, RegularizerInputError, register
from reglab.ops import check_positive, check_tensor

__all__ = ["refresh_unlearn_", "RefreshLearning"]

PAPER = Paper(
    "A Unified and General Framework for Continual Learning", "Wang, Li, Shen, Huang", 2024,
    arxiv="2403.13249", venue="ICLR", code="https://github.com/joey-wang123/CL-refresh-learning")

WHO = "RefreshLearning"


@torch.no_grad()
def refresh_unlearn_(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    fishers: list[torch.Tensor | None],
    delta: float = 1e-5,
    noise: float = 1e-3,
    damping: float = 1e-3,
    unlearn_lr: float = 0.01,
    generator: torch.Generator | None = None,
) -> None:
    """In place, per tensor: θ ← θ + δ·(‖θ‖·Δ/(‖Δ‖ + 1e-20) + noise·ξ)/(1 + damping·F), Δ = unlearn_lr·∇L
    (the official ``unlearn`` of ``models/derpp.py``); F = 0 where ``fishers`` holds None."""
    for p, g, f in zip(params, grads, fishers):
        step = unlearn_lr * g
        scaled = p.norm() / (step.norm() + 1e-20) * step
        xi = torch.randn(p.shape, generator=generator, dtype=p.dtype, device=p.device)
        update = scaled + noise * xi
        if f is not None:
            update = update / (1.0 + damping * f)
        p.add_(delta * update)


@register
class RefreshLearning(Registered, Configurable, nn.Module):
    """Refresh learning: a small Fisher-damped gradient-ascent step on the batch before learning it.

    Per step: ``refresh(model, lambda: loss_fn(model(x), y))`` then the usual backward + optimizer step
    on the same batch. The unlearning step is, per parameter tensor, θ ← θ + δ·(‖θ‖·ĝ + 0.001·ξ)/(1 +
    0.001·F) with ĝ the unit gradient of the loss (ascent), ξ ∼ N(0, I); after each task,
    ``refresh.end_task(model, inputs, labels)`` folds in that task's Fisher (F ← τF + F_new,
    F_new = mean p_y·(∇ log p_y)²). Defaults δ = 1e-5, τ = 1e-5, the 1e-3 noise and damping from the
    official code (joey-wang123/CL-refresh-learning, ``models/derpp.py``). The Fisher is kept in
    buffers ``fisher__<name>`` (``state_dict`` round trip). The loss closure's forward runs on the model
    itself (the official code runs it on a copy: BatchNorm running statistics are updated here).
    """

    name = "refresh_learning"
    kind = "procedure"
    form = "operation"
    paper = PAPER
    formula = "θ ← θ + δ(‖θ‖ ∇L/‖∇L‖ + σξ)/(1 + cF) before each learning step;  F ← τF + E[p_y (∇log p_y)²] per task"
    claims = (
        Claim(
            "Adding refresh learning to a continual-learning method (DER++, ER) raises its average accuracy",
            testable=False,
            untestable_reason="the paper's evidence is replay methods (DER++, ER, ...) on Seq-CIFAR-10/100 and "
            "Tiny-ImageNet with a 500-sample buffer; the lab has no replay-based continual task and its continual "
            "task's training loop calls no per-step operation",
            source="Wang et al. 2024, Tables 1-3 (CL methods with vs without refresh)",
        ),
    )

    def __init__(self, delta: float = 1e-5, tau: float = 1e-5, noise: float = 1e-3, damping: float = 1e-3,
                 unlearn_lr: float = 0.01):
        nn.Module.__init__(self)
        self.delta = check_positive(WHO, "delta", delta)
        self.tau = check_positive(WHO, "tau", tau, allow_zero=True)
        self.noise = check_positive(WHO, "noise", noise, allow_zero=True)
        self.damping = check_positive(WHO, "damping", damping, allow_zero=True)
        self.unlearn_lr = check_positive(WHO, "unlearn_lr", unlearn_lr)

    @staticmethod
    def _key(name: str) -> str:
        return "fisher__" + name.replace(".", "__")

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        for full, value in state_dict.items():
            name = full[len(prefix):]
            if full.startswith(prefix + "fisher__") and "." not in name and name not in self._buffers:
                self.register_buffer(name, torch.empty_like(value))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)

    def forward(self, model: nn.Module, loss_fn: Callable[[], torch.Tensor],
                generator: torch.Generator | None = None) -> torch.Tensor:
        """The unlearning step on ``model`` (in place); returns the loss at the old weights (detached)."""
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise RegularizerInputError(f"{WHO} got a model with no parameters that require grad")
        with torch.enable_grad():
            loss = loss_fn()
            check_tensor(WHO, loss, arg="loss")
            if loss.numel() != 1 or not loss.requires_grad:
                raise RegularizerInputError(f"{WHO} expects a scalar loss with an autograd graph from loss_fn()")
            grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for (_, p), g in zip(named, grads)]
        if not all(bool(torch.isfinite(g).all()) for g in grads):
            raise RegularizerInputError(f"{WHO}: NaN/inf gradient; the weights are left as they were")
        fishers = [self._buffers.get(self._key(n)) for n, _ in named]
        refresh_unlearn_([p for _, p in named], grads, fishers, self.delta, self.noise, self.damping,
                         self.unlearn_lr, generator)
        return loss.detach()

    @torch.no_grad()
    def end_task(self, model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> None:
        """F ← τ·F + mean_n p_{y_n}(x_n)·(∇ log p_{y_n}(x_n))², per sample as the official ``end_task``."""
        check_tensor(WHO, inputs, arg="inputs", min_ndim=1)
        if not isinstance(labels, torch.Tensor) or labels.shape[:1] != inputs.shape[:1]:
            raise RegularizerInputError(f"{WHO}.end_task needs one label per input")
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        sums = [torch.zeros_like(p) for _, p in named]
        with torch.enable_grad():
            for x, y in zip(inputs, labels):
                logp = torch.log_softmax(model(x[None]), dim=1)[0, int(y)]
                grads = torch.autograd.grad(logp, [p for _, p in named], allow_unused=True)
                weight = logp.detach().exp()
                for s, g in zip(sums, grads):
                    if g is not None:
                        s.add_(weight * g.pow(2))
        for (n, _), s in zip(named, sums):
            key, new = self._key(n), s / inputs.shape[0]
            old = self._buffers.get(key)
            self.register_buffer(key, new if old is None else self.tau * old + new)

    def __repr__(self) -> str:
        cfg: dict[str, Any] = self.get_config()
        cfg.pop("name", None)
        return f"RefreshLearning({', '.join(f'{k}={v!r}' for k, v in cfg.items())})"
