"""Attach regularizers to a model: ``regs = reglab.attach(model, [...])``.

::

    regs = reglab.attach(model, [
        reglab.L2(5e-4),                                   # default selection
        reglab.GroupLasso(1e-4).on(modules=nn.Conv2d, mode="prox"),
        reglab.VCReg(0.1).on(activations="encoder.layer3"),
    ])
    loss = task_loss + regs.penalty()
    loss.backward(); optimizer.step(); regs.step(optimizer)

What each binding selects is described in :mod:`reglab.core.selection`.
``penalty()`` consumes activation captures (``num_inputs`` at a time: two
for two-view losses, so run both views through the model before calling it)
and releases them, so hooks never keep tensors alive past ``penalty()``.
``regs.detach()`` removes the hooks.

**Proximal mode**: ``regs.step(opt)`` applies ``prox_{lr·weight·R}`` to each
selected tensor after ``opt.step()``, with ``lr`` read from the tensor's
optimizer param group. With adaptive optimizers (Adam) ``lr`` is the nominal
learning rate, not the per-coordinate step; the update is then a heuristic,
as in most libraries.
"""

from __future__ import annotations

import difflib
import warnings
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from reglab.core.regularizer import Binding, Regularizer
from reglab.core.selection import pick_tensor

__all__ = ["RegularizerSet", "attach", "apply_prox", "learning_rates"]


def learning_rates(optimizer: torch.optim.Optimizer) -> dict[int, float]:
    """``id(param) -> lr`` from the optimizer's param groups."""
    out: dict[int, float] = {}
    for group in optimizer.param_groups:
        lr = group["lr"]
        lr = float(lr.item()) if isinstance(lr, torch.Tensor) else float(lr)
        for p in group["params"]:
            out[id(p)] = lr
    return out


@torch.no_grad()
def apply_prox(
    regularizer: Any,
    named_params: Sequence[tuple[str, nn.Parameter]],
    optimizer: torch.optim.Optimizer,
) -> None:
    """Apply ``regularizer.prox_`` to each parameter with step size lr × weight."""
    coef = regularizer.current_weight
    if coef == 0.0:
        return
    lrs = learning_rates(optimizer)
    who = type(regularizer).__name__
    for name, p in named_params:
        if not p.requires_grad:  # frozen after attach: a frozen weight stays as it is
            continue
        if id(p) not in lrs:
            raise ValueError(
                f"{who} (prox mode) selected parameter {name!r}, which the optimizer does not update; "
                f"narrow the selection or add it to the optimizer"
            )
        regularizer.prox_(p, lrs[id(p)] * coef)


class _CaptureHook:
    """The forward hook that captures a bound submodule's output in training mode.

    A class, not a closure, so a model with reglab's hooks still pickles
    (``torch.save(model)``, ``ddp_spawn``)."""

    def __init__(self, binding: Binding, buffer: deque, path: str):
        self.binding, self.buffer, self.path = binding, buffer, path
        self.warned = False

    def __call__(self, module: nn.Module, args: Any, output: Any) -> None:
        if not (module.training and torch.is_grad_enabled()):
            return
        who = type(self.binding.regularizer).__name__
        if len(self.buffer) == self.buffer.maxlen and not self.warned:
            self.warned = True
            warnings.warn(
                f"{who} on {self.path!r}: {self.buffer.maxlen} captured outputs were never consumed; "
                f"call regs.penalty() every training step (older captures are dropped)",
                stacklevel=2,
            )
        self.buffer.append(pick_tensor(output, self.binding.select, self.path, who))


