"""The package's layers import only downward, with no cycle, and the library never loads the lab."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import reglab

SRC = Path(reglab.__file__).parent
#: core ← ops ← methods ← embeddings/diagnostics/functional ← bench ← cli; a layer may import its own and lower ones.
LAYERS = ["core", "ops", "methods", "library", "bench", "cli"]
LIBRARY = {"embeddings", "diagnostics", "functional", "docs"}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "reglab" or len(parts) == 1:
        return None
    top = parts[1]
    if top in ("core", "ops", "methods", "bench", "cli"):
        return top
    if top in LIBRARY:
        return "library"
    return None


def _modules() -> list[str]:
    names = ["reglab"]
    for info in pkgutil.walk_packages([str(SRC)], prefix="reglab."):
        names.append(info.name)
    return names


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m.startswith("reglab")}


def _path(module: str) -> Path:
    rel = Path(*module.split(".")[1:])
    return SRC / rel / "__init__.py" if (SRC / rel).is_dir() else SRC / rel.with_suffix(".py")


def test_layers_import_only_downward():
    """Function-level (lazy) imports count too: a lower layer never reaches up."""
    bad = []
    for module in _modules():
        layer = _layer(module)
        if layer is None:
            continue
        for imported in _imports(_path(module), module):
            if imported == "reglab":  # the package root re-exports everything
                if layer in ("core", "ops", "methods"):
                    bad.append(f"{module} -> reglab")
                continue
            target = _layer(imported)
            if target is not None and LAYERS.index(target) > LAYERS.index(layer):
                bad.append(f"{module} -> {imported}")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_import_reglab_does_not_load_the_lab():
    code = "import reglab, sys; assert 'reglab.bench' not in sys.modules, sorted(m for m in sys.modules if m.startswith('reglab.bench'))"
    subprocess.run([sys.executable, "-c", code], check=True)


FRESH_IMPORTS = r"""
import importlib, importlib.util, os, sys, traceback, warnings
from pathlib import Path
import numpy, torch  # third-party modules preloaded once; reglab itself is never imported here

root = Path(importlib.util.find_spec("reglab").origin).parent
names = sorted(
    ".".join(("reglab",) + p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
    for p in root.rglob("*.py")
)
failed = []
for name in names:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child starts with no reglab module loaded: a cycle fails its first import
        os.close(read)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            importlib.import_module(name)
            code = 0
        except BaseException:
            os.write(write, traceback.format_exc().strip().splitlines()[-1].encode())
            code = 1
        os._exit(code)
    os.close(write)
    message = os.read(read, 4096).decode()
    os.close(read)
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append((name, message))
print(len(names))
assert not failed, failed
"""


def test_every_module_imports_alone_in_a_fresh_interpreter():
    """Each module imported first, in a process where no reglab module is loaded yet
    (a fork of a fresh interpreter that imported only torch and numpy)."""
    out = subprocess.run([sys.executable, "-c", FRESH_IMPORTS], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) > 60
