"""Mutual feature regularization (Marks et al. 2024): Hungarian-matched mean cosine, against brute force."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._reference import Reference


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def ref_mmcs(a, b):
    """The best one-to-one matching by brute force over permutations (small m), features = columns."""
    ca, cb = list(zip(*a)), list(zip(*b))
    m = len(ca)
    return max(sum(_cos(ca[p[k]], cb[k]) for k in range(m)) / m for p in itertools.permutations(range(m)))


def ref_mfr(*ws):
    pairs = list(itertools.combinations(ws, 2))
    return sum(1 - ref_mmcs(a.tolist(), b.tolist()) for a, b in pairs) / len(pairs)


REFERENCES = {"mutual_feature_regularization": Reference(
    ref_mfr, inputs=lambda g: tuple(torch.randn(4, 4, generator=g, dtype=torch.float64) for _ in range(3)))}


def test_permuted_and_rescaled_features_agree_perfectly():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 5, generator=g, dtype=torch.float64)
    b = 3.0 * a[:, torch.randperm(5, generator=g)]
    assert float(RF.mutual_feature_regularization(a, b)) == pytest.approx(0.0, abs=1e-12)
    c = torch.randn(6, 5, generator=g, dtype=torch.float64)
    assert float(RF.mutual_feature_regularization(a, b, c)) == pytest.approx(ref_mfr(a, b, c), rel=1e-10)
    assert reglab.create("mutual_feature_regularization").weight == 0.005


def test_gradient_pulls_features_together():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, 4, generator=g, dtype=torch.float64)
    before = RF.mutual_feature_regularization(a, b)
    before.backward()
    with torch.no_grad():
        after = RF.mutual_feature_regularization(a - 0.1 * a.grad, b)
    assert float(after) < float(before)


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="MutualFeatureRegularization needs the dictionaries of at least 2"):
        RF.mutual_feature_regularization(torch.randn(4, 3))
    with pytest.raises(RegularizerInputError, match="MutualFeatureRegularization expects dictionaries over the same input"):
        RF.mutual_feature_regularization(torch.randn(4, 3), torch.randn(5, 3))
