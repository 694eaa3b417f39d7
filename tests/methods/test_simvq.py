import numpy as np
import pytest
import torch
from torch import nn

import reglab
from reglab.methods.simvq import simvq_quantize


def ref_simvq(z, basis, w, b, beta=0.25):
    """numpy: codebook = basis·Wᵀ + b, nearest code by squared distance, loss (β + 1)·mean((z_q − z)²) in value."""
    z, basis, w, b = (np.asarray(t.detach(), dtype=np.float64) for t in (z, basis, w, b))
    codebook = basis @ w.T + b
    idx = np.array([int(np.argmin([((row - c) ** 2).sum() for c in codebook])) for row in z])
    zq = codebook[idx]
    return idx, (beta + 1.0) * float(((zq - z) ** 2).mean()), zq


def test_matches_reference_values():
    g = torch.Generator().manual_seed(0)
    vq = reglab.create("simvq", num_codes=4, dim=3).double()
    z = torch.randn(7, 3, generator=g, dtype=torch.float64)
    out = vq(z)
    idx, loss, zq = ref_simvq(z, vq.basis, vq.proj.weight, vq.proj.bias)
    np.testing.assert_array_equal(out.indices.numpy(), idx)
    assert float(out.loss) == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(out.quantized.detach().numpy(), zq, rtol=1e-12)


def test_basis_is_a_frozen_buffer_with_variance_one_over_dim():
    torch.manual_seed(0)
    vq = reglab.create("simvq", num_codes=4096, dim=16)
    assert "basis" in dict(vq.named_buffers()) and "basis" not in dict(vq.named_parameters())
    assert float(vq.basis.var()) == pytest.approx(1 / 16, rel=0.05)
    assert sorted(n for n, _ in vq.named_parameters()) == ["proj.bias", "proj.weight"]


def test_gradient_routing_legacy_false():
    # the encoder term carries β, the codebook term 1 (the official configs' legacy=False)
    torch.manual_seed(1)
    vq = reglab.create("simvq", num_codes=5, dim=2, beta=0.25).double()
    z = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    out = vq(z)
    (gz,) = torch.autograd.grad(out.loss, z, retain_graph=True)
    zq = vq.codebook[out.indices].detach()
    torch.testing.assert_close(gz, 0.25 * 2 * (z.detach() - zq) / z.numel())
    # straight-through: the output's gradient passes to z unchanged
    (gout,) = torch.autograd.grad(out.quantized.sum(), z)
    torch.testing.assert_close(gout, torch.ones_like(z))


def test_unused_codes_still_move_unlike_a_plain_codebook():
    torch.manual_seed(2)
    vq = reglab.create("simvq", num_codes=16, dim=4).double()
    z = torch.randn(3, 4, dtype=torch.float64)
    out = vq(z)
    used = set(out.indices.tolist())
    out.loss.backward()
    # the change of every code under one SGD step on W, b: non-zero also for never-selected codes
    with torch.no_grad():
        before = vq.codebook.clone()
        for p in vq.parameters():
            p -= 0.1 * p.grad
        moved = (vq.codebook - before).norm(dim=1)
    unused = [k for k in range(16) if k not in used]
    assert unused and all(float(moved[k]) > 0 for k in unused)
    # a plain learnable codebook with the same loss: unused rows get no gradient
    plain = nn.Parameter(before.clone())
    idx = out.indices
    loss = (plain[idx] - z).pow(2).mean()
    loss.backward()
    assert all(float(plain.grad[k].abs().sum()) == 0 for k in unused)


def test_shapes_state_dict_and_config():
    vq = reglab.create("simvq", num_codes=8, dim=4)
    out = vq(torch.randn(2, 5, 4))
    assert out.quantized.shape == (2, 5, 4) and out.indices.shape == (2, 5)
    again = reglab.from_config(vq.get_config())
    again.load_state_dict(vq.state_dict())
    torch.testing.assert_close(again.codebook, vq.codebook)


@pytest.mark.parametrize(
    "call, match",
    [(lambda vq: vq(torch.randn(3, 5)), "SimVQ expects inputs with the code dimension 4 last"),
     (lambda vq: vq(torch.ones(3, 4, dtype=torch.long)), "SimVQ expects a floating-point"),
     (lambda vq: vq(torch.full((3, 4), float("inf"))), "SimVQ got inf values"),
     (lambda vq: reglab.create("simvq", num_codes=0, dim=4), "SimVQ"),
     (lambda vq: simvq_quantize(torch.randn(2, 4), torch.randn(4), torch.eye(4), None), "SimVQ expects basis")],
)  # fmt: skip
def test_bad_input_is_named(call, match):
    with pytest.raises(reglab.RegularizerInputError, match=match):
        call(reglab.create("simvq", num_codes=8, dim=4))
