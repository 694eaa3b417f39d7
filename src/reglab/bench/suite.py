"""The suite: every claim declared on a registered class, turned into runs and verdicts.

Claims live on the classes (``cls.claims``); nothing here lists them. For
each claim, dataset and seed the treated arm runs once and each of its
baselines once (runs with the same key are shared between claims and
baselines). A comparison is one (claim, dataset, baseline); its verdict
comes from ``reglab.bench.verdict``, Holm-corrected across every
comparison of the claim. A claim holds on a dataset when it is reproduced
against every baseline there, and holds overall when it holds on every
dataset.

A non-inferiority claim's negative control (``Claim.control``) runs beside
it and goes through the same test against each baseline (its raw p, no
Holm: the lenient check, so a test that cannot fail is caught); when it
passes, the claim's reproduced verdict becomes "uninformative".

Confirmation blocks: the seeds split into consecutive blocks, each judged
alone as well as all together; a cell is stable when every block gives the
pooled verdict. A comparison with no finished run is "not run", with why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from reglab.bench.runner import RunSpec, arm_label
from reglab.bench.verdict import (
    INCONCLUSIVE,
    NON_INFERIORITY,
    NOT_RUN,
    REPRODUCED,
    UNINFORMATIVE,
    PairedResult,
    holm_adjust,
    paired_comparison,
    weakest,
)
from reglab.core.paper import Baseline, Claim

__all__ = [
    "ClaimRef",
    "collect_claims",
    "untestable_claims",
    "BUDGET_CUTS",
    "apply_budget",
    "budget_cut",
    "smoke_selection",
    "specs_for",
    "queue_order",
    "Comparison",
    "ClaimOutcome",
    "evaluate",
    "holds_everywhere",
    "coverage",
    "seed_blocks",
    "scale_of",
]


@dataclass(frozen=True)
class ClaimRef:
    """A claim with the registered name that declares it."""

    regularizer: str
    claim: Claim
    paper: str  # short citation, "" for classic regularizers
    index: int = 0  # position among the class's claims

    @property
    def id(self) -> str:
        """``"elr#1"``: the registered name and the claim's position (1-based)."""
        return f"{self.regularizer}#{self.index + 1}"

    def arm(self) -> dict[str, Any]:
        return {"name": self.regularizer, **self.claim.arm}

    def _seed(self, seed: int) -> int:
        # a claim paired over units runs each arm once: its task is deterministic
        return 0 if self.claim.paired_over == "units" else seed

    def treated_run(self, dataset: str, seed: int, quick: bool) -> RunSpec:
        return RunSpec(self.claim.task, dict(self.claim.task_args), self.arm(), self._seed(seed), quick, dataset)

    def baseline_run(self, baseline: Baseline, dataset: str, seed: int, quick: bool) -> RunSpec:
        args = {k: v for k, v in {**self.claim.task_args, **baseline.task_args}.items() if v is not None}
        return RunSpec(self.claim.task, args, baseline.arm, self._seed(seed), quick, dataset)

    def runs(self, dataset: str, seed: int, quick: bool) -> list[RunSpec]:
        """Every run the claim needs for one dataset and seed: the treated arm, each baseline, the control."""
        runs = [self.treated_run(dataset, seed, quick)] + [
            self.baseline_run(b, dataset, seed, quick) for b in self.claim.compared_with
        ]
        if self.claim.control is not None:
            runs.append(self.baseline_run(self.claim.control, dataset, seed, quick))
        return runs


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
        testable = [ClaimRef(name, c, _short_cite(cls), i) for i, c in enumerate(claims) if c.testable]
        if only and not testable:
            reasons = "; ".join(c.untestable_reason for c in claims)
            raise ValueError(f"{name!r} declares only claims the lab cannot test at its scale: {reasons}")
        refs.extend(testable)
    return refs


