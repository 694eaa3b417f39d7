"""CQ-NIR coordinate quantization against the official pts_loc arithmetic, re-done in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reglab
from reglab import RegularizerInputError
from reglab.methods.coordinate_quantization import quantize_coordinates


def ref_pts_loc(pts, xmin=-2.5, xmax=2.5, res=25600):
    """The official steps: normalize to [0, 1], floor to the cell, cell centre, back to the box."""
    pts = np.asarray(pts, dtype=np.float64)
    cube = 1.0 / (res - 1)
    u = (pts - xmin) / (xmax - xmin)
    ind0 = np.floor(u / cube)
    centre = ind0 * cube + cube / 2.0
    return centre * 2 * xmax - xmax


def test_matches_official_arithmetic():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-2.5, 2.5, size=(100, 3))
    got = quantize_coordinates(torch.from_numpy(pts))
    np.testing.assert_allclose(got.numpy(), ref_pts_loc(pts), rtol=0, atol=1e-12)
    # a coarse grid makes the snapping visible: 5 points on [0, 1] -> cells of 0.25, centres 0.125, 0.375, ...
    x = torch.tensor([0.0, 0.1, 0.26, 0.6, 0.99], dtype=torch.float64)
    torch.testing.assert_close(quantize_coordinates(x, 0.0, 1.0, 5),
                               torch.tensor([0.125, 0.125, 0.375, 0.625, 0.875], dtype=torch.float64))


def test_idempotent_within_cell_and_no_gradient():
    x = torch.rand(50, 3, dtype=torch.float64) * 5 - 2.5
    q = quantize_coordinates(x)
    torch.testing.assert_close(quantize_coordinates(q), q)
    assert float((q - x).abs().max()) <= 5.0 / 25599 / 2 + 1e-12  # within half a cell
    xg = x.clone().requires_grad_(True)
    assert not quantize_coordinates(xg).requires_grad


def test_module_keeps_dtype_and_applies_in_eval():
    cq = reglab.CoordinateQuantization(low=0.0, high=1.0, resolution=5).eval()
    x = torch.tensor([[0.1, 0.6]], dtype=torch.float32)
    out = cq(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[0.125, 0.625]]))
    assert reglab.from_config(cq.get_config()).get_config() == cq.get_config()


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="CoordinateQuantization.*resolution"):
        reglab.CoordinateQuantization(resolution=1)
    with pytest.raises(RegularizerInputError, match="CoordinateQuantization.*high > low"):
        quantize_coordinates(torch.zeros(3), low=1.0, high=0.0)
    with pytest.raises(RegularizerInputError, match="CoordinateQuantization"):
        quantize_coordinates(torch.tensor([float("nan")]))
    with pytest.raises(RegularizerInputError, match="CoordinateQuantization"):
        quantize_coordinates(torch.tensor([1, 2]))
