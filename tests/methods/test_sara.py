"""SaRA's nuclear norm on the masked sparse matrix: numpy SVD reference, mask from the pretrained weights, state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._reference import Reference


def ref_sara(w, anchor, threshold=0.5):
    """‖M ⊙ W‖_* with M = |W₀| < t, by numpy's SVD of the (out, in·k…) matrix."""
    m = (np.abs(anchor.detach().numpy()) < threshold) * w.detach().numpy()
    return float(np.linalg.svd(m.reshape(m.shape[0], -1), compute_uv=False).sum())


def _weight_and_pretrained(g):
    return tuple(torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64) for _ in range(2))


REFERENCES = {"sara_nuclear": Reference(ref_sara, inputs=_weight_and_pretrained, build={"threshold": 0.5})}


@pytest.mark.parametrize("shape", [(5, 4), (3, 2, 3), (4, 3, 2, 2)])
def test_matches_numpy(shape):
    w, a = torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)
    assert RF.sara_nuclear(w, a, threshold=0.7).item() == pytest.approx(ref_sara(w, a, 0.7), rel=1e-10)


def test_only_masked_entries_count_and_get_gradient():
    a = torch.tensor([[0.001, 1.0], [1.0, 0.0005]], dtype=torch.float64)
    w = torch.tensor([[3.0, 5.0], [7.0, -4.0]], dtype=torch.float64, requires_grad=True)
    value = RF.sara_nuclear(w, a)  # default threshold 2e-3: the diagonal is trainable
    assert value.item() == pytest.approx(7.0)  # singular values of diag(3, −4)
    value.backward()
    assert w.grad[0, 1] == 0 and w.grad[1, 0] == 0
    assert w.grad[0, 0].item() == pytest.approx(1.0) and w.grad[1, 1].item() == pytest.approx(-1.0)


def test_gradcheck():
    a = torch.randn(5, 4, dtype=torch.float64)
    w = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: RF.sara_nuclear(x, a, threshold=1.0), (w,))


def test_attach_records_the_pretrained_weights_and_mask():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    w0 = [net[0].weight.detach().clone(), net[2].weight.detach().clone()]
    reg = reglab.SaRANuclear(threshold=0.2)
    regs = reglab.attach(net, reg)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    expected = sum(ref_sara(p, a, 0.2) for p, a in zip([net[0].weight, net[2].weight], w0))
    assert regs.penalty().item() == pytest.approx(5e-4 * expected, rel=1e-10)
    assert torch.equal(reg.mask_of(net[0].weight), (w0[0].abs() < 0.2).double())
    fresh = reglab.SaRANuclear(threshold=0.2)
    fresh.load_state_dict(reg.state_dict())
    assert torch.equal(fresh.anchor__0__weight, w0[0])


def test_defaults_are_the_official_scripts():
    reg = reglab.SaRANuclear()
    assert reg.current_weight == pytest.approx(5e-4) and reg.threshold == pytest.approx(2e-3)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="SaRANuclear.*shape"):
        RF.sara_nuclear(torch.randn(3, 4), torch.randn(4, 3))
    with pytest.raises(RegularizerInputError, match="SaRANuclear"):
        RF.sara_nuclear(torch.randn(3, 4), torch.full((3, 4), float("nan")))
    with pytest.raises(RegularizerInputError, match="SaRANuclear"):
        reglab.SaRANuclear(threshold=-1.0)
