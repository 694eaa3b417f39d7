"""Barlow Twins (Zbontar et al., 2021) against a loop reference of the cross-correlation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reglab
from reglab import functional as RF

from ._naive import mean


def ref_barlow(z1, z2, lambd=0.0051, eps=1e-5):
    n, d = len(z1), len(z1[0])

    def bn(z):
        out = [[0.0] * d for _ in range(n)]
        for j in range(d):
            col = [z[i][j] for i in range(n)]
            m = mean(col)
            var = sum((x - m) ** 2 for x in col) / n
            for i in range(n):
                out[i][j] = (z[i][j] - m) / math.sqrt(var + eps)
        return out

    a, b = bn(z1), bn(z2)
    loss = 0.0
    for p in range(d):
        for q in range(d):
            c = sum(a[i][p] * b[i][q] for i in range(n)) / n
            loss += (1 - c) ** 2 if p == q else lambd * c**2
    return loss


REFERENCES = {"barlow_twins": lambda z1, z2: ref_barlow(z1.tolist(), z2.tolist())}


@pytest.mark.parametrize("n,d", [(7, 5), (5, 9)])  # the d×d route and the Gram (n<d) route
def test_barlow_twins_matches_reference(n, d):
    z1 = torch.randn(n, d, dtype=torch.float64)
    z2 = z1 + 0.5 * torch.randn(n, d, dtype=torch.float64)
    reg = reglab.create("barlow_twins")
    assert float(reg.penalty(z1, z2)) == pytest.approx(ref_barlow(z1.tolist(), z2.tolist()), rel=1e-9)
    assert reg.components(z1, z2)._fields == ("on_diagonal", "off_diagonal")


def test_gradcheck_gram_route():
    # n < d: the cross-correlation sums go through n×n Gram matrices
    reg = reglab.create("barlow_twins")
    z = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    z2 = (z.detach() + 0.3 * torch.randn(4, 7, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: reg.penalty(*a), (z, z2))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10_000))
def test_dimension_permutation_invariance(seed):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(9, 4, generator=g, dtype=torch.float64)
    z2 = z1 + 0.3 * torch.randn(9, 4, generator=g, dtype=torch.float64)
    # Barlow Twins's diagonal term is permutation-equivariant over dimensions
    dperm = torch.randperm(4, generator=g)
    assert float(RF.barlow_twins(z1[:, dperm], z2[:, dperm])) == pytest.approx(float(RF.barlow_twins(z1, z2)), rel=1e-9)
