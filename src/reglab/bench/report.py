"""``report.md`` + ``report.html`` + PNG plots from the verdicts and the stored runs.

The report says what was run (seeds, versions, per task the data, model,
training and selection), the verdict rule, every claim's verdict per
dataset against each of its baselines with the statistics behind it, the
settings that are not the papers', and which registered regularizers have
no claim at all. Plots: for every task configuration and curve, the median
over seeds per arm with the interquartile range as the band; a curve
``foo`` with a companion ``foo_x`` is drawn against it, other curves
against the epoch, and the first tenth of the epochs is left out of the
y-range so an early transient does not flatten the rest.
"""

from __future__ import annotations

import html
import math
import os
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from reglab.bench.runner import arm_label, versions
from reglab.bench.suite import ClaimOutcome, Comparison, coverage, holds_everywhere, untestable_claims
from reglab.bench.verdict import (
    ALPHA, NO_EFFECT, NOT_REPRODUCED, NOT_RUN, REPRODUCED, RULE, TEST_NAME, UNINFORMATIVE, WORSE,
)  # fmt: skip

__all__ = [
    "write_report", "write_verdicts", "summary_rows", "detail_rows", "control_rows", "blocks_text",
    "SUMMARY_COLUMNS", "DETAIL_COLUMNS", "CONTROL_COLUMNS",
]  # fmt: skip

SUMMARY_COLUMNS = (
    "claim", "regularizer", "paper", "statement", "task", "kind", "δ", "dataset", "verdict", "seed blocks",
    "against each baseline (baseline mean → regularized mean)", "control", "scale", "CPU time ×",
)  # fmt: skip
DETAIL_COLUMNS = (
    "claim", "dataset", "baseline", "metric", "baseline mean", "regularized mean", "effect [95% bootstrap-t CI]",
    "p", "p (Holm)", "wins", "P(better)", "verdict", "n",
)  # fmt: skip
CONTROL_COLUMNS = (
    "claim", "dataset", "control", "baseline", "baseline mean", "control mean", "effect [95% bootstrap-t CI]",
    "p (unadjusted)", "control passes?", "claim's verdict",
)  # fmt: skip


def _f(x: float | None, digits: int = 4) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _args(task_args: dict[str, Any]) -> str:
    return f"[{', '.join(f'{k}={v}' for k, v in sorted(task_args.items()))}]" if task_args else ""


def _verdict_text(c: Comparison) -> str:
    r = c.result
    text = r.verdict
    if r.seeds_needed:
        text += f" (≈{r.seeds_needed} seeds would settle it)"
    if r.note:
        text += f" ({r.note})"
    return text


def _overhead(c: Comparison) -> str:
    med, q1, q3 = c.cpu_overhead
    return "–" if not math.isfinite(med) else f"{med:.2f} [{q1:.2f}–{q3:.2f}]"


def _seed_span(seeds: Sequence[int]) -> str:
    seeds = list(seeds)
    if not seeds:
        return "–"
    return f"{seeds[0]}–{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else ",".join(map(str, seeds))


def blocks_text(o: ClaimOutcome) -> str:
    """``"200–209: reproduced; 210–219: reproduced: stable"``, or "–" without blocks."""
    if not o.blocks:
        return "–" if o.ref.claim.paired_over == "seeds" else "– (deterministic: paired over units)"
    text = "; ".join(f"{_seed_span(seeds)}: {v}" for seeds, v in o.blocks)
    return text + (": stable" if o.stable else ": not stable")


def control_text(o: ClaimOutcome) -> str:
    ctl = o.ref.claim.control
    if ctl is None:
        return "–"
    results = [k.control for k in o.comparisons if k.control is not None]
    if not results:
        return f"{ctl.label}: not evaluated"
    verdicts = ", ".join(dict.fromkeys("passes" if r.verdict == REPRODUCED else f"fails ({r.verdict})" for r in results))
    return f"{ctl.label}: {verdicts}"


def _against(k: Comparison) -> str:
    r = k.result
    if r.verdict == NOT_RUN:
        return f"not run vs {k.baseline.label} ({r.note})"
    return f"{r.verdict} vs {k.baseline.label} ({_f(r.baseline_mean)} → {_f(r.arm_mean)})"


