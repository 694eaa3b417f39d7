"""N:M sparsity (SR-STE, STE, decaying gradient flow) against plain loops over the groups."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import reglab
from reglab import RegularizerInputError
from reglab.methods.nm_sparsity import gradient_flow_scale, nm_mask, nm_sparse


def ref_mask(w, n, m):
    """Keep the n largest |w| of each run of m consecutive entries of each row (official get_sparse_mask,
    row-wise), by Python loops; conv weights grouped along input channels (official permute(0,2,3,1))."""
    if w.ndim == 4:
        o, c, kh, kw = w.shape
        out = torch.zeros_like(w)
        for a in range(o):
            for i in range(kh):
                for j in range(kw):
                    vals = [abs(float(w[a, ch, i, j])) for ch in range(c)]
                    for g in range(0, c, m):
                        idx = sorted(range(g, g + m), key=lambda k: -vals[k])[:n]
                        for k in idx:
                            out[a, k, i, j] = 1.0
        return out
    out = torch.zeros_like(w)
    for r in range(w.shape[0]):
        vals = [abs(float(v)) for v in w[r]]
        for g in range(0, w.shape[1], m):
            for k in sorted(range(g, g + m), key=lambda k: -vals[k])[:n]:
                out[r, k] = 1.0
    return out


@pytest.mark.parametrize("shape,n,m", [((4, 8), 2, 4), ((3, 16), 1, 8), ((5, 8), 3, 4), ((3, 8, 2, 2), 2, 4)])
def test_mask_matches_loops(shape, n, m):
    w = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(nm_mask(w, n, m), ref_mask(w, n, m))


def test_forward_and_backward_rules():
    w = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    mask = ref_mask(w.detach(), 2, 4)
    g = torch.randn(3, 8, dtype=torch.float64)
    for beta, decay in [(0.0, 0.0), (0.0, 2e-4), (0.3, 0.0), (1.0, 0.0)]:
        w.grad = None
        out = nm_sparse(w, 2, 4, beta, decay)
        torch.testing.assert_close(out, w.detach() * (mask + (1 - mask) * beta))
        out.backward(g)
        torch.testing.assert_close(w.grad, g + decay * (1 - mask) * w.detach())  # dense STE gradient


def test_gradient_flow_schedules():
    assert gradient_flow_scale(0, "linear", 0.01) == 1.0
    assert gradient_flow_scale(50, "linear", 0.01) == pytest.approx(0.5)
    assert gradient_flow_scale(500, "linear", 0.01) == 0.0
    assert gradient_flow_scale(100, "exp", 0.01) == pytest.approx(math.exp(-1))
    assert gradient_flow_scale(10, "srste", 0.01) == 0.0 == gradient_flow_scale(10, "ste", 0.01)


def test_apply_and_step_trajectory():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 4))
    nm = reglab.NMSparsity(n=1, m=4, method="linear", decay_coef=0.25)
    nm(model)
    dense = model[0].parametrizations.weight.original.detach()
    mask = ref_mask(dense, 1, 4)
    for t in range(6):
        beta = max(1 - 0.25 * t, 0.0)
        assert nm.beta() == pytest.approx(beta)
        torch.testing.assert_close(model[0].weight.detach(), dense * (mask + (1 - mask) * beta))
        nm.step()
    sd = model.state_dict()
    assert int(sd["0.parametrizations.weight.0.t"]) == 6
    # SR-STE in a training step: the pruned weights get λ_W·w added to their gradient
    model2 = nn.Linear(8, 2)
    reglab.NMSparsity(n=2, m=4, method="srste", decay=0.5)(model2)
    x = torch.zeros(3, 8)
    model2(x).sum().backward()  # dL/dW = 0 for x = 0, so only the SR-STE term remains
    w = model2.parametrizations.weight.original
    torch.testing.assert_close(w.grad, 0.5 * (1 - ref_mask(w.detach(), 2, 4)) * w.detach())


def test_config_round_trip():
    nm = reglab.NMSparsity(n=1, m=8, method="exp", decay_coef=1e-3)
    again = reglab.from_config(nm.get_config())
    assert again.get_config() == nm.get_config()


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="NMSparsity.*multiple of 4"):
        reglab.NMSparsity()(nn.Linear(6, 2))
    with pytest.raises(RegularizerInputError, match="NMSparsity.*N ≤ M"):
        reglab.NMSparsity(n=5, m=4)(nn.Linear(8, 2))
    with pytest.raises(RegularizerInputError, match="NMSparsity"):
        reglab.NMSparsity(method="cosine")
    with pytest.raises(RegularizerInputError, match="NMSparsity"):
        reglab.NMSparsity()("not a module")
    with pytest.raises(RegularizerInputError, match="NMSparsity"):
        nm_mask(torch.tensor([[float("nan")] * 4]), 2, 4)
    with pytest.raises(RegularizerInputError, match="NMSparsity"):
        reglab.NMSparsity()(nn.ReLU())
