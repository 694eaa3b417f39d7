"""The docs teach what the code does: the guide's examples run, the generated pages are current, and the
rendered site shows no raw Sphinx roles."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reglab.docs import FUNCTIONAL_PAGE, functional_page, render, verdicts_beside

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide"
GUIDE_PAGES = sorted(p.name for p in GUIDE.glob("*.md"))
ROLES = re.compile(r":(class|func|meth|mod|attr|data|exc|obj|ref):")


def python_blocks(page: Path) -> str:
    return "\n".join(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S))


def test_the_guide_has_its_pages_and_the_nav_lists_them():
    expected = {"getting-started.md", "choosing.md", "forms.md", "lab-and-ab.md", "embeddings.md",
                "distributed.md", "porting.md"}
    assert expected <= set(GUIDE_PAGES)
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [p for p in GUIDE_PAGES if f"guide/{p}" not in nav]
    assert not missing, f"mkdocs.yml's nav lacks {missing}"
    # the nav once named a seed range the report did not use: it names none now
    assert not re.search(r"seeds? \d+\s*[-–]\s*\d+", nav)


@pytest.mark.parametrize("page", [p for p in GUIDE_PAGES if python_blocks(GUIDE / p).strip()])
def test_every_python_block_of_the_guide_runs(page, tmp_path):
    code = python_blocks(GUIDE / page)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"docs/guide/{page} fails as written:\n{proc.stderr[-3000:]}"


def test_the_forms_page_shows_every_form():
    from reglab.core.registry import FORMS

    text = (GUIDE / "forms.md").read_text()
    missing = [f for f in FORMS if f"## `{f}`" not in text]
    assert not missing, f"docs/guide/forms.md has no section for the forms {missing}"


def test_generated_pages_are_current():
    page = ROOT / FUNCTIONAL_PAGE
    assert page.read_text() == functional_page(), "docs/api/functional.md is stale: run `python -m reglab.docs`"
    choosing = GUIDE / "choosing.md"
    assert render(choosing.read_text(), verdicts_beside(choosing)) == choosing.read_text(), (
        "docs/guide/choosing.md's registry table is stale: run `python -m reglab.docs`"
    )


def test_the_functional_page_names_every_function():
    import reglab.functional as RF

    text = (ROOT / FUNCTIONAL_PAGE).read_text()
    missing = [n for n in RF.__all__ if not re.search(rf"::: [\w.]+\.{re.escape(n)}\n", text)]
    assert not missing, f"docs/api/functional.md does not list {missing}"


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="the docs extra (mkdocs) is not installed")
def test_the_rendered_site_has_no_raw_roles_and_lists_the_functions(tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    raw = {}
    for html in site.rglob("*.html"):
        text = re.sub(r"<[^>]+>", "", html.read_text(errors="replace"))
        hits = ROLES.findall(text)
        if hits:
            raw[str(html.relative_to(site))] = len(hits)
    assert not raw, f"literal Sphinx roles in the rendered docs: {raw}"
    functional = (site / "api" / "functional" / "index.html").read_text()
    assert "vicreg" in functional and "group_lasso" in functional
