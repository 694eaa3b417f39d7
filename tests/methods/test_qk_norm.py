"""QK-norm (FiTv2) against a numpy per-head reference; the paper sheet's numeric example."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reglab
from reglab import RegularizerInputError
from reglab.methods.qk_norm import qk_norm


def ref_layernorm(x, eps=1e-6, w=None):
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    out = (x - mu) / np.sqrt(var + eps)
    return out if w is None else out * w


def ref_rmsnorm(x, eps=1e-6, w=None):
    x = np.asarray(x, dtype=np.float64)
    out = x / np.sqrt((x**2).mean(-1, keepdims=True) + eps)
    return out if w is None else out * w


@pytest.mark.parametrize("norm,ref", [("layernorm", ref_layernorm), ("rmsnorm", ref_rmsnorm)])
def test_values_per_head(norm, ref):
    g = torch.Generator().manual_seed(0)
    q = 3 * torch.randn(2, 4, 5, 8, generator=g, dtype=torch.float64)
    k = 3 * torch.randn(2, 4, 7, 8, generator=g, dtype=torch.float64)
    qh, kh = qk_norm(q, k, norm=norm)
    np.testing.assert_allclose(qh.numpy(), ref(q.numpy()), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(kh.numpy(), ref(k.numpy()), rtol=1e-10, atol=1e-12)
    w = torch.linspace(0.5, 2.0, 8, dtype=torch.float64)
    qh, _ = qk_norm(q, k, norm=norm, q_weight=w, k_weight=w)
    np.testing.assert_allclose(qh.numpy(), ref(q.numpy(), w=w.numpy()), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_gradcheck(norm):
    q = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.rand(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: qk_norm(a, b, norm=norm, q_weight=c, k_weight=c), (q, k, w))


def test_sheet_example_bounds_the_logits():
    """qk-norm.md: N=3, D_h=4, q,k ~ 5·N(0,1): raw max |logit| is large, with QK-LayerNorm ≤ √D_h."""
    rng = np.random.default_rng(0)
    q = torch.from_numpy(5 * rng.standard_normal((3, 4)))
    k = torch.from_numpy(5 * rng.standard_normal((3, 4)))
    qh, kh = reglab.QKNorm()(q, k)
    logits = (qh @ kh.T) / 2.0
    assert float(logits.abs().max()) <= 2.0 + 1e-9
    assert float(((q @ k.T) / 2.0).abs().max()) > 10 * float(logits.abs().max())


def test_module_affine_parameters_train_and_round_trip():
    m = reglab.QKNorm(head_dim=4, affine=True)
    assert [n for n, _ in m.named_parameters()] == ["q_weight", "k_weight"]
    q, k = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    (m(q, k)[0].sum() * 0 + m(q, k)[0].pow(2).sum()).backward()
    assert m.q_weight.grad is not None and m.k_weight.grad is None
    again = reglab.from_config(m.get_config())
    again.load_state_dict(m.state_dict())
    assert reglab.QKNorm().q_weight is None


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="QKNorm.*head dimension"):
        qk_norm(torch.randn(2, 3, 4), torch.randn(2, 3, 5))
    with pytest.raises(RegularizerInputError, match="QKNorm.*norm"):
        reglab.QKNorm(norm="batchnorm")
    with pytest.raises(RegularizerInputError, match="QKNorm.*head_dim"):
        reglab.QKNorm(affine=True)
    with pytest.raises(RegularizerInputError, match="QKNorm.*NaN|QKNorm.*finite"):
        qk_norm(torch.full((2, 3), float("nan")), torch.randn(2, 3))
    with pytest.raises(RegularizerInputError, match="QKNorm.*q_weight"):
        qk_norm(torch.randn(2, 3), torch.randn(2, 3), q_weight=torch.ones(4))
