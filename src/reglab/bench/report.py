"""``report.md`` + ``report.html`` + PNG plots from the verdicts and the stored runs.

Plots (matplotlib, Agg): for every task configuration and every curve a task
returns, the mean over seeds per arm (band: ± one standard deviation). A
curve ``foo`` with a companion ``foo_x`` is drawn against it (e.g.
``accuracy_vs_sparsity`` against the fraction of zeroed filters); other
curves are drawn against the epoch.
"""

from __future__ import annotations

import html
import math
import os
import re
import time
from collections import defaultdict
from typing import Any

from reglab.bench.runner import arm_label, versions
from reglab.bench.suite import ClaimOutcome
from reglab.bench.verdict import RULE, TEST_NAME

__all__ = ["write_report", "verdict_rows", "COLUMNS"]

COLUMNS = (
    "regularizer", "paper", "claim", "metric", "baseline", "regularized",
    "effect [95% CI]", "p", "verdict", "time overhead",
)  # fmt: skip


def _f(x: float, digits: int = 4) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def verdict_rows(outcomes: list[ClaimOutcome]) -> list[list[str]]:
    rows = []
    for o in outcomes:
        r, c = o.result, o.ref.claim
        ci = f" [{_f(r.ci_low, 3)}, {_f(r.ci_high, 3)}]" if math.isfinite(r.ci_low) else ""
        rows.append([
            o.arm_label,
            o.ref.paper or "classic",
            f"{c.statement} ({c.task}{_args(c.task_args)}; vs {o.baseline_label}; n={r.n})",
            f"{c.metric} ({c.direction} is claimed)",
            _f(r.baseline_mean),
            _f(r.arm_mean),
            f"{_f(r.effect, 3)}{ci}",
            _f(r.p_value, 2),
            r.verdict + (f" ({r.note})" if r.note else ""),
            f"{o.overhead:.2f}×" if math.isfinite(o.overhead) else "–",
        ])  # fmt: skip
    return rows


