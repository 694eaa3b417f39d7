"""VICReg (Bardes, Ponce & LeCun, 2022) against a loop reference over dimensions and pairs."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
from reglab.core.registry import get

from ._naive import columns, cov_unbiased, var_unbiased


def ref_vicreg_terms(z1, z2, gamma=1.0, eps=1e-4):
    """(invariance, variance, covariance) as in the official code, by loops over lists."""
    n, d = len(z1), len(z1[0])
    inv = sum((z1[i][j] - z2[i][j]) ** 2 for i in range(n) for j in range(d)) / (n * d)

    def v(z):
        return sum(max(0.0, gamma - math.sqrt(var_unbiased(c) + eps)) for c in columns(z)) / d

    def c(z):
        cols = columns(z)
        return sum(cov_unbiased(cols[a], cols[b]) ** 2 for a in range(d) for b in range(d) if a != b) / d

    return inv, (v(z1) + v(z2)) / 2, c(z1) + c(z2)


def ref_vicreg(z1, z2):
    """The penalty with the paper's λ = μ = 25, ν = 1."""
    inv, var, cov = ref_vicreg_terms(z1.tolist(), z2.tolist())
    return 25 * inv + 25 * var + cov


REFERENCES = {"vicreg": ref_vicreg}


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(3)
    z1 = torch.randn(7, 5, generator=g, dtype=torch.float64)
    z2 = z1 + 0.5 * torch.randn(7, 5, generator=g, dtype=torch.float64)
    return z1, z2


def test_vicreg_matches_reference(pair):
    z1, z2 = pair
    inv, var, cov = ref_vicreg_terms(z1.tolist(), z2.tolist())
    t = reglab.create("vicreg").components(z1, z2)
    assert t._fields == ("invariance", "variance", "covariance")
    assert float(t.invariance) == pytest.approx(inv, rel=1e-10)
    assert float(t.variance) == pytest.approx(var, rel=1e-10)
    assert float(t.covariance) == pytest.approx(cov, rel=1e-10)
    assert float(reglab.create("vicreg").penalty(z1, z2)) == pytest.approx(25 * inv + 25 * var + cov, rel=1e-10)


def test_gradcheck_gram_route():
    # n < d: the covariance sums go through n×n Gram matrices
    reg = reglab.create("vicreg")
    z = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    z2 = (z.detach() + 0.3 * torch.randn(4, 7, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: reg.penalty(*a), (z, z2))


def test_vicreg_claims_point_to_lab_task():
    claims = get("vicreg").claims
    assert {c.metric for c in claims} == {"effective_rank", "linear_probe_accuracy"}
    assert all(c.task == "ssl_collapse" and c.direction == "higher" for c in claims)


def test_ssl_collapse_task_quick():
    from reglab.bench.tasks import get_task

    fn = get_task("ssl_collapse")
    base = fn(None, seed=0, quick=True)
    full = fn({"name": "vicreg"}, seed=0, quick=True)
    for r in (base, full):
        assert set(r.metrics) >= {"effective_rank", "linear_probe_accuracy"}
        assert len(r.curves["effective_rank"]) == 6 and r.step_seconds > 0
    assert 1.0 <= full.metrics["effective_rank"] <= 32.0
    assert full.metrics["linear_probe_accuracy"] > 0.5
