"""The result of ``reglab.ab`` (``ABResult``) and its ``report.md`` / ``report.html`` / plots.

The result type lives here, with its rendering, so that this module needs
nothing from ``reglab.bench.ab`` (which runs the A/B and imports it).
"""

from __future__ import annotations

import html
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

from reglab.bench.report import write_lines
from reglab.bench.runner import versions
from reglab.bench.verdict import ALPHA, RULE, TEST_NAME, PairedResult

__all__ = ["ABResult", "write_ab_report"]


@dataclass
class ABResult:
    """Verdicts of every arm against the baseline, and what they rest on."""

    metric: str
    higher_is_better: bool
    min_effect: float
    kind: str
    baseline: str
    seeds: list[int]
    values: dict[str, dict[int, float]]  # arm -> seed -> metric
    comparisons: dict[str, PairedResult]  # arm (not the baseline) -> verdict
    arms: dict[str, Any]  # the arms as finally run (tuned ones with their chosen settings)
    errors: list[str] = field(default_factory=list)
    seeds_rule: str = ""  # how the number of seeds was decided
    tuning: dict[str, dict[str, Any]] = field(default_factory=dict)  # arm -> {"chosen", "scores", "budget"}
    backend: str = "local"

    def table(self) -> list[list[str]]:
        def f(x: float, d: int = 4) -> str:
            return "–" if x is None or not math.isfinite(x) else f"{x:.{d}g}"

        rows = []
        for name, r in self.comparisons.items():
            rows.append([
                name, f(r.baseline_mean), f(r.arm_mean), f"{f(r.effect, 3)} [{f(r.ci_low, 3)}, {f(r.ci_high, 3)}]",
                f(r.p_value, 2), f(r.p_adjusted, 2), f"{r.wins}/{r.n}", f(r.prob_better, 2),
                r.verdict + (f" (≈{r.seeds_needed} seeds would settle it)" if r.seeds_needed else "")
                + (f" ({r.note})" if r.note else ""),
            ])  # fmt: skip
        return rows

    COLUMNS = ("arm", "baseline mean", "arm mean", "effect [95% bootstrap-t CI]", "p", "p (Holm)", "wins", "P(improvement)", "verdict")

    def __str__(self) -> str:
        head = (
            f"A/B on {self.metric} ({'higher' if self.higher_is_better else 'lower'} is better), "
            f"{self.kind}, δ = {self.min_effect:g}, baseline {self.baseline!r}, {len(self.seeds)} seeds"
        )
        lines = [head] + ["  " + " | ".join(r) for r in self.table()]
        lines += [f"  error: {e}" for e in self.errors[:10]]
        return "\n".join(lines)

    def report(self, out_dir: str | os.PathLike[str]) -> tuple[str, str]:
        """Write ``report.md``, ``report.html`` and plots into ``out_dir``; return the two paths."""
        return write_ab_report(self, os.fspath(out_dir))



