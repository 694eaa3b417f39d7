"""Nuclear norm (Fazel 2002; Recht, Fazel & Parrilo 2010) against numpy's singular values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._weights import IDS, SHAPES, bad_weights, check_list_matches_references, rand, rows_np


def ref_nuclear_norm(w):
    """Σ_i σ_i of the (out, in·k…) matrix, by numpy's SVD."""
    return float(np.linalg.svd(rows_np(w), compute_uv=False).sum())


REFERENCES = {"nuclear_norm": ref_nuclear_norm}


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_nuclear_norm_matches_numpy(shape):
    w = rand(shape)
    assert RF.nuclear_norm(w).item() == pytest.approx(ref_nuclear_norm(w))


def test_list_equals_sum_of_references():
    check_list_matches_references(reglab.NuclearNorm(), ref_nuclear_norm)


@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 2, 2)], ids=["linear", "conv2d"])
def test_gradcheck(shape):
    w = rand(shape, away_from_zero=True).requires_grad_(True)
    assert torch.autograd.gradcheck(RF.nuclear_norm, (w,))


def test_bad_inputs_raise_with_name():
    for x in bad_weights(matrix=True):
        with pytest.raises(RegularizerInputError, match="nuclear_norm"):
            RF.nuclear_norm(x)
