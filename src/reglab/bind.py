"""Attach regularizers to a model's parameters and activations.

Selection is orthogonal to the regularizer (as optax's masks)::

    regs = reglab.attach(model, [
        reglab.L2(5e-4),                                   # default selection
        reglab.GroupLasso(1e-4).on(modules=nn.Conv2d, mode="prox"),
        reglab.VCReg(0.1).on(activations="encoder.layer3"),
    ])
    loss = task_loss + regs.penalty()
    loss.backward(); optimizer.step(); regs.step(optimizer)

**Parameter selectors** (all given ones must match):

* ``params``: a glob on the full parameter name (``"encoder.*.weight"``,
  :func:`fnmatch` rules), a compiled ``re.Pattern`` (searched), or a list of
  either (any may match);
* ``modules``: a module type or tuple of types that directly owns the
  parameter;
* ``where``: ``callable(name, param, module) -> bool``.

**Default exclusion** (``exclude="default"``): parameters named ``bias``
and every parameter of normalization layers (BatchNorm, LayerNorm,
GroupNorm, InstanceNorm, LocalResponseNorm, RMSNorm) and embedding layers
(Embedding, EmbeddingBag) are never selected. This applies on top of the
selectors; pass ``exclude=None`` to select them anyway, or a callable
``(name, param, module) -> bool`` to exclude your own.

**Activations**: ``.on(activations="encoder.layer3")`` registers a forward
hook on that submodule. The output is captured only while the module is in
training mode and autograd is on; ``select=`` picks a tensor from tuple/dict
outputs (an index, a key, or a callable). ``penalty()`` consumes captures
(``num_inputs`` at a time: two for two-view losses, so run both views through
the model before calling it) and releases them, so hooks never keep tensors
alive past ``penalty()``. ``regs.detach()`` removes the hooks.

**Scope**: ``"local"`` applies the penalty to each selected tensor and sums;
``"global"`` treats the selected tensors as one group, for regularizers
whose method distinguishes the two (``reg.has_global_scope``).

**Proximal mode**: ``mode="prox"`` leaves the loss alone; ``regs.step(opt)``
then applies ``prox_{lr·weight·R}`` to each selected tensor after
``opt.step()``, with ``lr`` read from the tensor's optimizer param group.
"""

from __future__ import annotations

import fnmatch
import re
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from reglab.regularizers.base import Regularizer, WeightRegularizer

__all__ = ["Binding", "RegularizerSet", "attach", "default_exclude", "EXCLUDED_MODULE_TYPES"]


def _norm_types() -> tuple[type, ...]:
    names = [
        "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm",
        "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d",
        "LayerNorm", "GroupNorm", "LocalResponseNorm", "RMSNorm",
        "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
    ]  # fmt: skip
    return tuple(getattr(nn, n) for n in names if hasattr(nn, n))


#: Module types whose parameters the default selection leaves out.
EXCLUDED_MODULE_TYPES: tuple[type, ...] = _norm_types() + (nn.Embedding, nn.EmbeddingBag)


def default_exclude(name: str, param: nn.Parameter, module: nn.Module) -> bool:
    """True for biases and normalization/embedding parameters."""
    leaf = name.rsplit(".", 1)[-1]
    return leaf == "bias" or isinstance(module, EXCLUDED_MODULE_TYPES)


Selector = Callable[[str, nn.Parameter, nn.Module], bool]


def _name_matcher(spec: Any) -> Callable[[str], bool]:
    specs = [spec] if isinstance(spec, (str, re.Pattern)) else list(spec)
    matchers: list[Callable[[str], bool]] = []
    for s in specs:
        if isinstance(s, re.Pattern):
            matchers.append(lambda n, s=s: s.search(n) is not None)
        elif isinstance(s, str):
            matchers.append(lambda n, s=s: fnmatch.fnmatchcase(n, s))
        else:
            raise TypeError(f"params= takes globs (str) or re.Pattern objects, got {s!r}")
    return lambda n: any(m(n) for m in matchers)


