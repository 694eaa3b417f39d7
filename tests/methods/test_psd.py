"""PSD: the loss against plain loops, the FISTA code against the lasso optimality conditions, gradients."""

from __future__ import annotations

import pytest
import torch

import reglab
from reglab.methods.psd import psd, psd_code

from ._reference import Reference


def ref_psd(x, z, rec, pred, lam=1.0, beta=1.0):
    total = 0.0
    for xi, zi, ri, pi in zip(x.tolist(), z.tolist(), rec.tolist(), pred.tolist()):
        total += sum((a - b) ** 2 for a, b in zip(xi, ri))
        total += lam * sum(abs(a) for a in zi)
        total += beta * sum((a - b) ** 2 for a, b in zip(zi, pi))
    return total / len(x)


def inputs(g):
    x = torch.randn(6, 9, generator=g, dtype=torch.float64)
    z = torch.randn(6, 4, generator=g, dtype=torch.float64)
    d = torch.randn(9, 4, generator=g, dtype=torch.float64)
    return x, z, z @ d.T, torch.tanh(torch.randn(6, 4, generator=g, dtype=torch.float64))


REFERENCES = {"psd": Reference(ref_psd, inputs=inputs)}


def test_psd_matches_loops_with_hyperparameters():
    x, z, rec, pred = inputs(torch.Generator().manual_seed(1))
    got = reglab.create("psd", sparsity=0.3, beta=2.5)(x, z, rec, pred)
    assert float(got) == pytest.approx(ref_psd(x, z, rec, pred, 0.3, 2.5), rel=1e-12)
    one = psd(x[0], z[0], rec[0], pred[0], sparsity=0.3, beta=2.5)
    assert float(one) == pytest.approx(ref_psd(x[:1], z[:1], rec[:1], pred[:1], 0.3, 2.5), rel=1e-12)


def test_gradcheck_float64():
    x, z, rec, pred = inputs(torch.Generator().manual_seed(2))
    z = z + 0.1 * z.sign()  # away from the kink of |z|
    args = [t.clone().requires_grad_() for t in (x, z, rec, pred)]
    assert torch.autograd.gradcheck(lambda *a: psd(*a, sparsity=0.7, beta=1.3), args)


def test_encoder_gradient_is_beta_times_prediction_error():
    x, z, rec, pred = inputs(torch.Generator().manual_seed(3))
    pred = pred.clone().requires_grad_()
    psd(x, z, rec, pred, beta=0.5).backward()
    torch.testing.assert_close(pred.grad, 0.5 * 2 * (pred.detach() - z) / x.shape[0])


def test_code_satisfies_lasso_optimality():
    """z* minimises ‖x − Dz‖² + λ‖z‖₁: 2Dᵀ(x − Dz) = λ·sign(z) where z ≠ 0, |·| ≤ λ where z = 0."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 8, generator=g, dtype=torch.float64)
    d = torch.randn(8, 6, generator=g, dtype=torch.float64)
    lam = 0.8
    z = psd_code(x, d, sparsity=lam, max_iter=20000, tol=0.0)
    assert (z == 0).any() and (z != 0).any()
    for i in range(5):
        for j in range(6):
            corr = 2 * sum(d[r][j].item() * (x[i][r].item() - sum(d[r][k].item() * z[i][k].item() for k in range(6)))
                           for r in range(8))
            if z[i][j] != 0:
                assert corr == pytest.approx(lam * (1 if z[i][j] > 0 else -1), abs=1e-7)
            else:
                assert abs(corr) <= lam + 1e-7
    torch.testing.assert_close(psd_code(x[0], d, sparsity=lam, max_iter=20000, tol=0.0), z[0])


def test_bad_input_is_named():
    x, z, rec, pred = inputs(torch.Generator().manual_seed(5))
    with pytest.raises(reglab.RegularizerInputError, match="PSD"):
        psd(x, z, rec[:, :3], pred)
    with pytest.raises(reglab.RegularizerInputError, match="PSD"):
        psd(x, z, rec, pred[:, :2])
    with pytest.raises(reglab.RegularizerInputError, match="PSD"):
        psd(x, z[:3], rec, pred[:3])
    with pytest.raises(reglab.RegularizerInputError, match="PSD"):
        psd_code(x, torch.randn(5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="PSD"):
        psd(x, z, rec, pred, beta=-1.0)