class RegularizerSet(nn.Module):
    """Regularizers attached to one model; returned by :func:`attach`.

    Its ``state_dict`` holds every regularizer's state (schedule steps,
    anchors, power-iteration vectors), so saving it with the model and
    optimizer resumes a run exactly.
    """

    def __init__(self, model: nn.Module, bindings: Iterable[Binding | Regularizer]):
        super().__init__()
        bindings = [b if isinstance(b, Binding) else Binding(b) for b in bindings]
        self.regularizers = nn.ModuleList([b.regularizer for b in bindings])
        self.bindings: list[Binding] = bindings
        self.last: dict[str, torch.Tensor] = {}
        self._params: list[list[tuple[str, nn.Parameter]]] = []
        self._captures: list[deque] = []
        self._hooks: list[Any] = []
        self._names = self._unique_names(bindings)
        self.__dict__["_model"] = model  # a plain reference: the model is not part of our state_dict
        modules = dict(model.named_modules())
        for b in bindings:
            who = type(b.regularizer).__name__
            buffer: deque = deque(maxlen=b.max_captures)
            self._captures.append(buffer)
            if b.on_activations:
                self._params.append([])
                for path in b.activations:
                    if path not in modules:
                        raise ValueError(
                            f"{who}.on(activations={path!r}): no such submodule; "
                            f"known: {_close_names(path, modules)}"
                        )
                    hook = modules[path].register_forward_hook(self._make_hook(b, buffer, path))
                    self._hooks.append(hook)
            else:
                selected = b.select_parameters(model)
                if not selected:
                    raise ValueError(f"{who}: {b!r} selects no parameters of {type(model).__name__}")
                self._params.append(selected)
                setup = getattr(b.regularizer, "setup", None)
                if callable(setup):
                    setup(selected)

    @staticmethod
    def _unique_names(bindings: list[Binding]) -> list[str]:
        names, counts = [], {}
        for b in bindings:
            counts[b.name] = counts.get(b.name, 0) + 1
            names.append(b.name if counts[b.name] == 1 else f"{b.name}#{counts[b.name]}")
        return names

    @staticmethod
    def _make_hook(binding: Binding, buffer: deque, path: str) -> _CaptureHook:
        return _CaptureHook(binding, buffer, path)

    # ------------------------------------------------------------------ use
    def penalty(self) -> torch.Tensor:
        """Sum of the weighted penalties; records each in ``self.last`` (detached)."""
        total: torch.Tensor | None = None
        last: dict[str, torch.Tensor] = {}
        for name, b, params, captured in zip(self._names, self.bindings, self._params, self._captures):
            if b.mode == "prox":
                continue
            reg = b.regularizer
            coef = reg.current_weight
            if b.on_activations:
                value = self._activation_penalty(b, captured)
            elif coef == 0.0:
                value = None  # a zero weight (e.g. during warm-up) costs nothing
            else:
                tensors = [p for _, p in params]
                value = reg.penalty_global(tensors) if b.scope == "global" else reg.penalty(tensors)
            if value is None:
                continue
            value = coef * value
            last[name] = value.detach()
            total = value if total is None else total + value
        self.last = last
        if total is None:
            return torch.zeros((), device=self._device())
        return total

    def _activation_penalty(self, b: Binding, captured: deque) -> torch.Tensor:
        reg = b.regularizer
        k = reg.num_inputs
        who = type(reg).__name__
        if not captured:
            raise RuntimeError(
                f"{who} on activations {b.activations}: nothing was captured since the last penalty(); "
                f"run the model forward in training mode with autograd on before calling penalty()"
            )
        if len(captured) % k:
            n = len(captured)
            captured.clear()
            raise RuntimeError(
                f"{who} takes {k} views per call but {n} outputs of {b.activations} were captured; "
                f"run the model on all {k} views before penalty()"
            )
        items = list(captured)
        captured.clear()
        value = None
        for i in range(0, len(items), k):
            term = reg.penalty(*items[i : i + k])
            value = term if value is None else value + term
        return value

    def step(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """After ``optimizer.step()``: apply proximal updates, then advance schedules."""
        prox = [(b, ps) for b, ps in zip(self.bindings, self._params) if b.mode == "prox"]
        if prox:
            if optimizer is None:
                raise ValueError("regs.step(optimizer): proximal bindings need the optimizer for their step size")
            for b, ps in prox:
                apply_prox(b.regularizer, ps, optimizer)
        for reg in self.regularizers:
            reg.step()

    def parameters_of(self, name: str) -> list[tuple[str, nn.Parameter]]:
        """The (name, parameter) pairs selected by binding ``name``."""
        return list(self._params[self._names.index(name)])

    def detach(self) -> None:
        """Remove every forward hook and drop captured tensors."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        for c in self._captures:
            c.clear()

    def __enter__(self) -> RegularizerSet:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach()

    def _device(self) -> torch.device:
        for p in self.__dict__["_model"].parameters():
            return p.device
        return torch.device("cpu")

    def extra_repr(self) -> str:
        return "\n".join(f"{n}: {b!r}" for n, b in zip(self._names, self.bindings))


def _close_names(path: str, modules: dict[str, nn.Module]) -> str:
    close = difflib.get_close_matches(path, [m for m in modules if m], n=5, cutoff=0.3)
    return ", ".join(repr(c) for c in close) or "(none close)"


def attach(model: nn.Module, regularizers: Iterable[Binding | Regularizer] | Binding | Regularizer) -> RegularizerSet:
    """Bind regularizers to ``model``; returns a :class:`RegularizerSet`."""
    if isinstance(regularizers, (Binding, Regularizer)):
        regularizers = [regularizers]
    return RegularizerSet(model, regularizers)
