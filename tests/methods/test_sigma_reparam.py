"""σReparam (Zhai et al. 2023) against an independent power iteration, the exact spectral norm and the sheet."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError
from reglab.methods.sigma_reparam import SigmaReparamWeight


# ---------------------------------------------------------------- reference
def ref_one_step(w, u):
    """One power-iteration step in numpy on the (out, in·k…) matrix: (σ, u')."""
    m = w.detach().double().reshape(w.shape[0], -1).numpy()
    v = m @ u.detach().double().numpy()
    v /= np.linalg.norm(v)
    u2 = m.T @ v
    u2 /= np.linalg.norm(u2)
    return float(v @ m @ u2), u2


def svd_u(w):
    m = w.detach().double().reshape(w.shape[0], -1)
    _, s, vh = torch.linalg.svd(m, full_matrices=False)
    return vh[0], float(s[0])


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.fc = nn.Linear(12, 5)
        self.norm = nn.LayerNorm(5)
        self.out = nn.Linear(5, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x)).mean(dim=(2, 3))
        return self.out(self.norm(self.fc(torch.cat([h, h, h, h], dim=1))))


# ------------------------------------------------------------ sheet vector
def test_sheet_vector():
    torch.manual_seed(0)
    w = torch.randn(3, 4, dtype=torch.float64)
    p = SigmaReparamWeight(w)
    assert p.gamma.item() == pytest.approx(2.862107, abs=1e-6)
    w_hat = p(w)
    assert torch.linalg.matrix_norm(w_hat, ord=2).item() == pytest.approx(2.862107, abs=1e-6)
    torch.testing.assert_close(w_hat, w)  # γ = σ(W₀): Ŵ = W₀ at application
    g = torch.Generator().manual_seed(1)
    w2 = w + 0.3 * torch.randn(3, 4, generator=g, dtype=torch.float64)
    p2 = SigmaReparamWeight(w)  # the stale u of W₀
    assert p2.sigma(w2).item() == pytest.approx(2.923183, abs=1e-6)
    assert torch.linalg.matrix_norm(w2, ord=2).item() == pytest.approx(2.924663, abs=1e-6)


# ------------------------------------------------------------------ values
@pytest.mark.parametrize("shape", [(5, 4), (4, 7), (4, 3, 3, 3), (6, 2, 5)])
def test_one_step_matches_reference(shape):
    g = torch.Generator().manual_seed(2)
    w = torch.randn(*shape, generator=g, dtype=torch.float64)
    u = torch.randn(int(np.prod(shape[1:])), generator=g, dtype=torch.float64)
    u = u / u.norm()
    gamma = torch.tensor(1.7, dtype=torch.float64)
    w_hat, u_new = RF.sigma_reparam(w, u, gamma)
    sigma, u_ref = ref_one_step(w, u)
    np.testing.assert_allclose(u_new.numpy(), u_ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(w_hat, (1.7 / sigma) * w, rtol=1e-12, atol=1e-14)


def test_power_iteration_converges_to_the_exact_spectral_norm():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(6, 5, generator=g, dtype=torch.float64)
    layer = nn.Linear(5, 6).double()
    with torch.no_grad():
        layer.weight.copy_(w)
    reglab.SigmaReparam()(layer)
    p = layer.parametrizations.weight[0]
    with torch.no_grad():
        p.u.copy_(torch.randn(5, generator=g, dtype=torch.float64))  # a poor start
        p.u.div_(p.u.norm())
        p.gamma.fill_(2.5)
    for _ in range(200):
        layer.weight  # one training-mode step each access
    exact = torch.linalg.matrix_norm(w, ord=2).item()
    assert p.sigma(w).item() == pytest.approx(exact, rel=1e-10)
    assert torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item() == pytest.approx(2.5, rel=1e-10)


def test_conv_sigma_is_that_of_the_reshaped_matrix():
    torch.manual_seed(4)
    conv = nn.Conv2d(2, 4, 3).double()
    w0 = conv.weight.detach().clone()
    RF.sigma_reparam_(conv)
    p = conv.parametrizations.weight[0]
    _, s = svd_u(w0)
    assert p.gamma.item() == pytest.approx(s, rel=1e-12)
    assert p.u.shape == (18,)
    torch.testing.assert_close(conv.weight, w0)


# ------------------------------------------------------- training semantics
def test_application_preserves_the_function_and_adds_gamma():
    torch.manual_seed(5)
    net = Net()
    x = torch.randn(4, 1, 5, 5)
    before = net(x)
    reglab.SigmaReparam()(net)
    torch.testing.assert_close(net(x), before, rtol=1e-5, atol=1e-6)
    names = {n for n, _ in net.named_parameters()}
    for layer in ("conv", "fc", "out"):
        assert f"{layer}.parametrizations.weight.original" in names
        assert f"{layer}.parametrizations.weight.0.gamma" in names
    assert not parametrize.is_parametrized(net.norm)


def test_u_updates_in_training_only():
    torch.manual_seed(6)
    layer = nn.Linear(4, 3)
    RF.sigma_reparam_(layer)
    p = layer.parametrizations.weight[0]
    with torch.no_grad():
        layer.parametrizations.weight.original.add_(0.5 * torch.randn(3, 4))
    u0 = p.u.clone()
    layer.eval()
    layer(torch.randn(2, 4))
    assert torch.equal(p.u, u0)
    layer.train()
    layer(torch.randn(2, 4))
    assert not torch.equal(p.u, u0)
    _, u_ref = ref_one_step(layer.parametrizations.weight.original, u0)
    np.testing.assert_allclose(p.u.double().numpy(), u_ref, rtol=1e-5, atol=1e-6)


def test_gradient_flows_through_w_in_sigma_not_through_u():
    """∂/∂W of γ·W/σ(W) with σ = vᵀWu' and u', v held fixed, written independently."""
    g = torch.Generator().manual_seed(7)
    w = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    u = torch.randn(3, generator=g, dtype=torch.float64)
    u = u / u.norm()
    gamma = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    c = torch.randn(4, 3, generator=g, dtype=torch.float64)
    w_hat, _ = RF.sigma_reparam(w, u, gamma)
    (w_hat * c).sum().backward()
    _, u2 = ref_one_step(w, u)
    m = w.detach().numpy()
    v = m @ u.numpy()
    v /= np.linalg.norm(v)
    u2 = m.T @ v / np.linalg.norm(m.T @ v)
    sigma = float(v @ m @ u2)
    dsig = np.outer(v, u2)  # ∂(vᵀWu')/∂W
    cw = float((c.numpy() * m).sum())
    expected_w = 1.3 * (c.numpy() / sigma - cw / sigma**2 * dsig)
    np.testing.assert_allclose(w.grad.numpy(), expected_w, rtol=1e-10)
    assert gamma.grad.item() == pytest.approx(cw / sigma, rel=1e-10)


def test_gradcheck_at_the_singular_vector():
    """At u = the exact right singular vector σ is stationary in u, v: autograd matches finite differences."""
    g = torch.Generator().manual_seed(8)
    w = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    u, _ = svd_u(w)
    gamma = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: RF.sigma_reparam(a, u, b)[0], (w, gamma), atol=1e-5)


