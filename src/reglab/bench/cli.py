"""CLI subcommand of the lab: ``bench``; and the verdicts ``reglab list|info`` show from a results file."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from typing import Any

DEFAULT_OUT = "reglab-bench"
DEFAULT_SEEDS, QUICK_SEEDS = 10, 2
#: below this many seeds the default is one block (two blocks of fewer than 5 seeds decide nothing)
MIN_SEEDS_FOR_BLOCKS = 10


def parse_blocks(text: str | None, n_seeds: int) -> int:
    """``--blocks``: a number of consecutive seed blocks; default 2 with at least 10 seeds, else 1."""
    if text is None:
        return 2 if n_seeds >= MIN_SEEDS_FOR_BLOCKS else 1
    try:
        k = int(text)
    except ValueError:
        raise ValueError(f"--blocks takes a number of seed blocks, got {text!r}") from None
    if not 1 <= k <= n_seeds:
        raise ValueError(f"--blocks must be between 1 and the number of seeds ({n_seeds}), got {k}")
    if k > 1 and n_seeds // k < 5:
        raise ValueError(
            f"--blocks {k} leaves blocks of {n_seeds // k} seed(s); the exact test needs 5 per block to decide "
            f"anything: use more seeds or fewer blocks"
        )
    return k


def parse_seeds(text: str | None, offset: int, quick: bool) -> list[int]:
    """``"10"`` → 10 seeds from ``offset``; ``"200:210"`` → seeds 200..209 (offset must be 0)."""
    if text is None:
        n = QUICK_SEEDS if quick else DEFAULT_SEEDS
        return list(range(offset, offset + n))
    if ":" in text:
        lo_s, hi_s = text.split(":", 1)
        try:
            lo, hi = int(lo_s), int(hi_s)
        except ValueError:
            raise ValueError(f"--seeds takes N or START:STOP (integers), got {text!r}") from None
        if offset:
            raise ValueError("--seed-offset cannot be combined with --seeds START:STOP; put the offset in the range")
        if lo < 0 or hi <= lo:
            raise ValueError(f"--seeds START:STOP needs 0 <= START < STOP, got {text!r}")
        return list(range(lo, hi))
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"--seeds takes N or START:STOP (integers), got {text!r}") from None
    if n < 1:
        raise ValueError(f"--seeds must be >= 1, got {n}")
    if offset < 0:
        raise ValueError(f"--seed-offset must be >= 0, got {offset}")
    return list(range(offset, offset + n))


def register(sub: argparse._SubParsersAction) -> None:
    """Add the lab's subcommands to the ``reglab`` parser."""
    b = sub.add_parser(
        "bench",
        help="rerun the registered papers' claims on digits and report verdicts",
        description="Run every claim declared by a registered regularizer (or those of --only), "
        "paired over seeds against its baseline, and write results.jsonl, report.md, report.html "
        "and plots to --out. A rerun skips the runs already in results.jsonl.",
    )
    b.add_argument(
        "--quick", action="store_true",
        help="smoke version: tiny runs, 2 seeds, the first claim of each task on its first dataset "
        "(every claim of the --only names) (about 60 s on 2 cores)",
    )
    b.add_argument("--only", metavar="NAME[,NAME]", help="only the claims of these registered names")
    b.add_argument(
        "--task", metavar="TASK[,TASK]",
        help="only the claims on these lab tasks (with --only: those of the names on these tasks)",
    )  # fmt: skip
    b.add_argument(
        "--seeds", metavar="N|START:STOP",
        help=f"N seeds from --seed-offset, or the range START..STOP-1 (default {DEFAULT_SEEDS}; {QUICK_SEEDS} with --quick)",
    )  # fmt: skip
    b.add_argument(
        "--seed-offset", type=int, default=0, metavar="K",
        help="first seed (default 0); use seeds nobody tuned on, e.g. --seeds 10 --seed-offset 200",
    )  # fmt: skip
    b.add_argument(
        "--blocks", metavar="K",
        help="also judge the seeds in K consecutive blocks (confirmation: a verdict is stable when every block "
        f"gives the pooled one); default 2 with {MIN_SEEDS_FOR_BLOCKS} or more seeds, else 1",
    )  # fmt: skip
    b.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output directory (default ./{DEFAULT_OUT})")
    b.add_argument("--jobs", type=int, default=None, metavar="N", help="worker processes (default: the available cores)")
    b.add_argument("--rerun", action="store_true", help="run everything again, even runs already in results.jsonl")
    b.add_argument("--full", action="store_true",
                   help="also the claim × dataset cells the full run skips to fit its 60-minute budget "
                   "(reglab.bench.suite.BUDGET_CUTS; the report lists them); --only always runs every cell")
    _backend_args(b)
    b.set_defaults(func=cmd_bench)

    a = sub.add_parser(
        "ab",
        help="A/B test regularizers on your own train function, paired over seeds",
        description="Call MODULE:FUNCTION(arm, seed) -> dict for every arm and seed (the module is imported "
        "from the current directory), judge each arm against the baseline with the lab's verdict engine, "
        "and write results.jsonl, report.md, report.html and plots to --out. From the command line, train "
        "receives None or a config dict: build it with reglab.from_config(arm, **runtime_args).",
    )
    a.add_argument("train", metavar="MODULE:FUNCTION", help="your train(arm, seed) -> dict of metrics")
    a.add_argument("--arm", action="append", required=True, metavar="NAME=SPEC",
                   help='an arm: SPEC is none, a registry name, or JSON such as \'{"name": "elr", "weight": 3}\'')
    a.add_argument("--baseline", metavar="NAME", help="the baseline arm (default: the one arm whose SPEC is none)")
    a.add_argument("--metric", required=True, help="the metric train returns that decides")
    a.add_argument("--lower-is-better", action="store_true", help="the metric is a loss or an error")
    a.add_argument("--min-effect", type=float, required=True, metavar="D", help="smallest effect of interest, metric units")
    a.add_argument("--non-inferiority", action="store_true", help="ask whether arms are at most D worse")
    a.add_argument("--seeds", default="10", metavar="N|auto", help="seeds per arm, or auto (10, +5 until the CI < D; cap 50)")
    a.add_argument("--seed-offset", type=int, default=0, metavar="K", help="first seed (default 0)")
    a.add_argument("--out", default="reglab-ab", metavar="DIR", help="output directory (default ./reglab-ab)")
    a.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (default 1: in this process)")
    a.add_argument("--rerun", action="store_true", help="run everything again, even runs already stored")
    a.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="stop a run that has not returned after SECONDS (it and the processes it started are killed; "
                   "it is reported as failed and the other runs go on); each run then goes to a worker process")
    _backend_args(a)
    a.set_defaults(func=cmd_ab)