def summary_rows(outcomes: Sequence[ClaimOutcome]) -> list[list[str]]:
    rows = []
    for o in outcomes:
        c = o.ref.claim
        against = "; ".join(_against(k) for k in o.comparisons)
        rows.append([
            o.ref.id,
            arm_label(o.ref.arm()),
            o.ref.paper or "classic",
            f"{c.statement} ({c.role})",
            f"{c.task}{_args(c.task_args)}",
            c.kind,
            _f(c.min_effect, 3) + f" {c.metric}" if c.min_effect is not None else "none declared",
            o.dataset,
            o.verdict,
            blocks_text(o),
            against,
            control_text(o),
            o.scale or "–",
            _overhead(o.comparisons[0]),
        ])  # fmt: skip
    return rows


def control_rows(outcomes: Sequence[ClaimOutcome]) -> list[list[str]]:
    """One row per (claim, dataset, baseline) of a claim with a negative control."""
    rows = []
    for o in outcomes:
        for k in o.comparisons:
            r = k.control
            if r is None:
                continue
            ci = f" [{_f(r.ci_low, 3)}, {_f(r.ci_high, 3)}]" if math.isfinite(r.ci_low) else ""
            rows.append([
                o.ref.id, o.dataset, o.ref.claim.control.label if o.ref.claim.control else "?", k.baseline.label,
                _f(r.baseline_mean), _f(r.arm_mean), f"{_f(r.effect, 3)}{ci}", _f(r.p_value, 2),
                "yes: the test cannot fail" if r.verdict == REPRODUCED else f"no ({r.verdict})", k.result.verdict,
            ])  # fmt: skip
    return rows


def detail_rows(outcomes: Sequence[ClaimOutcome]) -> list[list[str]]:
    rows = []
    for o in outcomes:
        c = o.ref.claim
        for k in o.comparisons:
            r = k.result
            ci = f" [{_f(r.ci_low, 3)}, {_f(r.ci_high, 3)}]" if math.isfinite(r.ci_low) else ""
            metric = c.metric + (" at equal CPU time" if c.at_equal_cpu_time else "")
            if k.baseline.metric and k.baseline.metric != c.metric:
                metric += f" (baseline: {k.baseline.metric})"
            rows.append([
                o.ref.id, o.dataset, k.baseline.label, f"{metric}, {c.direction} is claimed",
                _f(r.baseline_mean), _f(r.arm_mean), f"{_f(r.effect, 3)}{ci}", _f(r.p_value, 2),
                _f(r.p_adjusted, 2), f"{r.wins}/{r.n}", _f(r.prob_better, 2), _verdict_text(k), str(r.n),
            ])  # fmt: skip
    return rows


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def _config_of(rec: dict[str, Any]) -> tuple[str, str, str]:
    return rec["task"], rec.get("dataset") or "", _args(rec.get("task_args") or {})


