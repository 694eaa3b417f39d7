"""Representation regularizers bound to a layer with ``.on(activations=...)`` (reglab.core.attach)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import reglab


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 8))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.encoder(x))


@pytest.mark.parametrize(
    "name", ["vcreg", "uniformity", "flops", "effective_rank", "dispersive", "vne", "l1_activation", "least_volume", "ldreg"]
)
def test_single_view_on_activation_equals_direct_call(name):
    model = Net()
    reg = reglab.create(name, weight=0.7)
    regs = reglab.attach(model, reg.on(activations="encoder.2"))
    x = torch.randn(12, 6)
    model(x)
    value = regs.penalty()
    direct = reg(model.encoder(x))
    assert float(value) == pytest.approx(float(direct), rel=1e-6)
    value.backward()
    # the penalty reaches the encoder's weights but not the head, which comes after the hooked layer
    assert model.encoder[0].weight.grad is not None and model.encoder[0].weight.grad.abs().sum() > 0
    assert model.head.weight.grad is None
    regs.detach()


@pytest.mark.parametrize("name", ["vicreg", "barlow_twins", "alignment"])
def test_two_view_on_activation_takes_both_forwards(name):
    model = Net()
    reg = reglab.create(name)
    regs = reglab.attach(model, reg.on(activations="encoder"))
    x1, x2 = torch.randn(10, 6), torch.randn(10, 6)
    model(x1)
    model(x2)
    value = regs.penalty()
    assert float(value) == pytest.approx(float(reg(model.encoder(x1), model.encoder(x2))), rel=1e-6)
    # one view only: an error saying both views are needed, never a silent single-view loss
    model(x1)
    with pytest.raises(RuntimeError, match="2 views"):
        regs.penalty()
    regs.detach()


def test_no_capture_in_eval_or_no_grad():
    model = Net()
    regs = reglab.attach(model, reglab.create("vcreg").on(activations="encoder.2"))
    model.eval()
    model(torch.randn(5, 6))
    model.train()
    with torch.no_grad():
        model(torch.randn(5, 6))
    with pytest.raises(RuntimeError, match="nothing was captured"):
        regs.penalty()
    regs.detach()


def test_training_with_vcreg_on_hidden_layer_raises_its_std():
    torch.manual_seed(0)
    model = Net()
    with torch.no_grad():
        model.encoder[2].weight.mul_(0.01)  # start collapsed: tiny hidden-layer std
    regs = reglab.attach(model, reglab.create("vcreg").on(activations="encoder.2"))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(64, 6)
    before = float(model.encoder(x).std(dim=0).mean())
    for _ in range(30):
        model(x)
        loss = regs.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = float(model.encoder(x).std(dim=0).mean())
    assert after > 5 * before
    regs.detach()


def test_binding_to_weights_is_refused():
    with pytest.raises(ValueError, match="activations"):
        reglab.create("vicreg").on(params="encoder.0.weight")
