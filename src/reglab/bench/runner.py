"""Run lab tasks, append each finished run to ``results.jsonl``, resume after a kill.

A run is keyed by ``(task, task_args, arm, seed, quick)``: claims that share
a run (two ELR claims on the same noisy-label training) reuse it, and a
rerun skips every run already in the file.

``results.jsonl`` holds one JSON object per finished run. Each line is
written with a single ``os.write`` on an ``O_APPEND`` descriptor followed by
``fsync``, so a killed bench loses at most the run in flight and never
leaves a half-written line followed by good ones. On start the file is read
line by line; a line that does not parse (a torn write, a hand edit) is
skipped with a warning and left in place: the file is never rewritten.

Runs that raise ``TaskUnavailable`` (an optional extra or data is missing)
or fail are reported as ``skipped`` / ``error`` but not written, so a rerun
after installing the extra or fixing the bug retries them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RunSpec", "ResultStore", "execute", "run_all", "RESULTS_FILE"]

RESULTS_FILE = "results.jsonl"
_REQUIRED = ("key", "task", "seed", "metrics")


@dataclass(frozen=True)
class RunSpec:
    """One training run: a task, its arguments, one arm (None = baseline), one seed."""

    task: str
    task_args: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    arm: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    seed: int = 0
    quick: bool = False

    @property
    def key(self) -> str:
        ident = {"task": self.task, "task_args": self.task_args, "arm": self.arm, "seed": self.seed, "quick": self.quick}
        blob = json.dumps(ident, sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        arm = arm_label(self.arm)
        args = ",".join(f"{k}={v}" for k, v in sorted(self.task_args.items()))
        return f"{self.task}{f'[{args}]' if args else ''} {arm} seed={self.seed}"


def arm_label(arm: dict[str, Any] | None) -> str:
    """``baseline`` or ``name(k=v, ...)`` for reports."""
    if arm is None:
        return "baseline"
    rest = {k: v for k, v in arm.items() if k != "name"}
    return arm.get("name", "?") + (f"({', '.join(f'{k}={v}' for k, v in sorted(rest.items()))})" if rest else "")


def versions() -> dict[str, str]:
    import numpy
    import torch

    import reglab

    return {
        "reglab": reglab.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


class ResultStore:
    """The append-only ``results.jsonl`` of one output directory."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        self.records: dict[str, dict[str, Any]] = {}
        self.bad_lines: list[int] = []

    def load(self) -> ResultStore:
        self.records.clear()
        self.bad_lines.clear()
        if not os.path.exists(self.path):
            return self
        with open(self.path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    rec = json.loads(raw)
                    if not isinstance(rec, dict) or any(k not in rec for k in _REQUIRED):
                        raise ValueError("missing fields")
                except (ValueError, UnicodeDecodeError):
                    self.bad_lines.append(lineno)
                    continue
                self.records.setdefault(rec["key"], rec)  # first one wins: never double-count
        if self.bad_lines:
            warnings.warn(
                f"{self.path}: skipped {len(self.bad_lines)} corrupted line(s) "
                f"(line {', '.join(map(str, self.bad_lines[:10]))}); the file is left as is",
                RuntimeWarning,
                stacklevel=2,
            )
        return self

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, allow_nan=True) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # A line torn by a kill has no newline; start a new line so this
            # record is not glued onto it (the torn one is skipped on load).
            if os.fstat(fd).st_size > 0:
                with open(self.path, "rb") as f:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        line = "\n" + line
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self.records[record["key"]] = record


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else x
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item"):
        return _jsonable(x.item())
    return x


