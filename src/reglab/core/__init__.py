"""Plumbing, no paper math: the Regularizer module and its Binding, selection,
attach, per-tensor state, the registry, config, paper metadata, schedules and
the one autograd-aware gather across ranks. Imports nothing else of reglab.

What a method file needs is re-exported here: ``from reglab.core import Paper, register, ...``."""

from __future__ import annotations

from reglab.core.errors import RegularizerInputError
from reglab.core.paper import BEIR_ADAPTER_SETTINGS, Baseline, Baselines, Claim, Paper, ssl_claims
from reglab.core.registry import Registered, register
from reglab.core.config import Configurable
from reglab.core.regularizer import FunctionModule, Penalty, Regularizer, RepresentationRegularizer, WeightRegularizer
from reglab.core.state import AnchorState, PerTensorState, PowerIterationState
from reglab.core.optim import WrappedOptimizer
from reglab.core.schedules import LinearRamp
from reglab.core.distributed import all_gather_indexed, all_gather_nograd, gather

__all__ = [
    "AnchorState",
    "BEIR_ADAPTER_SETTINGS",
    "Baseline",
    "Baselines",
    "Claim",
    "Configurable",
    "FunctionModule",
    "LinearRamp",
    "Paper",
    "Penalty",
    "PerTensorState",
    "PowerIterationState",
    "Registered",
    "Regularizer",
    "RegularizerInputError",
    "RepresentationRegularizer",
    "WeightRegularizer",
    "WrappedOptimizer",
    "all_gather_indexed",
    "all_gather_nograd",
    "gather",
    "register",
    "ssl_claims",
]