class Binding:
    """A regularizer plus what it applies to; built by ``Regularizer.on``.

    Passing a bare regularizer to :func:`attach` is the same as
    ``reg.on()``: every weight parameter except the default exclusions, or,
    for an activation regularizer, an error asking where to bind it.
    """

    def __init__(
        self,
        regularizer: Regularizer,
        params: Any = None,
        modules: type | tuple[type, ...] | None = None,
        where: Selector | None = None,
        activations: str | Sequence[str] | None = None,
        select: Any = None,
        mode: str = "penalty",
        scope: str = "local",
        exclude: Any = "default",
        name: str | None = None,
        max_captures: int | None = None,
    ):
        who = type(regularizer).__name__
        if not isinstance(regularizer, Regularizer):
            raise TypeError(f"attach() takes reglab regularizers or bindings, got {regularizer!r}")
        if mode not in ("penalty", "prox"):
            raise ValueError(f"{who}.on: mode must be 'penalty' or 'prox', got {mode!r}")
        if scope not in ("local", "global"):
            raise ValueError(f"{who}.on: scope must be 'local' or 'global', got {scope!r}")
        on_params = params is not None or modules is not None or where is not None
        if activations is not None and on_params:
            raise ValueError(f"{who}.on: bind to activations or to parameters, not both")
        if activations is None and regularizer.target == "activations":
            raise ValueError(
                f"{who} regularizes activations: bind it with .on(activations='module.name')"
            )
        if activations is not None and regularizer.target == "weights":
            raise ValueError(f"{who} regularizes weights and cannot be bound to activations")
        if activations is None and not isinstance(regularizer, WeightRegularizer):
            raise ValueError(f"{who} is not a weight regularizer; bind it with .on(activations=...)")
        if mode == "prox":
            if activations is not None:
                raise ValueError(f"{who}.on: mode='prox' applies to parameters, not activations")
            if not regularizer.has_prox:  # type: ignore[union-attr]
                raise ValueError(f"{who} has no proximal operator; use mode='penalty'")
            if scope == "global":
                raise ValueError(f"{who}.on: mode='prox' is applied per tensor; use scope='local'")
        if scope == "global" and activations is None and not regularizer.has_global_scope:  # type: ignore[union-attr]
            raise ValueError(f"{who} has no global scope distinct from local; use scope='local'")
        if modules is not None and not (
            isinstance(modules, type) or (isinstance(modules, tuple) and all(isinstance(m, type) for m in modules))
        ):
            raise TypeError(f"{who}.on: modules= takes a module type or a tuple of types, got {modules!r}")
        if where is not None and not callable(where):
            raise TypeError(f"{who}.on: where= takes a callable(name, param, module) -> bool")
        if exclude == "default":
            exclude = default_exclude
        elif exclude is not None and not callable(exclude):
            raise TypeError(f"{who}.on: exclude= takes 'default', None or a callable")

        self.regularizer = regularizer
        self.params = params
        self.modules = modules
        self.where = where
        self.activations = [activations] if isinstance(activations, str) else activations
        self.select = select
        self.mode = mode
        self.scope = scope
        self.exclude = exclude
        self.name = name or regularizer.name or type(regularizer).__name__.lower()
        self.max_captures = max_captures or 4 * regularizer.num_inputs
        self._match_name = _name_matcher(params) if params is not None else None

    @property
    def on_activations(self) -> bool:
        return self.activations is not None

    def select_parameters(self, model: nn.Module) -> list[tuple[str, nn.Parameter]]:
        """The (name, parameter) pairs this binding applies to, in model order."""
        chosen = []
        for mod_name, module in model.named_modules():
            for leaf, p in module.named_parameters(recurse=False):
                full = f"{mod_name}.{leaf}" if mod_name else leaf
                if self.exclude is not None and self.exclude(full, p, module):
                    continue
                if self._match_name is not None and not self._match_name(full):
                    continue
                if self.modules is not None and not isinstance(module, self.modules):
                    continue
                if self.where is not None and not self.where(full, p, module):
                    continue
                chosen.append((full, p))
        # A parameter shared by two modules is regularized once.
        seen: set[int] = set()
        return [(n, p) for n, p in chosen if not (id(p) in seen or seen.add(id(p)))]

    def __repr__(self) -> str:
        target = f"activations={self.activations}" if self.on_activations else f"params={self.params!r}"
        return f"Binding({self.name}, {target}, mode={self.mode}, scope={self.scope})"


def _pick(output: Any, select: Any, where: str, who: str) -> torch.Tensor:
    if select is None:
        value = output
    elif callable(select):
        value = select(output)
    else:
        try:
            value = output[select]
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError(f"{who}: select={select!r} failed on the output of {where!r}: {e}") from None
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{who}: module {where!r} returned {type(value).__name__}, not a tensor; "
            f"pass select= (an index, a key, or a callable) to pick the tensor to regularize"
        )
    return value


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
    def _make_hook(binding: Binding, buffer: deque, path: str):
        who = type(binding.regularizer).__name__
        warned = [False]

        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if not (module.training and torch.is_grad_enabled()):
                return
            if len(buffer) == buffer.maxlen and not warned[0]:
                warned[0] = True
                warnings.warn(
                    f"{who} on {path!r}: {buffer.maxlen} captured outputs were never consumed; "
                    f"call regs.penalty() every training step (older captures are dropped)",
                    stacklevel=2,
                )
            buffer.append(_pick(output, binding.select, path, who))

        return hook

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
                value = reg.penalty_global(tensors) if b.scope == "global" else reg.penalty_many(tensors)
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
            from reglab.prox import apply_prox

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
    import difflib

    close = difflib.get_close_matches(path, [m for m in modules if m], n=5, cutoff=0.3)
    return ", ".join(repr(c) for c in close) or "(none close)"


def attach(model: nn.Module, regularizers: Iterable[Binding | Regularizer] | Binding | Regularizer) -> RegularizerSet:
    """Bind regularizers to ``model``; returns a :class:`RegularizerSet`."""
    if isinstance(regularizers, (Binding, Regularizer)):
        regularizers = [regularizers]
    return RegularizerSet(model, regularizers)
