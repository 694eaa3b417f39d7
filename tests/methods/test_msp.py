"""Matrix Subspace Projection (Li et al. 2020), against loops."""

from __future__ import annotations

import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._reference import Reference


def ref_msp(z, y, m):
    b, d, k = len(z), len(z[0]), len(y[0])
    t1 = sum((sum(z[i][j] * m[c][j] for j in range(d)) - y[i][c]) ** 2 for i in range(b) for c in range(k))
    t2 = sum((sum(y[i][c] * m[c][j] for c in range(k)) - z[i][j]) ** 2 for i in range(b) for j in range(d))
    return t1 + t2


def _inputs(g):
    return (torch.randn(5, 4, generator=g, dtype=torch.float64), torch.rand(5, 2, generator=g, dtype=torch.float64),
            torch.randn(2, 4, generator=g, dtype=torch.float64))


REFERENCES = {"matrix_subspace_projection": Reference(lambda z, y, m: ref_msp(z.tolist(), y.tolist(), m.tolist()), inputs=_inputs)}


def test_zero_when_codes_are_the_attributes_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    m = q[:2]  # orthonormal rows
    y = torch.randn(6, 2, generator=g, dtype=torch.float64)
    assert float(RF.matrix_subspace_projection(y @ m, y, m)) == pytest.approx(0.0, abs=1e-20)
    z, y2, m2 = (t.requires_grad_() for t in _inputs(g))
    assert torch.autograd.gradcheck(lambda a, b: RF.matrix_subspace_projection(a, y2.detach(), b), (z, m2))


def test_bad_input():
    z, y, m = _inputs(torch.Generator().manual_seed(1))
    with pytest.raises(RegularizerInputError, match="MatrixSubspaceProjection expects codes"):
        RF.matrix_subspace_projection(z, y, m.T)
    with pytest.raises(RegularizerInputError, match="MatrixSubspaceProjection"):
        RF.matrix_subspace_projection(z, y[:, 0], m)
    assert reglab.create("matrix_subspace_projection").weight == 1.0
