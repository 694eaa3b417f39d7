"""Sparse group lasso (Simon, Friedman, Hastie & Tibshirani, 2013) against a loop; its proximal map."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._weights import IDS, SHAPES, TOL, bad_weights, check_list_matches_references, groups_of, prox, rand, soft


# ---------------------------------------------------------------- references
def ref_sparse_group_lasso(w, alpha=0.95, groups="out"):
    """(1−α)·Σ_g √p_g‖w_g‖₂ + α‖w‖₁ by loops (their Eq. 3; α = 0.95 as in their SGL package)."""
    if groups == "out":
        members = [w[i].flatten().tolist() for i in range(w.shape[0])]
    else:
        members = [w[:, j].flatten().tolist() for j in range(w.shape[1])]
    group = sum(math.sqrt(len(m)) * math.sqrt(sum(x * x for x in m)) for m in members)
    l1 = sum(abs(x) for x in w.flatten().tolist())
    return (1 - alpha) * group + alpha * l1


REFERENCES = {"sparse_group_lasso": ref_sparse_group_lasso}


# -------------------------------------------------------------------- values
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("groups", ["out", "in"])
def test_sparse_group_lasso_matches_loop(shape, groups):
    w = rand(shape)
    alpha = 0.7
    expected = ref_sparse_group_lasso(w, alpha, groups)
    assert RF.sparse_group_lasso(w, alpha, groups).item() == pytest.approx(expected)


def test_list_equals_sum_of_references():
    check_list_matches_references(reglab.SparseGroupLasso(alpha=0.5), lambda w: ref_sparse_group_lasso(w, 0.5))


@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 2, 2)], ids=["linear", "conv2d"])
def test_gradcheck(shape):
    w = rand(shape, away_from_zero=True).requires_grad_(True)  # l1/group norms: not at zero
    assert torch.autograd.gradcheck(lambda x: RF.sparse_group_lasso(x, 0.3), (w,))


def test_bad_inputs_raise_with_name():
    for x in bad_weights(matrix=False):
        with pytest.raises(RegularizerInputError, match="sparse_group_lasso"):
            RF.sparse_group_lasso(x)


def test_bad_arguments():
    with pytest.raises(RegularizerInputError, match=r"SparseGroupLasso expects alpha in \[0, 1\]"):
        reglab.SparseGroupLasso(alpha=2)
    with pytest.raises(RegularizerInputError, match="sparse_group_lasso"):
        RF.sparse_group_lasso(rand((3, 4)), 0.5, "rows")


# ----------------------------------------------------- proximal closed forms
@pytest.mark.parametrize("groups", ["out", "in"])
def test_prox_closed_form(groups):
    w, t, alpha = torch.randn(4, 3, 2, 2, dtype=torch.float64), 0.5, 0.4
    u = prox(reglab.SparseGroupLasso(alpha=alpha, groups=groups), w, t)
    for wg, ug in zip(groups_of(w, groups), groups_of(u, groups)):
        z = soft(wg, t * alpha)
        thr = t * (1 - alpha) * math.sqrt(wg.numel())
        expected = z * max(0.0, 1 - thr / z.norm().item()) if z.norm() > 0 else z
        torch.testing.assert_close(ug, expected)


@pytest.mark.parametrize("groups", ["out", "in"])
@pytest.mark.parametrize("t", [0.1, 0.8, 3.0])
def test_prox_subgradient_condition(groups, t):
    alpha = 0.3
    w = 1.5 * torch.randn(4, 3, 2, 2, dtype=torch.float64)
    u = prox(reglab.SparseGroupLasso(alpha=alpha, groups=groups), w, t)
    for wg, ug in zip(groups_of(w, groups), groups_of(u, groups)):
        g, c = (wg - ug) / t, (1 - alpha) * math.sqrt(wg.numel())
        if ug.norm() > 0:
            r = g - c * ug / ug.norm()  # remainder must lie in α·∂‖u_g‖₁
            nz = ug != 0
            torch.testing.assert_close(r[nz], alpha * torch.sign(ug[nz]))
            assert (r[~nz].abs() <= alpha + TOL).all()
        else:
            # exists s ∈ [−1, 1]ⁿ with ‖g − αs‖ ≤ c; the best s clips g/α
            assert soft(g, alpha).norm() <= c + TOL
