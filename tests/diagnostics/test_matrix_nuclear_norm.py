"""Matrix Nuclear-Norm (Li et al. 2024): the L1,2 approximation and the exact value, against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reglab import diagnostics as D
from reglab.core.errors import RegularizerInputError


def ref_mnn(z, exact=False):
    """MLGroupJLU/MatrixNuclearNorm code/MNN.py, written with numpy."""
    x = np.asarray(z, dtype=np.float64)
    x = x - x.mean(0)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    if exact:
        return np.linalg.svd(x, compute_uv=False).sum() / x.shape[0]
    cols = np.sort(np.linalg.norm(x, axis=0))[::-1]
    return cols[: min(x.shape)].sum() / x.shape[0]


@pytest.mark.parametrize("shape", [(10, 4), (4, 10), (7, 7)])
def test_matches_numpy(shape):
    z = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=torch.float64)
    assert D.matrix_nuclear_norm(z) == pytest.approx(ref_mnn(z.numpy()), rel=1e-12)
    assert D.matrix_nuclear_norm(z, exact=True) == pytest.approx(ref_mnn(z.numpy(), exact=True), rel=1e-10)


def test_tracks_spread_and_bounds():
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(200, 16, generator=g, dtype=torch.float64)
    collapsed = torch.zeros(200, 16, dtype=torch.float64)  # collapsed onto two coordinate axes: what the
    collapsed[:, :2] = torch.randn(200, 2, generator=g, dtype=torch.float64)  # column-norm proxy can see
    assert D.matrix_nuclear_norm(spread) > D.matrix_nuclear_norm(collapsed)
    assert D.matrix_nuclear_norm(spread, exact=True) > D.matrix_nuclear_norm(collapsed, exact=True)
    for z in (spread, collapsed):  # both at most sqrt(min(n, d)/n) (unit rows: ‖X‖_F² = n)
        assert D.matrix_nuclear_norm(z) <= (16 / 200) ** 0.5 + 1e-12
        assert D.matrix_nuclear_norm(z, exact=True) <= (16 / 200) ** 0.5 + 1e-12
    assert "matrix_nuclear_norm" in D.EMBEDDING_DIAGNOSTICS


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="matrix_nuclear_norm"):
        D.matrix_nuclear_norm(torch.randn(5))
    with pytest.raises(RegularizerInputError, match="matrix_nuclear_norm got a row equal to the batch mean"):
        D.matrix_nuclear_norm(torch.ones(4, 3))
    nan = torch.randn(4, 3)
    nan[0, 0] = float("nan")
    with pytest.raises(RegularizerInputError, match="NaN"):
        D.matrix_nuclear_norm(nan)
