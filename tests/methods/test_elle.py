"""ELLE (Abad Rocamora et al., 2024): the local-linearity error by loops over the same random draws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._reference import Reference


class _TanhNet(nn.Module):
    def __init__(self, g: torch.Generator):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(4, 5, generator=g, dtype=torch.float64))
        self.w2 = nn.Parameter(torch.randn(5, 3, generator=g, dtype=torch.float64))

    def forward(self, x):
        return torch.tanh(x @ self.w1) @ self.w2


def _inputs(g):
    x = torch.rand(6, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (6,), generator=g)
    return x, y, _TanhNet(g)


def ref_elle(x, y, model, eps=8 / 255):
    """Draw as the official code (2·bs perturbations, then bs alphas), then the error by loops in numpy."""
    bs = x.shape[0]
    noise = (2 * torch.rand((2 * bs,) + tuple(x.shape[1:]), dtype=x.dtype) - 1).numpy()
    alpha = torch.rand(bs, dtype=x.dtype).numpy()
    w1, w2 = model.w1.detach().numpy(), model.w2.detach().numpy()
    xs = x.numpy()

    def ce(v, label):
        z = np.tanh(v @ w1) @ w2
        return math.log(sum(math.exp(t) for t in z)) - z[label]

    total = 0.0
    for i in range(bs):
        xa, xb = xs[i] + eps * noise[i], xs[i] + eps * noise[bs + i]
        xc = (1 - alpha[i]) * xa + alpha[i] * xb
        lin = (1 - alpha[i]) * ce(xa, int(y[i])) + alpha[i] * ce(xb, int(y[i]))
        total += (ce(xc, int(y[i])) - lin) ** 2
    return total / bs


REFERENCES = {"elle": Reference(ref_elle, inputs=_inputs)}


def test_matches_loops_at_another_eps_and_backpropagates():
    x, y, model = _inputs(torch.Generator().manual_seed(3))
    torch.manual_seed(5)
    got = reglab.ELLE(10.0, eps=0.3)(x, y, model)
    torch.manual_seed(5)
    assert float(got) == pytest.approx(10.0 * ref_elle(x, y, model, eps=0.3), rel=1e-10)
    got.backward()
    assert model.w1.grad is not None and float(model.w1.grad.abs().sum()) > 0


def test_zero_for_a_loss_linear_in_the_input():
    """A model whose per-sample loss is affine in x has no linearity error (up to rounding)."""

    class Affine(nn.Module):
        def forward(self, x):  # two logits: (0, s(x)) with CE at label 0 = softplus(s), ≈ s for s ≫ 0
            s = 50 + x.sum(dim=1, keepdim=True)
            return torch.cat([torch.zeros_like(s), s], dim=1)

    x = torch.rand(5, 3, dtype=torch.float64)
    y = torch.ones(5, dtype=torch.long)  # CE at label 1 = softplus(−s) ≈ 0 and linear: e^(−50)-sized
    assert float(RF.elle(x, y, Affine(), eps=0.1)) < 1e-30
    y0 = torch.zeros(5, dtype=torch.long)  # CE at label 0 = softplus(s) = s + tiny: linear in x
    assert float(RF.elle(x, y0, Affine(), eps=0.1)) < 1e-20


def test_curved_loss_is_penalized_more_at_larger_eps():
    x, y, model = _inputs(torch.Generator().manual_seed(4))
    values = []
    for eps in (0.01, 0.1, 1.0):
        torch.manual_seed(0)
        values.append(float(RF.elle(x, y, model, eps=eps)))
    assert values[0] < values[1] < values[2]


def test_bad_inputs():
    x, y, model = _inputs(torch.Generator().manual_seed(1))
    reg = reglab.ELLE()
    with pytest.raises(RegularizerInputError, match="ELLE.*labels"):
        reg(x, y[:3], model)
    with pytest.raises(RegularizerInputError, match="ELLE.*model"):
        reg(x, y, "not a model")
    with pytest.raises(RegularizerInputError, match="eps"):
        reglab.ELLE(eps=0.0)
    with pytest.raises(RegularizerInputError, match="ELLE.*logits"):
        reg(x, y, lambda v: v.sum(dim=1))
    assert reg.weight == 1000.0 and reg.eps == pytest.approx(8 / 255)  # official CIFAR-10 ε = 8/255 setting


def test_1e20_scale_float32_input_gives_a_finite_gradient():
    """The bad-input matrix's 1e20 cell with a float32 model (the generic test's float64 model cannot take it)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    x = (torch.rand(6, 4) * 1e20).requires_grad_()
    reglab.create("elle")(x, torch.randint(0, 3, (6,)), net).backward()
    assert torch.isfinite(x.grad).all() and all(torch.isfinite(p.grad).all() for p in net.parameters())


