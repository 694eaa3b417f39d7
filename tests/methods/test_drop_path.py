"""Drop path / stochastic depth (Huang et al., 2016): one draw per sample, unbiased rescaling."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reglab
from reglab.core.errors import RegularizerInputError


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 1000), st.sampled_from([0.2, 0.5, 0.8]), st.booleans())
def test_drop_path_is_per_sample(seed, p, scale):
    x = torch.rand(32, 3, 4) + 0.1
    dp = reglab.DropPath(p, scale_by_keep=scale)
    out = dp(x, generator=torch.Generator().manual_seed(seed))
    factor = 1 / (1 - p) if scale else 1.0
    for i in range(32):
        dropped = bool((out[i] == 0).all())
        assert dropped or torch.allclose(out[i], x[i] * factor)


def test_drop_path_expectation_eval_and_zero_rate():
    x = torch.ones(20000, 2)
    out = reglab.DropPath(0.3)(x)
    assert float(out.mean()) == pytest.approx(1.0, abs=0.03)  # survivors rescaled: unbiased
    assert float((out[:, 0] == 0).float().mean()) == pytest.approx(0.3, abs=0.02)
    unscaled = reglab.DropPath(0.3, scale_by_keep=False)(x)
    assert float(unscaled.max()) == 1.0
    dp = reglab.DropPath(0.3).eval()
    assert dp(x) is x
    assert reglab.DropPath(0.0)(x) is x
    with pytest.raises(RegularizerInputError, match="DropPath.*NaN"):
        reglab.DropPath(0.1)(torch.tensor([float("nan")]))
    with pytest.raises(RegularizerInputError, match="DropPath.*p"):
        reglab.DropPath(1.0)
    with pytest.raises(RegularizerInputError, match=r"DropPath expects p in \[0, 1\)"):
        reglab.DropPath(1.0)