def _backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local worker processes, or one Ray task per run (pip install ray; from a checkout: pip install -e '.[ray]')")
    p.add_argument("--address", metavar="ADDR", help="Ray cluster address (default: start a local Ray instance)")


def _import_train(ref: str):
    """``module:function`` imported with the current directory on sys.path."""
    import importlib

    if ":" not in ref:
        raise ValueError(f"train must be MODULE:FUNCTION, got {ref!r}")
    mod_name, fn_name = ref.split(":", 1)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(mod_name)
    except ImportError as e:
        raise ValueError(f"cannot import {mod_name!r} from {os.getcwd()}: {e}") from None
    fn = module
    for part in fn_name.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
            raise ValueError(f"{mod_name!r} has no {fn_name!r} (callables: {public})")
    return fn


def cmd_ab(args: argparse.Namespace) -> int:
    from reglab.bench.ab import ab, parse_arm_spec
    from reglab.core.errors import UnknownRegularizerError

    try:
        train = _import_train(args.train)
        arms = {}
        for item in args.arm:
            if "=" not in item:
                raise ValueError(f"--arm takes NAME=SPEC, got {item!r}")
            name, spec = item.split("=", 1)
            if name in arms:
                raise ValueError(f"--arm {name!r} is given twice")
            arms[name.strip()] = parse_arm_spec(spec)
        seeds = "auto" if args.seeds == "auto" else int(args.seeds)
    except (ValueError, UnknownRegularizerError) as e:
        return _err(str(e))
    reason = _check_out(args.out)
    if reason:
        return _err(reason)
    from reglab.bench.runner import FolderInUse, lock_folder

    bar = _StageProgress(args.jobs)
    try:
        with lock_folder(args.out):  # held through the report: a second A/B here refuses
            try:
                result = ab(
                    train, arms, metric=args.metric, higher_is_better=not args.lower_is_better,
                    min_effect=args.min_effect, seeds=seeds, out=args.out, jobs=args.jobs, backend=args.backend,
                    address=args.address, baseline=args.baseline,
                    kind="non-inferiority" if args.non_inferiority else "superiority", seed_offset=args.seed_offset,
                    rerun=args.rerun, progress=lambda m: print(m, flush=True), timeout=args.timeout,
                    on_start=bar.start, on_done=bar.done,
                )  # fmt: skip
            finally:
                bar.close()
            md, html = result.report(args.out)
    except (ValueError, ImportError, TypeError, PermissionError, FolderInUse) as e:
        return _err(str(e))
    print(result)
    print(f"report: {md}\n        {html}")
    return 1 if result.errors else 0


