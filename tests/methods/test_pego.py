"""PEGO: the preserve (to W₀) and diversify (pairwise) L1 terms against loops."""

from __future__ import annotations

import pytest
import torch

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._reference import Reference


def _abs_prod_sum(a, b):
    """Σ |(a·bᵀ)_{rs}| by a loop."""
    return sum(
        abs(sum(a[r][k] * b[s][k] for k in range(len(a[0])))) for r in range(len(a)) for s in range(len(b))
    )


def ref_pego(deltas, pretrained):
    ds = [d.tolist() for d in deltas]
    w0 = pretrained.tolist()
    total = sum(_abs_prod_sum(w0, d) for d in ds)
    total += sum(_abs_prod_sum(ds[i], ds[j]) for i in range(len(ds)) for j in range(i + 1, len(ds)))
    return total


def _inputs(g):
    return (torch.randn(3, 4, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64))


REFERENCES = {"pego": Reference(ref_pego, inputs=_inputs)}


def test_lora_products_list_equals_stacked_and_diversity_only():
    loras = [(torch.randn(4, 2, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)) for _ in range(3)]
    deltas = [b @ a for b, a in loras]
    w0 = torch.randn(6, 5, dtype=torch.float64)
    assert RF.pego(deltas, w0).item() == pytest.approx(ref_pego(deltas, w0), rel=1e-12)
    assert RF.pego(torch.stack(deltas), w0).item() == pytest.approx(ref_pego(deltas, w0), rel=1e-12)
    pairwise = sum(_abs_prod_sum(deltas[i].tolist(), deltas[j].tolist()) for i in range(3) for j in range(i + 1, 3))
    assert RF.pego(deltas).item() == pytest.approx(pairwise, rel=1e-12)


def test_gradcheck_through_the_lora_factors():
    b = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    a = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    other = torch.randn(4, 5, dtype=torch.float64)
    w0 = torch.randn(6, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda b_, a_: RF.pego([b_ @ a_, other], w0), (b, a))
    assert reglab.PEGO().current_weight == pytest.approx(0.1)


def test_bad_input_is_named():
    with pytest.raises(RegularizerInputError, match="PEGO.*one shape"):
        RF.pego([torch.randn(4, 5), torch.randn(4, 6)])
    with pytest.raises(RegularizerInputError, match="PEGO.*columns"):
        RF.pego([torch.randn(4, 5)], torch.randn(6, 4))
    with pytest.raises(RegularizerInputError, match="PEGO"):
        RF.pego([])
