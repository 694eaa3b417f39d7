"""A/B on your own model: ``reglab.ab`` and ``reglab ab``.

The lab asks "does it work on digits?"; this asks "does it help *my* model on
*my* data?" with the same rigor. The user's ``train(arm, seed) -> dict`` runs
once per arm and seed (the seed must drive the split or fold, the
initialization and the batch order, so the arms of one seed are paired),
and the lab's verdict engine (``reglab.bench.verdict``: bootstrap-t interval, exact
sign-flip test, Holm across the arms, a smallest effect of interest) judges
every arm against the baseline. Runs go through the lab's results store: an
interrupted A/B loses at most the runs in flight, and a changed arm config,
train function or version is never reused.

Optional tuning (``tune=``) gives every arm the same budget on a validation
metric, on seeds reserved for tuning; the verdict then uses the test metric
on fresh seeds only.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import itertools
import json
import math
import os
import pickle
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reglab.bench.runner import (
    RESULTS_FILE, KeyedRun, ResultStore, _error_text, _jsonable, key_versions, lock_folder, run_all, versions,
)  # fmt: skip
from reglab.bench.ab_report import ABResult
from reglab.bench.verdict import NON_INFERIORITY, SUPERIORITY, holm_adjust, paired_comparison

__all__ = ["ab", "ABResult", "ABRun", "arm_identity", "AUTO_SEEDS_START", "AUTO_SEEDS_STEP", "AUTO_SEEDS_CAP"]

AUTO_SEEDS_START, AUTO_SEEDS_STEP, AUTO_SEEDS_CAP = 10, 5, 50
#: Tuning seeds start here (plus the seed offset), far from the verdict seeds.
TUNE_SEED_BASE = 1_000_000


def arm_identity(arm: Any) -> Any:
    """A JSON-able identity of what ``train`` receives: what the run's key hashes.

    A registered regularizer is its ``get_config()``, a list is the list of
    identities, a config dict itself; anything else the hash of its pickle
    (so a changed object is never mistaken for the old one).
    """
    if arm is None or isinstance(arm, (str, int, float, bool)):
        return arm
    if isinstance(arm, Mapping):
        return {str(k): arm_identity(v) for k, v in arm.items()}
    if isinstance(arm, (list, tuple)):
        return [arm_identity(a) for a in arm]
    if hasattr(arm, "get_config"):
        return {"config": arm_identity(arm.get_config())}
    try:
        return {"pickle_sha1": hashlib.sha1(pickle.dumps(arm)).hexdigest()}
    except Exception:
        return {"repr": repr(arm)}


def _train_ref(train: Callable[..., Any]) -> tuple[str, str]:
    """``"module:qualname"`` and a fingerprint of the train function's source."""
    module = getattr(train, "__module__", "?")
    module = "__main__" if module == "__mp_main__" else module  # a spawned worker's name for the user's script
    ref = f"{module}:{getattr(train, '__qualname__', repr(train))}"
    try:
        code = hashlib.sha1(inspect.getsource(train).encode()).hexdigest()[:12]
    except (OSError, TypeError):  # no source (a builtin, an interactive session): the name stands in
        code = "no-source"
    return ref, code


@dataclass(frozen=True)
class ABRun(KeyedRun):
    """One call ``train(arm, seed)``; ``train`` and ``arm`` travel with it (pickled to workers)."""

    train: Callable[..., Any] = field(repr=False, compare=False)
    arm_name: str
    arm: Any = field(repr=False, compare=False)
    seed: int
    phase: str = "test"  # "tune" for tuning runs
    candidate: dict[str, Any] = field(default_factory=dict, compare=False)

    def identity(self) -> dict[str, Any]:
        ref, code = _train_ref(self.train)
        return {
            "task": f"ab:{ref}", "code": code, "arm_name": self.arm_name, "arm": arm_identity(self.arm),
            "seed": self.seed, "phase": self.phase, "candidate": self.candidate, "versions": key_versions(),
        }  # fmt: skip

    @property
    def label(self) -> str:
        cand = f" {self.candidate}" if self.candidate else ""
        return f"{self.phase} {self.arm_name}{cand} seed={self.seed}"


