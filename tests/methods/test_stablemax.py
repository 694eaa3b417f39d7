"""StableMax and ⊥Grad (Prieto et al., 2025) against plain-Python references and hand-written updates."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._problem import loss_of, make_problem


def ref_log_stablemax(rows):
    """log(s(x_i)/Σ_j s(x_j)) by loops, s(x) = x + 1 (x ≥ 0), 1/(1 − x) (x < 0) (the paper's Eq. 6)."""
    out = []
    for row in rows:
        s = [x + 1.0 if x >= 0 else 1.0 / (1.0 - x) for x in row]
        total = sum(s)
        out.append([math.log(v / total) for v in s])
    return out


def test_log_stablemax_matches_loops():
    z = 3 * torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = RF.log_stablemax(z)
    torch.testing.assert_close(got, torch.tensor(ref_log_stablemax(z.tolist()), dtype=torch.float64))
    # hand values: s(1) = 2, s(-1) = 1/2, s(0) = 1 -> p = (4, 1, 2)/7
    p = reglab.create("stablemax")(torch.tensor([[1.0, -1.0, 0.0]])).exp()
    torch.testing.assert_close(p, torch.tensor([[4 / 7, 1 / 7, 2 / 7]]))


def test_cross_entropy_of_the_module_is_stablemax_cross_entropy():
    z = 4 * torch.randn(8, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 4, (8,), generator=torch.Generator().manual_seed(2))
    ref = -sum(ref_log_stablemax(z.tolist())[i][int(y[i])] for i in range(8)) / 8
    assert float(F.cross_entropy(reglab.StableMax()(z), y)) == pytest.approx(ref, rel=1e-12)
    assert float(RF.stablemax_cross_entropy(z, y)) == pytest.approx(ref, rel=1e-12)


def test_gradcheck_across_zero_and_argmax_kept():
    z = torch.tensor([[-2.0, -1e-3, 0.0, 1e-3, 3.0], [0.5, -0.5, 2.0, -4.0, 0.1]], dtype=torch.float64)
    assert torch.autograd.gradcheck(RF.log_stablemax, (z.requires_grad_(),))
    w = torch.randn(7, 6, dtype=torch.float64) * 10
    assert torch.equal(RF.log_stablemax(w).argmax(1), w.argmax(1))


def test_no_collapse_where_float32_softmax_rounds_to_zero_loss():
    """The paper's Softmax Collapse: with a 40-logit margin the float32 softmax CE is exactly 0,
    StableMax's is not (−log(41/43) ≈ 0.047), so the gradient does not vanish."""
    z = torch.tensor([[40.0, 0.0, 0.0]], requires_grad=True)
    y = torch.tensor([0])
    assert float(F.cross_entropy(z, y)) == 0.0
    loss = F.cross_entropy(reglab.StableMax()(z), y)
    assert float(loss) == pytest.approx(-math.log(41 / 43), rel=1e-6)
    loss.backward()
    assert float(z.grad.abs().sum()) > 0


def test_stablemax_bad_input():
    sm = reglab.StableMax()
    for bad in (torch.tensor([[1.0, float("nan")]]), torch.tensor([1.0, 2.0]), torch.ones(3, 1), "x"):
        with pytest.raises(RegularizerInputError, match="StableMax"):
            sm(bad)
    with pytest.raises(ValueError, match="stablemax_cross_entropy"):
        RF.stablemax_cross_entropy(torch.randn(3, 4), torch.tensor([0, 1, 4]))


# ---- ⊥Grad


def orthograd_by_hand(model, x, y, steps, lr, momentum):
    """Per tensor: g⊥ = g − (⟨w,g⟩/⟨w,w⟩)w, rescaled to ‖g‖; then SGD with momentum, written out."""
    params = list(model.parameters())
    bufs = [torch.zeros_like(p) for p in params]
    for _ in range(steps):
        grads = torch.autograd.grad(loss_of(model, x, y), params)
        with torch.no_grad():
            for p, g, b in zip(params, grads, bufs):
                w, gv = p.reshape(-1).tolist(), g.reshape(-1).tolist()
                c = sum(a * d for a, d in zip(w, gv)) / sum(a * a for a in w)
                orth = [d - c * a for a, d in zip(w, gv)]
                scale = math.sqrt(sum(d * d for d in gv)) / math.sqrt(sum(o * o for o in orth))
                new = torch.tensor([o * scale for o in orth], dtype=p.dtype).reshape(p.shape)
                b.mul_(momentum).add_(new)
                p.sub_(lr * b)
    return [p.detach().clone() for p in params]


def test_orthograd_trajectory_equals_hand_written():
    model, x, y = make_problem(torch.float64)
    ref_model = copy.deepcopy(model)
    opt = reglab.create("orthograd", params=model.parameters(), lr=0.1, momentum=0.9)

    def closure():
        loss = loss_of(model, x, y)
        loss.backward()
        return loss

    for _ in range(4):
        opt.step(closure)
    for p, r in zip(model.parameters(), orthograd_by_hand(ref_model, x, y, 4, 0.1, 0.9)):
        torch.testing.assert_close(p.detach(), r, rtol=1e-10, atol=1e-12)


def test_projection_is_orthogonal_and_keeps_the_norm():
    model, x, y = make_problem(torch.float64)
    opt = reglab.OrthoGrad(model.parameters(), torch.optim.Adam, lr=1e-3)
    loss_of(model, x, y).backward()
    before = [p.grad.clone() for p in model.parameters()]
    opt.project_()
    for p, g in zip(model.parameters(), before):
        assert abs(float((p.grad * p).sum())) < 1e-10 * float(p.norm() * g.norm())
        assert float(p.grad.norm()) == pytest.approx(float(g.norm()), rel=1e-10)
        assert not torch.allclose(p.grad, g)


def test_orthograd_state_dict_round_trip_and_bad_input():
    model, x, y = make_problem()
    opt = reglab.OrthoGrad(model.parameters(), torch.optim.Adam, lr=1e-3)
    loss_of(model, x, y).backward()
    opt.step()
    again = reglab.from_config(opt.get_config(), params=model.parameters(), base_optimizer=torch.optim.Adam)
    again.load_state_dict(opt.state_dict())
    p0 = next(model.parameters())
    assert torch.equal(again.state[p0]["exp_avg"], opt.state[p0]["exp_avg"])
    with pytest.raises(RegularizerInputError, match="base_optimizer"):
        reglab.OrthoGrad(model.parameters(), base_optimizer="adam")
    p0.grad[0, 0] = float("nan")
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(RegularizerInputError, match="OrthoGrad"):
        opt.step()
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