def _args(task_args: dict[str, Any]) -> str:
    return f"[{', '.join(f'{k}={v}' for k, v in sorted(task_args.items()))}]" if task_args else ""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def _plots(records: list[dict[str, Any]], out_dir: str) -> list[tuple[str, str]]:
    """One PNG per (task configuration, curve); returns (title, relative path)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        cfg = (rec["task"], _args(rec.get("task_args") or {}))
        groups[cfg][arm_label(rec.get("arm"))].append(rec)
    made = []
    os.makedirs(os.path.join(out_dir, "plots"), exist_ok=True)
    for (task, args), arms in sorted(groups.items()):
        names = sorted({k for recs in arms.values() for r in recs for k in (r.get("curves") or {})})
        for curve in names:
            if curve.endswith("_x"):
                continue
            fig, ax = plt.subplots(figsize=(5.5, 3.6))
            drawn = False
            for label, recs in sorted(arms.items(), key=lambda kv: (kv[0] != "baseline", kv[0])):
                series = [r["curves"][curve] for r in recs if curve in (r.get("curves") or {})]
                series = [s for s in series if s]
                if not series:
                    continue
                m = min(len(s) for s in series)
                ys = np.array([[np.nan if v is None else v for v in s[:m]] for s in series], dtype=float)
                xs_list = [r["curves"].get(f"{curve}_x") for r in recs if curve in (r.get("curves") or {})]
                xs = np.array(xs_list[0][:m], dtype=float) if xs_list and xs_list[0] else np.arange(1, m + 1)
                mean, sd = np.nanmean(ys, axis=0), np.nanstd(ys, axis=0)
                ax.plot(xs, mean, label=f"{label} (n={len(series)})", marker="." if m < 30 else None)
                ax.fill_between(xs, mean - sd, mean + sd, alpha=0.2)
                drawn = True
            if not drawn:
                plt.close(fig)
                continue
            has_x = any(f"{curve}_x" in (r.get("curves") or {}) for recs in arms.values() for r in recs)
            ax.set_xlabel(curve.split("_vs_")[-1].replace("_", " ") if has_x else "epoch")
            ax.set_ylabel(curve.split("_vs_")[0].replace("_", " "))
            title = f"{task}{args}: {curve}"
            ax.set_title(title, fontsize=9)
            ax.legend(fontsize=7)
            fig.tight_layout()
            rel = os.path.join("plots", f"{_slug(task + args)}__{_slug(curve)}.png")
            fig.savefig(os.path.join(out_dir, rel), dpi=90)
            plt.close(fig)
            made.append((title, rel))
    return made


def write_report(
    out_dir: str,
    outcomes: list[ClaimOutcome],
    records: list[dict[str, Any]],
    *,
    not_run: list[dict[str, Any]] = (),  # type: ignore[assignment]
    seeds: int,
    quick: bool,
    wall_seconds: float | None = None,
) -> tuple[str, str]:
    """Write ``report.md`` and ``report.html`` into ``out_dir``; return their paths."""
    plots = _plots(records, out_dir) if records else []
    rows = verdict_rows(outcomes)
    v = versions()
    counts = defaultdict(int)
    for o in outcomes:
        counts[o.result.verdict] += 1
    when = time.strftime("%Y-%m-%d %H:%M")
    head = (
        f"{'quick smoke run' if quick else 'default suite'}, {seeds} seed(s), generated {when}; "
        f"reglab {v['reglab']}, torch {v['torch']}, Python {v['python']}"
        + (f"; wall time {wall_seconds:.0f} s" if wall_seconds is not None else "")
    )
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no claims evaluated"
    method = (
        f"Each claim compares the regularized arm with its baseline on the same data split and "
        f"initialization per seed. Effect = mean over seeds of (regularized − baseline); "
        f"test: {TEST_NAME}; verdict rule: {RULE}. Time overhead = mean training-step time of the "
        f"regularized arm / of the baseline. Hyperparameters are fixed in each task and regularizer "
        f"defaults are the paper's; nothing is tuned on the test split."
    )

    if quick:
        method += " This is a quick smoke run (a few epochs per run): its verdicts are not evidence either way."
    md = ["# reglab bench report", "", head, "", f"**Verdicts:** {summary}.", "", method, ""]
    md += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    if not_run:
        md += ["", "## Runs not completed", ""]
        md += [f"- `{r['task']}` {arm_label(r.get('arm'))} seed {r['seed']}: **{r['status']}**: {r.get('error', '')}" for r in not_run]
    if plots:
        md += ["", "## Plots", ""]
        md += [f"![{t}]({p})" for t, p in plots]
    md_path = os.path.join(out_dir, "report.md")
    with open(md_path, "w") as f:
        f.write("\n".join(md) + "\n")

    esc = html.escape
    h = [
        "<!doctype html><html><head><meta charset='utf-8'><title>reglab bench report</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:4px 6px;"
        "vertical-align:top}th{background:#f3f3f3}.reproduced{background:#e5f5e0}"
        ".not{background:#fde0dd}img{max-width:48%;margin:4px}</style></head><body>",
        "<h1>reglab bench report</h1>",
        f"<p>{esc(head)}</p><p><b>Verdicts:</b> {esc(summary)}.</p><p>{esc(method)}</p>",
        "<table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in COLUMNS) + "</tr>",
    ]
    for row in rows:
        cls = "reproduced" if row[8].startswith("reproduced") else ("not" if row[8].startswith("not") else "")
        h.append(f"<tr class='{cls}'>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    h.append("</table>")
    if not_run:
        h.append("<h2>Runs not completed</h2><ul>")
        h += [
            f"<li><code>{esc(r['task'])}</code> {esc(arm_label(r.get('arm')))} seed {r['seed']}: "
            f"<b>{esc(r['status'])}</b>: {esc(str(r.get('error', '')))}</li>"
            for r in not_run
        ]
        h.append("</ul>")
    if plots:
        h.append("<h2>Plots</h2>")
        h += [f"<img src='{esc(p)}' alt='{esc(t)}' title='{esc(t)}'>" for t, p in plots]
    h.append("</body></html>")
    html_path = os.path.join(out_dir, "report.html")
    with open(html_path, "w") as f:
        f.write("\n".join(h) + "\n")
    return md_path, html_path
