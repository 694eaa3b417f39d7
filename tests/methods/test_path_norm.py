"""Path-norm (Gonon et al., 2024) against a brute-force enumeration of the paths of small ReLU networks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

import reglab
from reglab import RegularizerInputError
from reglab.methods.path_norm import path_norm

from ._reference import Reference


def ref_path_norm_mlp(model, input_shape, q=1.0):
    """Σ over every path (input→…→output, and bias→…→output) of Π|w|^q, then ^(1/q); plain loops."""
    layers = [(m.weight.detach().double().numpy(), None if m.bias is None else m.bias.detach().double().numpy())
              for m in model.modules() if isinstance(m, nn.Linear)]
    total = 0.0
    n_in = input_shape[0]
    # paths starting at an input unit
    sizes = [n_in] + [w.shape[0] for w, _ in layers]
    for start_layer in range(len(layers) + 1):
        # start_layer 0: from an input; start_layer l ≥ 1: from the bias of layer l (1-based)
        first_units = range(sizes[0]) if start_layer == 0 else range(sizes[start_layer])
        for u0 in first_units:
            rest = [range(s) for s in sizes[max(start_layer, 1):]] if start_layer == 0 else \
                [range(s) for s in sizes[start_layer + 1:]]
            for tail in itertools.product(*rest):
                if start_layer == 0:
                    units = (u0,) + tail
                    prod, layer_from = 1.0, 0
                else:
                    b = layers[start_layer - 1][1]
                    if b is None:
                        continue
                    units = (u0,) + tail
                    prod, layer_from = abs(b[u0]) ** q, start_layer
                for k in range(len(units) - 1):
                    w = layers[layer_from + k][0]
                    prod *= abs(w[units[k + 1], units[k]]) ** q
                total += prod
    return total ** (1.0 / q)


def _mlp(g):
    torch.manual_seed(int(torch.randint(0, 1000, (), generator=g)))
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).double()


REFERENCES = {"path_norm": Reference(ref_path_norm_mlp, inputs=lambda g: (_mlp(g), (3,)))}


@pytest.mark.parametrize("q", [1.0, 2.0, 3.0])
def test_matches_path_enumeration(q):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2, bias=False), nn.ReLU(), nn.Linear(2, 3)).double()
    got = path_norm(model, (3,), q=q)
    assert got.item() == pytest.approx(ref_path_norm_mlp(model, (3,), q), rel=1e-10)


def test_gradient_and_rescaling_invariance():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)).double()
    value = path_norm(model, (3,), q=2.0)
    # rescale hidden unit j: incoming weights and bias ×c, outgoing ÷c (the function is unchanged)
    with torch.no_grad():
        c = torch.tensor([0.5, 2.0, 3.0, 1.0, 0.1], dtype=torch.float64)
        model[0].weight.mul_(c[:, None]); model[0].bias.mul_(c); model[2].weight.div_(c[None, :])  # noqa: E702
    assert path_norm(model, (3,), q=2.0).item() == pytest.approx(value.item(), rel=1e-12)
    # the gradient against central differences (float64), every entry
    model.zero_grad()
    path_norm(model, (3,), q=2.0).backward()
    eps = 1e-6
    for p in model.parameters():
        for idx in itertools.product(*[range(n) for n in p.shape]):
            with torch.no_grad():
                old = p[idx].item()
                p[idx] = old + eps
                up = path_norm(model, (3,), q=2.0).item()
                p[idx] = old - eps
                down = path_norm(model, (3,), q=2.0).item()
                p[idx] = old
            assert p.grad[idx].item() == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8)


def test_l1_gradient_closed_form():
    """Φ₁ = Σ_o Σ_j |V_oj|(Σ_i |W_ji| + |b_j|) + Σ_o |c_o|, so ∂Φ₁/∂W_ji = sign(W_ji)·Σ_o |V_oj|."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)).double()
    path_norm(model, (3,)).backward()
    col = model[2].weight.detach().abs().sum(0)
    torch.testing.assert_close(model[0].weight.grad, model[0].weight.detach().sign() * col[:, None])
    torch.testing.assert_close(model[2].bias.grad, model[2].bias.detach().sign())


def test_conv_skip_and_avgpool_against_the_linear_unrolling():
    """A conv net with average pooling and a skip: L1 path-norm = Σ outputs on ones with |θ|; check against its
    explicit linear computation (all-positive, so ReLU is the identity)."""
    torch.manual_seed(2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv1d(2, 3, 3, padding=1)
            self.c2 = nn.Conv1d(3, 3, 3, padding=1)
            self.pool = nn.AdaptiveAvgPool1d(1)
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            h = torch.relu(self.c1(x))
            h = h + torch.relu(self.c2(h))
            return self.fc(self.pool(h).flatten(1))

    net = Net().double()
    got = path_norm(net, (2, 5))
    x = torch.ones(1, 2, 5, dtype=torch.float64)
    a = lambda m: (m.weight.abs(), m.bias.abs())  # noqa: E731
    w1, b1 = a(net.c1); w2, b2 = a(net.c2); wf, bf = a(net.fc)  # noqa: E702
    h = nn.functional.conv1d(x, w1, b1, padding=1)
    h = h + nn.functional.conv1d(h, w2, b2, padding=1)
    expected = (h.mean(-1) @ wf.T + bf).sum()
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)
    assert net.c1.weight.min() < 0  # the model itself was not modified


def test_class_penalty_and_training_mode_restored():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 2))
    model.train()
    pn = reglab.PathNorm(weight=0.1)
    v = pn(model, (3,))
    assert model.training
    v.backward()
    assert model[0].weight.grad is not None
    assert v.item() == pytest.approx(0.1 * path_norm(model, (3,)).item(), rel=1e-6)


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="PathNorm.*BatchNorm"):
        path_norm(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), (3,))
    with pytest.raises(RegularizerInputError, match="PathNorm.*MaxPool"):
        path_norm(nn.Sequential(nn.Conv1d(1, 2, 3), nn.MaxPool1d(2)), (1, 8))
    with pytest.raises(RegularizerInputError, match="PathNorm.*Tanh"):
        path_norm(nn.Sequential(nn.Linear(3, 4), nn.Tanh()), (3,))
    with pytest.raises(RegularizerInputError, match="PathNorm.*q"):
        path_norm(nn.Linear(3, 4), (3,), q=0.5)
    with pytest.raises(RegularizerInputError, match="PathNorm.*average pooling"):
        path_norm(nn.Sequential(nn.Conv1d(1, 2, 3), nn.AvgPool1d(2)), (1, 8), q=2.0)
    with pytest.raises(RegularizerInputError, match="PathNorm.*forward failed"):
        path_norm(nn.Linear(3, 4), (5,))
    with pytest.raises(RegularizerInputError, match="PathNorm.*input_shape"):
        path_norm(nn.Linear(3, 4), (0,))
    m = nn.Linear(3, 4)
    with torch.no_grad():
        m.weight[0, 0] = float("nan")
    with pytest.raises(RegularizerInputError, match="PathNorm.*NaN"):
        path_norm(m, (3,))
    with pytest.raises(RegularizerInputError, match="PathNorm.*nn.Module"):
        path_norm(torch.ones(3, 4), (3,))
    assert np.isfinite(path_norm(nn.Linear(3, 4), 3).item())
