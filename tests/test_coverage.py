"""docs/coverage.md: one line per catalog id (C1–C86, E1–E72), each with a known status, and every
backticked name on a shipped/partly line registered."""

import re
from pathlib import Path

import pytest

import reglab
import reglab.functional as functional
from reglab.core.registry import list_regularizers

COVERAGE = Path(__file__).resolve().parents[1] / "docs" / "coverage.md"
LINE = re.compile(r"^- \*\*([CE]\d+)\*\* (.+?) — (shipped|partly|not a component|not pinnable|duplicate of)\b(.*)$")
EXPECTED = [f"C{i}" for i in range(1, 87)] + [f"E{i}" for i in range(1, 73)]


def _rows():
    rows = {}
    for line in COVERAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith("- **"):
            m = LINE.match(line)
            assert m, f"docs/coverage.md: a row without a known status: {line!r}"
            rid, _, status, rest = m.groups()
            assert rid not in rows, f"docs/coverage.md: {rid} listed twice"
            rows[rid] = (status, rest)
    return rows


def test_every_catalog_id_once():
    rows = _rows()
    assert sorted(rows) == sorted(EXPECTED), set(EXPECTED) ^ set(rows)


def test_duplicates_point_at_catalog_ids():
    for rid, (status, rest) in _rows().items():
        if status == "duplicate of":
            targets = re.findall(r"[CE]\d+", rest)
            assert targets and all(t in EXPECTED and t != rid for t in targets), (rid, rest)


@pytest.mark.parametrize("rid", EXPECTED)
def test_listed_names_are_registered(rid):
    status, rest = _rows()[rid]
    if status not in ("shipped", "partly"):
        return
    names = re.findall(r"`([a-z0-9_]+)`", rest)
    if status == "shipped":
        assert names, f"{rid}: a shipped row names no registry name"
    known = set(list_regularizers())
    missing = [n for n in names if n not in known and not hasattr(reglab, n) and not hasattr(functional, n)]
    assert not missing, f"{rid}: not registered: {missing}"


def test_readme_not_shipped_list_follows_coverage():
    from reglab.docs import render_not_shipped

    readme = COVERAGE.parents[1] / "README.md"
    text = readme.read_text(encoding="utf-8")
    assert "<!-- not-shipped:start -->" in text
    assert render_not_shipped(text, COVERAGE.read_text(encoding="utf-8")) == text, (
        "README's Not shipped list is stale: run `python -m reglab.docs`"
    )
