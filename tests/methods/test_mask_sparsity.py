"""MaskSparsity: L1 on the BN scales of the masked channels only."""

import numpy as np
import pytest
import torch
from torch import nn

import reglab
from reglab.methods.mask_sparsity import MaskSparsity, mask_sparsity, slimming_masks

from ._reference import Reference


def ref_mask_sparsity(w, ratio=0.5):  # per-tensor network-slimming mask, then L1 on it; plain numpy
    a = np.abs(w.detach().numpy()).ravel()
    k = int(ratio * a.size)
    order = np.argsort(a, kind="stable")[:k]
    return float(a[order].sum())


REFERENCES = {"mask_sparsity": Reference(ref_mask_sparsity)}


def test_sheet_vector_gradient():
    g = torch.tensor([0.9, -0.05, 0.3, 0.01], dtype=torch.float64, requires_grad=True)
    m = torch.tensor([0, 1, 0, 1], dtype=torch.bool)
    (1e-4 * mask_sparsity(g, m)).backward()
    np.testing.assert_allclose(g.grad.numpy(), [0, -1e-4, 0, 1e-4])
    assert mask_sparsity(g, m).item() == pytest.approx(0.06)
    assert mask_sparsity(g, m, method="L2").item() == pytest.approx(0.5 * (0.05**2 + 0.01**2))


def test_global_slimming_mask_over_layers():
    a = torch.tensor([0.5, 0.01, 0.9])
    b = torch.tensor([0.02, 0.03, 0.8, 0.7])
    ma, mb = slimming_masks([a, b], 3 / 7)
    assert ma.tolist() == [False, True, False] and mb.tolist() == [True, True, False, False]


def _bn_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.BatchNorm2d(6))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([0.9, 0.1, 0.5, 0.05]))
        net[4].weight.copy_(torch.tensor([0.2, 0.04, 1.0, 0.3, 0.02, 0.6]))
    return net


def test_attached_regularizes_only_masked_channels():
    net = _bn_net()
    reg = MaskSparsity(1e-2, prune_ratio=0.4)
    regs = reglab.attach(net, reg.on(modules=nn.BatchNorm2d, params="*.weight", exclude=None))
    # 10 channels, 4 smallest |γ| globally: 0.02, 0.04, 0.05, 0.1
    assert reg.mask_of(net[1].weight).tolist() == [0, 1, 0, 1]
    assert reg.mask_of(net[4].weight).tolist() == [0, 1, 0, 0, 1, 0]
    value = regs.penalty()
    assert value.item() == pytest.approx(1e-2 * (0.1 + 0.05 + 0.04 + 0.02))
    value.backward()
    np.testing.assert_allclose(net[1].weight.grad.numpy(), [0, 1e-2, 0, 1e-2], atol=1e-9)
    np.testing.assert_allclose(net[4].weight.grad.numpy(), [0, 1e-2, 0, 0, 1e-2, 0], atol=1e-9)


def test_masks_round_trip_state_dict_and_do_not_move():
    net = _bn_net()
    reg = MaskSparsity(prune_ratio=0.4)
    regs = reglab.attach(net, reg.on(modules=nn.BatchNorm2d, params="*.weight", exclude=None))
    state = regs.state_dict()
    with torch.no_grad():
        net[1].weight.fill_(1.0)  # the mask was decided at attach time; later values do not change it
    assert reg.mask_of(net[1].weight).tolist() == [0, 1, 0, 1]
    net2 = _bn_net()
    with torch.no_grad():
        net2[1].weight.copy_(torch.tensor([0.01, 0.9, 0.9, 0.9]))
    reg2 = MaskSparsity(prune_ratio=0.4)
    regs2 = reglab.attach(net2, reg2.on(modules=nn.BatchNorm2d, params="*.weight", exclude=None))
    regs2.load_state_dict(state)
    assert reg2.mask_of(net2[1].weight).tolist() == [0, 1, 0, 1]


def test_set_mask_and_explicit_mask():
    w = torch.tensor([0.3, -0.2, 0.1])
    reg = MaskSparsity(1.0)
    reg.set_mask(w, torch.tensor([1.0, 0.0, 1.0]))
    assert reg(w).item() == pytest.approx(0.4)
    assert reg.penalty(w, mask=torch.tensor([0.0, 1.0, 0.0])).item() == pytest.approx(0.2)
    with pytest.raises(reglab.RegularizerInputError, match="MaskSparsity"):
        reg.set_mask(w, torch.ones(2))
    with pytest.raises(reglab.RegularizerInputError, match="mask_sparsity"):
        mask_sparsity(w, torch.ones(2))


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="MaskSparsity.*prune_ratio"):
        MaskSparsity(prune_ratio=1.5)
    with pytest.raises(ValueError, match="MaskSparsity.*method"):
        MaskSparsity(method="smoothL1")


def test_grad_mode_adds_official_update():
    w = torch.tensor([0.9, -0.05, 0.3, 0.01])
    reg = MaskSparsity(1e-4)
    reg.set_mask(w, torch.tensor([0.0, 1.0, 0.0, 1.0]))
    grad = torch.zeros(4)
    reg.grad_([w], [grad], 1e-4)
    np.testing.assert_allclose(grad.numpy(), [0, -1e-4, 0, 1e-4], atol=1e-12)


def test_default_strength_is_the_authors_run():
    """s = 5e-4: CASIA-IVA-Lab/MaskSparsity README step 4 runs ./mask_sparsity.sh with 5e-4, passed as
    SPARSE.SPARSITY to update_BN's s (the function's own default, 1e-4, is not what the run uses)."""
    reg = MaskSparsity()
    assert reg.weight == 5e-4 and reglab.create("mask_sparsity").get_config()["weight"] == 5e-4
    w = torch.tensor([0.9, -0.05, 0.3, 0.01])
    grad = torch.zeros(4)
    reg.setup([("w", w)])
    reg.set_mask(w, torch.tensor([0.0, 1.0, 0.0, 1.0]))
    reg.grad_([w], [grad], reg.weight)  # official: γ.grad += s·sign(γ)⊙M
    np.testing.assert_allclose(grad.numpy(), [0, -5e-4, 0, 5e-4], atol=1e-12)
