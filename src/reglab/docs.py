"""Regenerate the README's registry table: ``python -m reglab.docs [README.md]``; it also copies
``docs/bench/verdicts.json`` into the package (``reglab/data/verdicts.json``, what ``reglab list``
shows outside a bench folder).

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
         "inconclusive": "inconclusive"}


def verdict_texts(path: Path) -> dict[str, str] | None:
    """name -> "2 reproduced, 1 not reproduced (of 3 claim × dataset)" from a lab ``verdicts.json``."""
    import json
    from collections import Counter

    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    out = {}
    for name, entry in doc["regularizers"].items():
        counts = Counter(v["verdict"] for v in entry["verdicts"])
        parts = [f"{n} {SHORT.get(k, k)}" for k, n in sorted(counts.items())]
        if entry["untestable"]:
            parts.append(f"{len(entry['untestable'])} claim(s) not testable here")
        out[name] = ", ".join(parts)
    return out


def render(text: str, verdicts: Path | None = None) -> str:
    """``text`` with its registry table regenerated; the verdict column read from ``verdicts``
    (default: ``docs/bench/verdicts.json`` beside the README, when it exists)."""
    head, sep, rest = text.partition(START)
    if not sep or END not in rest:
        raise ValueError(f"README needs the markers {START} and {END}")
    _, _, tail = rest.partition(END)
    table = markdown_table(verdict_texts(verdicts if verdicts is not None else VERDICTS))
    return f"{head}{START}\n{table}\n{END}{tail}"


#: the package's copy of the committed verdicts, shown by ``reglab list`` outside a bench folder
SHIPPED_COPY = Path(__file__).parent / "data" / "verdicts.json"


def main(argv: list[str] | None = None) -> int:
    """Regenerate the README's table and refresh the package's copy of ``docs/bench/verdicts.json``."""
    import shutil

    path = Path((argv or sys.argv[1:] or ["README.md"])[0])
    verdicts = path.parent / VERDICTS
    path.write_text(render(path.read_text(), verdicts))
    if verdicts.exists():
        shutil.copyfile(verdicts, SHIPPED_COPY)
    return 0


if __name__ == "__main__":
    sys.exit(main())
