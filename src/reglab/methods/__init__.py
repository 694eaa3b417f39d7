"""One module per paper (or classic family): its Paper, its pure function(s), its
class(es) and its lab claims. Importing this package imports every module in
it, which registers the classes; nothing here needs editing to add a method."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def public_names(module: ModuleType) -> dict[str, object]:
    """What a method module defines for users: its functions and classes whose names
    do not start with ``_`` (imported names and constants such as ``PAPER`` excluded)."""
    return {
        name: obj
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and callable(obj)
        and getattr(obj, "__module__", None) == module.__name__
    }


def method_modules() -> list[ModuleType]:
    """Every method module, imported (and so registered), in name order."""
    return [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
        if not info.name.startswith("_")
    ]


method_modules()