#: Cells (claim id or "*", dataset or "*") that a declared claim names but the full lab run skips, with
#: why: a cold run of every claim over 20 seeds must fit 60 minutes on 2 cores. They run with
#: ``reglab bench --full`` or when their name is asked for (``--only``); the report lists them.
#: Measured: seeds 200-201 of every cell, cold, took 2,050 run-seconds (17.7 min of 2 cores); a 20-seed
#: run of every declared cell extrapolates to ~80 min; with these cuts a measured cold run took ~55½ min
#: (README, "Budget").
BUDGET_CUTS: dict[tuple[str, str], str] = {
    ("*", "digits_half"): "digits split 50/50 reuses the digits images with a larger training share, the "
    "weakest replication the lab has; cut to fit the budget (about 2,500 of 9,600 run-seconds)",
    ("wae_mmd#3", "*"): "60-epoch latent_code runs for one claim (about 160 run-seconds over 20 seeds)",
    ("lq#1", "*"): "three non-convex pruning penalties on the same task; ℓq, CEL0 and SCAD are cut together "
    "(about 90 run-seconds over 20 seeds)",
    ("cel0#1", "*"): "as lq#1",
    ("scad#1", "*"): "as lq#1",
    ("confidence_penalty#2", "mnist1d"): "the costliest single cell of the calibration task (about 150 "
    "run-seconds over 20 seeds); its digits cell and confidence_penalty#1 stay",
    ("elr#2", "mnist1d"): "the costliest single cell of the label-noise task (about 140 run-seconds over 20 "
    "seeds); ELR's other MNIST-1D cells stay",
}


def budget_cut(ref: ClaimRef, dataset: str) -> str | None:
    """Why the full lab run skips this claim on this dataset (``BUDGET_CUTS``), or None."""
    for key in ((ref.id, dataset), (ref.id, "*"), ("*", dataset)):
        if key in BUDGET_CUTS:
            return BUDGET_CUTS[key]
    return None


def apply_budget(refs: Iterable[ClaimRef]) -> tuple[list[ClaimRef], list[tuple[str, str, str]]]:
    """The claims restricted to the datasets the full run keeps, and the cut cells as (claim id, dataset,
    why); a claim with no dataset left is dropped (and listed)."""
    kept: list[ClaimRef] = []
    cut: list[tuple[str, str, str]] = []
    for ref in refs:
        datasets = []
        for d in ref.claim.datasets:
            why = budget_cut(ref, d)
            if why is None:
                datasets.append(d)
            else:
                cut.append((ref.id, d, why))
        if datasets:
            kept.append(ref if len(datasets) == len(ref.claim.datasets)
                        else replace(ref, claim=replace(ref.claim, datasets=tuple(datasets))))
    return kept, cut


def smoke_selection(refs: Iterable[ClaimRef]) -> list[ClaimRef]:
    """The ``--quick`` selection: the first claim of each task, on its first dataset (a smoke run that
    exercises every task in about a minute; its verdicts are not evidence)."""
    seen: set[str] = set()
    out = []
    for ref in refs:
        if ref.claim.task in seen:
            continue
        seen.add(ref.claim.task)
        out.append(replace(ref, claim=replace(ref.claim, datasets=ref.claim.datasets[:1])))
    return out


def untestable_claims(only: Sequence[str] | None = None) -> list[ClaimRef]:
    """The claims declared with ``testable=False`` (the lab lists them with their reason, never runs them)."""
    from reglab.core.registry import get, list_regularizers

    names = list_regularizers() if not only else [get(n).name for n in only]
    refs: list[ClaimRef] = []
    for name in names:
        cls = get(name)
        refs.extend(
            ClaimRef(name, c, _short_cite(cls), i) for i, c in enumerate(getattr(cls, "claims", ())) if not c.testable
        )
    return refs