# ----------------------------------------------------------------------------- ELLE-A (adaptive λ)


def ref_ellea(errors, lam_max, sensitivity=2.0, decay_rate=0.99):
    """ELLE-A as the official CIFAR-10 loop, written plainly: a list of all earlier errors, np.mean and np.std
    (population), λ starting at 0; returns the λ after each error."""
    history, lam, out = [], 0.0, []
    for r in errors:
        if len(history) > 2 and r > np.mean(history) + sensitivity * np.std(history):
            lam = lam_max
        else:
            lam = lam * decay_rate
        history.append(r)
        out.append(lam)
    return out


# calm errors, a spike at index 6 (λ on), decay, a second spike once the spread has grown, a late small rise
ERRORS = [0.5, 0.52, 0.49, 0.51, 0.5, 0.505, 3.0, 0.6, 0.55, 0.5, 0.52, 9.0, 0.4, 0.45, 2.0, 0.5, 0.48, 40.0, 0.5]


def test_ellea_schedule_follows_the_reference_step_by_step():
    expected = ref_ellea(ERRORS, 4000.0)
    assert expected[5] == 0.0 and expected[6] == 4000.0 and expected[11] == 4000.0  # the spikes switch λ on
    assert expected[14] < 4000.0  # 2.0 is no spike once 3.0 and 9.0 widened σ: decay goes on
    sched = reglab.ELLEASchedule(4000.0)
    assert sched.lam == 0.0
    for r, lam in zip(ERRORS, expected):
        assert sched.update(r) == pytest.approx(lam, rel=1e-12, abs=0.0)
        assert sched.lam == pytest.approx(lam, rel=1e-12, abs=0.0)
    assert sched.mean == pytest.approx(np.mean(ERRORS), rel=1e-12)
    assert sched.std == pytest.approx(np.std(ERRORS), rel=1e-12)


def test_ellea_other_constants_follow_the_reference():
    expected = ref_ellea(ERRORS, 50.0, sensitivity=0.5, decay_rate=0.8)
    sched = reglab.ELLEASchedule(50.0, sensitivity=0.5, decay_rate=0.8)
    assert [sched.update(r) for r in ERRORS] == pytest.approx(expected, rel=1e-12)


def test_no_spike_test_before_three_errors():
    sched = reglab.ELLEASchedule(10.0)
    assert [sched.update(r) for r in (0.1, 5.0, 100.0)] == [0.0, 0.0, 0.0]  # 100 ≫ μ + 2σ, but only 2 earlier
    assert sched.update(1000.0) == 10.0


def _through_the_regularizer(reg, steps, seed=0):
    """Train-mode calls of reg.penalty + reg.step on a fixed model; returns the recorded R and λ per step."""
    x, y, model = _inputs(torch.Generator().manual_seed(seed))
    errors, lams = [], []
    for t in range(steps):
        torch.manual_seed(100 + t)
        scale = 8.0 if t in (5, 9) else 1.0  # a wider ball on two steps: larger R (spikes)
        xt = x * scale
        errors.append(float(reg.penalty(xt, y, model)))
        reg.step()
        lams.append(reg.current_weight)
    return errors, lams


def test_adaptive_regularizer_feeds_each_steps_error_to_the_schedule():
    reg = reglab.ELLE(3000.0, eps=0.5, adaptive=True)
    assert reg.current_weight == 0.0  # λ starts at 0 (official train.py)
    errors, lams = _through_the_regularizer(reg, 12)
    assert lams == pytest.approx(ref_ellea(errors, 3000.0), rel=1e-12)
    assert max(lams) == 3000.0  # a spike happened
    # forward uses the current λ
    x, y, model = _inputs(torch.Generator().manual_seed(0))
    torch.manual_seed(7)
    value = reg(x, y, model)
    torch.manual_seed(7)
    assert float(value) == pytest.approx(lams[-1] * float(RF.elle(x, y, model, eps=0.5)), rel=1e-12)


