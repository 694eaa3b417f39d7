"""Jacobian regularization (Hoffman et al. 2019): sheet vector, exactness, unbiasedness, gradients, bad input."""

import pytest
import torch

import reglab
from reglab.methods.jacobian import JacobianReg, jacobian

from ._reference import Reference

D = torch.float64


def _net(g: torch.Generator, d_in: int = 4, hidden: int = 5, c: int = 3):
    w1 = torch.randn(hidden, d_in, generator=g, dtype=D)
    w2 = torch.randn(c, hidden, generator=g, dtype=D)
    return lambda x: torch.tanh(x.reshape(x.shape[0], -1) @ w1.T) @ w2.T


def _inputs(g: torch.Generator):
    f = _net(g)
    x = torch.randn(6, 4, generator=g, dtype=D, requires_grad=True)
    return x, f(x)


def ref_jacobian(x, y):
    """Per-sample Jacobians by one backward per (sample, class), projected on the same draws the
    regularizer takes from the global RNG (default n_proj = 1): ½·C/B·Σ_b ‖v_bᵀ J_b‖²."""
    b, c = y.shape
    v = torch.randn(b, c, dtype=y.dtype)
    v = v / v.norm(dim=1, keepdim=True)
    total = 0.0
    for i in range(b):
        rows = [torch.autograd.grad(y[i, k], x, retain_graph=True)[0][i].reshape(-1) for k in range(c)]
        jb = torch.stack(rows)  # (C, D)
        total += float((v[i] @ jb).pow(2).sum())
    return 0.5 * c / b * total


REFERENCES = {"jacobian": Reference(ref_jacobian, inputs=_inputs)}


def _exact(f, x):
    """½·mean_b ‖J_b‖²_F from torch.autograd.functional.jacobian, one sample at a time."""
    total = 0.0
    for i in range(x.shape[0]):
        jb = torch.autograd.functional.jacobian(lambda z: f(z.unsqueeze(0))[0], x[i].detach())
        total += float(jb.pow(2).sum())
    return 0.5 * total / x.shape[0]


def _sheet_problem():
    torch.manual_seed(0)
    w1 = torch.randn(5, 4, dtype=D)
    w2 = torch.randn(3, 5, dtype=D)
    x = torch.randn(2, 4, dtype=D, requires_grad=True)
    f = lambda z: torch.tanh(z @ w1.T) @ w2.T  # noqa: E731
    return f, x


def test_sheet_test_vector():
    f, x = _sheet_problem()
    y = f(x)
    assert jacobian(x, y, n_proj=-1).item() == pytest.approx(1.331403, abs=1e-6)
    assert _exact(f, x) == pytest.approx(1.331403, abs=1e-6)
    one = jacobian(x, y, n_proj=1, generator=torch.Generator().manual_seed(123))
    assert one.item() == pytest.approx(0.331641, abs=1e-6)


def test_exact_mode_matches_autograd_jacobian_for_image_inputs():
    g = torch.Generator().manual_seed(3)
    f = _net(g, d_in=2 * 3 * 3, hidden=7, c=4)
    x = torch.randn(5, 2, 3, 3, generator=g, dtype=D, requires_grad=True)
    got = jacobian(x, f(x), n_proj=-1)
    assert got.item() == pytest.approx(_exact(f, x), rel=1e-12)


def test_unbiased_over_many_draws():
    """The mean of many n_proj = 1 estimates is the exact value, within 4 standard errors."""
    f, x = _sheet_problem()
    y = f(x)
    exact = _exact(f, x)
    g = torch.Generator().manual_seed(7)
    draws = torch.tensor([jacobian(x, y, 1, g).item() for _ in range(2000)], dtype=D)
    se = draws.std() / len(draws) ** 0.5
    assert abs(draws.mean().item() - exact) < 4 * se.item()
    # several projections per call: same mean, smaller spread
    draws4 = torch.tensor([jacobian(x, y, 4, g).item() for _ in range(500)], dtype=D)
    assert abs(draws4.mean().item() - exact) < 4 * (draws4.std() / len(draws4) ** 0.5).item()
    assert draws4.std() < draws.std()


