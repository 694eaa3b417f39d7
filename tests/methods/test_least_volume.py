"""Least Volume (Chen & Fuge, 2024): the geometric mean of per-dimension stds, by loops."""

from __future__ import annotations

import math

import pytest
import torch

from reglab import functional as RF

from ._naive import var_unbiased


def ref_least_volume(z, eta=1e-2):
    n, d = len(z), len(z[0])
    logs = [math.log(math.sqrt(var_unbiased([z[i][j] for i in range(n)])) + eta) for j in range(d)]
    return math.exp(sum(logs) / d)


REFERENCES = {"least_volume": lambda z: ref_least_volume(z.tolist())}


def test_least_volume_matches_reference():
    z = torch.randn(7, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert float(RF.least_volume(z)) == pytest.approx(ref_least_volume(z.tolist()), rel=1e-12)
    assert float(RF.least_volume(z, eta=1.0)) == pytest.approx(ref_least_volume(z.tolist(), 1.0), rel=1e-12)
    # a collapsed latent dimension drags the geometric mean towards η
    z2 = z.clone()
    z2[:, 0] = 3.0
    assert float(RF.least_volume(z2)) < float(RF.least_volume(z))
