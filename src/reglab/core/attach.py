"""Attach regularizers to a model: ``regs = reglab.attach(model, [...])``.

::

    regs = reglab.attach(model, [
        reglab.L2(5e-4),                                   # default selection
        reglab.GroupLasso(1e-4).on(modules=nn.Conv2d, mode="prox"),
        reglab.VCReg(0.1).on(activations="encoder.layer3"),
    ])
    loss = task_loss + regs.penalty()
    loss.backward(); optimizer.step(); regs.step(optimizer)

What each binding selects is described in ``reglab.core.selection``.
``penalty()`` consumes activation captures (``num_inputs`` at a time: two
for two-view losses, so run both views through the model before calling it)
and releases them, so hooks never keep tensors alive past ``penalty()``.
``regs.detach()`` removes the hooks.

**Proximal mode**: ``regs.step(opt)`` applies ``prox_{lr·weight·R}`` to each
selected tensor after ``opt.step()``, with ``lr`` read from the tensor's
optimizer param group. With adaptive optimizers (Adam) ``lr`` is the nominal
learning rate, not the per-coordinate step; the update is then a heuristic,
as in most libraries.

**Gradient mode** (``.on(mode="grad")``, the fast path for weight penalties
with a closed-form gradient)::

    loss.backward()            # every micro-batch (and DDP's all-reduce) done
    regs.add_grads(scaler)     # p.grad += λ·∇R in place, once per optimizer step
    scaler.step(optimizer)     # or optimizer.step()
    regs.step(optimizer)

No autograd graph is built and the penalty's backward pass is skipped; the
values logged in ``regs.last`` come from the gradient's own intermediates.
Prefer it for every weight penalty that supports it (``mode="grad"``
raises, naming those that do, for the others); keep ``mode="penalty"``
when the penalty must be part of the differentiated loss: higher-order
gradients (double backward, gradient-norm penalties), closure optimizers
that re-evaluate the loss (LBFGS), or SAM-style perturbations that should
see the penalty's gradient.
``add_grads`` must run once per optimizer step (after the last micro-batch
under gradient accumulation; a second call before ``regs.step()`` raises),
on every DDP rank after the all-reduce (weights are identical across
ranks, so the added term is too, and it is not averaged again). Pass an AMP
``GradScaler`` whose gradients are still scaled (before ``unscale_``): the
term is multiplied by its scale (read on the device, no host sync); after
``scaler.unscale_(opt)`` call ``add_grads()`` without it (passing it then
raises). A selected parameter whose ``grad`` is ``None`` this step gets one
(zeros plus the term), as the penalty's backward would have created it;
parameters frozen after attach are skipped. Gradients of the form coef·w
(L2, group lasso: ``grad_coefficients``) of every binding on one tensor are
summed and added in one pass over it, as SGD fuses its weight decay.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import warnings
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from reglab.core.regularizer import Binding, Regularizer, add_coefficients_
from reglab.core.selection import Selection, pick_tensor
from reglab.core.checks import flush_checks

__all__ = ["RegularizerSet", "attach", "attach_from_config", "save_config", "apply_prox", "learning_rates"]


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
    factor: float = 1.0,
) -> None:
    """Apply ``regularizer.prox_`` to each parameter with step size lr × weight × ``factor``
    (``factor = k`` for a binding applied every k-th step)."""
    coef = factor * regularizer.current_weight
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
        if not (module.training and torch.is_grad_enabled() and self.binding.applies_now()):
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
    """Regularizers attached to one model; returned by ``attach``.

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
        self._grads_added = False
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
                setup_model = getattr(b.regularizer, "setup_model", None)
                if callable(setup_model):  # acts on the owning modules too (pruning masks)
                    setup_model(model, selected)

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

    def get_config(self) -> dict[str, Any]:
        """Which regularizers on which parameters or activations, as a JSON-able dict:
        ``reglab.attach_from_config(model, cfg)`` rebuilds the same set (selectors included;
        ``where=``/``exclude=`` callables cannot be saved and raise here)."""
        return bindings_config(self.bindings)

    # ------------------------------------------------------------------ use
    def penalty(self) -> torch.Tensor:
        """Sum of the weighted penalties; records each in ``self.last`` (detached).

        Skips prox and grad bindings, and bindings with ``every=k`` off their
        step (their captured activations are dropped unused); on an applied
        step the weight is ``k·λ``."""
        total: torch.Tensor | None = None
        last = {n: v for n, v, b in self._last_items() if b.mode != "penalty"}
        for name, b, params, captured in zip(self._names, self.bindings, self._params, self._captures):
            if b.mode != "penalty":
                continue
            reg = b.regularizer
            if not b.applies_now():
                captured.clear()
                continue
            coef = b.coefficient
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

    def _last_items(self):
        by_name = dict(zip(self._names, self.bindings))
        return [(n, v, by_name[n]) for n, v in self.last.items() if n in by_name]

    @torch.no_grad()
    def add_grads(self, scaler: Any = None) -> None:
        """Grad-mode bindings: ``p.grad += k·λ·∇R`` in place (× the loss scale of ``scaler``).

        Call after the backward pass of the last micro-batch and before
        ``optimizer.step()``, once per optimizer step (see the module
        docstring for AMP, accumulation and DDP). Records each term's value
        (``k·λ·R``, unscaled) in ``self.last``. Without grad-mode bindings it
        does nothing, so a training loop may always call it.
        """
        grad_bindings = [(n, b, ps) for n, b, ps in zip(self._names, self.bindings, self._params) if b.mode == "grad"]
        if not grad_bindings:
            return
        if self._grads_added:
            raise RuntimeError(
                "regs.add_grads() was already called since the last regs.step(): call it once per optimizer step, "
                "after the last micro-batch's backward (gradient accumulation), then optimizer.step() and "
                "regs.step(optimizer)"
            )
        loss_scale = _loss_scale(scaler)
        last = {n: v for n, v, b in self._last_items() if b.mode != "grad"}
        # Gradients of the form coef·w (L2: λ·w; group lasso: λ·c_g/‖w_g‖·w) are summed per tensor
        # over the bindings and added once: one pass over each weight instead of one per binding.
        fused: dict[int, list[Any]] = {}  # id(p) -> [p, summed coefficient]
        for name, b, params in grad_bindings:
            if not b.applies_now():
                continue
            coef = b.coefficient
            if coef == 0.0:
                continue  # a zero weight (e.g. during warm-up) costs nothing
            ps = [p for _, p in params if p.requires_grad]  # frozen after attach: skipped
            if not ps:
                continue
            _ensure_grads(b, ps)
            reg = b.regularizer
            if reg.has_grad_coefficients:
                value, coefs = reg.grad_coefficients(ps)
                for p, c in zip(ps, coefs):
                    entry = fused.setdefault(id(p), [p, 0.0])
                    entry[1] = entry[1] + coef * c
            else:
                value = reg.grad_(ps, [p.grad for p in ps], coef * loss_scale)
            last[name] = coef * value.detach()
        if fused:
            ps = [p for p, _ in fused.values()]
            add_coefficients_([p.grad for p in ps], ps, [c for _, c in fused.values()], loss_scale)
        self.last = last
        self._grads_added = True

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
        """After ``optimizer.step()``: apply proximal updates, then advance schedules.

        Each applied prox binding records ``k·λ·R`` of its weights after the
        proximal step in ``self.last`` (as penalty and grad bindings record
        theirs). Warns once if ``optimizer.step()`` did not run since the
        previous ``regs.step(optimizer)`` (``regs.step`` does not step the
        optimizer), and once if ``reglab.L2`` and the optimizer's own
        ``weight_decay`` act on the same parameters (the decay applied twice)."""
        if optimizer is not None:
            self._check_optimizer(optimizer)
        prox = [(n, b, ps) for n, b, ps in zip(self._names, self.bindings, self._params) if b.mode == "prox"]
        if prox:
            if optimizer is None:
                raise ValueError("regs.step(optimizer): proximal bindings need the optimizer for their step size")
            last = dict(self.last)
            for name, b, ps in prox:
                if b.applies_now():
                    apply_prox(b.regularizer, ps, optimizer, factor=b.selection.every)
                    coef = b.coefficient
                    tensors = [p for _, p in ps]
                    if coef != 0.0 and tensors:
                        with torch.no_grad():
                            last[name] = coef * b.regularizer.penalty(tensors).detach()
            self.last = last
        for reg in self._distinct_regularizers():
            reg.step()
        self._grads_added = False
        flush_checks()  # finite checks deferred on accelerators: one host sync per step, here

    def _distinct_regularizers(self) -> list[Regularizer]:
        """Each regularizer once, in binding order: one instance bound twice (``reg.on(params="a*")``
        and ``reg.on(params="b*")``) has one step counter, so one schedule and one ``every=k`` phase,
        advanced once per step."""
        seen: dict[int, Regularizer] = {}
        for reg in self.regularizers:
            seen.setdefault(id(reg), reg)
        return list(seen.values())

    def _check_optimizer(self, optimizer: Any) -> None:
        """The two easy mistakes around ``regs.step(optimizer)``; each warns once per set."""
        watch = self.__dict__.setdefault("_optimizer_watch", {})
        counter = watch.get(id(optimizer))
        if counter is None or counter.optimizer() is not optimizer:  # new, or an id reused after a collected one
            counter = watch[id(optimizer)] = _StepCounter(optimizer)
            self._warn_double_decay(optimizer)
            # wrappers (Accelerate's AcceleratedOptimizer, Lightning's) step the optimizer they hold
            inner = optimizer
            while isinstance(getattr(inner, "optimizer", None), torch.optim.Optimizer):
                inner = inner.optimizer
            try:
                counter.handle = inner.register_step_post_hook(counter)
            except (AttributeError, TypeError):
                counter.handle = None  # not observable: never warn about it
        elif counter.handle is None:
            return
        elif counter.steps == counter.seen and not self.__dict__.get("_warned_no_step"):
            if not _has_nonfinite_grads(optimizer):  # a GradScaler skips optimizer.step() on inf/NaN gradients
                self.__dict__["_warned_no_step"] = True
                warnings.warn(
                    "regs.step(optimizer) was called again but optimizer.step() did not run since the previous "
                    "regs.step(optimizer): regs.step only applies proximal updates and advances schedules, it does "
                    "not update the weights. Call optimizer.step() (or scaler.step(optimizer)) first, then "
                    "regs.step(optimizer), once per optimizer step",
                    UserWarning,
                    stacklevel=3,
                )
        counter.seen = counter.steps

    def _warn_double_decay(self, optimizer: Any) -> None:
        decay = {id(p): g.get("weight_decay", 0.0) for g in optimizer.param_groups for p in g["params"]}
        for b, ps in zip(self.bindings, self._params):
            if not getattr(b.regularizer, "overlaps_weight_decay", False) or self.__dict__.get("_warned_decay"):
                continue
            both = [(n, decay[id(p)]) for n, p in ps if decay.get(id(p), 0.0)]
            if both:
                self.__dict__["_warned_decay"] = True
                names = ", ".join(n for n, _ in both[:3]) + (f" and {len(both) - 3} more" if len(both) > 3 else "")
                warnings.warn(
                    f"{type(b.regularizer).__name__} ({b.name}) and the optimizer's own weight_decay="
                    f"{both[0][1]:g} both decay {names}: the decay is applied twice. Set weight_decay=0 in "
                    f"those parameter groups, or drop {type(b.regularizer).__name__}",
                    UserWarning,
                    stacklevel=4,
                )

    def summary(self) -> str:
        """What each binding selected: its regularizer, mode, selectors, and the parameter
        names (with shapes and owning module types) or the hooked submodules.
        ``print(regs.summary())``."""
        model = self.__dict__["_model"]
        modules = dict(model.named_modules())
        owners = {
            f"{m}.{leaf}" if m else leaf: type(mod).__name__
            for m, mod in model.named_modules()
            for leaf, _ in mod.named_parameters(recurse=False)
        }
        lines = []
        for name, b, params in zip(self._names, self.bindings, self._params):
            lines.append(f"{name}: {b.regularizer!r}  mode={b.mode}  selected by {b.describe_selection()}")
            if b.on_activations:
                for path in b.activations:
                    lines.append(f"    output of {path!r} ({type(modules[path]).__name__})")
                continue
            total = sum(p.numel() for _, p in params)
            lines.append(f"    {len(params)} parameter(s), {total:,} values:")
            for n, p in params:
                lines.append(f"    {n}  {tuple(p.shape)}  {owners.get(n, '?')}")
        return "\n".join(lines)

    def parameters_of(self, name: str) -> list[tuple[str, nn.Parameter]]:
        """The (name, parameter) pairs selected by binding ``name``."""
        return list(self._params[self._names.index(name)])

    def detach(self) -> None:
        """Remove every forward hook (and the optimizer step counters ``step`` installed) and drop
        captured tensors."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        for c in self._captures:
            c.clear()
        for counter in self.__dict__.pop("_optimizer_watch", {}).values():
            if counter.handle is not None:
                counter.handle.remove()

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


class _StepCounter:
    """An optimizer step post-hook that counts ``optimizer.step()`` calls (see ``_check_optimizer``)."""

    def __init__(self, optimizer: Any) -> None:
        self.optimizer = weakref.ref(optimizer)  # the one it watches (ids are reused once it is collected)
        self.steps = 0
        self.seen = 0
        self.handle: Any = None

    def __call__(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.steps += 1


def _has_nonfinite_grads(optimizer: Any) -> bool:
    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    return bool(grads) and not all(bool(torch.isfinite(g).all()) for g in grads)


def _ensure_grads(b: Binding, ps: Sequence[nn.Parameter]) -> None:
    """A selected parameter whose ``grad`` is ``None`` gets zeros (the penalty's backward would
    have created it); a sparse gradient raises."""
    for p in ps:
        if p.grad is None:
            p.grad = torch.zeros_like(p, memory_format=torch.preserve_format)
        elif p.grad.is_sparse:
            raise ValueError(
                f"{type(b.regularizer).__name__} (mode='grad'): parameter of shape {tuple(p.shape)} has a "
                f"sparse gradient; use mode='penalty' for it"
            )


def _loss_scale(scaler: Any) -> float | torch.Tensor:
    """The factor the gradients carry: a GradScaler's scale while they are still scaled.

    On an accelerator the scale stays a device tensor (no host sync)."""
    if scaler is None or not scaler.is_enabled():
        return 1.0
    for state in getattr(scaler, "_per_optimizer_states", {}).values():
        stage = state.get("stage")
        if getattr(stage, "name", None) == "UNSCALED":
            raise ValueError(
                "regs.add_grads(scaler): the gradients were already unscaled (scaler.unscale_ was called); "
                "call regs.add_grads() without the scaler after unscale_, or with it before"
            )
    scale = getattr(scaler, "_scale", None)
    if isinstance(scale, torch.Tensor) and scale.device.type != "cpu":
        return scale.reshape(())
    return float(scaler.get_scale())


def _close_names(path: str, modules: dict[str, nn.Module]) -> str:
    close = difflib.get_close_matches(path, [m for m in modules if m], n=5, cutoff=0.3)
    return ", ".join(repr(c) for c in close) or "(none close)"


def attach(model: nn.Module, regularizers: Iterable[Binding | Regularizer] | Binding | Regularizer) -> RegularizerSet:
    """Bind regularizers to ``model``; returns a ``RegularizerSet``."""
    if isinstance(regularizers, (Binding, Regularizer)):
        regularizers = [regularizers]
    return RegularizerSet(model, regularizers)


# --------------------------------------------------------------- config round trip
_SELECTION_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Selection)}


def _type_path(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


def _allowed_module_types(model: nn.Module, module_types: Iterable[type] = ()) -> dict[str, type]:
    """The module types a config may name, by the path ``selection_config`` writes
    (``module.qualname``): the ``nn.Module`` classes of ``torch.nn``, the classes of the
    model's modules and their ``nn.Module`` bases, and ``module_types``. Nothing is imported:
    a config is data, and naming a module must not run its code."""
    allowed: dict[str, type] = {}

    def add(t: type) -> None:
        allowed.setdefault(_type_path(t), t)
        if t.__module__.startswith("torch.nn") and getattr(nn, t.__name__, None) is t:
            allowed.setdefault(f"torch.nn.{t.__name__}", t)  # the short public spelling, nn.Linear

    for obj in vars(nn).values():
        if isinstance(obj, type) and issubclass(obj, nn.Module):
            add(obj)
    for module in model.modules():
        for t in type(module).__mro__:
            if isinstance(t, type) and issubclass(t, nn.Module):
                add(t)
    for t in module_types:
        if not (isinstance(t, type) and issubclass(t, nn.Module)):
            raise TypeError(f"attach_from_config: module_types takes nn.Module classes, got {t!r}")
        add(t)
    return allowed


def _resolve_type(path: object, allowed: dict[str, type]) -> type:
    """The allowed type a config names; never an import (see ``_allowed_module_types``)."""
    if not isinstance(path, str):
        raise ValueError(
            f"attach_from_config: on.modules takes module type paths such as 'torch.nn.Linear', got {path!r}"
        )
    if path in allowed:
        return allowed[path]
    close = difflib.get_close_matches(path, list(allowed), n=3, cutoff=0.6)
    hint = f" (close: {', '.join(map(repr, close))})" if close else ""
    raise ValueError(
        f"attach_from_config: the config names module type {path!r}, which is neither in torch.nn nor a type of the "
        f"model's modules{hint}; a config never imports code, so pass the class itself: "
        f"attach_from_config(model, cfg, module_types=[YourModule])"
    )


def selection_config(s: Selection) -> dict[str, Any]:
    """The non-default fields of a selection, JSON-able; callables cannot be saved."""
    import re

    out: dict[str, Any] = {}
    for key, default in _SELECTION_DEFAULTS.items():
        value = getattr(s, key)
        if value == default and not (key == "exclude" and value is None and default is not None):
            continue
        if key == "params":
            items = value if isinstance(value, (list, tuple)) else [value]
            value = [{"regex": v.pattern} if isinstance(v, re.Pattern) else v for v in items]
        elif key == "modules":
            value = [_type_path(t) for t in (value if isinstance(value, tuple) else (value,))]
        elif key == "activations":
            value = list(value)
        elif callable(value) or (key == "select" and not isinstance(value, (int, str, type(None)))):
            raise ValueError(
                f"get_config: the selection's {key}= is a callable or object ({value!r}), which a config "
                f"cannot hold; use params=, modules= and an index or key for select="
            )
        out[key] = value
    return out


def selection_from_config(cfg: dict[str, Any], allowed: dict[str, type] | None = None) -> dict[str, Any]:
    """``.on(...)`` keywords from ``selection_config``'s output; module types are looked up in
    ``allowed`` (``_allowed_module_types``; default: torch.nn's), never imported."""
    import re

    if not isinstance(cfg, dict):
        raise ValueError(f"attach_from_config: a binding's 'on' must be a dict of selection fields, got {cfg!r}")
    unknown = sorted(set(cfg) - set(_SELECTION_DEFAULTS))
    if unknown:
        raise ValueError(f"attach_from_config: unknown selection fields {unknown}; known: {sorted(_SELECTION_DEFAULTS)}")
    out = dict(cfg)
    if "params" in out:
        out["params"] = [re.compile(v["regex"]) if isinstance(v, dict) else v for v in out["params"]]
    if "modules" in out:
        if allowed is None:
            allowed = _allowed_module_types(nn.Module())
        paths = out["modules"] if isinstance(out["modules"], (list, tuple)) else [out["modules"]]
        out["modules"] = tuple(_resolve_type(p, allowed) for p in paths)
    return out


def bindings_config(bindings: Sequence[Binding]) -> dict[str, Any]:
    """``{"bindings": [{"regularizer": cfg, "on": selection}, ...]}`` (JSON-able)."""
    return {
        "bindings": [{"regularizer": b.regularizer.get_config(), "on": selection_config(b.selection)} for b in bindings]
    }


def attach_from_config(
    model: nn.Module, cfg: dict[str, Any] | str | os.PathLike[str], *, module_types: Iterable[type] = ()
) -> RegularizerSet:
    """Attach the regularizers a ``RegularizerSet.get_config`` dict describes, or a JSON/YAML file of it.

    A config is data: the module types it names under ``on.modules`` are looked up, never
    imported, among torch.nn's, the types of ``model``'s modules (and their bases) and
    ``module_types`` (e.g. ``module_types=[MyBlock]`` for a type the model does not contain);
    any other name raises ``ValueError``."""
    from reglab.core.registry import from_config

    if isinstance(cfg, (str, os.PathLike)):
        cfg = _read_config(os.fspath(cfg))
    if not isinstance(cfg, dict) or not isinstance(cfg.get("bindings"), list):
        raise ValueError(f"attach_from_config expects {{'bindings': [...]}} from RegularizerSet.get_config(), got {cfg!r}")
    allowed = _allowed_module_types(model, module_types)
    bindings = []
    for i, entry in enumerate(cfg["bindings"]):
        if not isinstance(entry, dict) or "regularizer" not in entry:
            raise ValueError(f"attach_from_config: binding {i} needs a 'regularizer' config, got {entry!r}")
        reg = from_config(entry["regularizer"])
        bindings.append(reg.on(**selection_from_config(entry.get("on") or {}, allowed)))
    return attach(model, bindings)


def save_config(regs: RegularizerSet, path: str | os.PathLike[str]) -> None:
    """Write ``regs.get_config()`` as JSON, or YAML for a ``.yaml``/``.yml`` path.

    The text is produced before the file is touched and written to a temporary
    file in the same folder that then replaces ``path`` (``os.replace``): a
    missing PyYAML, a config that cannot be serialized or a full disk leaves an
    existing file as it was."""
    import json
    import tempfile

    path = os.fspath(path)
    cfg = regs.get_config()  # type: ignore[attr-defined]
    if path.endswith((".yaml", ".yml")):
        text = _yaml().safe_dump(cfg, sort_keys=False)
    else:
        text = json.dumps(cfg, indent=2)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_config(path: str) -> dict[str, Any]:
    import json

    with open(path) as f:
        return _yaml().safe_load(f) if path.endswith((".yaml", ".yml")) else json.load(f)


def _yaml():
    try:
        import yaml
    except ImportError as err:
        raise ImportError(
            "YAML configs need PyYAML: pip install pyyaml (from a checkout: pip install -e \".[yaml]\"), "
            "or use a .json path"
        ) from err
    return yaml
