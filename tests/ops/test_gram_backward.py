"""The custom-backward ops of ops/linalg.py: values against numpy loops, float64 gradcheck and
gradgradcheck on every route, and the route choice itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reglab.ops.linalg import (
    _uses_gram_route,
    gram_diag_offdiag_sq_sum,
    gram_offdiag_sq_sum,
    neg_sq_dist_logsumexp,
)


def ref_diag_offdiag(a, b):  # plain loops over the d×d cross-product
    a, b = np.asarray(a), np.asarray(b)
    n, d = a.shape
    c = [sum(a[k, i] * b[k, i] for k in range(n)) for i in range(d)]
    off = 0.0
    for i in range(d):
        for j in range(d):
            if i != j:
                off += sum(a[k, i] * b[k, j] for k in range(n)) ** 2
    return np.array(c), off


def ref_lse(z, scale, diagonal):
    z = np.asarray(z)
    n = len(z)
    vals = [-scale * float(((z[i] - z[j]) ** 2).sum()) for i in range(n) for j in range(n) if diagonal or i != j]
    m = max(vals)
    return m + math.log(sum(math.exp(v - m) for v in vals))


# (n, d): one matrix takes the Gram route iff n < d; two iff n < 0.75·d
SHAPES = [(3, 7), (5, 6), (6, 5), (8, 3)]


def test_route_choice():
    assert _uses_gram_route(3, 7, cross=True) and _uses_gram_route(3, 7, cross=False)
    assert not _uses_gram_route(5, 6, cross=True) and _uses_gram_route(5, 6, cross=False)
    assert not _uses_gram_route(6, 5, cross=True) and not _uses_gram_route(6, 5, cross=False)
    # the break-even: Grams win for n < 0.75·d (n = 1024, d = 2048 Gram; d = 128 cross)
    assert _uses_gram_route(1024, 2048, cross=True) and not _uses_gram_route(1024, 128, cross=True)


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("same", [False, True])
def test_values_match_loops(n, d, same):
    g = torch.Generator().manual_seed(n * 10 + d)
    a = torch.randn(n, d, generator=g, dtype=torch.float64)
    b = a if same else torch.randn(n, d, generator=g, dtype=torch.float64)
    c, off = gram_diag_offdiag_sq_sum(a, None if same else b)
    rc, roff = ref_diag_offdiag(a.numpy(), b.numpy())
    np.testing.assert_allclose(c.numpy(), rc, rtol=1e-12)
    assert float(off) == pytest.approx(roff, rel=1e-10)
    assert float(gram_offdiag_sq_sum(a, None if same else b)) == pytest.approx(roff, rel=1e-10)


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("same", [False, True])
@pytest.mark.parametrize("use", ["both", "diag", "off"])
def test_gradcheck_and_gradgradcheck(n, d, same, use):
    g = torch.Generator().manual_seed(1)
    a = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(d, generator=g, dtype=torch.float64)

    def f(a, b):
        c, off = gram_diag_offdiag_sq_sum(a, None if same else b)
        out = []
        if use in ("both", "diag"):
            out.append((w * c).sum() + c.pow(2).sum())
        if use in ("both", "off"):
            out.append(0.3 * off)
        return sum(out)

    assert torch.autograd.gradcheck(f, (a, b))
    assert torch.autograd.gradgradcheck(f, (a, b))


@pytest.mark.parametrize("n,d", [(3, 7), (8, 3)])
def test_one_input_needs_grad(n, d):
    a = torch.randn(n, d, dtype=torch.float64, requires_grad=True)
    b = torch.randn(n, d, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: gram_offdiag_sq_sum(a, b), (a,))
    gram_offdiag_sq_sum(a, b).backward()
    assert b.grad is None and a.grad is not None


@pytest.mark.parametrize("diagonal", [False, True])
@pytest.mark.parametrize("n,d", [(2, 3), (6, 4), (5, 9)])
def test_neg_sq_dist_logsumexp(n, d, diagonal):
    g = torch.Generator().manual_seed(n + d)
    z = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    val = neg_sq_dist_logsumexp(z, 1.7, diagonal=diagonal)
    assert float(val) == pytest.approx(ref_lse(z.detach().numpy(), 1.7, diagonal), rel=1e-12)
    assert torch.autograd.gradcheck(lambda z: neg_sq_dist_logsumexp(z, 1.7, diagonal=diagonal), (z,))
    assert torch.autograd.gradgradcheck(lambda z: neg_sq_dist_logsumexp(z, 1.7, diagonal=diagonal), (z,))


def test_neg_sq_dist_logsumexp_coincident_rows_gradient_is_that_of_the_true_distance():
    # identical rows: ‖z_i − z_j‖² has zero gradient there; the backward must not invent one
    z = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, -1.0]], dtype=torch.float64, requires_grad=True)
    neg_sq_dist_logsumexp(z, 1.0).backward()
    zz = z.detach().clone().requires_grad_()
    d2 = ((zz[:, None, :] - zz[None, :, :]) ** 2).sum(-1)
    mask = ~torch.eye(3, dtype=torch.bool)
    torch.logsumexp(-d2[mask], dim=0).backward()
    torch.testing.assert_close(z.grad, zz.grad)


@pytest.mark.parametrize("scale", [1.0, 1e-30, 1e25])
def test_normalize_rows_value_gradcheck_gradgradcheck(scale):
    from reglab.ops.linalg import normalize_rows

    g = torch.Generator().manual_seed(3)
    x = scale * torch.randn(5, 4, generator=g, dtype=torch.float64)
    x[2] = 0.0  # a zero row stays zero (clamped at eps)
    unit = x.numpy() / scale  # the norm at unit scale, then scaled: no under/overflow in the reference
    norms = np.array([math.sqrt(sum(v * v for v in row)) * scale for row in unit])[:, None]
    np.testing.assert_allclose(normalize_rows(x).numpy(), x.numpy() / np.maximum(norms, 1e-12), rtol=1e-12)
    xs = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(normalize_rows, (xs,))
    assert torch.autograd.gradgradcheck(normalize_rows, (xs,))


def test_normalize_rows_zero_row_gradient_is_that_of_the_clamp():
    from reglab.ops.linalg import normalize_rows

    z = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    normalize_rows(z).sum().backward()
    torch.testing.assert_close(z.grad, torch.full((1, 3), 1e12, dtype=torch.float64))
