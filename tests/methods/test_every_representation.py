"""Generic checks over every registered representation penalty: gradients,
registry metadata and config round trip, batch-order invariance."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reglab
from reglab.core.registry import get

NAMES = [n for n in reglab.list_regularizers("representation") if getattr(get(n), "takes_embedding_batches", True)]


def _inputs(reg, z, noise=0.3):
    if reg.num_inputs == 2:
        return (z, z + noise * torch.randn_like(z))
    return (z,)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "ldreg"])  # LDReg: tests/methods/test_ldreg.py
def test_gradcheck(name):
    reg = reglab.create(name).eval()  # eval: a stateful penalty (TiCo's EMA) must not advance between gradcheck's calls
    g = torch.Generator().manual_seed(1)
    # distinct singular values and no zero entries keep every term smooth at the point
    z = (torch.randn(6, 4, generator=g, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.0, 0.5], dtype=torch.float64)).requires_grad_()
    if reg.num_inputs == 2:
        z2 = (z.detach() + 0.3 * torch.randn(6, 4, generator=g, dtype=torch.float64)).requires_grad_()
        assert torch.autograd.gradcheck(lambda a, b: reg.penalty(a, b), (z, z2))
    else:
        assert torch.autograd.gradcheck(lambda a: reg.penalty(a), (z,))


@pytest.mark.parametrize("name", NAMES)
def test_metadata_and_config_roundtrip(name):
    cls = get(name)
    assert cls.kind == "representation" and cls.form == "penalty" and cls.formula
    reg = reglab.create(name, weight=0.5)
    again = reglab.from_config(reg.get_config())
    z = torch.randn(6, 4)
    assert float(again(*_inputs(again, z, 0.0))) == pytest.approx(float(reg(*_inputs(reg, z, 0.0))))
    assert type(reg.components(*_inputs(reg, z)))._fields


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10_000))
def test_batch_order_never_matters(seed):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(9, 4, generator=g, dtype=torch.float64)
    z2 = z1 + 0.3 * torch.randn(9, 4, generator=g, dtype=torch.float64)
    perm = torch.randperm(9, generator=g)
    for name in NAMES:
        reg = reglab.create(name).eval()  # eval: both calls see the same state (TiCo's EMA)
        args = (z1, z2)[: reg.num_inputs]
        assert float(reg.penalty(*(a[perm] for a in args))) == pytest.approx(float(reg.penalty(*args)), rel=1e-9, abs=1e-12)
