"""LVQ (Aguerrebere et al., 2023; SVS codec.h) against plain-numpy loops and the sheet's test vector."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

import reglab
from reglab.embeddings.base import NotFittedError
from reglab.embeddings.lvq import LVQ, LVQCodes, pack_bits, unpack_bits


def ref_lvq(x, mu, bits, residual_bits=0):
    """One vector, loops: MinRange then ResidualEncoder as in SVS (std::round = half away from zero)."""
    xc = [float(np.float32(a) - np.float32(m)) for a, m in zip(x, mu)]
    lo, hi = min(xc), max(xc)
    maxs = 2**bits - 1
    comp = np.float32(maxs) / np.float32(hi - lo) if hi != lo else np.float32(1)
    codes = [min(max(math.floor(float(comp * np.float32(v - lo)) + 0.5), 0), maxs) for v in xc]
    delta = float(np.float16((hi - lo) / maxs if hi != lo else 1.0))
    bias = float(np.float16(lo))
    xhat = [delta * c + bias for c in codes]
    res = []
    if residual_bits:
        step = delta / 2**residual_bits
        for v, h in zip(xc, xhat):
            t = (v - h) / step
            r = math.copysign(math.floor(abs(t) + 0.5), t)
            res.append(int(min(max(r, -(2 ** (residual_bits - 1))), 2 ** (residual_bits - 1) - 1)))
        xhat = [h + step * r for h, r in zip(xhat, res)]
    return codes, delta, bias, res, [h + m for h, m in zip(xhat, mu)]


def sheet_x():
    rng = np.random.default_rng(0)
    return rng.standard_normal((5, 8)).astype(np.float32)


def test_sheet_test_vector():
    X = sheet_x()
    x = X[0] - X.mean(0)
    np.testing.assert_allclose(
        x, [0.201334, 0.083689, 0.660435, -0.019577, 0.284488, 0.041625, 1.470550, 0.576965], atol=1e-6
    )
    t4 = LVQ(bits=4).fit(X)
    c4 = t4.encode(X)
    assert c4.codes()[0].tolist() == [2, 1, 7, 0, 3, 1, 15, 6]
    assert float(c4.scale[0]) == pytest.approx(0.099365, abs=1e-6) and float(c4.bias[0]) == pytest.approx(-0.019577, abs=1e-6)
    assert c4.scale.dtype == np.float16 and c4.bias.dtype == np.float16
    errs = {}
    for key, (b1, b2) in {"4": (4, 0), "8": (8, 0), "4x8": (4, 8)}.items():
        errs[key] = float(np.linalg.norm(X[0] - LVQ(b1, b2).fit(X).transform(X)[0]))
    assert errs["4"] == pytest.approx(0.047340, abs=2e-6)
    assert errs["8"] == pytest.approx(0.004163, abs=2e-6)
    assert errs["4x8"] == pytest.approx(0.000210, abs=2e-6)


@pytest.mark.parametrize("bits,residual_bits", [(8, 0), (4, 0), (4, 4), (4, 8), (3, 2), (1, 0)])
def test_matches_loop_reference(bits, residual_bits):
    rng = np.random.default_rng(bits * 10 + residual_bits)
    X = (rng.standard_normal((12, 7)) * [3, 1, 0.5, 2, 1, 1, 0.1] + 5).astype(np.float32)
    t = LVQ(bits, residual_bits).fit(X)
    mu = X.astype(np.float64).mean(0).astype(np.float32)
    codes = t.encode(X)
    out = t.transform(X)
    for i in range(len(X)):
        c, delta, bias, res, xhat = ref_lvq(X[i].tolist(), mu.tolist(), bits, residual_bits)
        assert codes.codes()[i].tolist() == c
        assert float(codes.scale[i]) == delta and float(codes.bias[i]) == bias
        if residual_bits:
            assert codes.residual_codes()[i].tolist() == res
        np.testing.assert_allclose(out[i], xhat, rtol=0, atol=1e-5)


@pytest.mark.parametrize("bits,residual_bits,d,expected", [(8, 0, 384, 388), (4, 0, 384, 196), (4, 4, 384, 388), (4, 8, 7, 4 + 4 + 7), (3, 0, 5, 2 + 4)])
def test_bytes_per_vector_exact(bits, residual_bits, d, expected):
    X = np.random.default_rng(0).standard_normal((6, d)).astype(np.float32)
    t = LVQ(bits, residual_bits).fit(X)
    codes = t.encode(X)
    assert codes.bytes_per_vector == t.bytes_per_vector == expected
    assert codes.nbytes == len(X) * expected  # what is actually held
    assert t.mean_nbytes == 4 * d


def test_pack_unpack_round_trip():
    rng = np.random.default_rng(1)
    for bits in range(1, 9):
        c = rng.integers(0, 2**bits, size=(5, 13)).astype(np.uint8)
        packed = pack_bits(c, bits)
        assert packed.shape == (5, math.ceil(13 * bits / 8))
        np.testing.assert_array_equal(unpack_bits(packed, bits, 13), c)


def test_inner_product_on_codes_equals_decoded():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((50, 16)).astype(np.float32)
    Q = rng.standard_normal((9, 16)).astype(np.float32)
    for b1, b2 in [(8, 0), (4, 4)]:
        t = LVQ(b1, b2).fit(X)
        codes = t.encode(X)
        np.testing.assert_allclose(t.inner_product(Q, codes), Q @ t.decode(codes).T, rtol=1e-5, atol=1e-5)
        if b2:  # level 1 only: the residual is ignored
            np.testing.assert_allclose(t.inner_product(Q, codes, level=1), Q @ t.decode(codes, level=1).T, rtol=1e-5, atol=1e-5)
            assert not np.allclose(t.decode(codes, level=1), t.decode(codes))


def test_more_bits_reconstruct_better():
    X = np.random.default_rng(3).standard_normal((200, 32)).astype(np.float32)
    err = {k: float(np.linalg.norm(X - LVQ(*k).fit(X).transform(X))) for k in [(2, 0), (4, 0), (8, 0), (4, 4), (4, 8)]}
    assert err[(2, 0)] > err[(4, 0)] > err[(4, 4)] > err[(4, 8)]
    assert err[(4, 0)] > err[(8, 0)]


def test_types_and_estimator_api():
    X = np.random.default_rng(4).standard_normal((30, 6))
    t = LVQ(4)
    out = t.fit_transform(X)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == X.shape
    tt = t.transform(torch.from_numpy(X).float())
    assert isinstance(tt, torch.Tensor) and tt.dtype == torch.float32
    np.testing.assert_allclose(tt.numpy(), out, atol=1e-6)
    v = t.transform(X[0])
    assert v.shape == (6,)
    dec = t.decode(t.encode(X), like=torch.zeros(1, 6, dtype=torch.float64))
    assert isinstance(dec, torch.Tensor) and dec.dtype == torch.float64
    c = clone(LVQ(bits=4, residual_bits=4))
    assert c.get_params() == {"bits": 4, "residual_bits": 4}
    again = reglab.from_config(t.get_config())
    again.load_state_dict(t.state_dict())
    np.testing.assert_array_equal(again.transform(X), out)
    assert isinstance(pickle.loads(pickle.dumps(t.encode(X))), LVQCodes)
    assert reglab.core.registry.get("lvq").kind == "embedding"


def test_constant_vector_and_bad_inputs():
    X = np.zeros((4, 5), dtype=np.float32)
    X[1:] = np.random.default_rng(5).standard_normal((3, 5))
    t = LVQ(4).fit(X)
    const = np.full((1, 5), 0.0, dtype=np.float32) + t.state_dict()["mean"].numpy().astype(np.float32)
    codes = t.encode(const)
    assert float(codes.scale[0]) == 1.0  # Δ = 1 when u = l, as SVS
    np.testing.assert_allclose(t.decode(codes), const, atol=1e-6)
    for bad in (0, 9, 2.5, True):
        with pytest.raises(reglab.RegularizerInputError, match="LVQ expects bits"):
            LVQ(bits=bad)
    with pytest.raises(reglab.RegularizerInputError, match="LVQ expects residual_bits"):
        LVQ(residual_bits=-1)
    with pytest.raises(NotFittedError, match="not fitted"):
        LVQ().encode(X)
    with pytest.raises(reglab.RegularizerInputError, match=r"LVQ was fitted on 5-dimensional"):
        t.encode(X[:, :4])
    nan = X.copy()
    nan[2, 1] = np.nan
    with pytest.raises(reglab.RegularizerInputError, match=r"LVQ got NaN/inf in 1 row.*rows 2"):
        t.encode(nan)
    with pytest.raises(reglab.RegularizerInputError, match=r"LVQ got NaN/inf"):
        t.transform(nan)
    with pytest.raises(reglab.RegularizerInputError, match="float16"):
        t.encode(X * 1e6)
    with pytest.raises(reglab.RegularizerInputError, match="LVQ expects LVQCodes"):
        t.decode(X)
