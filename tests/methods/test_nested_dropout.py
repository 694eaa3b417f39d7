"""Nested dropout (Chen et al., 2021), against the official GaussianDist and truncation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError


def gaussian_dist(mu, std, n):  # nested/train_resnet.py's GaussianDist, written again with numpy
    dist = np.array([math.exp(-(((i - mu) / std) ** 2)) for i in range(1, n + 1)])
    return dist / dist.sum()


def test_distribution_matches_official():
    for sigma, mu, d in ((10.0, 0.0, 64), (100.0, 0.0, 512), (3.0, 5.0, 20)):
        got = RF.nested_probabilities(d, sigma, mu).numpy()
        np.testing.assert_allclose(got, gaussian_dist(mu, sigma, d), rtol=1e-12)


def test_keeps_a_prefix_and_samples_k_from_the_distribution():
    d, sigma = 12, 4.0
    x = torch.ones(3, d, 2)
    counts = np.zeros(d)
    g = torch.Generator().manual_seed(0)
    for _ in range(4000):
        out = RF.nested_dropout(x, sigma=sigma, generator=g)
        kept = out[0, :, 0]
        k = int(kept.sum())
        assert torch.equal(kept, (torch.arange(d) < k).float())  # the first k units, unscaled
        assert torch.equal(out[1], out[0]) and torch.equal(out[2], out[0])  # one k for the whole batch
        counts[k - 1] += 1
    np.testing.assert_allclose(counts / counts.sum(), gaussian_dist(0.0, sigma, d), atol=0.025)


def test_eval_is_identity_and_module_follows_mode():
    layer = reglab.create("nested_dropout", sigma=2.0)
    x = torch.randn(5, 30)
    assert not torch.equal(layer(x, generator=torch.Generator().manual_seed(1)), x)
    layer.eval()
    assert torch.equal(layer(x), x)


def test_gradient_flows_to_kept_units_only():
    x = torch.randn(4, 10, requires_grad=True)
    out = RF.nested_dropout(x, sigma=3.0, generator=torch.Generator().manual_seed(2))
    out.sum().backward()
    k = int((out[0] != 0).sum())
    assert torch.equal(x.grad[0], (torch.arange(10) < k).float())


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="NestedDropout.*features"):
        RF.nested_dropout(torch.randn(5))
    with pytest.raises(RegularizerInputError, match="NestedDropout.*sigma"):
        reglab.create("nested_dropout", sigma=0.0)
