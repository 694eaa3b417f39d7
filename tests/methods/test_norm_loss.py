"""Norm Loss (Georgiou et al., 2021) against a loop over output filters."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._weights import IDS, SHAPES, bad_weights, check_list_matches_references, rand, rows_np


def ref_norm_loss(w):
    """Σ_i (1 − ‖w_i‖₂)² over the rows of the (out, in·k…) matrix."""
    return sum((1 - math.sqrt(sum(x * x for x in row))) ** 2 for row in rows_np(w).tolist())


REFERENCES = {"norm_loss": ref_norm_loss}


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_norm_loss_matches_loop(shape):
    w = rand(shape)
    assert RF.norm_loss(w).item() == pytest.approx(ref_norm_loss(w))


def test_list_equals_sum_of_references():
    check_list_matches_references(reglab.NormLoss(), ref_norm_loss)


@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 2, 2)], ids=["linear", "conv2d"])
def test_gradcheck(shape):
    w = rand(shape, away_from_zero=True).requires_grad_(True)
    assert torch.autograd.gradcheck(RF.norm_loss, (w,))


def test_bad_inputs_raise_with_name():
    for x in bad_weights(matrix=True):
        with pytest.raises(RegularizerInputError, match="norm_loss"):
            RF.norm_loss(x)


def test_list_rejects_non_finite():
    ts = [rand((4, 3)), rand((4, 3))]
    ts[1][2, 1] = float("nan")
    with pytest.raises(RegularizerInputError, match="norm_loss"):
        reglab.create("norm_loss").penalty(ts)
