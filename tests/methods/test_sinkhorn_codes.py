import numpy as np
import pytest
import torch

import reglab
from reglab.methods.sinkhorn_codes import sinkhorn_codes


def ref_sinkhorn_codes(e, codebook, eps=0.003, iters=100):
    """numpy, written from the paper's constrained clustering as RepCONC's script runs it."""
    e, c = np.asarray(e, dtype=np.float64), np.asarray(codebook, dtype=np.float64)
    m, k, sub = c.shape
    b = e.shape[0]
    codes = np.zeros((b, m), dtype=np.int64)
    for j in range(m):
        d = np.array([[((e[i, j * sub:(j + 1) * sub] - c[j, kk]) ** 2).sum() for kk in range(k)] for i in range(b)])
        hi, lo = d.max(), d.min()
        mid = (hi + lo) / 2
        d = (d - mid) / (hi - mid + 1e-5)
        q = np.exp(-d.T / eps)  # K × B
        q /= q.sum()
        for _ in range(iters):
            q /= q.sum(axis=1, keepdims=True)
            q /= k
            q /= q.sum(axis=0, keepdims=True)
            q /= b
        codes[:, j] = q.argmax(axis=0)
    return codes


@pytest.mark.parametrize("seed", range(3))
def test_matches_reference(seed):
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(24, 6, generator=g, dtype=torch.float64)
    c = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    for eps in (0.003, 0.3):
        got = sinkhorn_codes(e, c, epsilon=eps)
        np.testing.assert_array_equal(got.numpy(), ref_sinkhorn_codes(e.numpy(), c.numpy(), eps))


def test_codes_are_balanced_where_nearest_centroid_collapses():
    g = torch.Generator().manual_seed(0)
    e = torch.randn(64, 4, generator=g) + torch.tensor([3.0, 0.0, 0.0, 0.0])  # every point nearest centroid 0
    c = torch.tensor([[[3.0, 0.0, 0.0, 0.0], [-3.0, 0.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0], [0.0, -3.0, 0.0, 0.0]]])
    nearest = sinkhorn_codes(e, c, iters=0)
    assert torch.bincount(nearest[:, 0], minlength=4).max() >= 50
    balanced = sinkhorn_codes(e, c)
    counts = torch.bincount(balanced[:, 0], minlength=4)
    assert counts.min() >= 8 and counts.max() <= 24  # near 64/4 = 16 each (argmax of a balanced plan)


def test_module_shape_dtype_and_no_gradient():
    e = torch.randn(10, 8, requires_grad=True)
    codes = reglab.create("sinkhorn_codes", epsilon=0.05)(e, torch.randn(4, 3, 2))
    assert codes.shape == (10, 4) and codes.dtype == torch.long and not codes.requires_grad


@pytest.mark.parametrize(
    "call, match",
    [(lambda: sinkhorn_codes(torch.randn(5, 7), torch.randn(2, 3, 3)), "SinkhornCodes expects embeddings of dimension"),
     (lambda: sinkhorn_codes(torch.randn(5, 6), torch.randn(6, 3)), "SinkhornCodes expects codebook with 3"),
     (lambda: sinkhorn_codes(torch.randn(0, 6), torch.randn(2, 3, 3)), "SinkhornCodes got an empty"),
     (lambda: sinkhorn_codes(torch.full((2, 6), float("nan")), torch.randn(2, 3, 3)), "SinkhornCodes got NaN"),
     (lambda: sinkhorn_codes(torch.randn(2, 6), torch.randn(2, 3, 3), epsilon=0), "SinkhornCodes")],
)  # fmt: skip
def test_bad_input_is_named(call, match):
    with pytest.raises(reglab.RegularizerInputError, match=match):
        call()
