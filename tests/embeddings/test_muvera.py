import numpy as np
import pytest
import torch

import reglab
from reglab.embeddings.multivector import maxsim
from reglab.embeddings.muvera import fde


def unit_rows(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def ref_fde(points, query, R, k, seed, fill=False):
    """Plain loops over points and bits, written from the reference C++ (identity projection)."""
    n, d = points.shape
    out = np.zeros((R, 2**k, d))
    for r in range(R):
        g = np.random.default_rng(seed + r).standard_normal((d, k))
        sizes = np.zeros(2**k)
        signs = []
        for p in points:
            code = 0
            bits = [float(np.dot(p, g[:, j])) > 0 for j in range(k)]
            signs.append(bits)
            for bit in bits:
                code = (code << 1) + (int(bit) ^ (code & 1))
            out[r, code] += p
            sizes[code] += 1
        if not query:
            for b in range(2**k):
                if sizes[b]:
                    out[r, b] /= sizes[b]
                elif fill:
                    binary = b ^ (b >> 1)
                    target = [(binary >> (k - 1 - j)) & 1 for j in range(k)]
                    dist = [sum(int(s[j]) != target[j] for j in range(k)) for s in signs]
                    out[r, b] = points[int(np.argmin(dist))]
    return out.reshape(-1)


@pytest.mark.parametrize("query", [True, False])
@pytest.mark.parametrize("fill", [False, True])
def test_matches_loop_reference(query, fill):
    if query and fill:
        pytest.skip("filling is for documents only")
    x = unit_rows(np.random.default_rng(3).normal(size=(7, 5)))
    got = fde(x, query=query, num_repetitions=3, num_simhash_projections=3, seed=5, fill_empty_partitions=fill)
    np.testing.assert_allclose(got, ref_fde(x, query, 3, 3, 5, fill), rtol=1e-12, atol=1e-15)


def test_no_partitions_is_sum_against_mean():
    rng = np.random.default_rng(0)
    q, d = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    m = reglab.create("muvera", num_simhash_projections=0)
    assert float(m.transform(q, query=True) @ m.transform(d)) == pytest.approx(float(q.sum(0) @ d.mean(0)), rel=1e-12)


def test_gray_code_and_dimensions():
    m = reglab.create("muvera", num_repetitions=2, num_simhash_projections=3, projection_dimension=2)
    assert m.transform([np.eye(4)[:2], np.eye(4)]).shape == (2, 2 * 8 * 2)
    assert reglab.create("muvera", final_dimension=10).transform(np.eye(4)).shape == (10,)


def test_fde_inner_product_tracks_chamfer():
    # documents made of clustered token vectors; FDE scores rank them close to exact Chamfer
    rng = np.random.default_rng(0)
    topics = unit_rows(rng.normal(size=(40, 16)))
    docs = [unit_rows(topics[rng.choice(40, 4)][rng.integers(0, 4, 12)] + 0.1 * rng.normal(size=(12, 16))) for _ in range(60)]
    queries = [unit_rows(d[rng.choice(12, 4)] + 0.1 * rng.normal(size=(4, 16))) for d in docs[:20]]
    m = reglab.create("muvera", num_repetitions=20, num_simhash_projections=3, fill_empty_partitions=True)
    fd = m.transform(docs)
    mq = reglab.create("muvera", num_repetitions=20, num_simhash_projections=3)
    fq = mq.transform(queries, query=True)
    scores = fq @ fd.T
    exact = np.array([[maxsim(q, d) for d in docs] for q in queries])
    top_exact = exact.argmax(axis=1)
    # the exact top document is in the FDE top 5 for most queries (recall@5 of the Chamfer top-1)
    hits = [top_exact[i] in np.argsort(-scores[i])[:5] for i in range(len(queries))]
    assert np.mean(hits) >= 0.8
    rho = np.corrcoef(scores.reshape(-1), exact.reshape(-1))[0, 1]
    assert rho > 0.5


def test_torch_in_torch_out():
    out = reglab.create("muvera").transform([torch.randn(3, 4), torch.randn(2, 4)], query=True)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 16 * 4) and out.dtype == torch.float32


@pytest.mark.parametrize(
    "call, match",
    [(lambda: reglab.create("muvera", num_simhash_projections=31), "MUVERA expects num_simhash_projections"),
     (lambda: reglab.create("muvera", fill_empty_partitions=True).transform(np.ones((2, 3)), query=True), "documents only"),
     (lambda: reglab.create("muvera").transform([np.ones((2, 3)), np.ones((2, 4))]), "MUVERA expects every document"),
     (lambda: reglab.create("muvera").transform(np.full((2, 3), np.inf)), "MUVERA got NaN/inf"),
     (lambda: reglab.create("muvera", projection_dimension=0), "MUVERA expects projection_dimension")],
)  # fmt: skip
def test_bad_input_is_named(call, match):
    with pytest.raises(reglab.RegularizerInputError, match=match):
        call()
