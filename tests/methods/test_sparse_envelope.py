"""Sparse envelope function (half squared k-support norm) against the sorted-search formula and its
prox against a generic numerical minimizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._weights import bad_weights, check_list_matches_references, prox, rand


def ksupport_norm(w, k):
    """Argyriou et al. 2012, Prop. 2.1, by an explicit search over r (the wgsef.md sheet's loop)."""
    z = np.sort(np.abs(np.asarray(w, dtype=float).ravel()))[::-1]
    if k >= z.size:
        return float(np.sqrt((z**2).sum()))
    for r in range(k):
        head, tail = z[: k - r - 1], z[k - r - 1:]
        t = tail.sum()
        left = np.inf if k - r - 1 == 0 else z[k - r - 2]
        if left > t / (r + 1) >= z[k - r - 1]:
            return float(np.sqrt((head**2).sum() + t**2 / (r + 1)))
    raise AssertionError("no r found")


def ref_sparse_envelope(w, k=1):
    return 0.5 * ksupport_norm(w.detach().numpy(), k) ** 2


REFERENCES = {"sparse_envelope": ref_sparse_envelope}


def test_sheet_vector():
    w = torch.tensor([0.12573, -0.132105, 0.640423, 0.1049, -0.535669, 0.361595], dtype=torch.float64)
    got = [RF.sparse_envelope(w, k).item() for k in (1, 2, 3, 6)]
    assert got == pytest.approx([1.805802, 0.902901, 0.601970, 0.436049], abs=2e-6)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 12, 40])
def test_matches_reference_and_limits(k):
    w = rand((4, 3))
    assert RF.sparse_envelope(w, k).item() == pytest.approx(ref_sparse_envelope(w, k), rel=1e-12)
    if k == 1:
        assert RF.sparse_envelope(w, 1).item() == pytest.approx(0.5 * w.abs().sum().item() ** 2)
    if k >= 12:
        assert RF.sparse_envelope(w, k).item() == pytest.approx(0.5 * w.pow(2).sum().item())


def test_list_equals_sum_of_references():
    check_list_matches_references(reglab.SparseEnvelope(k=3), lambda w: ref_sparse_envelope(w, 3))


def test_gradcheck():
    w = rand((3, 4), away_from_zero=True).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: RF.sparse_envelope(x, 3), (w,))


@pytest.mark.parametrize("k,t", [(1, 0.2), (2, 0.5), (3, 0.1), (3, 2.0), (6, 0.3)])
def test_prox_matches_numerical_minimizer(k, t):
    g = torch.Generator().manual_seed(k * 10 + int(10 * t))
    v = torch.randn(6, dtype=torch.float64, generator=g)
    u = prox(reglab.SparseEnvelope(k=k), v, t).numpy()
    vn = v.numpy()

    def f(x):
        return 0.5 * ((x - vn) ** 2).sum() + t * 0.5 * ksupport_norm(x, k) ** 2

    best = None
    for start in (vn, vn / (1 + t), np.zeros(6), u + 0.05):
        res = minimize(f, start, method="Powell", options={"xtol": 1e-10, "ftol": 1e-14, "maxiter": 20000})
        best = res if best is None or res.fun < best.fun else best
    assert f(u) <= best.fun + 1e-9
    np.testing.assert_allclose(u, best.x, atol=2e-4)


def test_prox_zeroes_the_small_entries_and_keeps_signs():
    v = torch.tensor([3.0, -0.01, 0.02, -2.0, 0.005], dtype=torch.float64)
    u = prox(reglab.SparseEnvelope(k=2), v, 0.5)
    assert (u[[1, 2, 4]] == 0).all()
    assert u[0] > 0 > u[3]
    torch.testing.assert_close(prox(reglab.SparseEnvelope(k=9), v, 0.5), v / 1.5)  # k ≥ d: ridge prox


def test_bad_input():
    for x in bad_weights(matrix=False):
        with pytest.raises(RegularizerInputError, match="sparse_envelope"):
            RF.sparse_envelope(x)
    with pytest.raises(RegularizerInputError, match="SparseEnvelope expects k"):
        reglab.SparseEnvelope(k=0)
