"""Shared timing harness for every ``benchmarks/bench_*.py`` script.

    from _harness import measure, ratio, add_common_args, write_results, markdown_table

    stats = measure({"ours": lambda: f(x), "peer": lambda: g(x)}, repeats=20, warmup=2, threads=1)
    stats["ours"].median_ms, stats["ours"].q25_ms, stats["ours"].q75_ms
    r = ratio(stats["peer"], stats["ours"])      # peer time / our time, with a bootstrap 90% interval

What is timed: the PROCESS CPU time (``time.process_time``: user + system time of all
threads of this process) of one call of each callable, so load from other processes on a
shared machine does not inflate it the way wall-clock time is inflated. With ``threads=1``
(the default, ``torch.set_num_threads(1)``) it equals the single-threaded compute time.

Interleaving: every repeat calls every case once, in a round-robin order that is rotated by
one position each repeat (repeat r starts at case r mod k), so slow drifts (thermal, cache,
other tenants) hit all cases alike and no case always runs first or after the same case.

Statistics: median and inter-quartile range (q25, q75) over the repeats; the raw samples
are kept (``Stats.samples``, seconds) and written to the JSON output.

Contract with ``benchmarks/run_all.py`` (keep it when adding a ``bench_<name>.py``):

* build the parser with ``add_common_args(parser)`` (gives ``--quick``, ``--repeats``,
  ``--warmup``, ``--threads``, ``--results-dir``); ``--quick`` means few repeats and small
  sizes, a smoke run of a few seconds;
* end with ``write_results("<name>", payload, markdown)``: writes
  ``<results-dir>/<name>.json`` (payload + ``machine_info()``) and ``<results-dir>/<name>.md``
  (the markdown section that ``run_all.py`` collects into ``results/README.md``).

The API (``measure``, ``Stats``, ``ratio``, ``Ratio``, ``machine_info``, ``markdown_table``,
``write_json``, ``write_results``, ``add_common_args``, ``fmt_ms``) is stable: other scripts use it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS_DIR",
    "Ratio",
    "Stats",
    "add_common_args",
    "fmt_ms",
    "machine_info",
    "markdown_table",
    "measure",
    "ratio",
    "resolve_repeats",
    "write_json",
    "write_results",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


# ------------------------------------------------------------------ statistics
def _quantile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default method) of a non-empty sequence."""
    s = sorted(xs)
    if len(s) == 1:
        return float(s[0])
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (pos - lo))


@dataclass
class Stats:
    """Process-CPU seconds of one call over the repeats: median and IQR, plus the raw samples."""

    median: float
    q25: float
    q75: float
    repeats: int
    number: int = 1  # calls per sample (each sample is divided by it)
    samples: list[float] = field(default_factory=list, repr=False)

    @classmethod
    def from_samples(cls, samples: Sequence[float], number: int = 1) -> Stats:
        if not samples:
            raise ValueError("Stats.from_samples: got no samples, expects at least one")
        xs = [float(x) for x in samples]
        return cls(
            median=statistics.median(xs),
            q25=_quantile(xs, 0.25),
            q75=_quantile(xs, 0.75),
            repeats=len(xs),
            number=number,
            samples=xs,
        )

    @property
    def iqr(self) -> float:
        return self.q75 - self.q25

    @property
    def median_ms(self) -> float:
        return 1e3 * self.median

    @property
    def q25_ms(self) -> float:
        return 1e3 * self.q25

    @property
    def q75_ms(self) -> float:
        return 1e3 * self.q75

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["iqr"] = self.iqr
        return d


@dataclass
class Ratio:
    """``num.median / den.median`` with a bootstrap interval (``lo``, ``hi``) of that ratio."""

    value: float
    lo: float
    hi: float
    level: float = 0.9

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.value:.2f} [{self.lo:.2f}, {self.hi:.2f}]"


