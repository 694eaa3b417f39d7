"""Which lab verdicts ``reglab list`` and ``reglab info`` show, and a line saying which.

Three sources, in order:

1. ``--results FILE|DIR``: a ``results.jsonl`` (or the bench's ``--out`` folder holding
   one), or a ``verdicts.json`` summary;
2. ``./reglab-bench/results.jsonl`` (``reglab bench``'s default output) when it holds
   full runs;
3. the committed lab run shipped inside the package, ``reglab/data/verdicts.json`` (a
   copy of ``docs/bench/verdicts.json``; ``python -m reglab.docs`` refreshes it, a test
   keeps the two equal), so an installed reglab shows verdicts anywhere.

A ``./reglab-bench`` holding only a ``--quick`` smoke run does not replace the shipped
verdicts: they are shown, and the line says the smoke run was passed over and how to
see it. The line always names the file, its seeds and whether they are quick runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["VerdictSource", "SHIPPED_VERDICTS", "shipped_verdicts_path", "verdict_source", "summary_verdicts"]

#: the packaged copy of docs/bench/verdicts.json, relative to the ``reglab`` package
SHIPPED_VERDICTS = "data/verdicts.json"


@dataclass
class VerdictSource:
    """The verdict text per ``(name, claim index)`` and a one-line description of where it came from."""

    verdicts: dict[tuple[str, int], str]
    description: str


def shipped_verdicts_path() -> Path:
    return Path(str(resources.files("reglab").joinpath(SHIPPED_VERDICTS)))


def _seed_text(seeds: list[int]) -> str:
    if not seeds:
        return "no seeds"
    seeds = sorted(seeds)
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


def _claim_index(name: str, claim: Any) -> int | None:
    """``"elr#3"`` -> 2 (the claim's index); None for anything else."""
    if not isinstance(claim, str) or "#" not in claim:
        return None
    owner, _, number = claim.rpartition("#")
    return int(number) - 1 if owner == name and number.isdigit() and int(number) >= 1 else None


def summary_verdicts(doc: dict[str, Any], names: list[str], with_scale: bool = False) -> dict[tuple[str, int], str]:
    """Verdict text per (name, claim index) from a ``verdicts.json`` document, read generically:
    each entry's ``verdict`` and ``dataset`` strings, whatever outcomes they name; other keys
    are ignored."""
    out: dict[tuple[str, int], list[str]] = {}
    regs = doc.get("regularizers") or {}
    for name in names:
        entry = regs.get(name)
        if not isinstance(entry, dict):
            continue
        for v in entry.get("verdicts") or []:
            if not isinstance(v, dict) or not isinstance(v.get("verdict"), str):
                continue
            index = _claim_index(name, v.get("claim"))
            if index is None:
                continue
            text = v["verdict"] + (f" on {v['dataset']}" if v.get("dataset") else "")
            if isinstance(v.get("stable"), bool):
                text += " (stable)" if v["stable"] else " (not stable)"
            if with_scale and isinstance(v.get("scale"), str) and v["scale"]:
                text += f" [scale: {v['scale']}]"
            out.setdefault((name, index), []).append(text)
    quick = " (quick)" if doc.get("quick") else ""
    return {key: ", ".join(texts) + quick for key, texts in out.items()}


def _summary_source(path: Path, names: list[str], how: str, with_scale: bool = False) -> VerdictSource:
    doc = json.loads(path.read_text(encoding="utf-8"))
    seeds = [int(s) for s in doc.get("seeds") or []]
    kind = "quick smoke run" if doc.get("quick") else "full runs"
    return VerdictSource(summary_verdicts(doc, names, with_scale), f"verdicts: {how} {path} ({_seed_text(seeds)}, {kind})")


def _runs(path: str) -> dict[bool, list[int]]:
    """quick flag -> the seeds a results.jsonl holds records for."""
    seeds: dict[bool, set[int]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
                seeds.setdefault(bool(record.get("quick")), set()).add(int(record["seed"]))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a torn or foreign line; the store's loader warns about it
    return {quick: sorted(s) for quick, s in seeds.items()}


def _results_source(path: str, names: list[str], how: str, with_scale: bool = False) -> VerdictSource:
    from reglab.bench.cli import verdicts_from

    runs = _runs(path) if os.path.exists(path) else {}
    parts = [f"{_seed_text(runs[q])} {'quick' if q else 'full'}" for q in (False, True) if q in runs]
    kinds = "; ".join(parts) or "no runs"
    return VerdictSource(verdicts_from(path, names, with_scale=with_scale), f"verdicts: {how} {path} ({kinds})")


def verdict_source(results: str | None, names: list[str], with_scale: bool = False) -> VerdictSource:
    """The verdicts to show for ``names`` (see the module docstring); ``with_scale`` adds each verdict's
    scale (data, model, epochs)."""
    from reglab.bench.cli import DEFAULT_OUT
    from reglab.bench.runner import RESULTS_FILE

    if results:
        path = os.path.join(results, RESULTS_FILE) if os.path.isdir(results) else results
        if path.endswith(".json"):
            return _summary_source(Path(path), names, "from", with_scale)
        return _results_source(path, names, "from", with_scale)
    default = os.path.join(DEFAULT_OUT, RESULTS_FILE)
    note = ""
    if os.path.exists(default):
        if _runs(default).get(False):
            return _results_source(default, names, "from", with_scale)
        note = (
            f"; {default} holds no full runs (a --quick smoke run at most), so it is not shown: "
            f"reglab list --results {DEFAULT_OUT} to see it"
        )
    shipped = shipped_verdicts_path()
    if not shipped.exists():
        return VerdictSource({}, "verdicts: none (no results folder, and this install has no shipped lab run)" + note)
    source = _summary_source(shipped, names, "the lab run shipped with reglab,", with_scale)
    source.description += note
    return source
