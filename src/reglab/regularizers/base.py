"""The :class:`Regularizer` base module.

A regularizer is an ``nn.Module`` wrapping one pure function from
``reglab.functional``:

* ``reg.penalty(*inputs)`` is the unweighted penalty (a scalar tensor);
* ``reg(*inputs)`` is ``weight * penalty``, with ``weight`` a float or a
  schedule evaluated at the regularizer's step counter;
* ``reg.components(*inputs)`` is a NamedTuple of the unweighted named terms,
  for logging;
* ``reg.on(...)`` binds it to a model's parameters or activations (see
  :func:`reglab.attach`).

Subclasses implement ``penalty`` (single-term) or ``components`` and
``penalty`` (multi-term, where the paper weighs the terms).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from reglab.config import Configurable
from reglab.paper import Claim, Paper
from reglab.schedules import as_schedule


class Penalty(NamedTuple):
    """Components of a single-term regularizer."""

    penalty: torch.Tensor


class Regularizer(Configurable, nn.Module):
    """Base class of every penalty-form regularizer.

    Class attributes carry the paper metadata the registry reports:
    ``name`` (registry name), ``kind``, ``form``, ``paper``, ``formula``,
    ``claims`` (for the lab), ``num_inputs`` (tensors per call: 2 for
    two-view losses such as VICReg) and ``target`` (what ``.on`` may bind:
    ``"weights"``, ``"activations"`` or ``"any"``).
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    form: ClassVar[str] = "penalty"
    paper: ClassVar[Paper | None] = None
    formula: ClassVar[str] = ""
    claims: ClassVar[tuple[Claim, ...]] = ()
    num_inputs: ClassVar[int] = 1
    target: ClassVar[str] = "any"

    def __init__(self, weight: float | Callable[[int], float] = 1.0):
        super().__init__()
        self.weight = weight
        self._schedule = as_schedule(weight)
        self._step = 0

    # ----------------------------------------------------------- the penalty
    def penalty(self, *inputs: Any, **kwargs: Any) -> torch.Tensor:
        """The unweighted penalty."""
        if type(self).components is Regularizer.components:
            raise NotImplementedError(f"{type(self).__name__} implements neither penalty nor components")
        return sum(self.components(*inputs, **kwargs))  # type: ignore[return-value]

    def components(self, *inputs: Any, **kwargs: Any) -> NamedTuple:
        """The unweighted named terms (a NamedTuple), for logging."""
        if type(self).penalty is Regularizer.penalty:
            raise NotImplementedError(f"{type(self).__name__} implements neither penalty nor components")
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
    def on(
        self,
        params: str | Any | Sequence[Any] | None = None,
        *,
        modules: type | tuple[type, ...] | None = None,
        where: Callable[[str, nn.Parameter, nn.Module], bool] | None = None,
        activations: str | Sequence[str] | None = None,
        select: Any = None,
        mode: str = "penalty",
        scope: str = "local",
        exclude: Any = "default",
        name: str | None = None,
    ):
        """Bind to parameters or activations; pass the result to :func:`reglab.attach`.

        See :class:`reglab.bind.Binding` for the meaning of each argument.
        """
        from reglab.bind import Binding

        return Binding(
            regularizer=self,
            params=params,
            modules=modules,
            where=where,
            activations=activations,
            select=select,
            mode=mode,
            scope=scope,
            exclude=exclude,
            name=name,
        )

    def extra_repr(self) -> str:
        cfg = self.get_config()
        cfg.pop("name", None)
        return ", ".join(f"{k}={v!r}" for k, v in cfg.items())


class WeightRegularizer(Regularizer):
    """A penalty on parameter tensors.

    ``penalty(w)`` is the penalty of one tensor. ``penalty_many(ws)`` is the
    sum over tensors (local scope); subclasses override it with a fused
    implementation. ``penalty_global(ws)`` treats the tensors as one group
    (global scope), only where the method distinguishes the two.
    Regularizers with a proximal operator implement ``prox_(w, step_size)``.
    """

    kind: ClassVar[str] = "weight"
    target: ClassVar[str] = "weights"

    def penalty_many(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        total = self.penalty(tensors[0])
        for w in tensors[1:]:
            total = total + self.penalty(w)
        return total

    def penalty_global(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} has no global scope distinct from local; use scope='local'"
        )

    @property
    def has_global_scope(self) -> bool:
        return type(self).penalty_global is not WeightRegularizer.penalty_global

    @property
    def has_prox(self) -> bool:
        return type(self).prox_ is not WeightRegularizer.prox_

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        """In place: ``w <- prox_{step_size * penalty}(w)``."""
        raise NotImplementedError(f"{type(self).__name__} has no proximal operator")

    def forward(self, w: torch.Tensor | Iterable[torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        if isinstance(w, torch.Tensor):
            return self.current_weight * self.penalty(w)
        tensors = list(w)
        if not tensors:
            raise ValueError(f"{type(self).__name__} got an empty list of tensors")
        return self.current_weight * self.penalty_many(tensors)