def ratio(num: Stats, den: Stats, n_boot: int = 1000, level: float = 0.9, seed: int = 0) -> Ratio:
    """Ratio of medians ``num / den`` (e.g. peer time / our time: > 1 means we are faster).

    The interval resamples each case's samples independently (``n_boot`` bootstrap draws)
    and takes the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of the ratio of the
    resampled medians. Deterministic for a given ``seed``.
    """
    if den.median <= 0:
        raise ValueError(f"ratio: the denominator's median must be positive, got {den.median!r}")
    value = num.median / den.median
    a, b = num.samples or [num.median], den.samples or [den.median]
    rng = random.Random(seed)
    boots = []
    for _ in range(n_boot):
        ma = statistics.median(rng.choices(a, k=len(a)))
        mb = statistics.median(rng.choices(b, k=len(b)))
        if mb > 0:
            boots.append(ma / mb)
    if not boots:
        return Ratio(value, value, value, level)
    return Ratio(value, _quantile(boots, (1 - level) / 2), _quantile(boots, (1 + level) / 2), level)


# ------------------------------------------------------------------ measuring
def _set_threads(threads: int | None) -> None:
    if threads is None:
        return
    import torch

    torch.set_num_threads(threads)


def measure(
    cases: Mapping[str, Callable[[], Any]],
    repeats: int = 20,
    warmup: int = 2,
    threads: int | None = 1,
    number: int | Mapping[str, int] = 1,
    min_sample: float = 0.0,
) -> dict[str, Stats]:
    """Time each callable: process CPU time, interleaved round-robin, median and IQR.

    ``cases``: name -> zero-argument callable (one forward+backward, one fit, ...).
    ``repeats``: samples per case (≥ 20 for figures you report). ``warmup``: untimed
    calls of every case first (also interleaved). ``threads``: ``torch.set_num_threads``
    for the run (restored afterwards); ``None`` leaves it alone.
    ``number``: calls per sample (an int for all cases, or a per-case mapping), the sample
    being divided by it. ``min_sample`` > 0 picks ``number`` per case from the last warm-up
    call so that one sample takes at least that many CPU seconds (for sub-millisecond
    cases, where ``process_time``'s granularity would dominate); an explicit ``number``
    mapping entry wins over it.

    Returns ``{name: Stats}`` in the order of ``cases``; times are seconds per call.
    """
    if not cases:
        raise ValueError("measure: got no cases, expects a non-empty mapping name -> callable")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"measure: got repeats={repeats}, warmup={warmup}; expects repeats >= 1, warmup >= 0")
    for name, fn in cases.items():
        if not callable(fn):
            raise TypeError(f"measure: case {name!r} is {type(fn).__name__}, expects a zero-argument callable")
    names = list(cases)
    old_threads = None
    if threads is not None:
        import torch

        old_threads = torch.get_num_threads()
    _set_threads(threads)
    clock = time.process_time
    try:
        last: dict[str, float] = {k: 0.0 for k in names}
        for _ in range(warmup):
            for k in names:
                t0 = clock()
                cases[k]()
                last[k] = clock() - t0
        counts: dict[str, int] = {}
        for k in names:
            if isinstance(number, Mapping) and k in number:
                counts[k] = int(number[k])
            elif min_sample > 0:
                counts[k] = max(1, int(min_sample / max(last[k], 1e-6)) + 1) if last[k] < min_sample else 1
            else:
                counts[k] = int(number) if not isinstance(number, Mapping) else 1
            if counts[k] < 1:
                raise ValueError(f"measure: number for case {k!r} must be >= 1, got {counts[k]}")
        samples: dict[str, list[float]] = {k: [] for k in names}
        m = len(names)
        for r in range(repeats):
            for i in range(m):
                k = names[(r + i) % m]
                fn, n = cases[k], counts[k]
                t0 = clock()
                for _ in range(n):
                    fn()
                samples[k].append((clock() - t0) / n)
    finally:
        if old_threads is not None:
            _set_threads(old_threads)
    return {k: Stats.from_samples(samples[k], counts[k]) for k in names}


