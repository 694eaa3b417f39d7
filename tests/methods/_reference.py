"""How a method's test file declares its independent reference for the generic tests.

Each ``tests/methods/test_<module>.py`` defines ``REFERENCES = {registry_name:
reference}``. A reference is a plain function ``(*inputs) -> expected
penalty`` written independently of reglab (loops, numpy, the paper's
equations) for the default hyperparameters, or a :class:`Reference` when the
method needs particular inputs or constructor arguments.
``tests/methods/test_every_method.py`` collects them and checks every
registered penalty against its reference, one tensor against many against
attached, and bad inputs.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Reference:
    fn: Callable[..., Any]
    #: ``inputs(generator) -> tuple`` of the penalty's inputs; default by kind (see default_inputs)
    inputs: Callable[[torch.Generator], tuple] | None = None
    #: constructor arguments (the class's ``example_args`` are used otherwise)
    build: dict[str, Any] = field(default_factory=dict)
    rtol: float = 1e-10


def default_inputs(cls: type, g: torch.Generator) -> tuple:
    """Float64 inputs for a penalty of ``cls``'s kind: a conv weight, (16, 8) embeddings or (10, 4) logits."""
    if cls.kind == "weight":
        return (torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64),)
    if cls.kind == "representation":
        return tuple(torch.randn(16, 8, generator=g, dtype=torch.float64) for _ in range(cls.num_inputs))
    if cls.kind == "output":
        return tuple(3 * torch.randn(10, 4, generator=g, dtype=torch.float64) for _ in range(cls.num_inputs))
    raise NotImplementedError(f"no default inputs for kind {cls.kind!r}: give Reference(inputs=...)")


def collect_references() -> dict[str, Reference]:
    """Every ``REFERENCES`` entry of the method test modules, by registry name."""
    import tests.methods as package

    found: dict[str, Reference] = {}
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, ref in getattr(module, "REFERENCES", {}).items():
            assert name not in found, f"two references for {name!r}"
            found[name] = ref if isinstance(ref, Reference) else Reference(ref)
    return found
