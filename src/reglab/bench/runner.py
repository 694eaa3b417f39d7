"""Run lab tasks, append each finished run to ``results.jsonl``, resume after a kill.

A run is keyed by a hash of everything that determines its result: task,
task arguments, arm config, dataset, seed, quick, the reglab and torch
versions, and a fingerprint of the source code of the task, the lab's data
and training helpers and the arm's method module. Claims that share a run
(two ELR claims on the same noisy-label training) reuse it, a rerun skips
every run already in the file, and a changed config, version or code is
never reused (the old line stays, unused). ``--rerun`` runs everything
again; the newest line of a key wins.

Every stored line carries a digest of its own content: a line edited by
hand (another metric value, another version, another config) no longer
matches it and is skipped with a warning, like a torn line.

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

import contextlib
import hashlib
import json
import math
import os
import platform
import re
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "RunSpec", "ResultStore", "execute", "run_all", "default_jobs", "record_digest", "RESULTS_FILE",
    "FolderInUse", "lock_folder",
]  # fmt: skip

RESULTS_FILE = "results.jsonl"
LOCK_FILE = ".reglab.lock"
_REQUIRED = ("key", "task", "seed", "metrics")


class KeyedRun:
    """A run whose key is the hash of its ``identity()`` (lab runs and ``reglab ab`` runs)."""

    def identity(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def key(self) -> str:
        return _hash(self.identity())


@dataclass(frozen=True)
class RunSpec(KeyedRun):
    """One training run: a task, its arguments, one arm (None = baseline), one seed."""

    task: str
    task_args: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    arm: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    seed: int = 0
    quick: bool = False
    dataset: str | None = None  # None: the task's default data

    def identity(self) -> dict[str, Any]:
        """Everything the result depends on (what the key hashes)."""
        return {
            "task": self.task, "task_args": self.task_args, "arm": self.arm, "seed": self.seed,
            "quick": self.quick, "dataset": self.dataset, "versions": key_versions(),
            "code": code_fingerprint(self.task, self.arm),
        }  # fmt: skip

    @property
    def label(self) -> str:
        arm = arm_label(self.arm)
        args = ",".join(f"{k}={v}" for k, v in sorted(self.task_args.items()))
        data = f" on {self.dataset}" if self.dataset else ""
        return f"{self.task}{f'[{args}]' if args else ''}{data} {arm} seed={self.seed}"


def _hash(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def key_versions() -> dict[str, str]:
    """The versions a run's key includes (results from other versions are never reused)."""
    import torch

    import reglab

    return {"reglab": reglab.__version__, "torch": torch.__version__}


_FINGERPRINTS: dict[tuple[str, str | None], str] = {}


def code_fingerprint(task: str, arm: dict[str, Any] | None) -> str:
    """Hash of the source of the task's module, the lab's data and training helpers,
    and the arm's method module: editing any of them invalidates the stored runs."""
    name = (arm or {}).get("name")
    if (task, name) in _FINGERPRINTS:
        return _FINGERPRINTS[(task, name)]
    import inspect
    import sys

    from reglab.bench.tasks import TASKS, _load_experiments

    _load_experiments()
    modules = ["reglab.bench.data", "reglab.bench.experiments._train"]
    if task in TASKS:
        modules += _experiment_modules(TASKS[task].__module__)
    if name is not None:
        try:
            from reglab.core.registry import get

            modules.append(get(name).__module__)
        except Exception:  # an unknown arm fails when the run builds it, with its own message
            pass
    digest = hashlib.sha1()
    for mod in sorted(set(modules)):
        module = sys.modules.get(mod)
        try:
            digest.update(inspect.getsource(module).encode() if module is not None else mod.encode())
        except (OSError, TypeError):  # no source (a frozen or interactive module): its name stands in
            digest.update(mod.encode())
    _FINGERPRINTS[(task, name)] = fp = digest.hexdigest()[:12]
    return fp


_SIBLING_IMPORT = re.compile(r"^\s*from\s+(reglab\.bench\.experiments\.\w+)\s+import\b", re.M)


