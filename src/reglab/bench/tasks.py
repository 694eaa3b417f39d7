"""Lab tasks: named experiments that the claims refer to.

A task is a function registered with :func:`task`::

    @task("label_noise")
    def label_noise(arm: dict | None, *, seed: int, quick: bool = False, **task_args) -> TaskResult

``arm`` is a ``get_config``-style dict naming the registered object to
evaluate (None: the plain baseline). The function builds it with
``reglab.from_config`` and uses it in its natural form (penalty, target
transform, module, optimizer wrapper). Everything random derives from
``seed``: the data split, the initialization, the batches, so two arms with
the same seed form a paired comparison. ``quick`` shrinks the run to a
smoke test (a few seconds). Hyperparameters are fixed in the task (never
tuned on the test split); regularizer defaults are the paper's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TaskResult", "TaskUnavailable", "task", "get_task", "list_tasks", "TASKS"]


@dataclass
class TaskResult:
    metrics: dict[str, float]  # final scalar metrics, e.g. {"test_accuracy": 0.95}
    curves: dict[str, list[float]] = field(default_factory=dict)  # per-epoch series for plots
    step_seconds: float = float("nan")  # mean wall time of one training step
    seconds: float = float("nan")  # wall time of the whole run


class TaskUnavailable(RuntimeError):
    """Raised by a task whose optional data or extra is missing; the lab reports the run as skipped."""


TaskFn = Callable[..., TaskResult]
TASKS: dict[str, TaskFn] = {}


def task(name: str) -> Callable[[TaskFn], TaskFn]:
    def deco(fn: TaskFn) -> TaskFn:
        if name in TASKS and TASKS[name] is not fn:
            raise ValueError(f"lab task {name!r} is already registered")
        TASKS[name] = fn
        return fn

    return deco


def _load_experiments() -> None:
    import importlib
    import pkgutil

    from reglab.bench import experiments

    for mod in pkgutil.iter_modules(experiments.__path__):
        importlib.import_module(f"reglab.bench.experiments.{mod.name}")


def get_task(name: str) -> TaskFn:
    _load_experiments()
    if name not in TASKS:
        import difflib

        close = difflib.get_close_matches(name, list(TASKS), n=3)
        raise KeyError(f"unknown lab task {name!r}" + (f"; did you mean {close}?" if close else ""))
    return TASKS[name]


def list_tasks() -> list[str]:
    _load_experiments()
    return sorted(TASKS)


def build_arm(arm: dict[str, Any] | None, **runtime: Any) -> Any:
    """The registered object an arm names, or None for the baseline."""
    if arm is None:
        return None
    from reglab.core.registry import from_config

    return from_config(arm, **runtime)
