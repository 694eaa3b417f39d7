"""ScheduledDropPath (Zoph et al., 2018): the drop rate ramps linearly and resumes from state."""

from __future__ import annotations

import pytest
import torch

import reglab


def test_scheduled_drop_path_ramp_and_resume():
    sdp = reglab.create("scheduled_drop_path", total_steps=10, p_final=0.4)
    assert sdp.rate == 0.0
    x = torch.ones(50, 3)
    assert torch.equal(sdp(x), x)  # rate 0 at step 0
    for _ in range(5):
        sdp.step()
    assert sdp.rate == pytest.approx(0.2)
    fresh = reglab.ScheduledDropPath(total_steps=10, p_final=0.4)
    fresh.load_state_dict(sdp.state_dict())
    assert fresh.rate == pytest.approx(0.2)
    for _ in range(20):
        fresh.step()
    assert fresh.rate == pytest.approx(0.4)
    out = fresh(torch.ones(4000, 1))
    assert float((out == 0).float().mean()) == pytest.approx(0.4, abs=0.03)
    assert float(out.max()) == pytest.approx(1 / 0.6)
