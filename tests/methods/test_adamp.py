"""AdamP / SGDP (Heo et al., 2021) against an independent numpy re-implementation of the paper's Algorithms 1-2."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import reglab
from reglab.core.errors import RegularizerInputError
from reglab.methods.adamp import radial_projection

# ---------------------------------------------------------------- independent reference (numpy)


def _cos_abs(a, b, eps):
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return np.abs((a * b).sum(axis=1)) / np.maximum(na * nb, eps)


def ref_project(w, g, u, delta=0.1, eps=1e-8):
    """Returns (u', wd_multiplier_is_ratio)."""
    if w.ndim < 2:
        return u, False
    for rows in (w.shape[0], 1):
        wv, gv, uv = w.reshape(rows, -1), g.reshape(rows, -1), u.reshape(rows, -1)
        if _cos_abs(gv, wv, eps).max() < delta / math.sqrt(wv.shape[1]):
            out = np.empty_like(uv)
            for i in range(rows):
                wh = wv[i] / (np.linalg.norm(wv[i]) + eps)
                out[i] = uv[i] - wh * float(wh @ uv[i])
            return out.reshape(u.shape), True
    return u, False


class RefAdamP:
    def __init__(self, ws, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, delta=0.1, wd_ratio=0.1):
        self.ws = [w.copy() for w in ws]
        self.m = [np.zeros_like(w) for w in ws]
        self.v = [np.zeros_like(w) for w in ws]
        self.t = 0
        self.h = (lr, b1, b2, eps, wd, delta, wd_ratio)

    def step(self, grads):
        lr, b1, b2, eps, wd, delta, wd_ratio = self.h
        self.t += 1
        for i, g in enumerate(grads):
            w = self.ws[i]
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * g * g
            denom = np.sqrt(self.v[i]) / math.sqrt(1 - b2**self.t) + eps
            u = self.m[i] / denom
            u, proj = ref_project(w, g, u, delta, eps)
            w = w * (1 - lr * wd * (wd_ratio if proj else 1.0))
            self.ws[i] = w - lr / (1 - b1**self.t) * u


class RefSGDP:
    def __init__(self, ws, lr=0.1, momentum=0.9, nesterov=False, wd=0.0, delta=0.1, wd_ratio=0.1, eps=1e-8):
        self.ws = [w.copy() for w in ws]
        self.buf = [np.zeros_like(w) for w in ws]
        self.h = (lr, momentum, nesterov, wd, delta, wd_ratio, eps)

    def step(self, grads):
        lr, mom, nest, wd, delta, wd_ratio, eps = self.h
        for i, g in enumerate(grads):
            w = self.ws[i]
            self.buf[i] = mom * self.buf[i] + g
            d = g + mom * self.buf[i] if nest else self.buf[i]
            d, proj = ref_project(w, g, d, delta, eps)
            w = w * (1 - lr * wd * (wd_ratio if proj else 1.0) / (1 - mom))
            self.ws[i] = w - lr * d


# ---------------------------------------------------------------- a problem with a scale-invariant weight


class Net(nn.Module):
    """``a`` is scale-invariant per row (its rows are normalized before use); ``b`` and ``c`` are not."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.a = nn.Parameter(torch.randn(6, 5, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(3, 6, generator=g, dtype=torch.float64) * 0.5)
        self.c = nn.Parameter(torch.randn(3, generator=g, dtype=torch.float64) * 0.1)

    def forward(self, x):
        a = self.a / self.a.norm(dim=1, keepdim=True)
        return torch.tanh(x @ a.T) @ self.b.T + self.c


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(32, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (32,), generator=g)


def _loss(net, x, y):
    return nn.functional.cross_entropy(net(x), y)


def _run(opt_factory, ref, steps=8):
    net = Net()
    x, y = _data()
    opt = opt_factory(net.parameters())
    ref_net = Net()
    for _ in range(steps):
        # the reference's gradient comes from its own weights (a separate copy)
        with torch.no_grad():
            for p, w in zip(ref_net.parameters(), ref.ws):
                p.copy_(torch.from_numpy(w))
        grads = torch.autograd.grad(_loss(ref_net, x, y), list(ref_net.parameters()))
        ref.step([g.numpy() for g in grads])
        opt.zero_grad()
        _loss(net, x, y).backward()
        opt.step()
    return net, ref


def _ws():
    return [p.detach().numpy().copy() for p in Net().parameters()]


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adamp_trajectory_matches_reference(wd):
    net, ref = _run(lambda ps: reglab.AdamP(ps, torch.optim.Adam, lr=1e-2, weight_decay=wd), RefAdamP(_ws(), lr=1e-2, wd=wd))
    for p, w in zip(net.parameters(), ref.ws):
        np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("wd", [0.0, 1e-2])
def test_sgdp_trajectory_matches_reference(nesterov, wd):
    net, ref = _run(
        lambda ps: reglab.SGDP(ps, lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=wd),
        RefSGDP(_ws(), lr=0.1, momentum=0.9, nesterov=nesterov, wd=wd),
    )
    for p, w in zip(net.parameters(), ref.ws):
        np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-9, atol=1e-12)


def test_the_scale_invariant_weight_keeps_its_norm_to_second_order_and_adam_grows_it():
    """The mechanism: Adam inflates ‖a‖ (its gradient is orthogonal to a); AdamP does not, to O(step²)."""
    x, y = _data()
    norms = {}
    for name, make in {"adam": lambda ps: torch.optim.Adam(ps, lr=0.05),
                       "adamp": lambda ps: reglab.AdamP(ps, lr=0.05)}.items():
        net = Net()
        n0 = net.a.norm(dim=1).detach().clone()
        opt = make(net.parameters())
        for _ in range(30):
            opt.zero_grad()
            _loss(net, x, y).backward()
            opt.step()
        norms[name] = (net.a.norm(dim=1).detach() - n0)
    assert float(norms["adam"].mean()) > 5 * float(norms["adamp"].abs().mean())


def test_paper_numeric_example():
    w = torch.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=torch.float64)
    g = torch.tensor([[0.4, -0.3], [0.0, 1.0]], dtype=torch.float64)
    u = torch.tensor([[0.5, 0.5], [0.2, 0.3]], dtype=torch.float64)
    out, view = radial_projection(w, g, u)
    assert view == "channel"
    torch.testing.assert_close(out, torch.tensor([[0.08, -0.06], [0.0, 0.3]], dtype=torch.float64), atol=1e-8, rtol=0)


def test_layer_view_when_channel_view_fails_and_none_when_both_fail():
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    # rows: cos(g0, w0) = 1 fails per channel, but the flattened tensors are orthogonal
    g = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    u = torch.ones(2, 2, dtype=torch.float64)
    out, view = radial_projection(w, g, u)
    assert view == "layer"
    wh = w.reshape(-1) / w.norm()
    expected = u.reshape(-1) - wh * (wh @ u.reshape(-1))
    torch.testing.assert_close(out.reshape(-1), expected)
    out, view = radial_projection(w, w.clone(), u)
    assert view is None and torch.equal(out, u)
    b = torch.ones(3, dtype=torch.float64)
    assert radial_projection(b, torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64), b)[1] is None


def test_state_dict_round_trip_continues_the_same_trajectory():
    x, y = _data()
    net = Net()
    opt = reglab.AdamP(net.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad(); _loss(net, x, y).backward(); opt.step()
    net2 = copy.deepcopy(net)
    opt2 = reglab.AdamP(net2.parameters(), lr=1e-2, weight_decay=0.1)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))  # as from a checkpoint file (torch shares "step")
    for n, o in ((net, opt), (net2, opt2)):
        for _ in range(3):
            o.zero_grad(); _loss(n, x, y).backward(); o.step()
    for p, q in zip(net.parameters(), net2.parameters()):
        assert torch.equal(p, q)
    assert opt.param_groups[0]["weight_decay"] == 0.1  # restored after every step


def test_closure_and_lab_style_construction():
    x, y = _data()
    net = Net()
    opt = reglab.from_config({"name": "adamp"}, params=net.parameters(), base_optimizer=torch.optim.Adam, lr=1e-2,
                             weight_decay=0.0)

    def closure():
        loss = _loss(net, x, y)
        loss.backward()
        return loss

    before = _loss(net, x, y).item()
    for _ in range(20):
        opt.zero_grad()
        opt.step(closure)
    assert _loss(net, x, y).item() < before


def test_bad_input_names_the_optimizer():
    net = Net()
    with pytest.raises(RegularizerInputError, match="AdamP.*delta"):
        reglab.AdamP(net.parameters(), delta=-1.0)
    with pytest.raises(RegularizerInputError, match="AdamP.*base_optimizer"):
        reglab.AdamP(net.parameters(), base_optimizer="adam")
    with pytest.raises(RegularizerInputError, match="SGDP.*wd_ratio"):
        reglab.SGDP(net.parameters(), lr=0.1, wd_ratio=-0.5)
    x, y = _data()
    opt = reglab.AdamP(net.parameters())
    _loss(net, x, y).backward()
    net.a.grad[0, 0] = float("nan")
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(RegularizerInputError, match="AdamP.*NaN"):
        opt.step()
    assert all(torch.equal(p, b) for p, b in zip(net.parameters(), before))
    with pytest.raises(RegularizerInputError, match="radial_projection.*shape"):
        radial_projection(torch.ones(2, 2), torch.ones(2, 3), torch.ones(2, 2))
