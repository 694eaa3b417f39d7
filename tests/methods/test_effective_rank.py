"""Effective rank (Roy & Vetterli, 2007): the singular values from the eigenvalues of zᵀz."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings

import reglab
from reglab import functional as RF

from ._invariance import SCALES, SEEDS, assert_rotation_invariant, assert_scale_invariant


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


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, scale=SCALES)
def test_scale_invariance(seed, scale):
    assert_scale_invariant(RF.spectral_entropy, seed, scale)


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS)
def test_rotation_invariance(seed):
    assert_rotation_invariant(RF.spectral_entropy, seed)
