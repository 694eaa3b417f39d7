"""CLI subcommand of the lab: ``bench``; and the verdicts ``reglab list|info`` show from a results file."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from typing import Any

DEFAULT_OUT = "reglab-bench"
DEFAULT_SEEDS, QUICK_SEEDS = 5, 2


def register(sub: argparse._SubParsersAction) -> None:
    """Add the lab's subcommands to the ``reglab`` parser."""
    b = sub.add_parser(
        "bench",
        help="rerun the registered papers' claims on digits and report verdicts",
        description="Run every claim declared by a registered regularizer (or those of --only), "
        "paired over seeds against its baseline, and write results.jsonl, report.md, report.html "
        "and plots to --out. A rerun skips the runs already in results.jsonl.",
    )
    b.add_argument("--quick", action="store_true", help="smoke version: tiny runs, 2 seeds (< 90 s)")
    b.add_argument("--only", metavar="NAME[,NAME]", help="only the claims of these registered names")
    b.add_argument("--seeds", type=int, metavar="N", help=f"seeds per arm (default {DEFAULT_SEEDS}; {QUICK_SEEDS} with --quick)")
    b.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output directory (default ./{DEFAULT_OUT})")
    b.add_argument("--jobs", type=int, default=2, metavar="N", help="worker processes (default 2)")
    b.set_defaults(func=cmd_bench)


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

    def done(self, spec, rec: dict[str, Any]) -> None:
        self.n += 1
        status = rec["status"] if rec["status"] != "ok" else f"{rec.get('seconds', 0):.1f}s"
        if self._rich is not None:
            self._rich.update(self._bar, advance=1, description=f"{spec.label} ({status})")
            return
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.n * (self.total - self.n)
        print(f"[{self.n}/{self.total}] {spec.label}: {status}  (ETA {eta:.0f}s)", flush=True)

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()


def cmd_bench(args: argparse.Namespace) -> int:
    from reglab.bench.report import write_report
    from reglab.bench.runner import RESULTS_FILE, run_all
    from reglab.bench.suite import collect_claims, evaluate, specs_for
    from reglab.core.errors import UnknownRegularizerError

    seeds = args.seeds if args.seeds is not None else (QUICK_SEEDS if args.quick else DEFAULT_SEEDS)
    if seeds < 1:
        return _err(f"--seeds must be ≥ 1, got {seeds}")
    if args.jobs < 1:
        return _err(f"--jobs must be ≥ 1, got {args.jobs}")
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    try:
        refs = collect_claims(only)
    except (UnknownRegularizerError, ValueError) as e:
        return _err(str(e))
    if not refs:
        return _err("no registered regularizer declares a lab claim")
    reason = _check_out(args.out)
    if reason:
        return _err(reason)

    t0 = time.perf_counter()
    store = _load_store(os.path.join(args.out, RESULTS_FILE))
    specs = specs_for(refs, seeds, args.quick)
    progress = _Progress(args.jobs)
    try:
        not_run = run_all(specs, store, jobs=args.jobs, on_start=progress.start, on_done=progress.done)
    finally:
        progress.close()
    outcomes = evaluate(refs, store.records, seeds, args.quick)
    records = [store.records[s.key] for s in specs if s.key in store.records]
    md, html = write_report(
        args.out, outcomes, records, not_run=not_run, seeds=seeds, quick=args.quick,
        wall_seconds=time.perf_counter() - t0,
    )  # fmt: skip
    _print_verdicts(outcomes)
    print(f"report: {md}\n        {html}")
    errors = [r for r in not_run if r["status"] == "error"]
    for r in not_run:
        print(f"reglab: {r['status']}: {r['task']} seed {r['seed']}: {r.get('error', '')}", file=sys.stderr)
    return 1 if errors else 0


def _print_verdicts(outcomes) -> None:
    from reglab.bench.report import COLUMNS, verdict_rows

    rows = verdict_rows(outcomes)
    keep = (0, 3, 4, 5, 6, 8, 9)  # the full table, with the claim text, is in report.md
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*(COLUMNS[i] for i in keep), title="reglab bench")
        for row in rows:
            table.add_row(*(row[i] for i in keep))
        Console().print(table)
        return
    for row in rows:
        print("  " + " | ".join(row[i] for i in keep))


def verdicts_from(path: str | None, names: list[str]) -> dict[tuple[str, int], str]:
    """Last verdict per (name, claim index) from a results file (full runs preferred)."""
    if not path:
        return {}
    from reglab.bench.suite import collect_claims, evaluate

    if not os.path.exists(path):
        print(f"reglab: warning: no results file {path!r}", file=sys.stderr)
        return {}
    store = _load_store(path)
    out: dict[tuple[str, int], str] = {}
    for name in names:
        refs = [r for r in collect_claims() if r.regularizer == name]
        for quick in (True, False):  # full runs override quick ones
            for i, o in enumerate(evaluate(refs, store.records, None, quick)):
                if o.result.n:
                    out[(name, i)] = o.result.verdict + (" (quick)" if quick else "")
    return out