def _err(msg: str) -> int:
    print(f"reglab: error: {msg}", file=sys.stderr)
    return 2


def _load_store(path: str):
    from reglab.bench.runner import ResultStore

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = ResultStore(path).load()
    for w in caught:
        print(f"reglab: warning: {w.message}", file=sys.stderr)
    return store


def _check_out(out: str) -> str | None:
    """None if ``out`` is a writable directory (created if needed), else the reason."""
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, f".reglab-write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        return f"cannot write to --out {out!r}: {e.strerror or e}"
    return None


class _Progress:
    """A rich progress bar with ETA on a terminal, plain lines otherwise."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.tty = sys.stdout.isatty()
        self._rich: Any = None
        self.n = self.total = 0
        self.ran = 0  # runs that trained (not skipped): the ETA's rate counts only these
        self.t0 = time.perf_counter()

    def start(self, todo: int, done: int) -> None:
        self.total, self.t0 = todo, time.perf_counter()
        print(f"{todo} run(s) to do, {done} already in results.jsonl", flush=True)
        if self.tty and todo:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._rich = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            )  # fmt: skip
            self._rich.start()
            self._bar = self._rich.add_task("bench", total=todo)
            self._bar_total = todo

    def done(self, spec, rec: dict[str, Any]) -> None:
        self.n += 1
        status = rec["status"] if rec["status"] != "ok" else f"{rec.get('seconds', 0):.1f}s"
        if self._rich is not None:
            if rec["status"] == "skipped":  # no training: out of the bar, so the ETA's rate counts runs that train
                self._bar_total = max(1, self._bar_total - 1)
                self._rich.update(self._bar, total=self._bar_total, description=f"{spec.label} (skipped)")
            else:
                self._rich.update(self._bar, advance=1, description=f"{spec.label} ({status})")
            return
        if rec["status"] != "skipped":
            self.ran += 1
        elapsed = time.perf_counter() - self.t0
        eta = f"ETA {elapsed / self.ran * (self.total - self.n):.0f}s" if self.ran else "ETA –"
        print(f"[{self.n}/{self.total}] {spec.label}: {status}  ({eta})", flush=True)

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()


class _StageProgress:
    """A fresh ``_Progress`` for each stage of runs (``reglab ab`` runs tuning, then seeds, then
    more seeds with ``--seeds auto``)."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.current: _Progress | None = None

    def start(self, todo: int, done: int) -> None:
        self.close()
        self.current = _Progress(self.jobs)
        self.current.start(todo, done)

    def done(self, spec, rec: dict[str, Any]) -> None:
        if self.current is not None:
            self.current.done(spec, rec)

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None


def cmd_bench(args: argparse.Namespace) -> int:
    from reglab.bench.runner import default_jobs
    from reglab.bench.suite import apply_budget, check_claims, collect_claims, smoke_selection
    from reglab.core.errors import UnknownRegularizerError

    try:
        seeds = parse_seeds(args.seeds, args.seed_offset, args.quick)
        blocks = parse_blocks(args.blocks, len(seeds))
    except ValueError as e:
        return _err(str(e))
    jobs = default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        return _err(f"--jobs must be ≥ 1, got {jobs}")
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    try:
        refs = collect_claims(only)
    except (UnknownRegularizerError, ValueError) as e:
        return _err(str(e))
    if getattr(args, "task", None):
        from reglab.bench.tasks import TASKS, _load_experiments

        _load_experiments()
        tasks = [t.strip() for t in args.task.split(",") if t.strip()]
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            return _err(f"--task: unknown lab tasks {unknown} (known: {', '.join(sorted(TASKS))})")
        refs = [r for r in refs if r.claim.task in tasks]
        if not refs:
            return _err(f"no claim of the selected names is on the tasks {tasks}")
    if not refs:
        return _err("no registered regularizer declares a lab claim")
    cut: list[tuple[str, str, str]] = []
    if args.quick and only is None and not getattr(args, "task", None):
        refs = smoke_selection(refs)
    elif only is None and not getattr(args, "full", False):
        refs, cut = apply_budget(refs)
        if not refs:
            return _err("every selected claim is cut for the lab's budget; run with --full")
    problems = check_claims(refs)
    if problems:
        return _err("claims that cannot be tested as declared:\n  " + "\n  ".join(problems))
    reason = _check_out(args.out)
    if reason:
        return _err(reason)
    from reglab.bench.runner import FolderInUse, lock_folder

    try:
        with lock_folder(args.out):  # a second bench here would run every job again and race on the report
            return _bench(args, refs, seeds, jobs, blocks, cut)
    except FolderInUse as e:
        return _err(str(e))


