"""The ``Regularizer`` module and its ``Binding`` to a model.

A regularizer is an ``nn.Module`` around its method's pure function (the
class attribute ``function``, the only statement of the formula):

* ``reg.penalty(*inputs)`` is the unweighted penalty: ``function(*inputs,
  **hyperparameters)``;
* ``reg(*inputs)`` is ``weight * penalty``, with ``weight`` a float or a
  schedule evaluated at the regularizer's step counter;
* ``reg.components(*inputs)`` is a NamedTuple of the unweighted named terms
  (the method's ``terms`` function where the paper weighs several terms);
* ``reg.on(...)`` binds it to a model's parameters or activations (a
  ``Binding``; pass it to ``reglab.attach``).

Classes without state define no ``__init__``: theirs is derived from the
function's signature (``reglab.core.config``), so each default is written
once. Stateful methods (ELR, L2-SP, SRIP, ...) write their own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from reglab.core.config import Configurable
from reglab.core.registry import Registered
from reglab.core.schedules import as_schedule
from reglab.core.selection import Selection

__all__ = [
    "Penalty", "Regularizer", "WeightRegularizer", "RepresentationRegularizer", "FunctionModule", "Binding",
    "add_coefficients_",
]


def _config_repr(module: Configurable) -> str:
    """``nn.Module.extra_repr`` of the configured modules: their config without the name."""
    cfg = module.get_config()
    cfg.pop("name", None)
    return ", ".join(f"{k}={v!r}" for k, v in cfg.items())


class Penalty(NamedTuple):
    """Components of a single-term regularizer."""

    penalty: torch.Tensor


class Regularizer(Registered, Configurable, nn.Module):
    """Base class of every penalty-form regularizer.

    Class attributes carry the paper metadata the registry reports
    (``reglab.core.registry.Registered``), and ``num_inputs`` (tensors
    per call: 2 for two-view losses such as VICReg), ``target`` (what ``.on``
    may bind: ``"weights"``, ``"activations"`` or ``"any"``) and
    ``default_weight``.
    """

    num_inputs: ClassVar[int] = 1
    target: ClassVar[str] = "any"
    default_weight: ClassVar[float] = 1.0
    #: True where the penalty is what an optimizer's ``weight_decay`` already does (L2):
    #: ``regs.step(optimizer)`` warns when both act on the same parameters.
    overlaps_weight_decay: ClassVar[bool] = False
    extra_repr = _config_repr

    def __init__(self, weight: float | Callable[[int], float] = 1.0):
        super().__init__()
        self.weight = weight
        self._schedule = as_schedule(weight)
        self._step = 0

    @classmethod
    def leading_parameters(cls) -> list[inspect.Parameter]:
        return [inspect.Parameter("weight", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=cls.default_weight)]

    def _init_from_values(self, values: dict[str, Any]) -> None:
        Regularizer.__init__(self, values.pop("weight"))
        super()._init_from_values(values)

    # ----------------------------------------------------------- the penalty
    def penalty(self, *inputs: Any, **kwargs: Any) -> torch.Tensor:
        """The unweighted penalty."""
        cls = type(self)
        if cls.function is not None:
            return cls.function(*inputs, **self.function_kwargs(), **kwargs)
        if cls.components is Regularizer.components:
            raise NotImplementedError(f"{cls.__name__} implements neither penalty nor components")
        return sum(self.components(*inputs, **kwargs))  # type: ignore[return-value]

    def components(self, *inputs: Any, **kwargs: Any) -> NamedTuple:
        """The unweighted named terms (a NamedTuple), for logging."""
        cls = type(self)
        if cls.terms is not None:
            return cls.terms(*inputs, **self.terms_kwargs(), **kwargs)
        if cls.function is None and cls.penalty is Regularizer.penalty:
            raise NotImplementedError(f"{cls.__name__} implements neither penalty nor components")
        return Penalty(self.penalty(*inputs, **kwargs))

    def forward(self, *inputs: Any, **kwargs: Any) -> torch.Tensor:
        return self.current_weight * self.penalty(*inputs, **kwargs)

    # ------------------------------------------------------------- schedule
    @property
    def current_weight(self) -> float:
        """The coefficient at the current step."""
        return float(self._schedule(self._step))

    @property
    def step_count(self) -> int:
        return self._step

    def step(self) -> None:
        """Advance the schedule by one step (``regs.step`` calls this)."""
        self._step += 1

    # A Python int, kept in state_dict as extra state: reading it never syncs a device.
    def get_extra_state(self) -> dict[str, Any]:
        return {"step": self._step}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._step = int(state["step"])

    # -------------------------------------------------------------- binding
    def on(self, params: Any = None, **selection: Any) -> Binding:
        """Bind to parameters or activations; pass the result to ``reglab.attach``.

        Takes the fields of ``reglab.core.selection.Selection``:
        ``params``, ``modules``, ``where``, ``activations``, ``select``,
        ``mode`` (``"penalty"``, ``"prox"`` or ``"grad"``), ``scope``,
        ``exclude``, ``name``, ``max_captures``, ``frozen``, ``every``.
        """
        return Binding(self, params=params, **selection)


class WeightRegularizer(Regularizer):
    """A penalty on parameter tensors.

    ``function`` takes one tensor or a sequence of tensors (the sum of the
    per-tensor penalties, computed fused): that is what ``reg(w)``,
    ``reg([w1, w2])`` and ``reglab.attach`` call. ``global_function``
    treats the tensors as one group (global scope), only where the method
    distinguishes the two. Regularizers with a proximal operator implement
    ``prox_(w, step_size)``; those with a closed-form gradient implement
    ``grad_(tensors, grads, alpha)`` (``mode="grad"``), and, where that
    gradient is exactly ``coef·w`` (L2, group lasso), ``grad_coefficients``,
    which lets ``regs.add_grads`` add several such terms on one tensor in
    one pass.
    """

    kind: ClassVar[str] = "weight"
    target: ClassVar[str] = "weights"
    global_function: ClassVar[Any] = None

    def penalty_global(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        cls = type(self)
        if cls.global_function is None:
            raise NotImplementedError(
                f"{cls.__name__} has no global scope distinct from local; use scope='local'"
            )
        return cls.global_function(list(tensors), **self.function_kwargs())

    @property
    def has_global_scope(self) -> bool:
        return type(self).global_function is not None

    @property
    def has_prox(self) -> bool:
        return type(self).prox_ is not WeightRegularizer.prox_

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        """In place: ``w <- prox_{step_size * penalty}(w)``."""
        raise NotImplementedError(f"{type(self).__name__} has no proximal operator")

    @property
    def has_grad(self) -> bool:
        return type(self).grad_ is not WeightRegularizer.grad_ or self.has_grad_coefficients

    @property
    def has_grad_coefficients(self) -> bool:
        """True where ``∂R/∂w = coef·w`` with a scalar or per-group ``coef`` (``grad_coefficients``).

        False for a subclass that overrides ``grad_`` below the class defining
        ``grad_coefficients`` (its gradient may no longer be ``coef·w``)."""
        cls = type(self)
        owner = _defining_class(cls, "grad_coefficients")
        return owner is not WeightRegularizer and issubclass(owner, _defining_class(cls, "grad_"))

    def grad_(
        self, tensors: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], alpha: float | torch.Tensor
    ) -> torch.Tensor:
        """In place: ``grads[i] += alpha·∂R/∂tensors[i]``, with no autograd graph; returns R (detached).

        The closed-form derivative of ``function`` (local scope: the sum over
        the tensors), for ``mode="grad"``; ``regs.add_grads()`` calls it under
        ``torch.no_grad()``. ``alpha`` is a float or a 0-d tensor (a loss
        scale read without a host sync). The value returned is the
        unweighted penalty, computed from the intermediates the gradient
        formed, for logging. Power-iteration methods advance their vectors
        as ``penalty`` does. The default serves classes that implement only
        ``grad_coefficients``.
        """
        if not self.has_grad_coefficients:
            raise NotImplementedError(f"{type(self).__name__} has no closed-form gradient")
        value, coefs = self.grad_coefficients(tensors)
        add_coefficients_(grads, tensors, coefs, alpha)
        return value

    def grad_coefficients(self, tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[float | torch.Tensor]]:
        """Optional, for gradients that are exactly ``coef·w``: ``(R, [coef per tensor])``, unweighted.

        ``coef`` is a Python float, a 0-d tensor, or a tensor that broadcasts
        against the weight (one value per group: shape ``(out, 1, …)`` or
        ``(1, in, 1, …)``). ``regs.add_grads()`` sums the coefficients of every
        grad-mode binding that implements this on the same tensor (L2 and
        group lasso on one conv weight) and adds them with one
        ``addcmul_``/``add_`` per tensor instead of one pass per binding. Only
        for gradients of exactly this form: a term such as sign(w) (L1,
        elastic net) is not. R is the same detached value ``grad_`` returns.
        """
        raise NotImplementedError(f"{type(self).__name__} has no gradient of the form coef·w")

    def forward(self, w: torch.Tensor | Iterable[torch.Tensor], *args: Any, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        return self.current_weight * self.penalty(w if isinstance(w, torch.Tensor) else list(w), *args, **kwargs)


class RepresentationRegularizer(Regularizer):
    """A penalty on a batch of embeddings or activations; bind it with ``.on(activations=...)``."""

    kind: ClassVar[str] = "representation"
    target: ClassVar[str] = "activations"
    #: the inputs are (n, d…) batches of embeddings, one per view (what the generic batch tests feed);
    #: False for penalties on other tensors (attention maps, position encodings with their labels)
    takes_embedding_batches: ClassVar[bool] = True


class FunctionModule(Registered, Configurable, nn.Module):
    """A module around a method's pure function, for the non-penalty forms
    (target and input transforms, output modules): ``forward(*inputs)`` is
    ``function(*inputs, **hyperparameters)``; names in ``call_args`` (such
    as ``training`` or ``generator``) are supplied per call. Like
    ``Regularizer``, it needs no ``__init__`` of its own."""

    form: ClassVar[str] = "module"
    extra_repr = _config_repr

    def _init_from_values(self, values: dict[str, Any]) -> None:
        nn.Module.__init__(self)
        super()._init_from_values(values)

    def forward(self, *inputs: Any, **call: Any) -> Any:
        return type(self).function(*inputs, **self.function_kwargs(), **call)


class Binding:
    """A regularizer plus the ``Selection`` it applies to; built by ``Regularizer.on``.

    Passing a bare regularizer to ``reglab.attach`` is the same as
    ``reg.on()``: every weight parameter except the default exclusions, or,
    for an activation regularizer, an error asking where to bind it. Checks
    here that the regularizer can take the selection.
    """

    def __init__(self, regularizer: Regularizer, selection: Selection | None = None, **fields: Any):
        if not isinstance(regularizer, Regularizer):
            raise TypeError(_not_a_penalty(regularizer))
        who = type(regularizer).__name__
        if selection is None:
            try:
                selection = Selection(**fields)
            except (TypeError, ValueError) as e:
                msg = str(e)
                raise type(e)(f"{who}{msg}" if msg.startswith(".on") else f"{who}.on: {msg}") from None
        elif fields:
            raise TypeError("Binding takes a Selection or its fields as keywords, not both")
        s = selection
        if not s.on_activations and regularizer.target == "activations":
            raise ValueError(f"{who} regularizes activations: bind it with .on(activations='module.name')")
        if s.on_activations and regularizer.target == "weights":
            raise ValueError(f"{who} regularizes weights and cannot be bound to activations")
        if not s.on_activations and not isinstance(regularizer, WeightRegularizer):
            raise ValueError(f"{who} is not a weight regularizer; bind it with .on(activations=...)")
        if s.mode == "prox" and not regularizer.has_prox:  # type: ignore[union-attr]
            raise ValueError(f"{who} has no proximal operator; use mode='penalty'")
        if s.mode == "grad" and not regularizer.has_grad:  # type: ignore[union-attr]
            raise ValueError(
                f"{who} has no closed-form gradient for mode='grad' (use mode='penalty'); "
                f"mode='grad' supports: {', '.join(_with_grad())}"
            )
        if s.scope == "global" and not s.on_activations and not regularizer.has_global_scope:  # type: ignore[union-attr]
            raise ValueError(f"{who} has no global scope distinct from local; use scope='local'")
        self.regularizer = regularizer
        self.selection = s
        self.name = s.name or regularizer.name or type(regularizer).__name__.lower()
        self.max_captures = s.max_captures or 4 * regularizer.num_inputs

    def __getattr__(self, key: str) -> Any:
        # mode, scope, activations, select, params, ... read through to the selection
        selection = self.__dict__.get("selection")
        if selection is None or key.startswith("__"):
            raise AttributeError(key)
        return getattr(selection, key)

    def applies_now(self) -> bool:
        """True on the steps this binding applies (``every=k``: the regularizer's step
        counter is a multiple of k)."""
        every = self.selection.every
        return every == 1 or self.regularizer.step_count % every == 0

    @property
    def coefficient(self) -> float:
        """The weight on an applied step: ``every·λ`` (lazy regularization)."""
        return self.selection.every * self.regularizer.current_weight

    def select_parameters(self, model: nn.Module) -> list[tuple[str, nn.Parameter]]:
        """The (name, parameter) pairs this binding applies to, in model order."""
        return self.selection.parameters(model)

    def describe_selection(self) -> str:
        """The selectors given to ``.on(...)``, readably: ``modules=Conv2d``, ``params='enc.*'``,
        ``where=my_fn``, ``activations=[...]``; ``default`` when none was given (every weight
        parameter but the default exclusions). Shows ``exclude=`` when it is not the default."""
        s = self.selection
        if s.on_activations:
            return f"activations={list(s.activations)}"
        parts = []
        if s.params is not None:
            parts.append(f"params={s.params!r}")
        if s.modules is not None:
            mods = s.modules if isinstance(s.modules, tuple) else (s.modules,)
            parts.append("modules=" + ("|".join(m.__name__ for m in mods)))
        if s.where is not None:
            parts.append(f"where={getattr(s.where, '__qualname__', None) or s.where!r}")
        if s.exclude != "default":
            parts.append(f"exclude={getattr(s.exclude, '__qualname__', None) or s.exclude!r}")
        if s.frozen:
            parts.append("frozen=True")
        return ", ".join(parts) or "default"

    def __repr__(self) -> str:
        s = self.selection
        every = f", every={s.every}" if s.every != 1 else ""
        return f"Binding({self.name}, {self.describe_selection()}, mode={s.mode}, scope={s.scope}{every})"


#: How each non-penalty form is used, for the error when one is passed to attach().
_FORM_HINTS = {
    "target": "it transforms the training targets: train on loss(logits, reg(labels, ...)) instead of the labels",
    "transform": "apply it to inputs or activations in training: x = reg(x) (in forward() or the data pipeline)",
    "module": "insert it into the model (it is an nn.Module) and use its output",
    "optimizer": "it wraps the optimizer: use it in place of the optimizer (opt.step())",
    "posthoc": "fit it on embeddings after training: reg.fit(embeddings).transform(embeddings)",
    "operation": "call it on the model between training rounds: reg(model)",
    "reparametrization": "apply it to the model once, before building the optimizer: reg(model)",
}


def _not_a_penalty(obj: Any) -> str:
    """The error for something attach() cannot bind: names a registered form and how to use it."""
    form = getattr(type(obj), "form", None)
    name = getattr(type(obj), "name", None)
    if form in _FORM_HINTS and name:
        return (
            f"attach() binds penalties, but {type(obj).__name__} is a {form!r} regularizer, not a penalty: "
            f"{_FORM_HINTS[form]}. `reglab info {name}` prints a runnable example"
        )
    return f"attach() takes reglab regularizers or bindings, got {obj!r}"


def _defining_class(cls: type, attr: str) -> type:
    """The class in ``cls``'s MRO whose body defines ``attr``."""
    return next(k for k in cls.__mro__ if attr in vars(k))


