"""Install hints name what works from a checkout, not a package on an index (issue 26, item 5)."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_message_tells_users_to_pip_install_reglab_from_an_index():
    # reglab is not published: `pip install "reglab[text]"` fails; `pip install -e ".[text]"` in a checkout works
    pattern = re.compile(r"""pip install\s+["']?reglab(\[|\b)""")
    offenders = [
        f"{path.relative_to(ROOT)}:{i}"
        for folder in ("src", "docs", "examples", "benchmarks")
        for path in (ROOT / folder).rglob("*")
        if path.suffix in (".py", ".md", ".txt")
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    offenders += [f"README.md:{i}" for i, line in enumerate(readme.splitlines(), 1) if pattern.search(line)]
    assert not offenders, offenders


def test_pyproject_has_urls_and_yaml_extra_and_the_readme_says_where_the_code_is():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "urls" in meta
    assert all(re.match(r"https?://", url) for url in meta["urls"].values())  # no placeholder paths
    extras = meta["optional-dependencies"]
    assert any(d.lower().startswith("pyyaml") for d in extras["yaml"])
    assert any(d.lower().startswith("pyyaml") for d in extras["dev"])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "checkout of this repository" in " ".join(readme.split())
