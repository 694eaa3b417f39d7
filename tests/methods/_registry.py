"""What the generic tests over the registry share: the penalties' names, their independent
references (collected lazily: collecting imports the test modules, which import this one),
an example instance and inputs for each, and the pattern an error must name."""

from __future__ import annotations

import functools
import re

import torch

import reglab
from reglab.core.registry import get

from ._reference import Reference, collect_references, default_inputs

PENALTIES = [n for n in reglab.list_regularizers() if get(n).form == "penalty"]
#: weight penalties (a weight reparametrization such as sigma_reparam has no penalty to compare)
WEIGHTS = [n for n in reglab.list_regularizers("weight") if issubclass(get(n), reglab.WeightRegularizer)]


@functools.cache
def references() -> dict[str, Reference]:
    return collect_references()


def build(name: str, **kwargs):
    """An instance from the class's ``example_args`` and ``kwargs``."""
    cls = get(name)
    return cls(**{**getattr(cls, "example_args", {}), **kwargs})


def example(name: str):
    """An instance with the constructor arguments its reference was written for."""
    ref = references().get(name)
    return build(name, **ref.build) if ref is not None else build(name)


def example_inputs(name: str, seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    ref = references().get(name)
    return ref.inputs(g) if ref is not None and ref.inputs is not None else default_inputs(get(name), g)


def names(name: str) -> re.Pattern:
    """Any of the ways an error may name the regularizer."""
    cls = get(name)
    variants = {name, cls.__name__, name.replace("_", "")}
    return re.compile("|".join(re.escape(v) for v in variants), re.IGNORECASE)
