"""Latent quantization (QLAE; Hsu et al., 2023), against a loop reference of the official QuantizedLatent."""

from __future__ import annotations

import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError


def ref_quantize(z, values):
    n, L = z.shape
    q = [[0.0] * L for _ in range(n)]
    for i in range(n):
        for j in range(L):
            row = [float(v) for v in values[j]]
            dists = [abs(float(z[i, j]) - v) for v in row]
            q[i][j] = row[dists.index(min(dists))]
    return torch.tensor(q, dtype=torch.float64)


def test_values_indices_and_losses():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 3, generator=g, dtype=torch.float64)
    values = torch.randn(3, 5, generator=g, dtype=torch.float64)
    out = RF.latent_quantization(z, values, quantization=0.3, commitment=0.7)
    q = ref_quantize(z, values)
    torch.testing.assert_close(out.z_hat, q)
    torch.testing.assert_close(torch.gather(values.T, 0, out.indices), q)
    mse = float(((z - q) ** 2).mean())
    assert float(out.quantization) == pytest.approx(mse) and float(out.commitment) == pytest.approx(mse)
    assert float(out.loss) == pytest.approx(mse)


def test_gradients_straight_through_and_split():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    values = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    out = RF.latent_quantization(z, values)
    torch.autograd.backward(out.z_hat.sum())
    assert torch.equal(z.grad, torch.ones_like(z)) and values.grad is None  # identity to z, nothing to the codebook
    z.grad = None
    out = RF.latent_quantization(z, values, quantization=1.0, commitment=0.0)
    out.loss.backward()
    assert z.grad is None or not z.grad.any()  # the quantization term moves only the codebook
    q = ref_quantize(z.detach(), values.detach())
    expected = torch.zeros_like(values)
    for i in range(4):
        for j in range(2):
            expected[j, out.indices[i, j]] += 2 * (q[i, j] - z[i, j].detach()) / 8
    torch.testing.assert_close(values.grad, expected)


def test_module_defaults_state_and_bad_input():
    lq = reglab.create("latent_quantization", num_latents=3)
    assert lq.values.shape == (3, 10)
    torch.testing.assert_close(lq.values[1], torch.linspace(-0.5, 0.5, 10))
    assert lq.values.requires_grad and lq.quantization == 0.01 and lq.commitment == 0.01
    assert not reglab.create("latent_quantization", num_latents=2, optimize_values=False).values.requires_grad
    with pytest.raises(RegularizerInputError, match="LatentQuantization.*codebook row"):
        lq(torch.randn(4, 2))
    with pytest.raises(RegularizerInputError, match="LatentQuantization.*NaN"):
        lq(torch.full((2, 3), float("nan")))
    with pytest.raises(RegularizerInputError, match="LatentQuantization.*num_values"):
        reglab.create("latent_quantization", num_latents=2, num_values=0)