def test_projections_are_per_sample_unit_vectors_scaled_by_c():
    """A linear model y = xWᵀ has J_b = W: the estimate is ½·C/B·Σ_b ‖v_bᵀW‖² for the drawn unit v_b."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 6, generator=g, dtype=D)
    x = torch.randn(5, 6, generator=g, dtype=D, requires_grad=True)
    got = jacobian(x, x @ w.T, n_proj=1, generator=torch.Generator().manual_seed(9))
    v = torch.randn(5, 4, generator=torch.Generator().manual_seed(9), dtype=D)
    v = v / v.norm(dim=1, keepdim=True)
    assert got.item() == pytest.approx(0.5 * 4 / 5 * float((v @ w).pow(2).sum()), rel=1e-12)


def test_single_output_is_exact():
    g = torch.Generator().manual_seed(1)
    f = _net(g, c=1)
    x = torch.randn(4, 4, generator=g, dtype=D, requires_grad=True)
    y = f(x)
    assert jacobian(x, y, 3).item() == pytest.approx(jacobian(x, y, -1).item(), rel=1e-12)


def test_generator_makes_draws_reproducible():
    f, x = _sheet_problem()
    y = f(x)
    a = jacobian(x, y, 2, torch.Generator().manual_seed(5))
    b = jacobian(x, y, 2, torch.Generator().manual_seed(5))
    c = jacobian(x, y, 2, torch.Generator().manual_seed(6))
    assert a.item() == b.item() and a.item() != c.item()


def test_gradcheck_through_double_backprop():
    g = torch.Generator().manual_seed(2)
    w1 = torch.randn(5, 4, generator=g, dtype=D, requires_grad=True)
    w2 = torch.randn(3, 5, generator=g, dtype=D, requires_grad=True)
    x0 = torch.randn(3, 4, generator=g, dtype=D)

    def penalty(w1, w2, n_proj):
        x = x0.clone().requires_grad_(True)
        y = torch.tanh(x @ w1.T) @ w2.T
        return jacobian(x, y, n_proj, torch.Generator().manual_seed(0))

    assert torch.autograd.gradcheck(lambda a, b: penalty(a, b, -1), (w1, w2))
    assert torch.autograd.gradcheck(lambda a, b: penalty(a, b, 2), (w1, w2))


def test_training_on_it_reduces_the_jacobian():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()
    x = torch.randn(32, 4, dtype=D)
    f = lambda z: model(z)  # noqa: E731
    before = _exact(f, x)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    reg = JacobianReg(weight=1.0)
    for _ in range(50):
        xr = x.clone().requires_grad_(True)
        loss = reg(xr, model(xr))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert _exact(f, x) < 0.5 * before


def test_class_is_weight_times_penalty_and_takes_a_generator():
    f, x = _sheet_problem()
    y = f(x)
    reg = reglab.create("jacobian")
    assert isinstance(reg, JacobianReg) and reg.current_weight == pytest.approx(0.1) and reg.n_proj == 1
    got = reg(x, y, generator=torch.Generator().manual_seed(123))
    assert got.item() == pytest.approx(0.1 * 0.331641, abs=1e-7)
    assert reglab.create("jacobian", n_proj=-1)(x, y).item() == pytest.approx(0.1 * 1.331403, abs=1e-7)
    assert reg.get_config() == {"name": "jacobian", "weight": 0.1, "n_proj": 1}


@pytest.mark.parametrize("n_proj", [0, -2, 1.5, True, "1"])
def test_bad_n_proj(n_proj):
    with pytest.raises(ValueError, match="JacobianReg.*n_proj"):
        JacobianReg(n_proj=n_proj)
    f, x = _sheet_problem()
    with pytest.raises(ValueError, match="JacobianReg.*n_proj"):
        jacobian(x, f(x), n_proj)


def test_bad_inputs_are_named():
    f, x = _sheet_problem()
    y = f(x)
    cases = {
        "does not require grad": (x.detach(), f(x.detach())),
        "same batch size": (x, y[:1]),
        "were not computed from this x": (x.clone(), y),
        "2 dimensions": (x, y.reshape(-1)),
        "do not require grad": (x, y.detach()),
    }
    for message, (a, b) in cases.items():
        with pytest.raises(reglab.RegularizerInputError, match=f"JacobianReg.*{message}"):
            jacobian(a, b)


def test_float32_and_half_logits():
    f, x = _sheet_problem()
    xf = x.detach().float().requires_grad_(True)
    w1 = torch.randn(5, 4)
    y = torch.tanh(xf @ w1.T)
    assert jacobian(xf, y, -1).dtype == torch.float32
    yh = y.to(torch.bfloat16)
    out = jacobian(xf, yh, 1, torch.Generator().manual_seed(0))
    assert torch.isfinite(out) and out.dtype == torch.float32