def _experiment_modules(module: str) -> list[str]:
    """``module`` and every lab task module it imports from, transitively (a task that reuses another
    task's model or data must rerun when that module changes, not only when its own source does)."""
    import importlib
    import inspect

    seen: list[str] = []
    todo = [module]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.append(mod)
        try:
            source = inspect.getsource(importlib.import_module(mod))
        except (ImportError, OSError, TypeError):  # no source: its name stands in (code_fingerprint)
            continue
        todo += _SIBLING_IMPORT.findall(source)
    return seen


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
        self.edited_lines: list[int] = []

    def load(self) -> ResultStore:
        self.records.clear()
        self.bad_lines.clear()
        self.edited_lines.clear()
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
                if rec.get("digest") != record_digest(rec):
                    self.edited_lines.append(lineno)
                    continue
                self.records[rec["key"]] = rec  # the newest line of a key wins (--rerun); never double-counted
        if self.bad_lines:
            warnings.warn(
                f"{self.path}: skipped {len(self.bad_lines)} corrupted line(s) "
                f"(line {', '.join(map(str, self.bad_lines[:10]))}); the file is left as is",
                RuntimeWarning,
                stacklevel=2,
            )
        if self.edited_lines:
            warnings.warn(
                f"{self.path}: skipped {len(self.edited_lines)} line(s) whose content does not match their "
                f"digest (edited by hand or written by another tool; line "
                f"{', '.join(map(str, self.edited_lines[:10]))}); those runs will be redone",
                RuntimeWarning,
                stacklevel=2,
            )
        return self

    def check_writable(self) -> None:
        """Raise a clear ``PermissionError`` now if runs could not be appended (a read-only
        file or folder): found after the first run, that run would be lost."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise PermissionError(f"cannot append to the results file {self.path!r}: {e.strerror or e}") from None
        os.close(fd)

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def append(self, record: dict[str, Any]) -> None:
        record = {**record, "digest": record_digest(record)}
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


class FolderInUse(RuntimeError):
    """Another ``reglab bench`` / ``reglab ab`` holds the output folder."""


_HELD_LOCKS: dict[str, tuple[int, int]] = {}  # folder -> (fd, depth) of the locks this process holds


@contextlib.contextmanager
def lock_folder(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on an output folder (``flock`` on its ``.reglab.lock``) while a bench
    or an A/B writes there; a second one refuses at once with ``FolderInUse``, naming the
    folder and the holder's pid, rather than running every job again and racing on the report.

    The lock goes with the process (a killed bench leaves none behind); the file stays. Re-entrant
    within a process. Without ``fcntl`` (Windows) it does nothing.
    """
    try:
        import fcntl
    except ImportError:  # no flock: no lock
        yield
        return
    key = os.path.realpath(folder)
    if key in _HELD_LOCKS:
        fd, depth = _HELD_LOCKS[key]
        _HELD_LOCKS[key] = (fd, depth + 1)
        try:
            yield
        finally:
            _HELD_LOCKS[key] = (fd, _HELD_LOCKS[key][1] - 1)
        return
    path = os.path.join(folder, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise FolderInUse(
            f"{os.fspath(folder)!r} is in use by another reglab bench or ab (pid {holder}); wait for it to "
            "finish, or give another --out"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD_LOCKS[key] = (fd, 1)
    try:
        yield
    finally:
        del _HELD_LOCKS[key]
        os.close(fd)  # releases the flock


def record_digest(record: dict[str, Any]) -> str:
    """Hash of a record's content without its ``digest`` field (as it reads back from JSON)."""
    content = {k: v for k, v in record.items() if k != "digest"}
    return _hash(json.loads(json.dumps(content, sort_keys=True, allow_nan=True)))


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

    t0 = time.perf_counter()
    try:
        fn = get_task(spec.task)
    except KeyError as e:  # the task's module is not there (another extra, not written yet)
        return {"key": "", **asdict(spec), "status": "skipped", "error": str(e).strip("'\"")}
    base = {"key": spec.key, **spec.identity()}
    data = {} if spec.dataset is None else {"dataset": spec.dataset}
    try:
        res = fn(spec.arm, seed=spec.seed, quick=spec.quick, **data, **spec.task_args)
    except (TaskUnavailable, ModuleNotFoundError) as e:
        # the status already says "skipped"; some messages (IndexSkipped) start with it too
        return {**base, "status": "skipped", "error": _strip_prefix(str(e), "skipped:")}
    except Exception as e:  # a failing run must not take the suite down
        return {**base, "status": "error", "error": _error_text(e)}
    seconds = res.seconds if math.isfinite(res.seconds) else time.perf_counter() - t0
    return {
        **base,
        "status": "ok",
        "metrics": _jsonable(dict(res.metrics)),
        "curves": _jsonable({k: list(v) for k, v in res.curves.items()}),
        "units": _jsonable({k: dict(v) for k, v in res.units.items()}),
        "step_seconds": _jsonable(float(res.step_seconds)),
        "step_cpu_seconds": _jsonable(float(res.step_cpu_seconds)),
        "setup": dict(res.setup),
        "seconds": float(seconds),
        "environment": versions(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _strip_prefix(text: str, prefix: str) -> str:
    return text[len(prefix):].lstrip() if text.lower().startswith(prefix) else text


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
    opt = torch.optim.Adam([w], lr=1e-3, fused=True)  # the lab's optimizers are fused (experiments._train.FUSED)
    (w.sum() ** 2).backward()
    opt.step()
    try:
        import sklearn.datasets  # noqa: F401  (the digits loader)
    except ImportError:
        pass


def _exit_with_parent(parent: int, poll_seconds: float = 0.2, group: bool = False) -> None:
    """Exit this worker as soon as ``parent`` is gone (e.g. ``reglab bench`` was SIGKILLed,
    which no handler in the parent can catch): the orphan is re-parented, so its
    parent pid changes. Runs on a daemon thread of each worker. ``group``: the worker
    leads its own process group (a run with a timeout): kill the group, so the
    processes its run started go with it."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        if group:
            import signal

            os.killpg(os.getpgid(0), signal.SIGKILL)
        os._exit(1)

    threading.Thread(target=watch, name="reglab-exit-with-parent", daemon=True).start()


def _init_worker(modules: Sequence[str], parent: int, group: bool = False, warm_up: bool = True) -> None:
    import importlib

    import torch

    _exit_with_parent(parent, group=group)
    # One thread per worker: jobs share the cores (oversubscription only slows every
    # run), and a step's process CPU time is then the cost of that step alone.
    torch.set_num_threads(1)
    for m in modules:
        importlib.import_module(m)
    if warm_up:
        _warm_up()


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _task_modules(specs: Iterable[RunSpec]) -> list[str]:
    """Modules defining the specs' tasks outside the built-in experiments (e.g. test tasks),
    so spawned workers register them too."""
    from reglab.bench.tasks import TASKS, _load_experiments

    _load_experiments()
    mods = {TASKS[s.task].__module__ for s in specs if isinstance(s, RunSpec) and s.task in TASKS}
    return sorted(m for m in mods if m != "__main__" and not m.startswith("reglab.bench.experiments"))


Callback = Callable[[RunSpec, dict[str, Any]], None]


def run_all(
    specs: Sequence[Any],
    store: ResultStore,
    *,
    jobs: int = 1,
    rerun: bool = False,
    backend: str = "local",
    address: str | None = None,
    execute_fn: Callable[[Any], dict[str, Any]] = execute,
    on_start: Callable[[int, int], None] | None = None,
    on_done: Callback | None = None,
    timeout: float | None = None,
) -> list[dict[str, Any]]:
    """Run the specs not yet in ``store`` (all of them with ``rerun``); append each as it finishes.

    A spec is a ``RunSpec`` (a lab task run by ``execute``) or any
    picklable object with a ``key`` that ``execute_fn`` turns into a record
    (``reglab ab`` runs). ``backend="local"`` runs ``jobs`` spawned worker
    processes (in this process with ``jobs=1``); ``backend="ray"`` submits
    each run as a Ray task to the cluster at ``address`` (default: a local
    Ray instance). Returns the records of the runs that did not finish
    (skipped/error). ``on_start(todo, already_done)`` and ``on_done(spec,
    record)`` drive the progress display.

    ``timeout`` (seconds, local backend): a run that has not returned by then
    (counted from its start in a ready worker: the worker's start-up and imports
    are not counted) is reported as an error (``"timed_out"``) and the others go on. Each
    run then goes to a spawned worker process, even with ``jobs=1`` (a call in
    this process could not be stopped); the worker leads its own process group,
    and a timeout kills that group: the worker and every process its run started.
    """
    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    if timeout is not None:
        if not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and 0 < timeout < math.inf):
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        if backend != "local":
            raise ValueError("a per-run timeout works with the local backend only (Ray queues tasks, so a run's "
                             "start is not known here); use Ray's own limits on the cluster")  # fmt: skip
    unique: dict[str, RunSpec] = {}
    for s in specs:
        unique.setdefault(s.key, s)
    todo = [s for k, s in unique.items() if rerun or k not in store]
    if on_start is not None:
        on_start(len(todo), len(unique) - len(todo))
    failed: list[dict[str, Any]] = []

    def finish(spec: RunSpec, rec: dict[str, Any]) -> None:
        # The key is the parent's: a worker may see the same code under another module
        # name (a spawned child imports the user's script as __mp_main__).
        rec = {**rec, "key": spec.key}
        if rec["status"] == "ok":
            store.append(rec)
        else:
            failed.append(rec)
        if on_done is not None:
            on_done(spec, rec)

    if backend == "ray":
        for spec, rec in run_on_ray(todo, execute_fn, address):
            finish(spec, rec)
        return failed
    if timeout is not None:
        if todo:
            _run_with_timeout(todo, execute_fn, max(1, jobs), float(timeout), finish)
        return failed
    if jobs <= 1 or len(todo) <= 1:
        if not todo:
            return failed
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in the workers: CPU times comparable, whatever the jobs
        try:
            _warm_up()
            for spec in todo:
                finish(spec, execute_fn(spec))
        finally:
            torch.set_num_threads(threads)
        return failed

    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn, not fork: a forked child of a process that already ran OpenMP
    # work can deadlock; spawned workers import reglab (and test tasks) afresh.
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(_task_modules(todo), os.getpid())
    ) as pool:
        futures = {pool.submit(execute_fn, s): s for s in todo}
        for fut in as_completed(futures):
            spec = futures[fut]
            try:
                rec = fut.result()
            except Exception as e:  # a worker died (OOM, signal) or the spec could not be pickled
                rec = _failed_record(spec, e)
            finish(spec, rec)
    return failed


def _timed_worker(conn: Any, modules: Sequence[str], parent: int, warm_up: bool, preload: bytes) -> None:
    """A worker of ``_run_with_timeout``: its own process group, then one run per message."""
    import pickle

    os.setpgid(0, 0)  # before anything runs: a timeout kills this group, the run's own children included
    _init_worker(modules, parent, group=True, warm_up=warm_up)
    # unpickling a run and execute_fn imports their modules (the user's train, scipy, ...): do it
    # before "ready", so that a run's time limit starts with the run, not with the imports
    pickle.loads(preload)
    conn.send(("ready", None))
    while True:
        try:
            item = conn.recv()
        except EOFError:  # the parent is gone
            return
        if item is None:
            return
        execute_fn, spec = item
        try:
            rec = execute_fn(spec)
        except Exception as e:  # execute_fn reports the run's own errors; this is anything else
            rec = _failed_record(spec, e)
        conn.send(("done", rec))


class _TimedWorker:
    """One spawned worker process and the run it holds (with its deadline)."""

    def __init__(self, ctx: Any, modules: Sequence[str], warm_up: bool, preload: bytes):
        self.conn, child = ctx.Pipe()
        # not a daemon: the user's run may start processes of its own (e.g. DataLoader workers)
        self.proc = ctx.Process(
            target=_timed_worker, args=(child, list(modules), os.getpid(), warm_up, preload), daemon=False
        )
        self.proc.start()
        child.close()  # the parent keeps one end only: a dead worker reads as EOF
        self.ready = False
        self.spec: Any = None
        self.deadline = math.inf

    def give(self, spec: Any, execute_fn: Callable[[Any], dict[str, Any]], timeout: float) -> None:
        self.conn.send((execute_fn, spec))
        self.spec, self.deadline = spec, time.monotonic() + timeout

    def kill(self) -> None:
        """SIGKILL the worker's process group (the worker and the processes its run started), then reap it.

        Called only before the worker is reaped: until then its pid, and so its group id, are its own."""
        import signal

        for kill in (os.killpg, os.kill):
            try:
                kill(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.join()
        self.conn.close()

    def stop(self) -> None:
        """Ask an idle worker to exit; kill it if it does not."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(timeout=30)  # a hang guard only: an idle worker exits at once
        if self.proc.exitcode is None:
            self.kill()
        else:
            self.conn.close()


def _run_with_timeout(
    todo: Sequence[Any], execute_fn: Callable[[Any], dict[str, Any]], jobs: int, timeout: float,
    finish: Callable[[Any, dict[str, Any]], None],
) -> None:
    """Run ``todo`` in ``jobs`` worker processes; a run past ``timeout`` seconds is killed with its
    worker's process group and reported, and a fresh worker takes the next run."""
    import multiprocessing as mp
    from collections import deque
    from multiprocessing.connection import wait

    ctx = mp.get_context("spawn")
    modules = _task_modules(todo)
    # the lab's warm-up (its experiments, a first optimizer step) evens out its runs' step times; not needed otherwise
    lab = any(isinstance(s, RunSpec) for s in todo)
    import pickle

    preload = pickle.dumps((execute_fn, todo[0]))

    def worker() -> _TimedWorker:
        return _TimedWorker(ctx, modules, warm_up=lab, preload=preload)

    queue = deque(todo)
    workers = [worker() for _ in range(min(jobs, len(todo)))]

    def fail(spec: Any, error: str, **extra: Any) -> None:
        finish(spec, {**_failed_record(spec, RuntimeError(error)), "error": error, **extra})

    try:
        while queue or any(w.spec is not None for w in workers):
            busy = [w.deadline for w in workers if w.spec is not None]
            wait_for = max(0.0, min(busy) - time.monotonic()) if busy else None
            readable = wait([w.conn for w in workers], timeout=wait_for)
            keep = []
            for w in workers:
                if w.conn in readable:
                    try:
                        kind, rec = w.conn.recv()
                    except (EOFError, OSError):  # the worker died (OOM, a signal, os._exit in the run)
                        w.kill()
                        if w.spec is None and not w.ready:
                            raise RuntimeError(f"a worker process exited with code {w.proc.exitcode} before it "
                                               "was ready (see its output above)") from None  # fmt: skip
                        if w.spec is not None:
                            fail(w.spec, f"its worker process died (exit code {w.proc.exitcode})")
                        if queue:
                            keep.append(worker())
                        continue
                    if kind == "ready":
                        w.ready = True
                    else:
                        spec, w.spec, w.deadline = w.spec, None, math.inf
                        finish(spec, rec)
                elif w.spec is not None and time.monotonic() >= w.deadline:
                    spec = w.spec
                    w.kill()
                    fail(spec, f"timed out after {timeout:g} s (its worker process and the processes it started "
                         "were killed)", timed_out=timeout)  # fmt: skip
                    if queue:
                        keep.append(worker())
                    continue
                if w.ready and w.spec is None:
                    if queue:
                        w.give(queue.popleft(), execute_fn, timeout)
                    else:  # nothing left to hand out: let it go now
                        w.stop()
                        continue
                keep.append(w)
            workers = keep
    finally:
        for w in workers:
            w.kill()


def _failed_record(spec: Any, error: BaseException) -> dict[str, Any]:
    ident = spec.identity() if hasattr(spec, "identity") else {}
    return {"key": spec.key, **ident, "status": "error", "error": _error_text(error)}


RAY_MISSING = "backend='ray' needs Ray, an optional extra: pip install ray (from a reglab checkout: pip install -e '.[ray]')"


def _ray_execute(execute_fn: Callable[[Any], dict[str, Any]], spec: Any) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # one CPU per Ray task, as in the local workers
    return execute_fn(spec)


def run_on_ray(
    specs: Sequence[Any], execute_fn: Callable[[Any], dict[str, Any]], address: str | None = None
) -> Iterable[tuple[Any, dict[str, Any]]]:
    """Submit each spec as a Ray task (1 CPU) and yield ``(spec, record)`` as they finish.

    Connects to the cluster at ``address`` (``"auto"``, ``"ray://host:10001"``),
    or starts a local Ray instance, unless Ray is already initialized.
    """
    try:
        import ray
    except ImportError as err:
        raise ImportError(RAY_MISSING) from err
    if not specs:
        return
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    remote = ray.remote(num_cpus=1, max_retries=0)(_ray_execute)
    pending = {remote.remote(execute_fn, s): s for s in specs}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        spec = pending.pop(done[0])
        try:
            rec = ray.get(done[0])
        except Exception as e:  # the task's worker died
            rec = _failed_record(spec, e)
        yield spec, rec