# ------------------------------------------------------------------ output
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """Torch / python versions, torch threads, CPU model and count, platform, timestamp."""
    import torch

    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "clock": "time.process_time (process CPU time)",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _jsonable(x: Any) -> Any:
    if isinstance(x, (Stats, Ratio)):
        return x.to_dict()
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, float) and x != x:  # NaN -> null (strict JSON)
        return None
    return x


def write_json(name: str, payload: Mapping[str, Any], results_dir: Path | str | None = None,
               threads: int | None = None) -> Path:
    """Write ``<results_dir>/<name>.json``: ``{"machine": machine_info(), **payload}``; returns the path."""
    d = Path(results_dir) if results_dir is not None else RESULTS_DIR
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.json"
    data = {"name": name, "machine": machine_info(threads), **_jsonable(dict(payload))}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def write_results(name: str, payload: Mapping[str, Any], markdown: str,
                  results_dir: Path | str | None = None, threads: int | None = None) -> tuple[Path, Path]:
    """``write_json`` plus ``<results_dir>/<name>.md`` (the section ``run_all.py`` collects)."""
    jpath = write_json(name, payload, results_dir, threads)
    mpath = jpath.with_suffix(".md")
    mpath.write_text(markdown.rstrip() + "\n", encoding="utf-8")
    return jpath, mpath


def fmt_ms(s: Stats, digits: int | None = None) -> str:
    """``"median (q25–q75)"`` in milliseconds, digits chosen by magnitude unless given."""
    med = s.median_ms
    if digits is None:
        digits = 0 if med >= 100 else 1 if med >= 10 else 2 if med >= 1 else 3
    return f"{med:.{digits}f} ({s.q25_ms:.{digits}f}–{s.q75_ms:.{digits}f})"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
                   align: Sequence[str] | None = None) -> str:
    """A GitHub markdown table; ``align`` per column: "l" or "r" (default: first left, rest right)."""
    align = list(align) if align is not None else ["l"] + ["r"] * (len(headers) - 1)
    if len(align) != len(headers):
        raise ValueError(f"markdown_table: {len(align)} alignments for {len(headers)} columns")
    sep = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "|".join(sep) + "|"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"markdown_table: a row has {len(row)} cells, expects {len(headers)}")
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def add_common_args(parser: argparse.ArgumentParser, repeats: int = 20, warmup: int = 2,
                    threads: int = 1) -> argparse.ArgumentParser:
    """The flags every bench script takes (``run_all.py`` passes ``--quick`` and ``--results-dir``)."""
    parser.add_argument("--quick", action="store_true", help="smoke run: few repeats, small sizes")
    parser.add_argument("--repeats", type=int, default=None, help=f"interleaved repeats (default {repeats}; 3 with --quick)")
    parser.add_argument("--warmup", type=int, default=warmup, help=f"untimed calls per case first (default {warmup})")
    parser.add_argument("--threads", type=int, default=threads, help=f"torch threads (default {threads})")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where <name>.json / <name>.md go")
    parser.set_defaults(_default_repeats=repeats)
    return parser


def resolve_repeats(args: argparse.Namespace) -> int:
    """``--repeats`` if given, else 3 under ``--quick``, else the script's default."""
    if args.repeats is not None:
        return args.repeats
    return 3 if args.quick else args._default_repeats


if __name__ == "__main__":  # tiny self-demo
    s = measure({"sum": lambda: sum(range(10000)), "sorted": lambda: sorted(range(10000))}, repeats=5, threads=None)
    print(markdown_table(["case", "ms median (IQR)"], [[k, fmt_ms(v)] for k, v in s.items()]))
    print("sorted/sum:", ratio(s["sorted"], s["sum"]))
    sys.exit(0)
