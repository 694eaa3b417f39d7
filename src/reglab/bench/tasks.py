"""Lab tasks: named experiments that the claims refer to.

A task is a function registered with ``task``::

    @task("label_noise", datasets=("digits", "digits_half", "mnist1d"))
    def label_noise(arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "digits",
                    **task_args) -> TaskResult

``arm`` is a ``get_config``-style dict naming the registered object to
evaluate (None: the plain baseline). The function builds it with
``reglab.from_config`` and uses it in its natural form (penalty, target
transform, module, optimizer wrapper). Everything random derives from
``seed``: the data split, the initialization, the batches, so two arms with
the same seed form a paired comparison. ``dataset`` is one of the names
the task declares (``reglab.bench.data``); every split has a validation
part, and early stopping or any other model selection uses it only, never
the test split. ``quick`` shrinks the run to a smoke test (a few seconds).
Hyperparameters are fixed in the task; regularizer defaults are the
paper's. ``TaskResult.setup`` names the data, model, epochs and optimizer
for the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TaskResult", "TaskUnavailable", "task", "get_task", "list_tasks", "TASKS", "TASK_DATASETS", "SHARED_CACHES"]


@dataclass
class TaskResult:
    metrics: dict[str, float]  # final scalar metrics, e.g. {"test_accuracy": 0.95}
    curves: dict[str, list[float]] = field(default_factory=dict)  # per-epoch series for plots
    step_seconds: float = float("nan")  # mean wall time of one training step
    seconds: float = float("nan")  # wall time of the whole run
    step_cpu_seconds: float = float("nan")  # mean process CPU time of one training step (workers are single-threaded)
    setup: dict[str, str] = field(default_factory=dict)  # data, model, epochs, optimizer, selection: for the report
    # per-unit values of a deterministic task, e.g. {"spearman": {"2012/MSRpar.test.tsv": 0.43, ...}}: claims
    # with paired_over="units" pair the arms unit by unit instead of seed by seed
    units: dict[str, dict[str, float]] = field(default_factory=dict)


class TaskUnavailable(RuntimeError):
    """Raised by a task whose optional data or extra is missing; the lab reports the run as skipped."""


TaskFn = Callable[..., TaskResult]
TASKS: dict[str, TaskFn] = {}
#: task name -> the datasets it runs on (``reglab.bench.data.DATASETS`` names)
TASK_DATASETS: dict[str, tuple[str, ...]] = {}
#: tasks whose first run fills an on-disk cache the others read (minutes of MiniLM encoding when cold), by
#: cache: the lab starts one run of each group first and queues the rest last, so that a second worker
#: never waits on the cache's lock while it could run something else
SHARED_CACHES: dict[str, tuple[str, ...]] = {
    "SciFact MiniLM encodings": ("beir", "beir_adapter"),
    "STS MiniLM encodings": ("sts", "retrieval"),
}


def task(name: str, *, datasets: tuple[str, ...] = ("digits",)) -> Callable[[TaskFn], TaskFn]:
    """Register a lab task under ``name``; ``datasets`` are the data it can run on."""

    def deco(fn: TaskFn) -> TaskFn:
        if name in TASKS and TASKS[name] is not fn:
            raise ValueError(f"lab task {name!r} is already registered")
        TASKS[name] = fn
        TASK_DATASETS[name] = tuple(datasets)
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