def _plots(records: list[dict[str, Any]], out_dir: str, arm_keys: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """One PNG per (task, dataset, task arguments, curve); returns (title, relative path).

    ``arm_keys`` are task arguments that belong to an arm (a baseline's
    augmentation): runs differing only in them share a plot, labelled with them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        task, dataset = rec["task"], rec.get("dataset") or ""
        args = rec.get("task_args") or {}
        config = _args({k: v for k, v in args.items() if k not in arm_keys})
        own = _args({k: v for k, v in args.items() if k in arm_keys})
        groups[(task, dataset, config)][arm_label(rec.get("arm")) + (f" {own}" if own else "")].append(rec)
    made = []
    os.makedirs(os.path.join(out_dir, "plots"), exist_ok=True)
    for (task, dataset, config), arms in sorted(groups.items()):
        names = sorted({k for recs in arms.values() for r in recs for k in (r.get("curves") or {})})
        for curve in names:
            if curve.endswith("_x") or curve == "cpu_seconds":
                continue
            fig, ax = plt.subplots(figsize=(6.4, 3.8))
            drawn, lows, highs = False, [], []
            for label, recs in sorted(arms.items(), key=lambda kv: (not kv[0].startswith("baseline"), kv[0])):
                series = [r["curves"][curve] for r in recs if curve in (r.get("curves") or {})]
                series = [s for s in series if s]
                if not series:
                    continue
                m = min(len(s) for s in series)
                ys = np.array([[np.nan if v is None else v for v in s[:m]] for s in series], dtype=float)
                xs_list = [r["curves"].get(f"{curve}_x") for r in recs if curve in (r.get("curves") or {})]
                xs = np.array(xs_list[0][:m], dtype=float) if xs_list and xs_list[0] else np.arange(1, m + 1)
                q1, med, q3 = np.nanpercentile(ys, [25, 50, 75], axis=0)
                ax.plot(xs, med, label=f"{label} (n={len(series)})", marker="." if m < 30 else None, lw=1.2)
                ax.fill_between(xs, q1, q3, alpha=0.2)
                skip = m // 10 if not xs_list or not xs_list[0] else 0
                lows.append(np.nanmin(q1[skip:]))
                highs.append(np.nanmax(q3[skip:]))
                drawn = True
            if not drawn:
                plt.close(fig)
                continue
            lo, hi = min(lows), max(highs)
            if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
                pad = 0.05 * (hi - lo)
                ax.set_ylim(lo - pad, hi + pad)
            has_x = any(f"{curve}_x" in (r.get("curves") or {}) for recs in arms.values() for r in recs)
            ax.set_xlabel(curve.split("_vs_")[-1].replace("_", " ") if has_x else "epoch")
            ax.set_ylabel(curve.split("_vs_")[0].replace("_", " "))
            title = f"{task}{config} on {dataset or 'default data'}: {curve} (median, band = IQR over seeds)"
            ax.set_title(title, fontsize=8)
            ax.legend(fontsize=6)
            ax.grid(alpha=0.3)
            fig.tight_layout()
            rel = os.path.join("plots", f"{_slug(task + config + '-' + dataset)}__{_slug(curve)}.png")
            fig.savefig(os.path.join(out_dir, rel), dpi=100)
            plt.close(fig)
            made.append((title, rel))
    return made


def _setups(records: list[dict[str, Any]]) -> list[tuple[str, dict[str, str]]]:
    """Per (task, dataset, task arguments): the setup the runs report (first run's)."""
    seen: dict[str, dict[str, str]] = {}
    for rec in records:
        task, dataset, args = _config_of(rec)
        name = f"{task}{args} on {dataset or 'default data'}"
        if rec.get("setup") and name not in seen:
            seen[name] = rec["setup"]
    return sorted(seen.items())


def _md_table(columns: Sequence[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return out


def _html_table(columns: Sequence[str], rows: list[list[str]], verdict_col: int) -> list[str]:
    esc = html.escape
    h = ["<table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr>"]
    for row in rows:
        v = row[verdict_col]
        cls = (
            "rep" if v.startswith(REPRODUCED) else "worse" if v.startswith(WORSE)
            else "skip" if v.startswith(NOT_RUN) else "not" if v.startswith(NOT_REPRODUCED)
            else "none" if v.startswith(NO_EFFECT) else "uninf" if v.startswith(UNINFORMATIVE) else ""
        )  # fmt: skip
        h.append(f"<tr class='{cls}'>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    h.append("</table>")
    return h


def write_report(
    out_dir: str,
    outcomes: list[ClaimOutcome],
    records: list[dict[str, Any]],
    *,
    not_run: Sequence[dict[str, Any]] = (),
    seeds: Sequence[int],
    quick: bool,
    wall_seconds: float | None = None,
    blocks: int = 1,
    budget_cuts: Sequence[tuple[str, str, str]] = (),
) -> tuple[str, str]:
    """Write ``report.md``, ``report.html`` and ``verdicts.json`` into ``out_dir``; return the first two paths.
    ``budget_cuts``: the (claim id, dataset, why) cells the run skipped for the lab's budget."""
    write_verdicts(out_dir, outcomes, seeds=seeds, quick=quick, blocks=blocks, budget_cuts=budget_cuts)
    arm_keys = frozenset(
        k for o in outcomes
        for b in (*o.ref.claim.compared_with, *((o.ref.claim.control,) if o.ref.claim.control else ()))
        for k in b.task_args
    )  # fmt: skip
    plots = _plots(records, out_dir, arm_keys) if records else []
    v = versions()
    counts: dict[str, int] = defaultdict(int)
    for o in outcomes:
        counts[o.verdict] += 1
    seeds = list(seeds)
    seed_text = f"{seeds[0]}..{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) and seeds else str(seeds)
    head = (
        f"{'quick smoke run' if quick else 'full run'}: {len(seeds)} seed(s) ({seed_text}), generated "
        f"{time.strftime('%Y-%m-%d %H:%M')}; reglab {v['reglab']}, torch {v['torch']}, numpy {v['numpy']}, "
        f"Python {v['python']}" + (f"; wall time {wall_seconds:.0f} s" if wall_seconds is not None else "")
    )
    n_cmp = sum(len(o.comparisons) for o in outcomes)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no claims evaluated"
    judged = [o for o in outcomes if o.stable is not None]
    if judged:
        summary += f"; {sum(bool(o.stable) for o in judged)} of {len(judged)} stable across the seed blocks"
    with_claims, without = coverage()
    cover = (
        f"Claims for {len(with_claims)} of {len(with_claims) + len(without)} registered regularizers "
        f"({', '.join(with_claims)}). No claim yet: {', '.join(without) or 'none'}."
    )
    method = [
        "Each comparison pairs, seed by seed, the regularized arm with one baseline trained on the same split "
        "(train / validation / test drawn by the seed), from the same initialization and batch order. "
        f"Statistics: {TEST_NAME} ({n_cmp} comparisons in this report, α = {ALPHA} per claim).",
        f"Verdict rule: {RULE}",
        "A claim holds on a dataset when it is reproduced against every baseline listed; the summary shows "
        "the weakest verdict among them. wins = seeds where the regularized arm was better; P(better) = "
        "bootstrap probability that the mean difference is in the claimed direction.",
        "CPU time × = median [IQR] over seeds of the regularized arm's process CPU time per training step "
        "divided by the first baseline's (one thread per worker).",
        "Model selection (early stopping) uses the validation split only; no metric selects on test.",
        f"Seed blocks: the seeds are also judged in {blocks} consecutive block(s), each alone (Holm within the "
        "claim per block); a cell is stable when every block gives the pooled verdict. Claims paired over "
        "units are deterministic and have no blocks." if blocks > 1 else
        "Seed blocks: none (one block; `reglab bench --blocks K` splits the seeds).",
        "Negative controls: each non-inferiority claim runs an arm that should fail (no regularizer, a plain "
        "warm start, a much stronger penalty) through the same test against the same baseline; when the "
        "control passes too, the claim is uninformative.",
        "Scale: each row names the data, model and epochs of its runs. Every verdict here is at toy scale "
        "(8×8 digits, MNIST-1D, STS sentences; small MLPs and CNNs, minutes of CPU): evidence about the "
        "method at this scale, not about ImageNet-size training.",
    ]
    if quick:
        method.append("This is a quick smoke run (a few epochs per run, 2 seeds): its verdicts are not evidence.")
    holds = holds_everywhere(outcomes)
    holds_rows = [
        [ref.id, arm_label(ref.arm()), ref.claim.statement, ", ".join(ref.claim.datasets), h]
        for ref, h in holds
    ]
    refs = [ref for ref, _ in holds]
    settings = [(ref.id, ref.claim.settings) for ref in refs if ref.claim.settings]
    deltas = [
        (ref.id, f"{ref.claim.min_effect:g} {ref.claim.metric}", ref.claim.min_effect_reason)
        for ref in refs if ref.claim.min_effect
    ]  # fmt: skip
    why = {(ref.id, b.label): b.why for ref in refs for b in ref.claim.compared_with if b.why}
    tuning = [(ref.id, ref.claim.tuning.describe()) for ref in refs]

    md = ["# reglab bench report", "", head, "", f"**Verdicts** (claim × dataset): {summary}.", "", cover, ""]
    md += ["## How to read it", ""] + [f"- {m}" for m in method] + [""]
    md += ["## Claims per dataset", ""] + _md_table(SUMMARY_COLUMNS, summary_rows(outcomes))
    md += ["", "## Does it hold on every dataset?", ""]
    md += _md_table(("claim", "regularizer", "statement", "datasets", "holds on all"), holds_rows)
    md += ["", "## Every comparison", ""] + _md_table(DETAIL_COLUMNS, detail_rows(outcomes))
    controls = control_rows(outcomes)
    if controls:
        md += ["", "## Negative controls (non-inferiority claims)", ""] + _md_table(CONTROL_COLUMNS, controls)
    md += ["", "## Tuning (what was tuned before the verdict seeds, for the arm and the baselines)", ""]
    md += [f"- **{i}**: {t}" for i, t in tuning]
    md += ["", "## Smallest effects of interest", ""] + [f"- **{i}**: δ = {d}: {r}" for i, d, r in deltas]
    md += ["", "## Baselines and why a practitioner would use them", ""]
    md += [f"- **{i}**, {label}: {w}" for (i, label), w in why.items()]
    md += ["", "## Settings that are not the papers'", ""] + [f"- **{i}**: {s}" for i, s in settings]
    if budget_cuts:
        md += ["", "## Cells cut for the lab's budget (`reglab bench --full` runs them)", ""]
        md += [f"- **{i}** on {d}: {why}" for i, d, why in budget_cuts]
    untestable = [(ref.id, ref.claim.statement, ref.claim.untestable_reason) for ref in untestable_claims()]
    if untestable:
        md += ["", "## Claims the lab cannot test at its scale", ""]
        md += [f"- **{i}**: {st} Not tested: {r}" for i, st, r in untestable]
    md += ["", "## Tasks", ""]
    for name, setup in _setups(records):
        md += [f"- **{name}**: " + "; ".join(f"{k}: {val}" for k, val in setup.items())]
    if not_run:
        md += ["", "## Runs not completed", ""]
        md += [f"- `{r['task']}` {arm_label(r.get('arm'))} seed {r['seed']}: **{r['status']}**: {r.get('error', '')}" for r in not_run]
    if plots:
        md += ["", "## Plots", "", "Median over seeds per arm; the band is the interquartile range.", ""]
        md += [f"![{t}]({p})" for t, p in plots]
    md_path = write_lines(out_dir, "report.md", md)

    esc = html.escape
    h = [
        "<!doctype html><html><head><meta charset='utf-8'><title>reglab bench report</title>",
        "<style>body{font-family:sans-serif;max-width:1400px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:12px;margin-bottom:1em}td,th{border:1px solid #ccc;"
        "padding:3px 5px;vertical-align:top}th{background:#f3f3f3}.rep{background:#e5f5e0}"
        ".not{background:#fde0dd}.worse{background:#f4a6a0}.none{background:#eef}.uninf{background:#eee}"
        ".skip{color:#888}img{max-width:48%;margin:4px}</style></head><body>",
        "<h1>reglab bench report</h1>",
        f"<p>{esc(head)}</p><p><b>Verdicts</b> (claim × dataset): {esc(summary)}.</p><p>{esc(cover)}</p>",
        "<h2>How to read it</h2><ul>" + "".join(f"<li>{esc(m)}</li>" for m in method) + "</ul>",
        "<h2>Claims per dataset</h2>",
        *_html_table(SUMMARY_COLUMNS, summary_rows(outcomes), SUMMARY_COLUMNS.index("verdict")),
        "<h2>Does it hold on every dataset?</h2>",
        *_html_table(("claim", "regularizer", "statement", "datasets", "holds on all"), holds_rows, 4),
        "<h2>Every comparison</h2>",
        *_html_table(DETAIL_COLUMNS, detail_rows(outcomes), DETAIL_COLUMNS.index("verdict")),
        *(["<h2>Negative controls (non-inferiority claims)</h2>",
           *_html_table(CONTROL_COLUMNS, controls, CONTROL_COLUMNS.index("claim's verdict"))] if controls else []),
        "<h2>Tuning</h2><ul>" + "".join(f"<li><b>{esc(i)}</b>: {esc(t)}</li>" for i, t in tuning) + "</ul>",
        "<h2>Smallest effects of interest</h2><ul>"
        + "".join(f"<li><b>{esc(i)}</b>: δ = {esc(d)}: {esc(r)}</li>" for i, d, r in deltas) + "</ul>",
        "<h2>Baselines</h2><ul>"
        + "".join(f"<li><b>{esc(i)}</b>, {esc(label)}: {esc(w)}</li>" for (i, label), w in why.items()) + "</ul>",
        "<h2>Settings that are not the papers'</h2><ul>"
        + "".join(f"<li><b>{esc(i)}</b>: {esc(s)}</li>" for i, s in settings) + "</ul>",
        *(
            ["<h2>Claims the lab cannot test at its scale</h2><ul>"
             + "".join(f"<li><b>{esc(i)}</b>: {esc(st)} Not tested: {esc(r)}</li>" for i, st, r in untestable)
             + "</ul>"] if untestable else []
        ),
        "<h2>Tasks</h2><ul>"
        + "".join(
            f"<li><b>{esc(n)}</b>: {esc('; '.join(f'{k}: {val}' for k, val in s.items()))}</li>" for n, s in _setups(records)
        )
        + "</ul>",
    ]  # fmt: skip
    if not_run:
        h.append("<h2>Runs not completed</h2><ul>")
        h += [
            f"<li><code>{esc(r['task'])}</code> {esc(arm_label(r.get('arm')))} seed {r['seed']}: "
            f"<b>{esc(r['status'])}</b>: {esc(str(r.get('error', '')))}</li>"
            for r in not_run
        ]
        h.append("</ul>")
    if plots:
        h.append("<h2>Plots</h2><p>Median over seeds per arm; the band is the interquartile range.</p>")
        h += [f"<img src='{esc(p)}' alt='{esc(t)}' title='{esc(t)}'>" for t, p in plots]
    h.append("</body></html>")
    return md_path, write_lines(out_dir, "report.html", h)


VERDICTS_FILE = "verdicts.json"


def write_verdicts(
    out_dir: str, outcomes: Sequence[ClaimOutcome], *, seeds: Sequence[int], quick: bool, blocks: int = 1,
    budget_cuts: Sequence[tuple[str, str, str]] = (),
) -> str:
    """``verdicts.json``: per registered name, its claim × dataset verdicts (pooled, per seed block,
    stable or not, the control's result, the baselines' means, the scale) and its untestable claims.

    The README's registry table (``python -m reglab.docs``) reads this file, so the library's docs
    show the lab's verdicts without importing the lab."""
    import json

    def num(x: float) -> float | None:
        return x if isinstance(x, (int, float)) and math.isfinite(x) else None

    names: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        entry = names.setdefault(o.ref.regularizer, {"verdicts": [], "untestable": []})
        cell: dict[str, Any] = {
            "claim": o.ref.id, "dataset": o.dataset, "verdict": o.verdict,
            "blocks": [{"seeds": list(b), "verdict": v} for b, v in o.blocks], "stable": o.stable,
            "scale": o.scale, "tuning": o.ref.claim.tuning.describe(),
            "baselines": [
                {"label": k.baseline.label, "verdict": k.result.verdict, "baseline_mean": num(k.result.baseline_mean),
                 "arm_mean": num(k.result.arm_mean), "n": k.result.n, **({"note": k.result.note} if k.result.note else {})}
                for k in o.comparisons
            ],
        }  # fmt: skip
        controls = [k.control for k in o.comparisons if k.control is not None]
        if o.ref.claim.control is not None:
            cell["control"] = {
                "label": o.ref.claim.control.label,
                "verdicts": [r.verdict for r in controls],
                "passes": any(r.verdict == "reproduced" for r in controls),
            }
        entry["verdicts"].append(cell)
    for ref in untestable_claims():
        entry = names.setdefault(ref.regularizer, {"verdicts": [], "untestable": []})
        entry["untestable"].append({"claim": ref.id, "reason": ref.claim.untestable_reason})
    from reglab.bench.suite import seed_blocks

    doc = {
        "seeds": list(seeds), "quick": quick,
        "blocks": [list(b) for b in seed_blocks(seeds, blocks)] if seeds else [],
        "scale": "toy: 8×8 digits, MNIST-1D, STS sentences; small MLPs and CNNs trained for minutes on a CPU",
        "regularizers": dict(sorted(names.items())),
        "budget_cuts": [{"claim": i, "dataset": d, "reason": why} for i, d, why in budget_cuts],
    }  # fmt: skip
    path = os.path.join(out_dir, VERDICTS_FILE)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return path


def write_lines(out_dir: str, name: str, lines: list[str]) -> str:
    """Write ``lines`` to ``out_dir/name``; return the path."""
    path = os.path.join(out_dir, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
