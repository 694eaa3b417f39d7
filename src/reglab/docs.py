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


def render(text: str) -> str:
    head, sep, rest = text.partition(START)
    if not sep or END not in rest:
        raise ValueError(f"README needs the markers {START} and {END}")
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{markdown_table()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    path = Path((argv or sys.argv[1:] or ["README.md"])[0])
    path.write_text(render(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
