"""Per-tensor state (power-iteration vectors, anchors) kept as buffers, so it lives in ``state_dict``."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from reglab.core.errors import RegularizerInputError
from reglab.core.regularizer import WeightRegularizer

__all__ = ["AnchorState", "PerTensorState", "PowerIterationState"]


class PerTensorState(WeightRegularizer):
    """A weight regularizer with one state buffer per regularized tensor.

    ``setup(named_params)`` (called by ``reglab.attach``) creates one
    buffer per parameter, named ``<prefix><param name>`` with dots replaced
    by ``__``, and finds a tensor's buffer by identity. Tensors never set up
    get ``<prefix>tensor<k>`` in order of first use, so a standalone run
    resumes exactly when it presents its tensors in the same order.
    Loading a state_dict creates missing buffers, so a fresh instance can
    load before or after ``setup``. Subclasses give ``function``,
    ``_state_prefix``, ``_state_shape(w)`` and ``_new_state(w)``; their
    constructor is derived from ``function`` (``weight=default_weight``).
    """

    _state_prefix: ClassVar[str] = "state__"

    def _init_from_values(self, values: dict[str, Any]) -> None:
        super()._init_from_values(values)
        self._slots: dict[int, tuple[weakref.ref, str]] = {}
        self._auto = 0

    def _new_state(self, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _state_shape(self, w: torch.Tensor) -> tuple[int, ...]:
        raise NotImplementedError

    def _ensure(self, key: str, w: torch.Tensor) -> None:
        buf = self._buffers.get(key)
        if buf is None or tuple(buf.shape) != self._state_shape(w):
            self.register_buffer(key, self._new_state(w))

    def _bind(self, w: torch.Tensor, key: str) -> str:
        self._ensure(key, w)
        self._slots[id(w)] = (weakref.ref(w), key)
        return key

    def setup(self, named_params: Sequence[tuple[str, torch.Tensor]]) -> None:
        """Create the state of each (name, parameter); keeps state already loaded."""
        for name, p in named_params:
            self._bind(p, self._state_prefix + name.replace(".", "__"))

    def _key(self, w: torch.Tensor) -> str:
        slot = self._slots.get(id(w))
        if slot is not None and slot[0]() is w:
            self._ensure(slot[1], w)
            return slot[1]
        key = f"{self._state_prefix}tensor{self._auto}"
        self._auto += 1
        return self._bind(w, key)

    def state_of(self, w: torch.Tensor) -> torch.Tensor:
        """The buffer holding ``w``'s state (created on first use)."""
        return self._buffers[self._key(w)]

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        # Before setup (nothing bound yet) every stored state is created, to be bound
        # later by name. After setup only the bound names load: a state for a name
        # the model no longer has (renamed parameters) is reported as an unexpected
        # key, not kept as a stale buffer nobody reads.
        bound = {key for _, key in self._slots.values()}
        for full, value in state_dict.items():
            name = full[len(prefix):]
            if full.startswith(prefix + self._state_prefix) and "." not in name:
                if bound and name not in bound:
                    continue
                buf = self._buffers.get(name)
                if buf is None or buf.shape != value.shape:
                    self.register_buffer(name, torch.empty_like(value))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)


class PowerIterationState(PerTensorState):
    """Per-tensor unit start vectors for power-iteration penalties (SRIP, spectral norm).

    The class's ``power_step(ws, us)`` (default: its ``function``) returns
    ``(value, [new u…])``; the new vectors are written back to the buffers,
    so each call advances the iteration and ``state_dict`` resumes it.
    """

    power_step: Any = None

    _state_prefix = "u__"

    def _new_state(self, w: torch.Tensor) -> torch.Tensor:
        u = torch.randn(self._state_shape(w), device=w.device, dtype=torch.float32)
        return u / u.norm().clamp_min(1e-12)

    def penalty(self, w: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        ws = [w] if isinstance(w, torch.Tensor) else list(w)
        bufs = [self.state_of(t) for t in ws]
        # clone: the graph keeps u, the buffer moves on
        step = type(self).power_step or type(self).function
        value, new = step(ws, [b.clone() for b in bufs])
        with torch.no_grad():
            for b, n in zip(bufs, new):
                b.copy_(n)
        return value


class AnchorState(PerTensorState):
    """Per-tensor anchors: a copy of each tensor's value when it is set up (L2-SP, L2 Init).

    ``setup(named_params)`` (called by ``reglab.attach``) copies each
    parameter into a buffer ``anchor__<param name>``, so the anchors live in
    ``state_dict``. ``_anchor`` finds a tensor's anchor by identity and
    raises, naming the class, for a tensor never set up; a subclass that
    anchors tensors at first use calls ``state_of`` instead.
    """

    _state_prefix = "anchor__"

    def _state_shape(self, w: torch.Tensor) -> tuple[int, ...]:
        return tuple(w.shape)

    def _new_state(self, w: torch.Tensor) -> torch.Tensor:
        return w.detach().clone()

    def _anchor(self, w: torch.Tensor) -> torch.Tensor:
        slot = self._slots.get(id(w))
        if slot is None or slot[0]() is not w:
            raise RegularizerInputError(
                f"{type(self).__name__} has no anchor for the weight of shape {tuple(w.shape)}: bind it with "
                f"reglab.attach (which records anchors), call setup([(name, param)]), or pass anchor="
            )
        return self._buffers[slot[1]]