def _bench(
    args: argparse.Namespace, refs: list, seeds: list[int], jobs: int, blocks: int,
    cut: list[tuple[str, str, str]] | None = None,
) -> int:
    """``cmd_bench`` once its arguments are checked and ``--out`` is locked."""
    from reglab.bench.report import write_report
    from reglab.bench.runner import RESULTS_FILE, run_all
    from reglab.bench.suite import evaluate, queue_order, specs_for

    t0 = time.perf_counter()
    store = _load_store(os.path.join(args.out, RESULTS_FILE))
    try:
        store.check_writable()
    except PermissionError as e:
        return _err(str(e))
    specs = specs_for(refs, seeds, args.quick)
    queue = queue_order(specs, done=lambda key: key in store and not args.rerun)
    progress = _Progress(jobs)
    try:
        not_run = run_all(
            queue, store, jobs=jobs, rerun=args.rerun, backend=args.backend, address=args.address,
            on_start=progress.start, on_done=progress.done,
        )  # fmt: skip
    finally:
        progress.close()
    skipped = {r["key"]: f"{r['status']}: {r.get('error', '')}" for r in not_run if r.get("key")}
    outcomes = evaluate(refs, store.records, seeds, args.quick, blocks=blocks, skipped=skipped)
    records = [store.records[s.key] for s in specs if s.key in store.records]
    md, html = write_report(
        args.out, outcomes, records, not_run=not_run, seeds=seeds, quick=args.quick,
        wall_seconds=time.perf_counter() - t0, blocks=blocks, budget_cuts=cut or (),
    )  # fmt: skip
    _print_verdicts(outcomes)
    print(f"report: {md}\n        {html}")
    errors = [r for r in not_run if r["status"] == "error"]
    for r in not_run:
        print(f"reglab: {r['status']}: {r['task']} seed {r['seed']}: {r.get('error', '')}", file=sys.stderr)
    return 1 if errors else 0


def _print_verdicts(outcomes) -> None:
    from reglab.bench.report import SUMMARY_COLUMNS, summary_rows

    rows = summary_rows(outcomes)
    # claim, regularizer, task configuration, dataset, verdicts, blocks, CPU; the rest is in report.md
    names = ("claim", "regularizer", "task", "dataset", "verdict", "seed blocks",
             "against each baseline (baseline mean → regularized mean)", "control", "CPU time ×")  # fmt: skip
    keep = [SUMMARY_COLUMNS.index(n) for n in names]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*(SUMMARY_COLUMNS[i] for i in keep), title="reglab bench")
        for row in rows:
            table.add_row(*(row[i] for i in keep))
        Console().print(table)
        return
    print("  " + " | ".join(SUMMARY_COLUMNS[i] for i in keep))
    for row in rows:
        print("  " + " | ".join(row[i] for i in keep))


def verdicts_from(path: str | None, names: list[str], *, with_scale: bool = False) -> dict[tuple[str, int], str]:
    """Verdict per (name, claim index) from a results file, over every seed it holds
    for this version of the code (full runs preferred over quick ones): each dataset's verdict,
    "stable" when both halves of the seeds give it, and with ``with_scale`` the scale of its runs."""
    if not path:
        return {}
    from reglab.bench.suite import collect_claims, evaluate, holds_everywhere

    from reglab.bench.runner import RESULTS_FILE

    if os.path.isdir(path):  # the bench's --out folder
        path = os.path.join(path, RESULTS_FILE)
    if not os.path.exists(path):
        print(f"reglab: warning: no results file {path!r}", file=sys.stderr)
        return {}
    store = _load_store(path)
    refs = [r for r in collect_claims() if r.regularizer in names]
    out: dict[tuple[str, int], str] = {}
    for quick in (True, False):  # full runs override quick ones
        seeds = sorted({int(r["seed"]) for r in store.records.values() if bool(r.get("quick")) == quick})
        if not seeds:
            continue
        blocks = parse_blocks(None, len(seeds))
        outcomes = [o for o in evaluate(refs, store.records, seeds, quick, blocks=blocks) if o.comparisons[0].result.n]
        for ref, _ in holds_everywhere(outcomes):
            mine = [o for o in outcomes if o.ref.id == ref.id]
            texts = []
            for o in mine:
                text = f"{o.verdict} on {o.dataset}"
                if o.stable is not None:
                    text += " (stable)" if o.stable else " (not stable)"
                if with_scale and o.scale:
                    text += f" [scale: {o.scale}]"
                texts.append(text)
            out[(ref.regularizer, ref.index)] = ", ".join(texts) + (" (quick)" if quick else "")
    return out