def _plots(result: ABResult, out_dir: str) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.join(out_dir, "plots"), exist_ok=True)
    made = []
    names = list(result.comparisons)
    if not names:
        return made
    # 1. the effect of each arm with its interval, against ±δ
    fig, ax = plt.subplots(figsize=(6.4, 0.6 + 0.5 * len(names)))
    delta = result.min_effect
    sign = 1.0 if result.higher_is_better else -1.0
    for i, name in enumerate(names):
        r = result.comparisons[name]
        if math.isfinite(r.ci_low):
            ax.plot([r.ci_low, r.ci_high], [i, i], color="C0", lw=2)
        ax.plot([r.effect], [i], "o", color="C0")
    ax.axvline(0, color="k", lw=0.8)
    ax.axvspan(-delta, delta, color="0.85", zorder=0, label=f"±δ (δ = {delta:g})")
    ax.axvline(sign * delta, color="C2", ls="--", lw=0.8, label="claimed direction, δ")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel(f"{result.metric}: arm − {result.baseline} (mean over seeds, 95% bootstrap-t interval)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    rel = os.path.join("plots", "effects.png")
    fig.savefig(os.path.join(out_dir, rel), dpi=100)
    plt.close(fig)
    made.append(("effect of each arm with its interval", rel))
    # 2. every seed: the baseline's value against the arm's (above the diagonal = higher)
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    base = result.values[result.baseline]
    lo, hi = math.inf, -math.inf
    for name in names:
        pts = [(base[s], v) for s, v in result.values[name].items() if s in base]
        if pts:
            xs, ys = zip(*pts)
            ax.scatter(xs, ys, s=14, label=name)
            lo, hi = min(lo, *xs, *ys), max(hi, *xs, *ys)
    if math.isfinite(lo):
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
    ax.set_xlabel(f"{result.baseline}: {result.metric}")
    ax.set_ylabel(f"arm: {result.metric}")
    ax.set_title("one point per seed (paired)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    rel = os.path.join("plots", "paired_seeds.png")
    fig.savefig(os.path.join(out_dir, rel), dpi=100)
    plt.close(fig)
    made.append(("every seed, arm against baseline", rel))
    return made


def write_ab_report(result: ABResult, out_dir: str) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    plots = _plots(result, out_dir)
    v = versions()
    head = (
        f"A/B on {result.metric} ({'higher' if result.higher_is_better else 'lower'} is better), "
        f"{result.kind} with δ = {result.min_effect:g}, baseline `{result.baseline}`, seeds "
        f"{result.seeds[0]}..{result.seeds[-1]} ({len(result.seeds)}); backend {result.backend}; generated "
        f"{time.strftime('%Y-%m-%d %H:%M')}; reglab {v['reglab']}, torch {v['torch']}"
    )
    method = [
        f"Statistics: {TEST_NAME}; α = {ALPHA}.",
        f"Verdict rule: {RULE}",
        f"Seeds: {result.seeds_rule}.",
        "P(improvement) = bootstrap probability that the mean difference is in the better direction.",
    ]
    arms = [f"- `{name}`: {arm!r}" for name, arm in result.arms.items()]
    tuning = []
    for name, t in result.tuning.items():
        scores = ", ".join(f"{c} → {s:.4g}" for c, s in t["scores"])
        tuning.append(
            f"- `{name}`: chose {t['chosen']} on {t['metric']} over tuning seeds {t['seeds']} "
            f"(budget {t['budget']} runs): {scores}"
        )
    cols = result.COLUMNS
    rows = result.table()
    md = ["# reglab ab report", "", head, ""] + [f"- {m}" for m in method] + ["", "## Arms", ""] + arms
    if tuning:
        md += ["", "## Tuning (validation metric, tuning seeds only)", ""] + tuning
    md += ["", "## Verdicts", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    if result.errors:
        md += ["", "## Runs that failed", ""] + [f"- {e}" for e in result.errors]
    if plots:
        md += ["", "## Plots", ""] + [f"![{t}]({p})" for t, p in plots]
    md_path = write_lines(out_dir, "report.md", md)
    esc = html.escape
    h = [
        "<!doctype html><html><head><meta charset='utf-8'><title>reglab ab report</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px}th{background:#f3f3f3}img{max-width:48%}</style></head><body>",
        "<h1>reglab ab report</h1>", f"<p>{esc(head)}</p><ul>" + "".join(f"<li>{esc(m)}</li>" for m in method) + "</ul>",
        "<h2>Arms</h2><ul>" + "".join(f"<li>{esc(a[2:])}</li>" for a in arms) + "</ul>",
    ]  # fmt: skip
    if tuning:
        h.append("<h2>Tuning</h2><ul>" + "".join(f"<li>{esc(t[2:])}</li>" for t in tuning) + "</ul>")
    h.append("<h2>Verdicts</h2><table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in cols) + "</tr>")
    h += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows]
    h.append("</table>")
    if result.errors:
        h.append("<h2>Runs that failed</h2><ul>" + "".join(f"<li>{esc(e)}</li>" for e in result.errors) + "</ul>")
    h += [f"<img src='{esc(p)}' alt='{esc(t)}'>" for t, p in plots]
    h.append("</body></html>")
    return md_path, write_lines(out_dir, "report.html", h)
