"""Generic checks over every registered penalty: no hand-kept name lists.

* every penalty-form regularizer has an independent reference in its
  method's test file (``REFERENCES``) and matches it in float64;
* weight penalties: one tensor == a list of tensors == attached to a model;
* bad input (NaN, inf, integer dtype, not a tensor) raises
  ``RegularizerInputError`` naming the regularizer.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import reglab
from reglab.core.registry import get

from ._reference import collect_references, default_inputs

REFERENCES = collect_references()
PENALTIES = [n for n in reglab.list_regularizers() if get(n).form == "penalty"]
WEIGHTS = reglab.list_regularizers("weight")


def _build(name: str, **kwargs):
    cls = get(name)
    return cls(**{**getattr(cls, "example_args", {}), **kwargs})


def _inputs(name: str, seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    ref = REFERENCES.get(name)
    return ref.inputs(g) if ref is not None and ref.inputs is not None else default_inputs(get(name), g)


def test_every_penalty_has_a_reference():
    missing = sorted(set(PENALTIES) - set(REFERENCES))
    assert not missing, f"penalties without an independent reference in tests/methods/: {missing}"
    unknown = sorted(set(REFERENCES) - set(reglab.list_regularizers()))
    assert not unknown, f"references for unregistered names: {unknown}"


@pytest.mark.parametrize("name", PENALTIES)
def test_value_matches_reference(name):
    ref = REFERENCES[name]
    torch.manual_seed(0)
    reg = _build(name, **ref.build)
    inputs = _inputs(name)
    got = reg.penalty(*inputs)
    torch.manual_seed(0)
    expected = torch.as_tensor(ref.fn(*inputs), dtype=torch.float64)
    torch.testing.assert_close(got.detach().double(), expected, rtol=ref.rtol, atol=1e-12)


SHAPES = [(5, 4), (4, 3, 3, 3), (3, 2, 3), (7, 3)]


def _weights(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64) for s in SHAPES]


class _Net(nn.Module):
    def __init__(self, tensors):
        super().__init__()
        self.ps = nn.ParameterList([nn.Parameter(t.clone()) for t in tensors])


@pytest.mark.parametrize("name", WEIGHTS)
def test_one_tensor_equals_many_equals_attached(name):
    ws = _weights(1)
    torch.manual_seed(0)
    reg = _build(name)
    setup = getattr(reg, "setup", None)
    if setup is not None:  # per-tensor state (anchors, power-iteration vectors) in model order
        setup([(f"ps.{i}", w) for i, w in enumerate(ws)])
    one = sum(reg(w) for w in ws)
    torch.manual_seed(0)
    reg = _build(name)
    if setup is not None:
        reg.setup([(f"ps.{i}", w) for i, w in enumerate(ws)])
    many = reg(ws)
    torch.manual_seed(0)
    net = _Net(ws)
    regs = reglab.attach(net, _build(name).on(exclude=None))
    attached = regs.penalty()
    torch.testing.assert_close(one, many, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(attached, many, rtol=1e-12, atol=1e-14)


def _names(name: str) -> re.Pattern:
    cls = get(name)
    variants = {name, cls.__name__, name.replace("_", "")}
    return re.compile("|".join(re.escape(v) for v in variants), re.IGNORECASE)


@pytest.mark.parametrize("bad", ["nan", "inf", "int", "list"])
@pytest.mark.parametrize("name", PENALTIES)
def test_bad_input_is_named(name, bad):
    if name == "gradient_norm":
        pytest.skip("takes a loss and parameters; its own test file covers bad input")
    inputs = list(_inputs(name))
    x = inputs[0]
    if bad == "nan":
        x = x.clone(); x.view(-1)[0] = float("nan")
    elif bad == "inf":
        x = x.clone(); x.view(-1)[-1] = float("inf")
    elif bad == "int":
        x = x.round().long()
    else:
        x = x.tolist()
    inputs[0] = x
    reg = _build(name, **REFERENCES[name].build) if name in REFERENCES else _build(name)
    with pytest.raises(reglab.RegularizerInputError, match=_names(name)):
        reg(*inputs)
