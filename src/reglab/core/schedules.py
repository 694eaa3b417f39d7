"""Coefficient schedules: ``step -> float``.

A regularizer's ``weight`` may be a float, one of these, or any
``callable(step) -> float`` (the last cannot be saved by ``get_config``).
The step counter lives in the regularizer's ``state_dict`` so a resumed run
continues on the same schedule; ``regs.step(optimizer)`` advances it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "Schedule",
    "Constant",
    "LinearWarmup",
    "LinearRamp",
    "Cosine",
    "Step",
    "Piecewise",
    "srip_decay",
    "as_schedule",
    "from_config",
]


class Schedule:
    """Base class: subclasses implement ``__call__(step) -> float``."""

    def __call__(self, step: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        cfg = {"schedule": type(self).__name__}
        cfg.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items()})
        return cfg

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)


def _check_steps(name: str, steps: int) -> int:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"{name} expects a non-negative integer number of steps, got {steps!r}")
    return steps


class Constant(Schedule):
    """``value`` at every step."""

    def __init__(self, value: float):
        self.value = float(value)

    def __call__(self, step: int) -> float:
        return self.value


class LinearWarmup(Schedule):
    """Linear from ``start`` to ``value`` over ``warmup_steps``, then constant."""

    def __init__(self, value: float, warmup_steps: int, start: float = 0.0):
        self.value = float(value)
        self.warmup_steps = _check_steps("LinearWarmup", warmup_steps)
        self.start = float(start)

    def __call__(self, step: int) -> float:
        if self.warmup_steps == 0 or step >= self.warmup_steps:
            return self.value
        return self.start + (self.value - self.start) * max(step, 0) / self.warmup_steps


class LinearRamp(Schedule):
    """``start`` until ``begin``, linear to ``end`` over ``steps``, then ``end``.

    This is the ramp of ScheduledDropPath and PS-KD's α_t = α_T·t/T.
    """

    def __init__(self, start: float, end: float, steps: int, begin: int = 0):
        self.start = float(start)
        self.end = float(end)
        self.steps = _check_steps("LinearRamp", steps)
        self.begin = _check_steps("LinearRamp", begin)

    def __call__(self, step: int) -> float:
        t = step - self.begin
        if t <= 0:
            return self.start if self.steps > 0 else self.end
        if t >= self.steps:
            return self.end
        return self.start + (self.end - self.start) * t / self.steps


class Cosine(Schedule):
    """Half-cosine from ``start`` to ``end`` over ``steps``, then ``end``."""

    def __init__(self, start: float, end: float, steps: int):
        self.start = float(start)
        self.end = float(end)
        self.steps = _check_steps("Cosine", steps)

    def __call__(self, step: int) -> float:
        if self.steps == 0 or step >= self.steps:
            return self.end
        frac = max(step, 0) / self.steps
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * frac))


class Step(Schedule):
    """``value`` multiplied by ``gamma`` at each milestone step passed."""

    def __init__(self, value: float, milestones: Sequence[int], gamma: float = 0.1):
        self.value = float(value)
        ms = [_check_steps("Step", int(m)) for m in milestones]
        if ms != sorted(ms):
            raise ValueError(f"Step expects increasing milestones, got {list(milestones)}")
        self.milestones = tuple(ms)
        self.gamma = float(gamma)

    def __call__(self, step: int) -> float:
        passed = sum(1 for m in self.milestones if step >= m)
        return self.value * self.gamma**passed


class Piecewise(Schedule):
    """Piecewise constant: ``values[i]`` from ``boundaries[i-1]`` (inclusive) to ``boundaries[i]``.

    ``values[0]`` before ``boundaries[0]``; ``len(values) == len(boundaries) + 1``.
    """

    def __init__(self, values: Sequence[float], boundaries: Sequence[int]):
        vs = [float(v) for v in values]
        bs = [_check_steps("Piecewise", int(b)) for b in boundaries]
        if len(vs) != len(bs) + 1:
            raise ValueError(
                f"Piecewise expects one more value than boundaries, got {len(vs)} values and {len(bs)} boundaries"
            )
        if bs != sorted(bs):
            raise ValueError(f"Piecewise expects increasing boundaries, got {list(boundaries)}")
        self.values = tuple(vs)
        self.boundaries = tuple(bs)

    def __call__(self, step: int) -> float:
        return self.values[sum(1 for b in self.boundaries if step >= b)]


#: Epochs (0-based, as counted by the step counter) at which the official SRIP code
#: multiplies the orthogonality coefficient, and the factors (relative to the start value).
SRIP_DECAY_EPOCHS = (20, 50, 70, 120)
SRIP_DECAY_FACTORS = (1e-3, 1e-4, 1e-6, 0.0)


def srip_decay(steps_per_epoch: int, value: float = 1e-2) -> Piecewise:
    """The SRIP coefficient schedule of Bansal, Chen & Wang's official code (NeurIPS 2018).

    VITA-Group/Orthogonality-in-CNNs, ``Wide-Resnet/train_n.py``,
    ``adjust_ortho_decay_rate(epoch + 1)`` with ``--ortho-decay 1e-2``
    (the Keras ``ResNet/resnet_cifar_new.py`` ``decay_schedule`` has the same
    thresholds): ``value`` for epochs 1-20, ×1e-3 for 21-50, ×1e-4 for
    51-70, ×1e-6 for 71-120 and 0 after epoch 120 (1-based epochs). With
    reglab's 0-based step counter the changes fall at steps
    ``20, 50, 70, 120 × steps_per_epoch``. Use as
    ``reglab.SRIP(srip_decay(len(train_loader)))``.
    """
    if not isinstance(steps_per_epoch, int) or isinstance(steps_per_epoch, bool) or steps_per_epoch < 1:
        raise ValueError(f"srip_decay expects a positive integer steps_per_epoch, got {steps_per_epoch!r}")
    values = [float(value)] + [float(value) * f for f in SRIP_DECAY_FACTORS]
    return Piecewise(values, [e * steps_per_epoch for e in SRIP_DECAY_EPOCHS])


_SCHEDULES = {cls.__name__: cls for cls in (Constant, LinearWarmup, LinearRamp, Cosine, Step, Piecewise)}


def from_config(cfg: dict[str, Any]) -> Schedule:
    cfg = dict(cfg)
    kind = cfg.pop("schedule")
    if kind not in _SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; known: {sorted(_SCHEDULES)}")
    return _SCHEDULES[kind](**cfg)


def as_schedule(weight: float | Callable[[int], float]) -> Callable[[int], float]:
    """A float becomes ``Constant``; schedules and callables pass through."""
    if callable(weight):
        return weight
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise TypeError(f"weight must be a number or a callable(step) -> float, got {weight!r}")
    if not math.isfinite(weight):
        raise ValueError(f"weight must be finite, got {weight!r}")
    if weight < 0:
        raise ValueError(
            f"weight must be >= 0, got {weight!r}: a negative weight rewards the penalized property "
            f"(pass a schedule if you really mean it)"
        )
    return Constant(weight)
