"""Effective rank (Roy & Vetterli, 2007): the singular values from the eigenvalues of zᵀz."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reglab
from reglab import functional as RF


def ref_spectral_entropy(z, eps=1e-7):
    # singular values as square roots of the eigenvalues of zᵀz (an independent route)
    m = np.array(z)
    s = np.sqrt(np.clip(np.linalg.eigvalsh(m.T @ m), 0, None))[::-1][: min(m.shape)]
    p = s / s.sum() + eps
    return float(-(p * np.log(p)).sum())


#: the penalty is −H, so minimizing raises the effective rank
REFERENCES = {"effective_rank": lambda z: -ref_spectral_entropy(z.tolist())}


@pytest.mark.parametrize("n,d", [(5, 8), (9, 4)])
def test_spectral_terms_match_reference(n, d):
    z = torch.randn(n, d, dtype=torch.float64)
    reg = reglab.create("effective_rank")
    t = reg.components(z)
    assert float(t.entropy) == pytest.approx(ref_spectral_entropy(z.tolist()), rel=1e-8)
    assert float(t.effective_rank) == pytest.approx(math.exp(ref_spectral_entropy(z.tolist())), rel=1e-8)
    assert float(reg.penalty(z)) == pytest.approx(-float(t.entropy))


def test_effective_rank_extremes():
    rank_one = torch.randn(10, 1, dtype=torch.float64) @ torch.randn(1, 6, dtype=torch.float64)
    assert float(RF.effective_rank(rank_one)) == pytest.approx(1.0, abs=1e-3)
    ortho = torch.eye(6, dtype=torch.float64)
    assert float(RF.effective_rank(ortho)) == pytest.approx(6.0, rel=1e-5)
    assert math.isfinite(float(RF.effective_rank(torch.zeros(4, 3))))


_small = st.integers(min_value=0, max_value=10_000)


@settings(max_examples=15, deadline=None)
@given(seed=_small, scale=st.floats(0.1, 10.0))
def test_scale_invariance(seed, scale):
    z = torch.randn(8, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert float(RF.spectral_entropy(scale * z)) == pytest.approx(float(RF.spectral_entropy(z)), rel=1e-7, abs=1e-9)


@settings(max_examples=15, deadline=None)
@given(seed=_small)
def test_rotation_invariance(seed):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(9, 4, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    assert float(RF.spectral_entropy(z1 @ q)) == pytest.approx(float(RF.spectral_entropy(z1)), rel=1e-8, abs=1e-10)