def check_claims(refs: Iterable[ClaimRef]) -> list[str]:
    """Problems that make a claim untestable as declared (unknown task or dataset, no δ)."""
    from reglab.bench.tasks import TASK_DATASETS, TASKS, _load_experiments

    _load_experiments()
    problems = []
    for ref in refs:
        c = ref.claim
        if c.min_effect is None:
            problems.append(f"{ref.id}: declares no smallest effect of interest (Claim.min_effect)")
        if c.task not in TASKS:
            continue  # reported as a skipped run (the task may live in an extra)
        unknown = [d for d in c.datasets if d not in TASK_DATASETS[c.task]]
        if unknown:
            problems.append(f"{ref.id}: task {c.task!r} does not run on {unknown} (it runs on {list(TASK_DATASETS[c.task])})")
    return problems


def specs_for(refs: Iterable[ClaimRef], seeds: Sequence[int], quick: bool) -> list[RunSpec]:
    """All runs the claims need, each key once, in a stable order (seed by seed)."""
    refs = list(refs)
    seen: dict[str, RunSpec] = {}
    for seed in seeds:
        for ref in refs:
            for dataset in ref.claim.datasets:
                for spec in ref.runs(dataset, seed, quick):
                    seen.setdefault(spec.key, spec)
    return list(seen.values())


def queue_order(specs: Sequence[RunSpec], done: Callable[[str], bool] = lambda key: False) -> list[RunSpec]:
    """``specs`` in the order to start them: for each group of tasks sharing a cold cache
    (``bench.tasks.SHARED_CACHES``), its first run not ``done`` goes first and the group's other runs go
    last; everything else keeps its order. Only the order changes, never the set of runs."""
    from reglab.bench.tasks import SHARED_CACHES

    group_of = {t: g for g, tasks in SHARED_CACHES.items() for t in tasks}
    head: dict[str, RunSpec] = {}
    middle, tail = [], []
    for spec in specs:
        group = group_of.get(spec.task)
        if group is None:
            middle.append(spec)
        elif group not in head and not done(spec.key):
            head[group] = spec
        else:
            tail.append(spec)
    return [*head.values(), *middle, *tail]


@dataclass(frozen=True)
class Comparison:
    """One claim on one dataset against one baseline, paired over seeds."""

    ref: ClaimRef
    dataset: str
    baseline: Baseline
    result: PairedResult
    seeds: tuple[int, ...]
    cpu_overhead: tuple[float, float, float]  # median, first and third quartile over seeds of arm / baseline step CPU time
    control: PairedResult | None = None  # the claim's negative control through the same test (non-inferiority)


@dataclass(frozen=True)
class ClaimOutcome:
    """A claim on one dataset: its comparisons and the verdict against all its baselines.

    ``blocks`` holds (seeds, verdict) per confirmation block when the seeds
    were split (empty otherwise, and for claims paired over units); ``scale``
    names the data, model and epochs of the claim's runs (from their setup)."""

    ref: ClaimRef
    dataset: str
    comparisons: tuple[Comparison, ...]
    blocks: tuple[tuple[tuple[int, ...], str], ...] = ()
    scale: str = ""

    @property
    def verdict(self) -> str:
        """Reproduced only against every baseline; otherwise the weakest verdict among them
        (``reglab.bench.verdict.VERDICT_ORDER``: worse lowest)."""
        return weakest([c.result.verdict for c in self.comparisons])

    @property
    def stable(self) -> bool | None:
        """Every block's verdict equals the pooled one (None without blocks)."""
        if not self.blocks:
            return None
        return all(v == self.verdict for _, v in self.blocks)

    @property
    def beaten(self) -> list[str]:
        return [c.baseline.label for c in self.comparisons if c.result.verdict == REPRODUCED]


def seed_blocks(seeds: Sequence[int], blocks: int) -> list[tuple[int, ...]]:
    """``seeds`` split into ``blocks`` consecutive blocks of (nearly) equal size."""
    seeds = list(seeds)
    if not 1 <= blocks <= max(1, len(seeds)):
        raise ValueError(f"blocks must be between 1 and the number of seeds ({len(seeds)}), got {blocks}")
    size, extra = divmod(len(seeds), blocks)
    out, start = [], 0
    for i in range(blocks):
        stop = start + size + (1 if i < extra else 0)
        out.append(tuple(seeds[start:stop]))
        start = stop
    return out