def _with_grad() -> list[str]:
    """Registered weight regularizers that implement ``grad_`` (or ``grad_coefficients``)."""
    from reglab.core.registry import get, list_regularizers

    names = ("grad_", "grad_coefficients")
    return [
        n for n in list_regularizers("weight")
        if any(getattr(get(n), a, None) not in (None, getattr(WeightRegularizer, a)) for a in names)
    ]


@torch.no_grad()
def add_coefficients_(
    grads: Sequence[torch.Tensor],
    tensors: Sequence[torch.Tensor],
    coefs: Sequence[float | torch.Tensor],
    alpha: float | torch.Tensor = 1.0,
) -> None:
    """In place: ``grads[i] += alpha·coefs[i]·tensors[i]``, one pass over each weight.

    ``coefs[i]`` is a Python float (the tensors sharing one value get one
    ``_foreach_add_``) or a tensor broadcastable against ``tensors[i]`` (a
    0-d tensor or one value per group: one ``_foreach_addcmul_``, no
    temporary of the weight's size). ``alpha`` is a float or a 0-d tensor
    (a GradScaler's scale on the device, never read on the host). Low-precision
    gradients take float32 coefficients; the sum is cast on the add."""
    grads, tensors, coefs = list(grads), list(tensors), list(coefs)
    if not (len(grads) == len(tensors) == len(coefs)):
        raise ValueError(f"add_coefficients_ got {len(grads)} gradients, {len(tensors)} tensors, {len(coefs)} coefficients")
    scalar: dict[float, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
    tg: list[torch.Tensor] = []
    tw: list[torch.Tensor] = []
    tc: list[torch.Tensor] = []
    unit = not isinstance(alpha, torch.Tensor) and alpha == 1
    for g, w, c in zip(grads, tensors, coefs):
        c = c if unit else c * alpha
        if isinstance(c, torch.Tensor):
            tg.append(g)
            tw.append(w)
            tc.append(c)
        elif c != 0.0:
            gs, ws = scalar.setdefault(float(c), ([], []))
            gs.append(g)
            ws.append(w)
    for c, (gs, ws) in scalar.items():
        torch._foreach_add_(gs, ws, alpha=c)
    if tg:
        torch._foreach_addcmul_(tg, tw, tc)
