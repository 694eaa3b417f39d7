"""Shared invariance checks for the representation penalties' hypothesis tests."""

from __future__ import annotations

import pytest
import torch
from hypothesis import strategies as st

SEEDS = st.integers(min_value=0, max_value=10_000)
SCALES = st.floats(0.1, 10.0)


def assert_rotation_invariant(fn, seed: int) -> None:
    """``fn(z Q) == fn(z)`` for a random orthogonal Q (a rotation of the embedding space)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(9, 4, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    assert float(fn(z @ q)) == pytest.approx(float(fn(z)), rel=1e-8, abs=1e-10)


def assert_scale_invariant(fn, seed: int, scale: float) -> None:
    """``fn(s z) == fn(z)`` for a global scale s > 0."""
    z = torch.randn(8, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert float(fn(scale * z)) == pytest.approx(float(fn(z)), rel=1e-7, abs=1e-9)


def assert_homogeneous(fn, seed: int, scale: float, degree: int) -> None:
    """``fn(s z) == s^degree · fn(z)`` for a global scale s > 0."""
    z = torch.randn(8, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert float(fn(scale * z)) == pytest.approx(scale**degree * float(fn(z)), rel=1e-9)
