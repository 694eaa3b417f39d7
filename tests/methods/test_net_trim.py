"""Net-Trim: the ADMM layer program against a generic constrained solver on a small instance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from torch import nn

import reglab
from reglab import RegularizerInputError
from reglab.methods.net_trim import net_trim_layer


def ref_net_trim(x, y, eps, relu):
    """min ‖w‖₁ s.t. ‖(wᵀX − y)_Ω‖ ≤ ε, (wᵀX)_{Ωᶜ} ≤ 0 for one output unit, as an SLSQP problem
    over w = p − q, p, q ≥ 0 (a linear objective, one quadratic and linear constraints)."""
    n = x.shape[0]
    om = y > 1e-6 if relu else np.ones_like(y, dtype=bool)

    def w_of(v):
        return v[:n] - v[n:]

    cons = [{"type": "ineq", "fun": lambda v: eps**2 - (((w_of(v) @ x) - y)[om] ** 2).sum()}]
    if relu and (~om).any():
        cons.append({"type": "ineq", "fun": lambda v: -(w_of(v) @ x)[~om]})
    w0 = np.linalg.lstsq(x.T, y, rcond=None)[0]
    v0 = np.concatenate([np.maximum(w0, 0), np.maximum(-w0, 0)])
    res = minimize(lambda v: v.sum(), v0, method="SLSQP", bounds=[(0, None)] * (2 * n), constraints=cons,
                   options={"ftol": 1e-12, "maxiter": 2000})
    return w_of(res.x)


@pytest.mark.parametrize("relu", [True, False])
def test_layer_program_matches_generic_solver(relu):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 30, generator=g, dtype=torch.float64)
    w_true = torch.tensor([[1.0], [0.0], [-0.5], [0.05]], dtype=torch.float64)
    pre = (w_true.T @ x)[0]
    y = pre.clamp_min(0) if relu else pre
    eps = 0.1 * float(y.norm())
    w = net_trim_layer(x, y[None], eps, relu, max_iteration=20000)[:, 0].numpy()
    ref = ref_net_trim(x.numpy(), y.numpy(), eps, relu)
    out = w @ x.numpy()
    om = y.numpy() > 1e-6 if relu else np.ones(30, dtype=bool)
    assert np.linalg.norm((out - y.numpy())[om]) <= eps * 1.01  # feasible (ADMM: up to its tolerance)
    if relu:
        assert (out[~om] <= 1e-3).all()
    assert np.abs(w).sum() == pytest.approx(np.abs(ref).sum(), rel=2e-2)
    np.testing.assert_allclose(w, ref, atol=2e-2)


def test_prunes_an_mlp_and_keeps_its_function_close():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))
    x = torch.randn(200, 6)
    before = model(x).detach()
    reglab.NetTrim(epsilon_gain=0.05)(model, x)
    after = model(x).detach()
    zeros = sum(int((m.weight == 0).sum()) for m in model if isinstance(m, nn.Linear))
    assert zeros > 0
    assert (after - before).norm() / before.norm() < 0.2


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="NetTrim"):
        reglab.NetTrim(epsilon_gain=0.0)
    with pytest.raises(RegularizerInputError, match="NetTrim.*Sequential"):
        reglab.NetTrim()(nn.Linear(3, 2), torch.randn(5, 3))
    with pytest.raises(RegularizerInputError, match="NetTrim.*Conv2d"):
        reglab.NetTrim()(nn.Sequential(nn.Conv2d(1, 1, 3)), torch.randn(5, 3))
    with pytest.raises(RegularizerInputError, match="NetTrim"):
        net_trim_layer(torch.randn(3, 5), torch.randn(2, 4), 0.1)
    with pytest.raises(RegularizerInputError, match="NetTrim"):
        reglab.NetTrim()(nn.Sequential(nn.Linear(3, 2)), torch.full((4, 3), float("nan")))
