"""Which parameters or activations a regularizer applies to: one typed spec, ``Selection``.

Selection is orthogonal to the regularizer (as optax's masks). ``reg.on(...)``
takes exactly the fields of ``Selection``.

**Parameter selectors** (all given ones must match):

* ``params``: a glob on the full parameter name (``"encoder.*.weight"``,
  ``fnmatch`` rules), a compiled ``re.Pattern`` (searched), or a list of
  either (any may match);
* ``modules``: a module type or tuple of types that directly owns the
  parameter;
* ``where``: ``callable(name, param, module) -> bool``.

**Default exclusion** (``exclude="default"``): parameters named ``bias``;
every 0-d or 1-d parameter (norm scales, LayerScale gammas); every
parameter of normalization layers (BatchNorm, LayerNorm, GroupNorm,
InstanceNorm, LocalResponseNorm, RMSNorm); the names the model's own
``no_weight_decay()`` returns (timm's convention; ``fnmatch`` patterns on
the full parameter name); and the token and position tables of vision
transformers (``pos_embed``, ``cls_token``, …, ``EXCLUDED_NAMES``).
Embedding tables (``nn.Embedding``) are selected, as both libraries decay
them. This applies on top of the selectors; pass ``exclude=None`` to select
them anyway, or a callable ``(name, param, module) -> bool`` to exclude your
own.

How this compares with the two libraries' own grouping functions:

* timm (1.0.x, ``timm/optim/_param_groups.py``,
  ``param_groups_weight_decay``; ``create_optimizer_v2`` passes
  ``model.no_weight_decay()`` as ``no_weight_decay_list``): no decay for
  ``param.ndim <= 1 or name.endswith(".bias")`` or a name matching a
  ``no_weight_decay_list`` pattern (``fnmatch``); frozen parameters skipped.
  reglab's default selects the same parameters of a timm model (every norm
  parameter is 1-d, and timm ViTs list their token tables in
  ``no_weight_decay()``). It differs only on a model without
  ``no_weight_decay()`` holding a ≥2-d table named in
  ``EXCLUDED_NAMES``: timm decays it, reglab does not, since a
  hand-written ViT rarely declares one and timm's own ViTs exclude them.
* Hugging Face ``Trainer.get_decay_parameter_names``
  (``get_parameter_names(model, [nn.LayerNorm], [r"bias", r"layernorm",
  r"rmsnorm", r"(?:^|\\.)norm(?:$|\\.)", r"_norm(?:$|\\.)"])``): no decay for
  LayerNorm parameters and names matching those patterns. reglab's default
  selects the same parameters of BERT- and GPT-2-style transformers models
  (tested against the installed ``transformers``). It differs where HF
  decays 1-d parameters that are neither biases nor named like norms
  (BatchNorm in a module called ``bn``, LayerScale gammas) and ≥2-d tables
  named in ``EXCLUDED_NAMES`` (HF ViT's ``embeddings.cls_token``);
  reglab, like timm, does not.

**Frozen parameters** (``requires_grad=False``) are never selected unless
``frozen=True``: they are not trained, so a penalty on them only costs
time, a proximal step would change weights the user froze, and L2-SP would
keep an anchor copy of each.

**Activations**: ``activations="encoder.layer3"`` (or a list of module
paths) captures that submodule's output with a forward hook while it is in
training mode with autograd on; ``select=`` picks a tensor from tuple/dict
outputs (an index, a key, or a callable).

**Mode**: ``"penalty"`` adds the penalty to the loss; ``"prox"`` leaves the
loss alone and ``regs.step(opt)`` applies the proximal operator after the
optimizer step; ``"grad"`` (weight penalties with a closed-form gradient)
leaves the loss alone and ``regs.add_grads()``, called after the backward
pass and before ``optimizer.step()``, adds ``λ·∇R`` to each ``p.grad`` in
place, with no autograd graph. **Scope**: ``"local"`` applies the penalty
to each selected tensor and sums; ``"global"`` treats the selected tensors
as one group.

**Lazy regularization** (Karras et al. 2020, StyleGAN2, Sec. 3.1):
``every=k`` applies the binding only on the steps whose regularizer step
counter (advanced by ``regs.step()``, saved in ``state_dict``) is a
multiple of ``k``, with weight ``k·λ`` (in prox mode: step size
``k·lr·λ``); on the other steps it costs nothing (no forward compute, no
activation capture). Worth it for the penalties that cost a GEMM per
weight (soft orthogonality, SRIP, MHE, spectral norm).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["Selection", "default_exclude", "EXCLUDED_MODULE_TYPES", "EXCLUDED_NAMES", "MODES"]

#: How a binding applies its regularizer (see the module docstring).
MODES = ("penalty", "prox", "grad")


def _norm_types() -> tuple[type, ...]:
    names = [
        "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm",
        "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d",
        "LayerNorm", "GroupNorm", "LocalResponseNorm", "RMSNorm",
        "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
    ]  # fmt: skip
    return tuple(getattr(nn, n) for n in names if hasattr(nn, n))


#: Module types whose parameters the default selection leaves out (normalization layers;
#: embedding tables are decayed, as timm and the HF Trainer do).
EXCLUDED_MODULE_TYPES: tuple[type, ...] = _norm_types()

ParamPredicate = Callable[[str, nn.Parameter, nn.Module], bool]


#: Parameter names (the last component) the default selection leaves out: the
#: token and position tables of ViT-style models (timm's ``no_weight_decay``).
EXCLUDED_NAMES = frozenset({
    "pos_embed", "cls_token", "dist_token", "reg_token", "mask_token", "absolute_pos_embed",
    "relative_position_bias_table", "pos_embedding", "position_embedding", "class_embedding",
})  # fmt: skip


def default_exclude(name: str, param: nn.Parameter, module: nn.Module) -> bool:
    """True for biases, 0-d/1-d parameters, normalization parameters and ViT token tables
    (``model.no_weight_decay()`` is applied by ``Selection.parameters``, which sees the model)."""
    leaf = name.rsplit(".", 1)[-1]
    return (
        leaf == "bias" or param.ndim <= 1 or leaf in EXCLUDED_NAMES or isinstance(module, EXCLUDED_MODULE_TYPES)
    )


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


@dataclass(frozen=True)
class Selection:
    """What a regularizer applies to and how; the keywords of ``reg.on(...)``.

    Type errors are raised here, at construction; whether a regularizer can
    take a selection (activations vs weights, prox, global scope) is checked
    by ``reglab.Binding``.
    """

    params: str | re.Pattern | Sequence[str | re.Pattern] | None = None
    modules: type | tuple[type, ...] | None = None
    where: ParamPredicate | None = None
    activations: str | Sequence[str] | None = None
    select: Any = None
    mode: str = "penalty"
    scope: str = "local"
    exclude: ParamPredicate | str | None = "default"
    name: str | None = None
    max_captures: int | None = None
    frozen: bool = False
    every: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f".on: mode must be one of {list(MODES)}, got {self.mode!r}")
        if not isinstance(self.every, int) or isinstance(self.every, bool) or self.every < 1:
            raise ValueError(f".on: every= takes an integer >= 1 (apply on every k-th step), got {self.every!r}")
        if self.scope not in ("local", "global"):
            raise ValueError(f".on: scope must be 'local' or 'global', got {self.scope!r}")
        if self.activations is not None and self.on_params:
            raise ValueError(".on: bind to activations or to parameters, not both")
        if self.activations is not None and self.mode in ("prox", "grad"):
            raise ValueError(f".on: mode={self.mode!r} applies to parameters, not activations")
        if self.mode in ("prox", "grad") and self.scope == "global":
            raise ValueError(f".on: mode={self.mode!r} is applied per tensor; use scope='local'")
        mods = self.modules
        if mods is not None and not (
            isinstance(mods, type) or (isinstance(mods, tuple) and all(isinstance(m, type) for m in mods))
        ):
            raise TypeError(f".on: modules= takes a module type or a tuple of types, got {mods!r}")
        if self.where is not None and not callable(self.where):
            raise TypeError(".on: where= takes a callable(name, param, module) -> bool")
        if self.exclude != "default" and self.exclude is not None and not callable(self.exclude):
            raise TypeError(".on: exclude= takes 'default', None or a callable")
        if isinstance(self.activations, str):
            object.__setattr__(self, "activations", (self.activations,))
        elif self.activations is not None:
            object.__setattr__(self, "activations", tuple(self.activations))
        match = _name_matcher(self.params) if self.params is not None else None
        object.__setattr__(self, "_match_name", match)

    @property
    def on_params(self) -> bool:
        """True when a parameter selector (params, modules or where) is given."""
        return self.params is not None or self.modules is not None or self.where is not None

    @property
    def on_activations(self) -> bool:
        return self.activations is not None

    @property
    def exclude_fn(self) -> ParamPredicate | None:
        return default_exclude if self.exclude == "default" else self.exclude  # type: ignore[return-value]

    def parameters(self, model: nn.Module) -> list[tuple[str, nn.Parameter]]:
        """The (name, parameter) pairs selected in ``model``, in model order, each once."""
        exclude = self.exclude_fn
        declared = _no_weight_decay(model) if self.exclude == "default" else ()
        chosen = []
        for mod_name, module in model.named_modules():
            for leaf, p in module.named_parameters(recurse=False):
                full = f"{mod_name}.{leaf}" if mod_name else leaf
                if not p.requires_grad and not self.frozen:
                    continue
                if exclude is not None and exclude(full, p, module):
                    continue
                if declared and any(fnmatch.fnmatchcase(full, pattern) for pattern in declared):
                    continue
                if self._match_name is not None and not self._match_name(full):  # type: ignore[attr-defined]
                    continue
                if self.modules is not None and not isinstance(module, self.modules):
                    continue
                if self.where is not None and not self.where(full, p, module):
                    continue
                chosen.append((full, p))
        # A parameter shared by two modules is regularized once.
        seen: set[int] = set()
        return [(n, p) for n, p in chosen if not (id(p) in seen or seen.add(id(p)))]


def _no_weight_decay(model: nn.Module) -> tuple[str, ...]:
    """The names (or ``fnmatch`` patterns) a model's ``no_weight_decay()`` returns (timm's convention)."""
    method = getattr(model, "no_weight_decay", None)
    if not callable(method):
        return ()
    names = method()
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError(
            f"{type(model).__name__}.no_weight_decay() must return a set of parameter names, got {names!r}"
        )
    return tuple(names)


def pick_tensor(output: Any, select: Any, where: str, who: str) -> torch.Tensor:
    """The tensor ``select`` picks from a module's ``output`` (for activation hooks)."""
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