def execute_ab(run: ABRun) -> dict[str, Any]:
    """Call the user's train on a fresh copy of the arm; the record (ok or error)."""
    base = {"key": run.key, **run.identity()}
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        out = run.train(copy.deepcopy(run.arm), run.seed)
    except Exception as e:  # the user's code: report it with its arm and seed, go on
        return {**base, "status": "error", "error": f"train({run.arm_name}, seed={run.seed}) raised {_error_text(e)}"}
    if not isinstance(out, Mapping):
        return {**base, "status": "error", "error": f"train({run.arm_name}, seed={run.seed}) must return a dict of "
                f"metrics, got {type(out).__name__}"}  # fmt: skip
    metrics, not_numbers = {}, {}
    for k, v in out.items():
        value = _metric_value(v)
        if isinstance(value, float):
            metrics[str(k)] = value
        else:  # kept out of the metrics; named if the decisive metric is one of them
            not_numbers[str(k)] = value
    return {
        **base, "status": "ok", "metrics": _jsonable(metrics), "not_numbers": not_numbers,
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0, "environment": versions(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }  # fmt: skip


def _metric_value(v: Any) -> float | str:
    """``v`` as a float if it is a real number (a Python, numpy or one-element torch number), else a
    description of what it is. A bool or a string is not a number here: ``float(True)`` and
    ``float("0.9")`` would pass a flag or a formatted text off as a measurement."""
    import numbers

    if hasattr(v, "numel") and hasattr(v, "item") and v.numel() == 1:  # a one-element tensor or array
        v = v.item()
    if isinstance(v, (bool, str, bytes)) or type(v).__name__ in ("bool", "bool_"):  # numpy's bool is no bool subclass
        return f"{v!r} ({type(v).__name__})"
    if isinstance(v, numbers.Real):
        return float(v)
    text = repr(v)
    return f"{text[:40] + '…' if len(text) > 40 else text} ({type(v).__name__})"


def _check_metric(rec: dict[str, Any], metric: str) -> str | None:
    """Why a stored run cannot be used for ``metric`` (None if it can)."""
    m = rec.get("metrics") or {}
    wrong = (rec.get("not_numbers") or {}).get(metric)
    if wrong is not None:
        return (f"train({rec.get('arm_name')}, seed={rec.get('seed')}) returned a non-numeric {metric!r}: {wrong}; "
                "return a number (an int or a float, not a bool or a string)")  # fmt: skip
    if metric not in m:
        return f"train({rec.get('arm_name')}, seed={rec.get('seed')}) returned no metric {metric!r} (it returned {sorted(m)})"
    v = math.nan if m[metric] is None else m[metric]  # NaN is stored as null
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        return f"train({rec.get('arm_name')}, seed={rec.get('seed')}) returned a non-finite {metric!r}: {v!r}"
    return None


def _resolve_baseline(arms: Mapping[str, Any], baseline: str | None) -> str:
    if not arms:
        raise ValueError("reglab.ab: arms is empty; give at least a baseline and one arm")
    if baseline is not None:
        if baseline not in arms:
            import difflib

            close = difflib.get_close_matches(baseline, list(arms), n=3)
            raise ValueError(f"reglab.ab: baseline {baseline!r} is not an arm" + (f"; did you mean {close}?" if close else f" (arms: {list(arms)})"))
        return baseline
    nones = [k for k, v in arms.items() if v is None]
    if len(nones) != 1:
        raise ValueError(
            "reglab.ab: name the baseline with baseline=NAME "
            f"(the baseline is the one arm that is None; found {len(nones)}: {nones})"
        )
    return nones[0]


def _with_override(name: str, arm: Any, override: dict[str, Any]) -> Any:
    """The arm with tuned settings: a config dict updated, a regularizer rebuilt from its config."""
    if not override:
        return arm
    if isinstance(arm, Mapping):
        return {**arm, **override}
    if hasattr(arm, "get_config"):
        from reglab.core.registry import from_config

        return from_config({**arm.get_config(), **override})
    raise ValueError(
        f"reglab.ab: tune[{name!r}] needs the arm to be a config dict or a reglab regularizer, got "
        f"{type(arm).__name__}; the baseline can be tuned when it is a config dict of your own settings"
    )


def _grid(space: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    keys = list(space)
    for k in keys:
        if isinstance(space[k], (str, bytes)) or not isinstance(space[k], Sequence) or not space[k]:
            raise ValueError(f"reglab.ab: tune values must be non-empty lists, got {k}={space[k]!r}")
    return [dict(zip(keys, combo)) for combo in itertools.product(*(space[k] for k in keys))]


def ab(
    train: Callable[[Any, int], Mapping[str, float]],
    arms: Mapping[str, Any],
    *,
    metric: str,
    higher_is_better: bool = True,
    min_effect: float,
    seeds: int | str = 10,
    out: str | os.PathLike[str] | None = None,
    jobs: int | None = None,
    backend: str = "local",
    address: str | None = None,
    tune: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
    tune_metric: str | None = None,
    tune_seeds: int = 3,
    baseline: str | None = None,
    kind: str = SUPERIORITY,
    seed_offset: int = 0,
    max_seeds: int = AUTO_SEEDS_CAP,
    rerun: bool = False,
    progress: Callable[[str], None] | None = None,
    timeout: float | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_done: Callable[[ABRun, dict[str, Any]], None] | None = None,
) -> ABResult:
    """Does each arm beat the baseline on ``metric`` by at least ``min_effect``?

    ``train(arm, seed) -> dict`` is your code: it trains with ``arm`` (what
    ``arms`` maps the arm's name to: ``None`` for the baseline, a reglab
    regularizer, a list of them, or a config dict; each call gets a fresh
    copy) and returns metrics. The seed must drive the split (or fold), the
    initialization and the batch order.

    ``seeds``: a number, or ``"auto"``: start with 10 and add 5 at a time
    until every arm's interval is narrower than ``min_effect`` or
    ``max_seeds`` is reached. ``kind="non-inferiority"`` asks instead
    whether an arm is at most ``min_effect`` worse (e.g. a cheaper model).
    ``tune={"arm": {"weight": [1, 3, 7]}}`` first picks each arm's settings
    on ``tune_metric`` (default ``val_<metric>``, ``test_`` dropped) over
    ``tune_seeds`` seeds reserved for tuning; every tuned arm gets the same
    budget (the report says if the grids differ); the verdict uses fresh
    seeds only. ``out``: a directory whose ``results.jsonl`` stores every
    run (resume, never reuse a changed config); it is locked while the A/B
    runs (another A/B or bench there raises ``FolderInUse``, naming the pid). ``jobs`` (local backend):
    worker processes, default 1 (in this process: your train may use every
    core itself); ``train`` must then be importable (a module-level
    function). ``backend="ray"`` submits each run as a Ray task to the
    cluster at ``address`` (default: a local Ray instance).

    ``timeout`` (seconds, local backend): a run that has not returned by
    then is killed, with every process it started, and reported like a
    failed run; the other runs go on. With a timeout every run goes to a
    worker process (even with ``jobs=1``), so ``train`` must be importable.
    ``progress(message)`` gets a line per stage; ``on_start(todo,
    already_stored)`` and ``on_done(run, record)`` are called around the runs
    of each stage (the CLI's progress bar).
    """
    if not callable(train):
        raise TypeError(f"reglab.ab: train must be callable train(arm, seed) -> dict, got {type(train).__name__}")
    if not isinstance(metric, str) or not metric:
        raise ValueError(f"reglab.ab: metric must be the name of a metric train returns, got {metric!r}")
    if kind not in (SUPERIORITY, NON_INFERIORITY):
        raise ValueError(f"reglab.ab: kind must be {SUPERIORITY!r} or {NON_INFERIORITY!r}, got {kind!r}")
    if not (isinstance(min_effect, (int, float)) and math.isfinite(min_effect) and min_effect > 0):
        raise ValueError(f"reglab.ab: min_effect must be a number > 0 in the metric's units, got {min_effect!r}")
    auto = seeds == "auto"
    if not auto and not (isinstance(seeds, int) and seeds >= 2):
        raise ValueError(f"reglab.ab: seeds must be an int >= 2 or 'auto', got {seeds!r}")
    if backend not in ("local", "ray"):
        raise ValueError(f"reglab.ab: backend must be 'local' or 'ray', got {backend!r}")
    if backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError as err:
            from reglab.bench.runner import RAY_MISSING

            raise ImportError(RAY_MISSING) from err
    if timeout is not None and not (
        isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and 0 < timeout < math.inf
    ):
        raise ValueError(f"reglab.ab: timeout must be a number of seconds > 0 (or None), got {timeout!r}")
    if timeout is not None and backend != "local":
        raise ValueError("reglab.ab: timeout works with the local backend only; on Ray, use the cluster's own limits")
    jobs = 1 if jobs is None else int(jobs)
    if jobs < 1:
        raise ValueError(f"reglab.ab: jobs must be >= 1, got {jobs}")
    base_name = _resolve_baseline(arms, baseline)
    tune = dict(tune or {})
    unknown = [k for k in tune if k not in arms]
    if unknown:
        raise ValueError(f"reglab.ab: tune names arms that do not exist: {unknown} (arms: {list(arms)})")

    if out is None:
        import tempfile

        out = tempfile.mkdtemp(prefix="reglab-ab-")
    out_dir = os.fspath(out)
    os.makedirs(out_dir, exist_ok=True)
    with lock_folder(out_dir):  # a second A/B or bench on this folder refuses instead of racing
        store = _open_store(out_dir)
        say = progress or (lambda _msg: None)
        errors: list[str] = []

        def run(runs: list[ABRun]) -> None:
            failed = run_all(runs, store, jobs=jobs, rerun=rerun, backend=backend, address=address, execute_fn=execute_ab,
                             timeout=timeout, on_start=on_start, on_done=on_done)  # fmt: skip
            for rec in failed:
                error = rec.get("error", "unknown error")
                if not error.startswith("train("):  # from the runner (a timeout, a dead worker): name the run
                    error = f"train({rec.get('arm_name')}, seed={rec.get('seed')}) {error}"
                errors.append(error)

        # 1. tuning: every candidate of every tuned arm on the tuning seeds
        final_arms = dict(arms)
        tuning: dict[str, dict[str, Any]] = {}
        if tune:
            val_metric = tune_metric or "val_" + metric.removeprefix("test_")
            tseeds = [TUNE_SEED_BASE + seed_offset + i for i in range(tune_seeds)]
            plans = {name: _grid(space) for name, space in tune.items()}
            runs = [
                ABRun(train, name, _with_override(name, arms[name], cand), s, "tune", cand)
                for name, cands in plans.items() for cand in cands for s in tseeds
            ]  # fmt: skip
            say(f"tuning: {len(runs)} run(s) on {val_metric}")
            run(runs)
            sign = 1.0 if higher_is_better else -1.0
            budgets = {name: len(c) * len(tseeds) for name, c in plans.items()}
            for name, cands in plans.items():
                scores = []
                for cand in cands:
                    vals = []
                    for s in tseeds:
                        rec = store.records.get(ABRun(train, name, _with_override(name, arms[name], cand), s, "tune", cand).key)
                        if rec is not None and _check_metric(rec, val_metric) is None:
                            vals.append(float(rec["metrics"][val_metric]))
                        elif rec is not None:
                            errors.append(_check_metric(rec, val_metric) or "")
                    scores.append(sum(vals) / len(vals) if len(vals) == len(tseeds) else math.nan)
                finite = [(sign * sc, i) for i, sc in enumerate(scores) if math.isfinite(sc)]
                if not finite:
                    raise RuntimeError(f"reglab.ab: no tuning run of arm {name!r} returned a finite {val_metric!r}: {errors[-3:]}")
                best = max(finite)[1]
                final_arms[name] = _with_override(name, arms[name], cands[best])
                tuning[name] = {"chosen": cands[best], "scores": list(zip(cands, scores)), "budget": budgets[name],
                                "metric": val_metric, "seeds": tseeds}  # fmt: skip
            if len(set(budgets.values())) > 1:
                warnings.warn(f"reglab.ab: unequal tuning budgets {budgets}: the comparison favours the larger grid",
                              RuntimeWarning, stacklevel=2)  # fmt: skip

        # 2. the verdict runs, on fresh seeds
        n = AUTO_SEEDS_START if auto else int(seeds)
        while True:
            seed_list = list(range(seed_offset, seed_offset + n))
            runs = [ABRun(train, name, final_arms[name], s) for s in seed_list for name in final_arms]
            say(f"{len(runs)} run(s) over {n} seeds")
            run(runs)
            result = _evaluate(train, final_arms, base_name, seed_list, store, metric, higher_is_better, min_effect, kind, errors)
            if not auto:
                result.seeds_rule = f"{n} seeds, fixed in advance"
                break
            widths = [r.ci_high - r.ci_low for r in result.comparisons.values()]
            if widths and all(math.isfinite(w) and w < min_effect for w in widths):
                result.seeds_rule = f"seeds='auto': stopped at {n} seeds, when every interval was narrower than δ = {min_effect:g}"
                break
            if n >= max_seeds:
                result.seeds_rule = f"seeds='auto': stopped at the cap of {max_seeds} seeds; some interval is still wider than δ"
                break
            n = min(n + AUTO_SEEDS_STEP, max_seeds)
        result.tuning, result.backend = tuning, backend
        return result


def _open_store(out: str) -> ResultStore:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = ResultStore(os.path.join(out, RESULTS_FILE)).load()
    for w in caught:
        warnings.warn(str(w.message), RuntimeWarning, stacklevel=3)
    store.check_writable()
    return store


def _evaluate(train, arms, base_name, seeds, store, metric, higher_is_better, min_effect, kind, errors) -> ABResult:
    values: dict[str, dict[int, float]] = {name: {} for name in arms}
    for name, arm in arms.items():
        for s in seeds:
            rec = store.records.get(ABRun(train, name, arm, s).key)
            if rec is None:
                continue
            problem = _check_metric(rec, metric)
            if problem:
                if problem not in errors:
                    errors.append(problem)
                continue
            values[name][s] = float(rec["metrics"][metric])
    direction = "higher" if higher_is_better else "lower"
    raw = {}
    for name in arms:
        if name == base_name:
            continue
        paired = [s for s in seeds if s in values[name] and s in values[base_name]]
        raw[name] = paired_comparison(
            [values[name][s] for s in paired], [values[base_name][s] for s in paired], direction,
            kind=kind, min_effect=min_effect,
        )  # fmt: skip
    comparisons = dict(zip(raw, holm_adjust(list(raw.values()))))
    return ABResult(metric, higher_is_better, float(min_effect), kind, base_name, seeds, values, comparisons,
                    dict(arms), errors=list(dict.fromkeys(e for e in errors if e)))  # fmt: skip


def parse_arm_spec(spec: str) -> Any:
    """``none`` → None; a registry name → ``{"name": name}``; JSON → that config dict.

    The name is checked against the registry (did-you-mean on a typo).
    """
    from reglab.core.registry import get

    text = spec.strip()
    if text.lower() == "none":
        return None
    if text.startswith("{"):
        try:
            cfg = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"arm spec is not valid JSON ({e.msg} at column {e.colno}): {text!r}") from None
        if not isinstance(cfg, dict) or "name" not in cfg:
            raise ValueError(f"a JSON arm spec needs a \"name\" (a registered regularizer), got {text!r}")
        cfg["name"] = get(cfg["name"]).name
        return cfg
    return {"name": get(text).name}

