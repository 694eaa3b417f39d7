"""Regenerate the README's registry table: ``python -m reglab.docs [README.md]``.

The table sits between two markers so it is generated, never hand-edited;
a test fails when the README and the registry drift apart.
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


def main(argv: list[str] | None = None) -> int:
    path = Path((argv or sys.argv[1:] or ["README.md"])[0])
    path.write_text(render(path.read_text(), path.parent / VERDICTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
