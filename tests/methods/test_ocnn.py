"""OCNN conv orthogonality (Wang et al., 2020) against an explicit-loop self-correlation reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import reglab
from reglab import RegularizerInputError
from reglab.methods.ocnn import conv_orthogonality


def _self_correlation(k, stride, padding):
    """out[a, b, p…] = Σ_{c, u…} K[b, c, u…]·Kpad[a, c, p·s + u…] (conv of K, as a batch, by K): loops."""
    k = np.asarray(k, dtype=np.float64)
    o, i = k.shape[:2]
    sp = k.shape[2:]
    padded = np.pad(k, [(0, 0), (0, 0)] + [(padding, padding)] * len(sp))
    out_sp = [(s + 2 * padding - s) // stride + 1 for s in sp]
    out = np.zeros((o, o, *out_sp))
    for a, b in itertools.product(range(o), range(o)):
        for p in itertools.product(*[range(n) for n in out_sp]):
            acc = 0.0
            for c in range(i):
                for u in itertools.product(*[range(s) for s in sp]):
                    acc += k[b, c][u] * padded[a, c][tuple(pp * stride + uu for pp, uu in zip(p, u))]
            out[(a, b, *p)] = acc
    return out


def ref_conv_orthogonality(w, stride=1, padding=1):
    w = np.asarray(w.detach(), dtype=np.float64)
    if w.ndim == 2 or all(s == 1 for s in w.shape[2:]):
        m = w.reshape(w.shape[0], -1)
        if m.shape[0] < m.shape[1]:
            m = m.T
        return float(np.linalg.norm(m.T @ m - np.eye(m.shape[1])))
    out = _self_correlation(w, stride, padding)
    target = np.zeros_like(out)
    centre = tuple(s // 2 for s in out.shape[2:])
    for a in range(w.shape[0]):
        target[(a, a, *centre)] = 1.0
    return float(np.linalg.norm(out - target))


REFERENCES = {"conv_orthogonality": ref_conv_orthogonality}


@pytest.mark.parametrize("shape", [(4, 3, 3, 3), (3, 2, 3), (2, 2, 3, 3, 3), (5, 4), (6, 3, 1, 1)])
@pytest.mark.parametrize("stride", [1, 2])
def test_matches_loop_reference(shape, stride):
    w = torch.randn(shape, dtype=torch.float64)
    got = conv_orthogonality(w, stride=stride)
    assert got.item() == pytest.approx(ref_conv_orthogonality(w, stride), rel=1e-10)


def test_padding_2_is_the_full_condition_and_delta_kernel_is_orthogonal():
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    assert conv_orthogonality(w, padding=2).item() == pytest.approx(ref_conv_orthogonality(w, 1, 2), rel=1e-10)
    # a delta kernel with an orthogonal centre (out ≤ in) is an orthogonal convolution: zero penalty
    q = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))[0][:3]
    k = torch.zeros(3, 4, 3, 3, dtype=torch.float64)
    k[:, :, 1, 1] = q
    assert conv_orthogonality(k, padding=2).item() < 1e-12


def test_gradcheck():
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: conv_orthogonality(t, stride=2), (w,))


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="(?i)convorthogonality.*stride"):
        reglab.ConvOrthogonality(stride=0)
    with pytest.raises(RegularizerInputError, match="conv_orthogonality"):
        conv_orthogonality(torch.randn(4))
