"""reglab: the regularization library for PyTorch.

* ``reglab.functional`` (``RF``): pure penalties.
* ``reglab.Regularizer`` subclasses: configured modules with paper metadata.
* ``reglab.create`` / ``list_regularizers`` / ``info``: the registry.
* ``reglab.attach``: bind regularizers to a model's parameters/activations.
* ``reglab.schedules``: coefficient schedules.

Layers import only downward: ``core`` (plumbing) ← ``ops`` (shared math) ←
``methods`` (one file per paper) ← ``embeddings`` / ``diagnostics``. The lab
(``reglab.bench``) is never imported by the library; ``reglab.ab`` is the one
door into it, opened only when called.
"""

from reglab import functional, methods
from reglab import distributed, schedules
from reglab.core.attach import RegularizerSet, attach, attach_from_config, save_config
from reglab.core.errors import RegularizerInputError, UnknownRegularizerError
from reglab.core.paper import Baseline, Claim, Paper
from reglab.core.registry import create, from_config, info, list_regularizers, register
from reglab.core.regularizer import (
    Binding,
    FunctionModule,
    Penalty,
    Regularizer,
    RepresentationRegularizer,
    WeightRegularizer,
)
from reglab.core.selection import Selection
from reglab import embeddings  # noqa: E402  (registers the post-hoc transforms)

#: Every method class, under its class name (``reglab.VICReg``).
_METHOD_CLASSES = {
    name: obj
    for module in methods.method_modules()
    for name, obj in methods.public_names(module).items()
    if isinstance(obj, type) and not issubclass(obj, tuple)
}
globals().update(_METHOD_CLASSES)

__all__ = sorted(
    [
        *_METHOD_CLASSES,
        "Baseline", "Binding", "Claim", "FunctionModule", "Paper", "Penalty", "Regularizer", "RegularizerInputError",
        "RegularizerSet", "RepresentationRegularizer", "Selection", "UnknownRegularizerError",
        "WeightRegularizer", "attach", "attach_from_config", "create", "from_config", "info", "list_regularizers", "register", "save_config",
        "ab", "distributed", "embeddings", "functional", "schedules",
    ]
)  # fmt: skip

def _version() -> str:
    """The installed distribution's version (pyproject.toml is the one place it is written)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reglab")
    except PackageNotFoundError:  # a source tree on sys.path without installing
        return "0+unknown"


__version__ = _version()


def ab(train, arms, **kwargs):
    """A/B test regularizers on your own ``train(arm, seed) -> dict``, paired over seeds,
    with the lab's verdict engine: see ``reglab.bench.ab.ab`` (the lab loads only now)."""
    import importlib

    return importlib.import_module("reglab.bench.ab").ab(train, arms, **kwargs)