def test_adaptive_two_calls_in_a_step_average_and_eval_calls_do_not_count():
    x, y, model = _inputs(torch.Generator().manual_seed(2))
    reg = reglab.ELLE(1.0, eps=0.3, adaptive=True)
    seen = []
    for t in range(5):
        a, b = float(reg.penalty(x, y, model)), float(reg.penalty(x * 2, y, model))
        seen.append((a + b) / 2)
        reg.eval()
        reg.penalty(x * 50, y, model)  # not recorded
        reg.train()
        reg.step()
    assert reg.schedule.count == 5 and reg.schedule.mean == pytest.approx(np.mean(seen), rel=1e-12)
    reg.step()  # a step without a recorded error leaves λ and the history as they are
    assert reg.schedule.count == 5


def test_adaptive_state_dict_round_trip_mid_trajectory():
    reg = reglab.ELLE(3000.0, eps=0.5, adaptive=True)
    errors, _ = _through_the_regularizer(reg, 7)
    state = reg.state_dict()
    fresh = reglab.from_config(reg.get_config())
    fresh.load_state_dict(state)
    assert fresh.current_weight == reg.current_weight and fresh.step_count == 7
    assert fresh.schedule.state_dict() == reg.schedule.state_dict()
    # both go on identically, and as the reference over the whole trajectory
    more_a, lams_a = _through_the_regularizer(reg, 6, seed=1)
    more_b, lams_b = _through_the_regularizer(fresh, 6, seed=1)
    assert more_a == more_b and lams_a == lams_b
    assert lams_a == pytest.approx(ref_ellea(errors + more_a, 3000.0)[7:], rel=1e-12)
    # a checkpoint of one kind does not load into the other
    with pytest.raises(RegularizerInputError, match="ELLE.*adaptive"):
        reglab.ELLE().load_state_dict(state)
    with pytest.raises(RegularizerInputError, match="ELLE.*adaptive"):
        reglab.ELLE(adaptive=True).load_state_dict(reglab.ELLE().state_dict())
    reglab.ELLE().load_state_dict(reglab.ELLE().state_dict())


def test_adaptive_config_round_trip():
    reg = reglab.ELLE(4000.0, eps=16 / 255, adaptive=True, sensitivity=1.5, decay_rate=0.95)
    cfg = reg.get_config()
    assert cfg == {"name": "elle", "weight": 4000.0, "eps": 16 / 255, "adaptive": True, "sensitivity": 1.5,
                   "decay_rate": 0.95}
    again = reglab.from_config(cfg)
    assert again.get_config() == cfg and again.schedule.lam_max == 4000.0 and again.current_weight == 0.0
    default = reglab.ELLE()
    assert default.get_config()["adaptive"] is False and default.current_weight == 1000.0
    assert (default.sensitivity, default.decay_rate) == (2.0, 0.99)  # official --sensitivity, --decay_rate


def test_adaptive_bad_inputs_name_the_regularizer():
    with pytest.raises(RegularizerInputError, match="ELLE.*adaptive"):
        reglab.ELLE(adaptive="yes")
    with pytest.raises(RegularizerInputError, match="ELLE.*decay_rate"):
        reglab.ELLE(adaptive=True, decay_rate=0.0)
    with pytest.raises(RegularizerInputError, match="ELLE.*decay_rate"):
        reglab.ELLE(decay_rate=1.5)
    with pytest.raises(RegularizerInputError, match="ELLE.*sensitivity"):
        reglab.ELLE(adaptive=True, sensitivity=-1.0)
    with pytest.raises(RegularizerInputError, match="ELLE.*constant weight"):
        reglab.ELLE(lambda t: 1.0, adaptive=True)
    sched = reglab.ELLEASchedule(10.0)
    for bad in (float("nan"), float("inf"), -1.0, "0.5", None):
        with pytest.raises(RegularizerInputError, match="ELLE.*R"):
            sched.update(bad)
    assert sched.count == 0 and sched.lam == 0.0  # a refused error changes nothing
    with pytest.raises(RegularizerInputError, match="ELLE.*schedule state"):
        sched.load_state_dict({"lam": 1.0})
    with pytest.raises(RegularizerInputError, match="ELLE.*schedule state"):
        sched.load_state_dict({"lam": 1.0, "count": -1, "mean": 0.0, "m2": 0.0})