_EPOCHS = re.compile(r"(\d+)\s+(?:dense warm-up\s+)?epochs")


def scale_of(setup: dict[str, Any] | None) -> str:
    """"digits: train 1005 / val 252 / test 540; MLP 64-256-10 (ReLU); 60 epochs" from a run's setup:
    the first clause of its data and model, and every epoch count its training names."""
    if not setup:
        return ""
    parts = []
    for key in ("data", "model"):
        text = str(setup.get(key) or "").split(";")[0].strip()
        if text:
            parts.append(text)
    epochs = _EPOCHS.findall(str(setup.get("training") or ""))
    if epochs:
        parts.append(" + ".join(epochs) + " epochs")
    return "; ".join(parts)


def _metric(rec: dict[str, Any], name: str) -> float:
    v = (rec.get("metrics") or {}).get(name)
    return float(v) if isinstance(v, (int, float)) else math.nan


def equal_cpu_time_values(arm_rec: dict[str, Any], base_rec: dict[str, Any], curve: str) -> tuple[float, float]:
    """(arm, baseline) values of a per-epoch ``curve`` at equal compute: the baseline's
    value after half its epochs, and the arm's value interpolated at the process CPU
    time the baseline spent to get there (``cpu_seconds`` curves)."""
    import numpy as np

    def series(rec: dict[str, Any]) -> tuple[Any, Any]:
        curves = rec.get("curves") or {}
        y, t = curves.get(curve), curves.get("cpu_seconds")
        if not y or not t or len(y) != len(t):
            return None, None
        return np.asarray(t, dtype=float), np.asarray(y, dtype=float)

    (ta, ya), (tb, yb) = series(arm_rec), series(base_rec)
    if ya is None or yb is None:
        return math.nan, math.nan
    half = max(1, len(yb) // 2) - 1
    # Before the arm's first epoch ends it has no value: its first one stands in (in its favour).
    return float(np.interp(tb[half], ta, ya)), float(yb[half])


def _unit_values(
    ref: ClaimRef, baseline: Baseline, dataset: str, records: dict[str, dict[str, Any]], seeds: Sequence[int],
    quick: bool,
) -> tuple[list[float], list[float], list[int]]:
    """(arm values, baseline values, unit numbers) paired unit by unit from the two runs' ``units``."""
    if not seeds:
        return [], [], []
    ra = records.get(ref.treated_run(dataset, seeds[0], quick).key)
    rb = records.get(ref.baseline_run(baseline, dataset, seeds[0], quick).key)
    if ra is None or rb is None:
        return [], [], []
    a_units = (ra.get("units") or {}).get(ref.claim.metric) or {}
    b_units = (rb.get("units") or {}).get(baseline.metric or ref.claim.metric) or {}
    names = sorted(set(a_units) & set(b_units))
    return [float(a_units[n]) for n in names], [float(b_units[n]) for n in names], list(range(len(names)))


def _quartiles(xs: list[float]) -> tuple[float, float, float]:
    import numpy as np

    xs = [x for x in xs if x is not None and math.isfinite(x)]
    if not xs:
        return (math.nan, math.nan, math.nan)
    q1, med, q3 = np.percentile(xs, [25, 50, 75])
    return float(med), float(q1), float(q3)


def _ratio(a: Any, b: Any) -> float:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or not b > 0:
        return math.nan
    return float(a) / float(b)


def _paired_values(
    ref: ClaimRef, arm_of: Any, baseline: Baseline, dataset: str, records: dict[str, dict[str, Any]],
    seeds: Sequence[int], quick: bool, metric: str,
) -> tuple[list[float], list[float], list[int], list[float]]:
    """(arm values, baseline values, seeds used, CPU-time ratios) over the seeds whose two runs are stored;
    ``arm_of(dataset, seed)`` gives the arm's run spec (the treated arm or the control)."""
    c = ref.claim
    arm_vals, base_vals, used, ratios = [], [], [], []
    for seed in seeds:
        ra = records.get(arm_of(dataset, seed).key)
        rb = records.get(ref.baseline_run(baseline, dataset, seed, quick).key)
        if ra is None or rb is None:
            continue
        if c.at_equal_cpu_time:
            a, b = equal_cpu_time_values(ra, rb, c.metric)
        else:
            a, b = _metric(ra, metric), _metric(rb, baseline.metric or c.metric)
        arm_vals.append(a)
        base_vals.append(b)
        used.append(seed)
        ratios.append(_ratio(ra.get("step_cpu_seconds"), rb.get("step_cpu_seconds")))
    return arm_vals, base_vals, used, ratios


def _not_run(result: PairedResult, why: str) -> PairedResult:
    return replace(result, verdict=NOT_RUN, seeds_needed=None, note=why)


def _evaluate_seeds(
    refs: Sequence[ClaimRef], records: dict[str, dict[str, Any]], seeds: Sequence[int], quick: bool,
    skipped: Mapping[str, str],
) -> list[ClaimOutcome]:
    pending: list[tuple[ClaimRef, str, Baseline, PairedResult, tuple[int, ...], tuple[float, float, float],
                        PairedResult | None, str]] = []
    for ref in refs:
        c = ref.claim
        for dataset in c.datasets:
            for baseline in c.compared_with:
                ratios: list[float] = []
                control = None
                if c.paired_over == "units":
                    arm_vals, base_vals, used = _unit_values(ref, baseline, dataset, records, seeds, quick)
                else:
                    arm_vals, base_vals, used, ratios = _paired_values(
                        ref, lambda ds, s: ref.treated_run(ds, s, quick), baseline, dataset, records, seeds, quick,
                        c.metric,
                    )  # fmt: skip
                if c.min_effect is None:
                    result = _no_delta(arm_vals, base_vals, c)
                else:
                    result = paired_comparison(arm_vals, base_vals, c.direction, kind=c.kind, min_effect=c.min_effect)
                    if c.control is not None and c.paired_over == "seeds":
                        ctl = c.control
                        cv, bv, _, _ = _paired_values(
                            ref, lambda ds, s, ctl=ctl: ref.baseline_run(ctl, ds, s, quick), baseline, dataset,
                            records, seeds, quick, ctl.metric or c.metric,
                        )  # fmt: skip
                        control = paired_comparison(cv, bv, c.direction, kind=NON_INFERIORITY, min_effect=c.min_effect)
                why = ""
                if not used:
                    keys = [ref.treated_run(dataset, s, quick).key for s in seeds]
                    keys += [ref.baseline_run(baseline, dataset, s, quick).key for s in seeds]
                    reasons = list(dict.fromkeys(skipped[k] for k in keys if k in skipped))
                    why = "; ".join(reasons) or "no finished run of this comparison for these seeds"
                pending.append((ref, dataset, baseline, result, tuple(used), _quartiles(ratios), control, why))
    # Holm within each claim, over its datasets and baselines (a claim without δ is not tested): the
    # family is the claim, so a verdict never depends on which other claims share the report.
    adjusted = [p[3] for p in pending]
    families: dict[str, list[int]] = {}
    for i, p in enumerate(pending):
        if p[0].claim.min_effect is not None:
            families.setdefault(p[0].id, []).append(i)
    for members in families.values():
        for i, res in zip(members, holm_adjust([pending[i][3] for i in members])):
            adjusted[i] = res
    comparisons = []
    for (ref, ds, b, _, used, ov, control, why), res in zip(pending, adjusted):
        if why:
            res = _not_run(res, why)
        elif control is not None and res.verdict == REPRODUCED and control.verdict == REPRODUCED:
            label = ref.claim.control.label if ref.claim.control else "control"
            res = replace(res, verdict=UNINFORMATIVE, note=f"its negative control ({label}) passes the same test "
                          "(the test could not have failed)")  # fmt: skip
        comparisons.append(Comparison(ref, ds, b, res, used, ov, control))
    outcomes: list[ClaimOutcome] = []
    for comp in comparisons:
        if outcomes and outcomes[-1].ref == comp.ref and outcomes[-1].dataset == comp.dataset:
            outcomes[-1] = replace(outcomes[-1], comparisons=outcomes[-1].comparisons + (comp,))
        else:
            outcomes.append(ClaimOutcome(comp.ref, comp.dataset, (comp,)))
    return outcomes


def _scale(ref: ClaimRef, dataset: str, records: dict[str, dict[str, Any]], seeds: Sequence[int], quick: bool) -> str:
    for seed in seeds:
        rec = records.get(ref.treated_run(dataset, seed, quick).key)
        if rec is not None and rec.get("setup"):
            return scale_of(rec["setup"])
    return ""


def evaluate(
    refs: Iterable[ClaimRef], records: dict[str, dict[str, Any]], seeds: Sequence[int], quick: bool,
    *, blocks: int = 1, skipped: Mapping[str, str] | None = None,
) -> list[ClaimOutcome]:
    """Verdicts of every claim on every dataset from stored records, Holm-corrected within each claim.

    A seed enters a comparison only when both of its runs are stored; a
    metric missing from a run counts as not finite (inconclusive); a
    comparison without any stored pair is "not run", with the reason from
    ``skipped`` (run key -> why) when there is one. With ``blocks`` > 1 the
    seeds are also judged block by block (``ClaimOutcome.blocks``).
    """
    refs = list(refs)
    seeds = list(seeds)
    skipped = dict(skipped or {})
    pooled = _evaluate_seeds(refs, records, seeds, quick, skipped)
    per_block = []
    if blocks > 1:
        per_block = [(b, _evaluate_seeds(refs, records, b, quick, skipped)) for b in seed_blocks(seeds, blocks)]
    out = []
    for i, o in enumerate(pooled):
        block_verdicts: tuple[tuple[tuple[int, ...], str], ...] = ()
        if per_block and o.ref.claim.paired_over == "seeds":
            block_verdicts = tuple((b, outs[i].verdict) for b, outs in per_block)
        out.append(replace(o, blocks=block_verdicts, scale=_scale(o.ref, o.dataset, records, seeds, quick)))
    return out


def _no_delta(arm: list[float], base: list[float], claim: Claim) -> PairedResult:
    """A claim without a smallest effect of interest cannot be decided: inconclusive, said why."""
    r = paired_comparison(arm, base, claim.direction, kind=claim.kind, min_effect=1.0)
    return replace(r, verdict=INCONCLUSIVE, seeds_needed=None, note="the claim declares no smallest effect of interest")


def holds_everywhere(outcomes: Sequence[ClaimOutcome]) -> list[tuple[ClaimRef, str]]:
    """Per claim, in order: ``"yes"`` when reproduced on every dataset, else where it did not hold."""
    by_claim: dict[str, list[ClaimOutcome]] = {}
    for o in outcomes:
        by_claim.setdefault(o.ref.id, []).append(o)
    out = []
    for os_ in by_claim.values():
        failed = [f"{o.dataset}: {o.verdict}" for o in os_ if o.verdict != REPRODUCED]
        out.append((os_[0].ref, "yes" if not failed else "no (" + "; ".join(failed) + ")"))
    return out


def coverage() -> tuple[list[str], list[str]]:
    """(registered names with at least one claim, names without any)."""
    from reglab.core.registry import get, list_regularizers

    names = list_regularizers()
    with_claims = [n for n in names if getattr(get(n), "claims", ())]
    return with_claims, [n for n in names if n not in with_claims]


def baseline_label(baseline: Baseline) -> str:
    return baseline.label or arm_label(baseline.arm)
