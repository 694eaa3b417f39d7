import numpy as np
import pytest
import torch

import reglab
from reglab.embeddings.multivector import maxsim
from reglab.embeddings.token_pooling import pool_tokens

scipy_h = pytest.importorskip("scipy.cluster.hierarchy")


def unit_rows(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def ref_pool(tokens, pool_factor, protected):
    """The reference procedure, written out: Ward on the rows of 1 − cos, maxclust, cluster means, protected last."""
    keep, rest = tokens[:protected], tokens[protected:]
    s = np.array([[1.0 - float(np.dot(a, b)) for b in rest] for a in rest])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = scipy_h.fcluster(scipy_h.linkage(s, method="ward"), t=max(len(rest) // pool_factor, 1), criterion="maxclust")
    out = []
    for c in range(1, max(len(rest) // pool_factor, 1) + 1):
        members = [rest[i] for i in range(len(rest)) if labels[i] == c]
        if members:
            out.append(np.mean(members, axis=0))
    return np.array(out + list(keep))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("pool_factor, protected", [(2, 1), (3, 0), (4, 2)])
def test_matches_reference(seed, pool_factor, protected):
    x = unit_rows(np.random.default_rng(seed).normal(size=(13, 6)))
    np.testing.assert_allclose(pool_tokens(x, pool_factor, protected), ref_pool(x, pool_factor, protected), rtol=1e-12)


def test_sheet_example_shape_and_unnormalized_means():
    x = unit_rows(np.random.default_rng(0).normal(size=(6, 4)))
    out = reglab.create("token_pooling", protected_tokens=0).transform(x)
    assert out.shape[0] <= 3
    norms = np.linalg.norm(out, axis=1)
    assert (norms <= 1 + 1e-12).all() and (norms < 1 - 1e-6).any()  # means of unit vectors, not re-normalized


def test_redundant_tokens_pool_with_little_maxsim_loss():
    rng = np.random.default_rng(1)
    centres = unit_rows(rng.normal(size=(8, 16)))
    doc = unit_rows(np.repeat(centres, 4, axis=0) + 0.05 * rng.normal(size=(32, 16)))  # 4 near-copies of 8 tokens
    query = unit_rows(centres[:3] + 0.1 * rng.normal(size=(3, 16)))
    pooled = reglab.create("token_pooling", pool_factor=4, protected_tokens=0).transform(doc)
    assert pooled.shape[0] == 8
    assert maxsim(query, pooled) == pytest.approx(maxsim(query, doc), rel=0.03)


def test_list_in_list_out_torch_in_torch_out_and_protected_rows_kept():
    docs = [torch.nn.functional.normalize(torch.randn(n, 8), dim=1) for n in (10, 3, 1)]
    out = reglab.create("token_pooling").transform(docs)
    assert isinstance(out, list) and all(isinstance(o, torch.Tensor) for o in out)
    assert [o.shape[0] for o in out] == [5, 2, 1]
    torch.testing.assert_close(out[0][-1], docs[0][0])  # the protected [CLS]/[D] row, appended last
    assert reglab.create("token_pooling", pool_factor=1).transform(docs[0]).shape == (10, 8)


@pytest.mark.parametrize(
    "call, match",
    [(lambda t: t.transform([np.ones((3, 4)), np.ones((3, 5))]), "TokenPooling expects every document's tokens in one"),
     (lambda t: t.transform(np.ones((3, 4), dtype=np.int64)), "TokenPooling expects floating-point"),
     (lambda t: t.transform(np.full((3, 4), np.nan)), "TokenPooling got NaN"),
     (lambda t: t.transform([]), "TokenPooling got an empty list"),
     (lambda t: t.transform(np.ones(4)), r"TokenPooling expects an \(n_tokens, d\) matrix"),
     (lambda t: reglab.create("token_pooling", pool_factor=0), "TokenPooling expects pool_factor")],
)  # fmt: skip
def test_bad_input_is_named(call, match):
    with pytest.raises(reglab.RegularizerInputError, match=match):
        call(reglab.create("token_pooling"))