def test_state_dict_round_trip_gives_identical_outputs():
    torch.manual_seed(9)
    net = reglab.SigmaReparam()(Net())
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.randn(8, 1, 5, 5)
    for _ in range(3):
        opt.zero_grad()
        net(x).pow(2).sum().backward()
        opt.step()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    torch.manual_seed(123)  # a different init
    fresh = reglab.SigmaReparam()(Net())
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf))
    for mode in ("eval", "train"):
        getattr(net, mode)()
        getattr(fresh, mode)()
        torch.testing.assert_close(fresh(x), net(x), rtol=0, atol=0)
    for key, value in net.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_deepcopy_and_idempotent_application():
    torch.manual_seed(10)
    net = reglab.SigmaReparam()(Net())
    n_params = len(list(net.parameters()))
    reglab.SigmaReparam()(net)
    assert len(list(net.parameters())) == n_params
    assert len(net.fc.parametrizations.weight) == 1
    twin = copy.deepcopy(net)
    x = torch.randn(2, 1, 5, 5)
    net.eval()
    twin.eval()
    torch.testing.assert_close(twin(x), net(x))


def test_conv_false_and_init_std():
    torch.manual_seed(11)
    net = RF.sigma_reparam_(Net(), conv=False, init_std=0.02)
    assert not parametrize.is_parametrized(net.conv)
    w = net.fc.parametrizations.weight.original
    assert w.std().item() == pytest.approx(0.02, rel=0.35)
    assert net.fc.parametrizations.weight[0].gamma.item() == pytest.approx(svd_u(w)[1], rel=1e-6)


def test_low_precision_weight_keeps_its_dtype_and_sigma_in_float32():
    torch.manual_seed(12)
    w = torch.randn(8, 6).bfloat16()
    p = SigmaReparamWeight(w)
    assert p.u.dtype == torch.float32 and p.gamma.dtype == torch.bfloat16
    w_hat = p(w)
    assert w_hat.dtype == torch.bfloat16
    torch.testing.assert_close(w_hat.float(), w.float(), rtol=2e-2, atol=2e-2)


def test_config_round_trip():
    sr = reglab.create("sigma_reparam", conv=False, init_std=0.02)
    assert sr.get_config() == {"name": "sigma_reparam", "conv": False, "init_std": 0.02}
    assert reglab.from_config(sr.get_config()).get_config() == sr.get_config()


# --------------------------------------------------------------- bad input
def test_bad_inputs_are_named():
    with pytest.raises(RegularizerInputError, match="SigmaReparam.*nn.Module"):
        RF.sigma_reparam_(torch.randn(3, 3))
    with pytest.raises(RegularizerInputError, match="SigmaReparam found no nn.Linear"):
        RF.sigma_reparam_(nn.Sequential(nn.ReLU(), nn.LayerNorm(3)))
    with pytest.raises(RegularizerInputError, match="SigmaReparam.*lazy"):
        RF.sigma_reparam_(nn.LazyLinear(3))
    with pytest.raises(RegularizerInputError, match="SigmaReparam.*init_std"):
        reglab.SigmaReparam(init_std=-1.0)
    with pytest.raises(RegularizerInputError, match="SigmaReparam.*conv"):
        RF.sigma_reparam_(nn.Linear(2, 2), conv="yes")
    w = torch.randn(3, 4)
    with pytest.raises(RegularizerInputError, match=r"SigmaReparam expects u of shape \(4,\)"):
        RF.sigma_reparam(w, torch.ones(3), torch.tensor(1.0))
    with pytest.raises(RegularizerInputError, match="SigmaReparam.*at least 2 dimensions"):
        RF.sigma_reparam(torch.randn(4), torch.ones(4), torch.tensor(1.0))
    with pytest.raises(RegularizerInputError, match="SigmaReparam.*gamma"):
        RF.sigma_reparam(w, torch.ones(4) / 2, 1.0)
    bad = w.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(RegularizerInputError, match="SigmaReparam.*NaN"):
        RF.sigma_reparam(bad, torch.ones(4) / 2, torch.tensor(1.0))


def test_zero_weight_stays_zero():
    w = torch.zeros(3, 4)
    w_hat, _ = RF.sigma_reparam(w, torch.ones(4) / 2, torch.tensor(1.0))
    assert torch.equal(w_hat, w)
