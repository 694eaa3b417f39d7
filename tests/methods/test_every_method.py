"""Generic checks over every registered penalty: no hand-kept name lists.

* every penalty-form regularizer has an independent reference in its
  method's test file (``REFERENCES``) and matches it in float64;
* weight penalties: one tensor == a list of tensors == attached to a model;
* bad input (NaN, inf, integer dtype, not a tensor) raises
  ``RegularizerInputError`` naming the regularizer.
"""

from __future__ import annotations


import pytest
import torch
from torch import nn

import reglab

from ._registry import PENALTIES, WEIGHTS, build, example, example_inputs, names, references


def test_every_penalty_has_a_reference():
    missing = sorted(set(PENALTIES) - set(references()))
    assert not missing, f"penalties without an independent reference in tests/methods/: {missing}"
    unknown = sorted(set(references()) - set(reglab.list_regularizers()))
    assert not unknown, f"references for unregistered names: {unknown}"


@pytest.mark.parametrize("name", PENALTIES)
def test_value_matches_reference(name):
    ref = references()[name]
    torch.manual_seed(0)
    reg = build(name, **ref.build)
    inputs = example_inputs(name)
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
    reg = build(name)
    setup = getattr(reg, "setup", None)
    if setup is not None:  # per-tensor state (anchors, power-iteration vectors) in model order
        setup([(f"ps.{i}", w) for i, w in enumerate(ws)])
    one = sum(reg(w) for w in ws)
    torch.manual_seed(0)
    reg = build(name)
    if setup is not None:
        reg.setup([(f"ps.{i}", w) for i, w in enumerate(ws)])
    many = reg(ws)
    torch.manual_seed(0)
    net = _Net(ws)
    regs = reglab.attach(net, build(name).on(exclude=None))
    attached = regs.penalty()
    torch.testing.assert_close(one, many, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(attached, many, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", WEIGHTS)
def test_weight_penalties_accumulate_in_float32(name, dtype):
    """Whatever the weight dtype, the penalty is float32 and as accurate as its input allows."""
    first, *rest = example_inputs(name)

    def penalty(w):
        torch.manual_seed(0)  # the same power-iteration start for both calls
        return example(name).penalty(w, *rest)

    exact = penalty(first).item()
    got = penalty(first.float().to(dtype))
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(exact, rel=1e-5 if dtype == torch.float32 else 5e-2)


@pytest.mark.parametrize("bad", ["nan", "inf", "int", "list"])
@pytest.mark.parametrize("name", PENALTIES)
def test_bad_input_is_named(name, bad):
    if name == "gradient_norm":
        pytest.skip("takes a loss and parameters; its own test file covers bad input")
    inputs = list(example_inputs(name))
    if isinstance(inputs[0], nn.Module):
        pytest.skip("takes a model (path_norm); its own test file covers bad input")
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
    reg = example(name)
    with pytest.raises(reglab.RegularizerInputError, match=names(name)):
        reg(*inputs)
