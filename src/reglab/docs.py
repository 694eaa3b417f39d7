"""Regenerate the generated parts of the docs: ``python -m reglab.docs [FILE ...]``.

With no argument it rewrites, relative to the current folder, the registry
table of ``README.md`` and of ``docs/guide/choosing.md`` (each between two
markers, so it is generated, never hand-edited) and the function list of
``docs/api/functional.md`` and README's "Not shipped" list (from ``docs/coverage.md``), and copies ``docs/bench/verdicts.json`` into the
package (``reglab/data/verdicts.json``, what ``reglab list`` shows outside a
bench folder); with file arguments, the registry table of each.
Tests fail when a page and the registry drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

from reglab.core.registry import markdown_table

START = "<!-- registry-table:start -->"
END = "<!-- registry-table:end -->"


#: the committed lab run's per-name verdicts, written by ``reglab bench`` (``verdicts.json``)
VERDICTS = Path("docs") / "bench" / "verdicts.json"
SHORT = {"reproduced": "reproduced", "not reproduced": "not reproduced", "no effect": "no effect",
         "inconclusive": "inconclusive", "worse": "worse", "uninformative": "uninformative", "not run": "not run"}
#: the README column's header: every verdict of the lab is at toy scale
HEADER = "lab verdicts (toy scale)"
CAPTION = (
    "Lab verdicts are claim × dataset cells of `docs/bench/verdicts.json` ({seeds}), at toy scale: 8×8 digits, "
    "MNIST-1D and STS sentences, small MLPs and CNNs trained for minutes on a CPU (each cell's data, model and "
    "epochs are in `docs/bench/report.md`). They are evidence about a method at that scale, not about "
    "ImageNet-size training. Outcomes: reproduced, no effect, not reproduced, worse (the regularizer is worse "
    "than its baseline by more than δ), inconclusive, uninformative (the test could not have failed); "
    "\"stable\" counts cells whose every seed block gives the pooled verdict."
)


def verdict_texts(path: Path) -> dict[str, str] | None:
    """name -> "2 reproduced, 1 worse; 2 of 3 stable" from a lab ``verdicts.json``."""
    import json
    from collections import Counter

    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    out = {}
    for name, entry in doc["regularizers"].items():
        counts = Counter(v["verdict"] for v in entry["verdicts"])
        parts = [f"{n} {SHORT.get(k, k)}" for k, n in sorted(counts.items())]
        judged = [v["stable"] for v in entry["verdicts"] if v.get("stable") is not None]
        text = ", ".join(parts)
        if judged:
            text += f"; {sum(judged)} of {len(judged)} stable"
        if entry["untestable"]:
            text += ("; " if text else "") + f"{len(entry['untestable'])} claim(s) not testable here"
        out[name] = text
    return out


def _seeds_text(path: Path) -> str:
    import json

    seeds = json.loads(path.read_text()).get("seeds") or []
    if not seeds:
        return "no seeds"
    return f"seeds {seeds[0]}–{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else f"seeds {seeds}"


def render(text: str, verdicts: Path | None = None) -> str:
    """``text`` with its registry table regenerated; the verdict column read from ``verdicts``
    (default: ``docs/bench/verdicts.json`` beside the README, when it exists)."""
    head, sep, rest = text.partition(START)
    if not sep or END not in rest:
        raise ValueError(f"README needs the markers {START} and {END}")
    _, _, tail = rest.partition(END)
    path = verdicts if verdicts is not None else VERDICTS
    texts = verdict_texts(path)
    table = markdown_table(texts)
    if texts is not None:
        table = table.replace("| lab verdicts |", f"| {HEADER} |", 1)
        table = CAPTION.format(seeds=_seeds_text(path)) + "\n\n" + table
    return f"{head}{START}\n{table}\n{END}{tail}"


#: pages whose registry table ``python -m reglab.docs`` regenerates (relative to the repository root)
TABLE_PAGES = (Path("README.md"), Path("docs") / "guide" / "choosing.md")
FUNCTIONAL_PAGE = Path("docs") / "api" / "functional.md"


def verdicts_beside(page: Path) -> Path:
    """The committed ``docs/bench/verdicts.json`` of the repository ``page`` belongs to (searched upwards)."""
    for folder in [page.parent, *page.parent.parents]:
        if (folder / VERDICTS).exists():
            return folder / VERDICTS
    return page.parent / VERDICTS


def functional_page() -> str:
    """``docs/api/functional.md``: every public function of ``reglab.functional`` by its method module.

    ``reglab.functional`` collects the functions at import time, which the API
    generator cannot see statically, so the page names each one where it is defined.
    """
    import reglab.functional as RF

    by_module: dict[str, list[str]] = {}
    for name in RF.__all__:
        obj = getattr(RF, name)
        by_module.setdefault(obj.__module__, []).append(f"{obj.__module__}.{obj.__qualname__}")
    lines = [
        "# `reglab.functional`",
        "",
        "<!-- generated by `python -m reglab.docs`: do not edit -->",
        "",
        "::: reglab.functional",
        "    options:",
        "      members: false",
        "",
        "`import reglab.functional as RF`: every function below is `RF.<name>`; each is the one statement",
        "of its method's formula and lives in the method's module (the heading names it).",
        "",
    ]
    for module in sorted(by_module):
        lines += [f"## `{module}`", ""]
        for path in by_module[module]:
            lines += [f"::: {path}", "    options:", "      heading_level: 3", ""]
    return "\n".join(lines)


#: the package's copy of the committed verdicts, shown by ``reglab list`` outside a bench folder
SHIPPED_COPY = Path(__file__).parent / "data" / "verdicts.json"


#: the README's "Not shipped" list, generated from ``docs/coverage.md`` between these markers
NOT_SHIPPED_START = "<!-- not-shipped:start -->"
NOT_SHIPPED_END = "<!-- not-shipped:end -->"
COVERAGE = Path("docs") / "coverage.md"


def not_shipped_block(coverage: str) -> str:
    """The README's "Not shipped" list: the counts of ``docs/coverage.md`` and its rows that are not
    pinnable or only partly shipped (the reasons and what is missing are in that file)."""
    import re

    rows = re.findall(r"^- \*\*([CE]\d+)\*\* (.+?) — (shipped|partly|not a component|not pinnable|duplicate of)\b",
                      coverage, flags=re.M)
    counts: dict[str, int] = {}
    for _, _, status in rows:
        counts[status] = counts.get(status, 0) + 1
    order = ("shipped", "partly", "not pinnable", "not a component", "duplicate of")
    summary = ", ".join(f"{counts.get(s, 0)} {s if s != 'duplicate of' else 'duplicates'}" for s in order)
    lines = [
        f"Every technique of the literature catalog has a line in [docs/coverage.md](docs/coverage.md) "
        f"({len(rows)} rows: {summary}). Not shipped because their exact formulas could not be pinned "
        "from the papers or the official code (no guesses under a paper's name; what was searched is in that file):",
        "",
    ]
    lines += [f"- **{rid}** {title}" for rid, title, status in rows if status == "not pinnable"]
    lines += ["", "Partly shipped (the missing part is named there): "
              + ", ".join(f"{rid}" for rid, _, status in rows if status == "partly") + "."]
    return "\n".join(lines)


def render_not_shipped(text: str, coverage: str) -> str:
    """``text`` with the block between the not-shipped markers regenerated from ``coverage``."""
    head, sep, rest = text.partition(NOT_SHIPPED_START)
    if not sep or NOT_SHIPPED_END not in rest:
        return text
    _, _, tail = rest.partition(NOT_SHIPPED_END)
    return f"{head}{NOT_SHIPPED_START}\n{not_shipped_block(coverage)}\n{NOT_SHIPPED_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    import shutil

    paths = [Path(a) for a in (argv if argv is not None else sys.argv[1:])]
    if not paths:
        paths = [p for p in TABLE_PAGES if p.exists()]
        FUNCTIONAL_PAGE.write_text(functional_page())
    for path in paths:
        text = render(path.read_text(), verdicts_beside(path))
        if path.name == "README.md" and (path.parent / COVERAGE).exists():
            text = render_not_shipped(text, (path.parent / COVERAGE).read_text(encoding="utf-8"))
        path.write_text(text)
    committed = verdicts_beside(paths[0]) if paths else VERDICTS
    if committed.exists():  # the package's copy follows the committed lab run
        shutil.copyfile(committed, SHIPPED_COPY)
    return 0


if __name__ == "__main__":
    sys.exit(main())
