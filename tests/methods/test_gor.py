"""Group orthogonalization regularization (Kurtz et al., 2023) against a loop reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reglab
from reglab import RegularizerInputError
from reglab.methods.gor import group_orthogonality

from ._weights import rows_np


def ref_gor(w, num_groups=32, mode="inter", min_group_size=4):
    """Loops over groups, as the paper's naive implementation (README of YoavKurtz/GOR)."""
    m = rows_np(w)
    out = m.shape[0]
    g = max(1, min(num_groups, out // min_group_size))
    size = out // g
    if mode == "inter":
        sets = [m[i * size:(i + 1) * size] for i in range(g)]
    else:
        sets = [np.stack([m[j * size + i] for j in range(g)]) for i in range(size)]
    total = 0.0
    for a in sets:
        gram = a.T @ a if a.shape[0] >= a.shape[1] else a @ a.T
        total += float(((gram - np.eye(gram.shape[0])) ** 2).sum())
    return total


REFERENCES = {"group_orthogonality": ref_gor}


@pytest.mark.parametrize("mode", ["inter", "intra"])
@pytest.mark.parametrize("shape,groups", [((16, 5), 4), ((32, 3, 2, 2), 32), ((12, 40), 3), ((8, 20), 1), ((6, 2), 2)])
def test_matches_loop_reference(shape, groups, mode):
    w = torch.randn(shape, dtype=torch.float64)
    got = group_orthogonality(w, num_groups=groups, mode=mode)
    assert got.item() == pytest.approx(ref_gor(w, groups, mode), rel=1e-10)


def test_gradcheck_both_modes():
    w = torch.randn(8, 6, dtype=torch.float64, requires_grad=True)
    for mode in ("inter", "intra"):
        assert torch.autograd.gradcheck(lambda t: group_orthogonality(t, num_groups=2, mode=mode, min_group_size=2), (w,))


def test_one_group_is_soft_orthogonality_and_orthonormal_groups_give_zero():
    w = torch.randn(6, 10, dtype=torch.float64)
    torch.testing.assert_close(group_orthogonality(w, num_groups=1), reglab.functional.soft_orthogonality(w))
    q = torch.linalg.qr(torch.randn(10, 10, dtype=torch.float64))[0]
    # 8 rows in 2 groups of 4: each group orthonormal, but the groups need not be orthogonal to each other
    w = torch.cat([q[:4], q[:4] @ torch.linalg.qr(torch.randn(10, 10, dtype=torch.float64))[0].T[:10]])
    assert group_orthogonality(w, num_groups=2).item() < 1e-20
    assert reglab.functional.soft_orthogonality(w).item() > 1e-3


def test_official_group_count_rule():
    # 128 filters, 32 groups requested: 32 groups of 4; 10 filters: min(32, 10 // 4) = 2 groups of 5
    w = torch.randn(10, 7, dtype=torch.float64)
    assert group_orthogonality(w).item() == pytest.approx(ref_gor(w, 2), rel=1e-10)


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="group_orthogonality.*equal groups"):
        group_orthogonality(torch.randn(10, 4), num_groups=3, min_group_size=1)
    with pytest.raises(RegularizerInputError, match="(?i)grouporthogonality.*mode"):
        reglab.GroupOrthogonality(mode="across")
    with pytest.raises(RegularizerInputError, match="(?i)grouporthogonality.*num_groups"):
        group_orthogonality(torch.randn(8, 4), num_groups=0)
    with pytest.raises(RegularizerInputError, match="group_orthogonality"):
        group_orthogonality(torch.randn(8))
