"""The suite: every claim declared on a registered class, turned into runs and verdicts.

Claims live on the classes (``cls.claims``); nothing here lists them. A claim
becomes, for each seed, one run of its task with the treated arm and one with
its baseline arm; runs are shared between claims with the same key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from reglab.bench.runner import RunSpec, arm_label
from reglab.bench.verdict import PairedResult, paired_comparison
from reglab.core.paper import Claim

__all__ = ["ClaimRef", "collect_claims", "specs_for", "ClaimOutcome", "evaluate"]


@dataclass(frozen=True)
class ClaimRef:
    """A claim with the registered name that declares it."""

    regularizer: str
    claim: Claim
    paper: str  # short citation, "" for classic regularizers

    def arm(self) -> dict[str, Any]:
        return {"name": self.regularizer, **self.claim.arm}

    def runs(self, seed: int, quick: bool) -> tuple[RunSpec, RunSpec]:
        """(treated, baseline) runs of one seed."""
        c = self.claim
        treated = RunSpec(c.task, dict(c.task_args), self.arm(), seed, quick)
        base = RunSpec(c.task, dict(c.task_args), c.baseline_arm, seed, quick)
        return treated, base


def _short_cite(cls: type) -> str:
    paper = getattr(cls, "paper", None)
    return paper.short_cite() if paper is not None else ""


def collect_claims(only: Sequence[str] | None = None) -> list[ClaimRef]:
    """Claims of every registered class, or of the names in ``only``.

    Unknown names raise ``reglab.UnknownRegularizerError`` (with close-name
    suggestions); a known name without claims raises ``ValueError``.
    """
    from reglab.core.registry import get, list_regularizers

    names = list_regularizers() if not only else [get(n).name for n in only]
    refs: list[ClaimRef] = []
    for name in names:
        cls = get(name)
        claims = tuple(getattr(cls, "claims", ()))
        if only and not claims:
            raise ValueError(f"{name!r} declares no lab claims; `reglab list` shows which names do")
        refs.extend(ClaimRef(name, c, _short_cite(cls)) for c in claims)
    return refs


def specs_for(refs: Iterable[ClaimRef], seeds: int, quick: bool) -> list[RunSpec]:
    """All runs the claims need, each key once, in a stable order (baselines first per seed)."""
    seen: dict[str, RunSpec] = {}
    for seed in range(seeds):
        for ref in refs:
            treated, base = ref.runs(seed, quick)
            seen.setdefault(base.key, base)
            seen.setdefault(treated.key, treated)
    return list(seen.values())


@dataclass(frozen=True)
class ClaimOutcome:
    ref: ClaimRef
    result: PairedResult
    overhead: float  # mean step time of the arm / of the baseline
    arm_label: str
    baseline_label: str


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return sum(xs) / len(xs) if xs else math.nan


def evaluate(
    refs: Iterable[ClaimRef], records: dict[str, dict[str, Any]], seeds: int | None, quick: bool
) -> list[ClaimOutcome]:
    """Verdict of each claim from stored records (seeds 0..seeds−1, or every seed found).

    Missing runs simply drop their seed from the pairing; a metric missing
    from a run counts as not finite (inconclusive).
    """
    by_key = records
    outcomes = []
    for ref in refs:
        seed_range = range(seeds) if seeds is not None else _seeds_in(records, ref, quick)
        arm_vals, base_vals, arm_steps, base_steps = [], [], [], []
        for seed in seed_range:
            treated, base = ref.runs(seed, quick)
            ra, rb = by_key.get(treated.key), by_key.get(base.key)
            if ra is None or rb is None:
                continue
            arm_vals.append(_metric(ra, ref.claim.metric))
            base_vals.append(_metric(rb, ref.claim.metric))
            arm_steps.append(ra.get("step_seconds"))
            base_steps.append(rb.get("step_seconds"))
        result = paired_comparison(arm_vals, base_vals, ref.claim.direction)
        if arm_vals and result.note == "non-finite metric value":
            result = _note(result, f"metric {ref.claim.metric!r} missing or not finite in some runs")
        overhead = _mean(arm_steps) / _mean(base_steps) if base_steps else math.nan
        outcomes.append(
            ClaimOutcome(ref, result, overhead, arm_label(ref.arm()), ref.claim.baseline)
        )
    return outcomes


def _note(r: PairedResult, note: str) -> PairedResult:
    from dataclasses import replace

    return replace(r, note=note)


def _metric(rec: dict[str, Any], name: str) -> float:
    v = rec.get("metrics", {}).get(name)
    return float(v) if isinstance(v, (int, float)) else math.nan


def _seeds_in(records: dict[str, dict[str, Any]], ref: ClaimRef, quick: bool) -> range:
    """0..max seed of the claim's task present in ``records`` (for `reglab list`)."""
    seeds = [r["seed"] for r in records.values() if r.get("task") == ref.claim.task and r.get("quick") == quick]
    return range(max(seeds) + 1) if seeds else range(0)
