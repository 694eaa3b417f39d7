"""Pseudo-quantization noise (QuantNAS) against a plain re-draw of the official quant_noise recipe."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError


def ref_noise(x, bits, distribution, seed):
    """QuantNAS quant_noise (On-Point-RND/QuantNAS sr_models/quant_conv_lsq.py): range·1/(2^b − 1)·ξ,
    drawn from the same generator state, by plain Python arithmetic on the flat values."""
    g = torch.Generator().manual_seed(seed)
    flat = x.flatten().tolist()
    rng = max(flat) - min(flat)
    unit = 1.0 / (2**bits - 1)
    if distribution == "gaussian":
        xi = (torch.randn(x.shape, generator=g, dtype=x.dtype) / 2).flatten().tolist()
    else:
        xi = (torch.rand(x.shape, generator=g, dtype=x.dtype) - 0.5).flatten().tolist()
    return torch.tensor([v + rng * unit * e for v, e in zip(flat, xi)], dtype=x.dtype).reshape(x.shape)


@pytest.mark.parametrize("distribution", ["gaussian", "uniform"])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_matches_reference(bits, distribution):
    x = torch.randn(5, 7, dtype=torch.float64)
    got = RF.pseudo_quantization_noise(x, bits, distribution, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(got, ref_noise(x, bits, distribution, 11))


def test_uniform_noise_within_half_a_step_and_scale():
    x = torch.linspace(-1, 3, 2001, dtype=torch.float64)  # range 4
    step = 4.0 / (2**3 - 1)
    d = RF.pseudo_quantization_noise(x, 3, "uniform", generator=torch.Generator().manual_seed(0)) - x
    assert d.abs().max() <= step / 2
    assert d.std().item() == pytest.approx(step / 12**0.5, rel=0.1)
    g = RF.pseudo_quantization_noise(x, 3, "gaussian", generator=torch.Generator().manual_seed(0)) - x
    assert g.std().item() == pytest.approx(step / 2, rel=0.1)


def test_gradient_is_identity_and_eval_is_identity():
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 6, dtype=torch.float64)
    (RF.pseudo_quantization_noise(x, 2) * w).sum().backward()
    torch.testing.assert_close(x.grad, w)
    m = reglab.PseudoQuantizationNoise(bits=4).eval()
    assert m(x) is x
    assert RF.pseudo_quantization_noise(x, 4, training=False) is x


def test_as_weight_parametrization():
    torch.manual_seed(0)
    layer = nn.Linear(6, 3)
    clean = layer.weight.detach().clone()
    parametrize.register_parametrization(layer, "weight", reglab.PseudoQuantizationNoise(bits=2))
    noisy = layer.weight.detach()
    assert not torch.equal(noisy, clean)
    torch.testing.assert_close(layer.parametrizations.weight.original.detach(), clean)
    layer.eval()
    torch.testing.assert_close(layer.weight.detach(), clean)


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="PseudoQuantizationNoise"):
        RF.pseudo_quantization_noise(torch.tensor([1.0, float("nan")]))
    with pytest.raises(RegularizerInputError, match="PseudoQuantizationNoise"):
        RF.pseudo_quantization_noise(torch.arange(4))
    with pytest.raises(RegularizerInputError, match="PseudoQuantizationNoise"):
        RF.pseudo_quantization_noise([1.0, 2.0])
    with pytest.raises(RegularizerInputError, match="PseudoQuantizationNoise"):
        reglab.PseudoQuantizationNoise(bits=0)
    with pytest.raises(RegularizerInputError, match="PseudoQuantizationNoise"):
        reglab.PseudoQuantizationNoise(distribution="laplace")