def execute(spec: RunSpec) -> dict[str, Any]:
    """Run one spec; the record to store (``status`` ok) or report (skipped/error)."""
    from reglab.bench.tasks import TaskUnavailable, get_task

    base = {"key": spec.key, **asdict(spec)}
    t0 = time.perf_counter()
    try:
        fn = get_task(spec.task)
    except KeyError as e:  # the task's module is not there (another extra, not written yet)
        return {**base, "status": "skipped", "error": str(e).strip("'\"")}
    try:
        res = fn(spec.arm, seed=spec.seed, quick=spec.quick, **spec.task_args)
    except (TaskUnavailable, ModuleNotFoundError) as e:
        return {**base, "status": "skipped", "error": str(e)}
    except Exception as e:  # a failing run must not take the suite down
        return {**base, "status": "error", "error": _error_text(e)}
    seconds = res.seconds if math.isfinite(res.seconds) else time.perf_counter() - t0
    return {
        **base,
        "status": "ok",
        "metrics": _jsonable(dict(res.metrics)),
        "curves": _jsonable({k: list(v) for k, v in res.curves.items()}),
        "step_seconds": _jsonable(float(res.step_seconds)),
        "seconds": float(seconds),
        "versions": versions(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _error_text(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
    return f"{type(e).__name__}: {e}{where}"


def _warm_up() -> None:
    """Pay the one-off costs (lazy imports, first optimizer step) before any run is
    timed, so the first run's step time is not inflated against the others."""
    import torch

    from reglab.bench.tasks import _load_experiments

    _load_experiments()
    w = torch.zeros(4, 4, requires_grad=True)
    opt = torch.optim.Adam([w], lr=1e-3)
    (w.sum() ** 2).backward()
    opt.step()
    try:
        import sklearn.datasets  # noqa: F401  (the digits loader)
    except ImportError:
        pass


def _init_worker(modules: Sequence[str]) -> None:
    import importlib

    import torch

    torch.set_num_threads(1)  # jobs share the cores; oversubscription only slows every run
    for m in modules:
        importlib.import_module(m)
    _warm_up()


def _task_modules(specs: Iterable[RunSpec]) -> list[str]:
    """Modules defining the specs' tasks outside the built-in experiments (e.g. test tasks),
    so spawned workers register them too."""
    from reglab.bench.tasks import TASKS, _load_experiments

    _load_experiments()
    mods = {TASKS[s.task].__module__ for s in specs if s.task in TASKS}
    return sorted(m for m in mods if m != "__main__" and not m.startswith("reglab.bench.experiments"))


Callback = Callable[[RunSpec, dict[str, Any]], None]


def run_all(
    specs: Sequence[RunSpec],
    store: ResultStore,
    *,
    jobs: int = 1,
    on_start: Callable[[int, int], None] | None = None,
    on_done: Callback | None = None,
) -> list[dict[str, Any]]:
    """Run the specs not yet in ``store``; append each as it finishes.

    Returns the records of the runs that did not finish (skipped/error).
    ``on_start(todo, already_done)`` and ``on_done(spec, record)`` drive the
    progress display.
    """
    unique: dict[str, RunSpec] = {}
    for s in specs:
        unique.setdefault(s.key, s)
    todo = [s for k, s in unique.items() if k not in store]
    if on_start is not None:
        on_start(len(todo), len(unique) - len(todo))
    failed: list[dict[str, Any]] = []

    def finish(spec: RunSpec, rec: dict[str, Any]) -> None:
        if rec["status"] == "ok":
            store.append(rec)
        else:
            failed.append(rec)
        if on_done is not None:
            on_done(spec, rec)

    if jobs <= 1 or len(todo) <= 1:
        if todo:
            _warm_up()
        for spec in todo:
            finish(spec, execute(spec))
        return failed

    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn, not fork: a forked child of a process that already ran OpenMP
    # work can deadlock; spawned workers import reglab (and test tasks) afresh.
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(_task_modules(todo),)
    ) as pool:
        futures = {pool.submit(execute, s): s for s in todo}
        for fut in as_completed(futures):
            spec = futures[fut]
            try:
                rec = fut.result()
            except Exception as e:  # a worker died (OOM, signal)
                rec = {"key": spec.key, **asdict(spec), "status": "error", "error": _error_text(e)}
            finish(spec, rec)
    return failed
