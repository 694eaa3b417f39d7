import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reglab
from reglab import schedules as S


def test_constant():
    assert S.Constant(0.3)(0) == 0.3 == S.Constant(0.3)(10**6)


def test_linear_warmup_matches_formula():
    s = S.LinearWarmup(1.0, warmup_steps=10, start=0.2)
    for t in range(15):
        expected = 0.2 + 0.8 * t / 10 if t < 10 else 1.0
        assert s(t) == pytest.approx(expected)


def test_linear_ramp_begin_and_end():
    s = S.LinearRamp(0.0, 0.8, steps=100, begin=20)
    assert s(0) == 0.0 and s(20) == 0.0
    assert s(70) == pytest.approx(0.4)
    assert s(120) == pytest.approx(0.8) and s(10_000) == pytest.approx(0.8)


def test_cosine_endpoints_and_midpoint():
    s = S.Cosine(1.0, 0.0, steps=100)
    assert s(0) == pytest.approx(1.0)
    assert s(50) == pytest.approx(0.5)
    assert s(100) == 0.0 and s(1000) == 0.0
    assert s(25) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_step_schedule():
    s = S.Step(1.0, milestones=[10, 20], gamma=0.5)
    assert [s(t) for t in (0, 9, 10, 19, 20, 99)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    with pytest.raises(ValueError):
        S.Step(1.0, milestones=[20, 10])


@settings(max_examples=25, deadline=None)
@given(st.floats(-5, 5), st.floats(-5, 5), st.integers(1, 500), st.integers(0, 1000))
def test_ramps_stay_between_endpoints(a, b, steps, t):
    for s in (S.LinearRamp(a, b, steps), S.Cosine(a, b, steps)):
        v = s(t)
        assert min(a, b) - 1e-9 <= v <= max(a, b) + 1e-9


@pytest.mark.parametrize(
    "sched",
    [S.Constant(2.0), S.LinearWarmup(1.0, 5), S.LinearRamp(0, 1, 7, begin=2), S.Cosine(1, 0, 9), S.Step(1, [3, 6])],
)
def test_schedule_config_round_trip(sched):
    again = S.from_config(sched.get_config())
    assert again == sched
    assert [again(t) for t in range(12)] == [sched(t) for t in range(12)]


def test_bad_schedule_inputs():
    with pytest.raises(ValueError):
        S.LinearWarmup(1.0, warmup_steps=-1)
    with pytest.raises(TypeError):
        S.as_schedule("0.1")
    with pytest.raises(ValueError):
        S.as_schedule(float("nan"))
    with pytest.raises(ValueError, match="unknown schedule"):
        S.from_config({"schedule": "Nope"})


def test_regularizer_weight_follows_schedule_and_resumes():
    w = torch.randn(4, 3)
    reg = reglab.L2(S.LinearWarmup(1.0, warmup_steps=4))
    values = []
    for _ in range(3):
        values.append(float(reg(w)))
        reg.step()
    state = reg.state_dict()
    resumed = reglab.L2(S.LinearWarmup(1.0, warmup_steps=4))
    resumed.load_state_dict(state)
    assert resumed.step_count == 3
    assert float(resumed(w)) == pytest.approx(float(reg(w)))
    assert values[0] == 0.0 and values[1] == pytest.approx(0.25 * 0.5 * float(w.pow(2).sum()))


def test_any_callable_is_a_schedule_but_not_serializable():
    reg = reglab.L2(lambda step: 0.1 * step)
    reg.step()
    reg.step()
    assert reg.current_weight == pytest.approx(0.2)
    with pytest.raises(TypeError, match="serialize"):
        reg.get_config()
