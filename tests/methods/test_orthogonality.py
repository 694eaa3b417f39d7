"""Soft orthogonality and SRIP (Bansal, Chen & Wang, 2018) against numpy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._weights import (
    IDS,
    SHAPES,
    bad_weights,
    check_list_matches_references,
    check_power_iteration_resumes_standalone,
    check_state_resumes_through_attach,
    rand,
    rows_np,
)


# ---------------------------------------------------------------- references
def ref_gram_minus_identity(w):
    """G − I for the smaller Gram of the (out, in·k…) matrix (WᵀW when rows > cols)."""
    m = rows_np(w)
    g = m.T @ m if m.shape[0] > m.shape[1] else m @ m.T
    return g - np.eye(g.shape[0])


def ref_soft_orthogonality(w):
    """Eq. 2: ‖G − I‖²_F."""
    return float((ref_gram_minus_identity(w) ** 2).sum())


def ref_srip_step(w, u):
    """Eq. 6 by two power-iteration steps from u, as the official ``l2_reg_ortho``:
    v = Mu/‖Mu‖, σ ≈ ‖Mv‖. Returns (σ, v)."""
    m = ref_gram_minus_identity(w)
    v1 = m @ u
    v = v1 / np.linalg.norm(v1)
    return float(np.linalg.norm(m @ v)), v


def ref_srip(w):
    """A fresh SRIP's penalty: its start vector is a float32 normal draw, normalized."""
    k = ref_gram_minus_identity(w).shape[0]
    u = torch.randn(k, dtype=torch.float32)
    u = u / u.norm()
    return ref_srip_step(w, u.double().numpy())[0]


REFERENCES = {"soft_orthogonality": ref_soft_orthogonality, "srip": ref_srip}


# -------------------------------------------------------------------- values
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_soft_orthogonality_matches_reference(shape):
    w = rand(shape)
    assert RF.soft_orthogonality(w).item() == pytest.approx(ref_soft_orthogonality(w))


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_srip_two_power_steps_and_convergence(shape):
    w = rand(shape)
    m = ref_gram_minus_identity(w)
    u = torch.rand(m.shape[0], dtype=torch.float64)
    sigma, v = RF.srip(w, u)
    sigma_ref, v_ref = ref_srip_step(w, u.numpy())
    assert sigma.item() == pytest.approx(sigma_ref)
    np.testing.assert_allclose(v.numpy(), v_ref, rtol=1e-10)
    reg = reglab.SRIP()
    for _ in range(300):
        value = reg.penalty(w)
    assert value.item() == pytest.approx(np.linalg.norm(m, 2), rel=1e-4)


def test_list_equals_sum_of_references():
    check_list_matches_references(reglab.SoftOrthogonality(), ref_soft_orthogonality)


def test_attached_penalty_matches_references():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Flatten(), nn.Linear(4, 3))
    model.double()
    regs = reglab.attach(model, [reglab.SoftOrthogonality(0.25)])
    weights = [model[0].weight, model[2].weight, model[4].weight]
    expected = 0.25 * sum(ref_soft_orthogonality(w) for w in weights)
    assert regs.penalty().item() == pytest.approx(expected)


# ----------------------------------------------------------------- gradients
@pytest.mark.parametrize(
    "fn",
    [
        RF.soft_orthogonality,
        lambda w: RF.srip(w, torch.ones(min(w.shape[0], w[0].numel()), dtype=w.dtype))[0],
    ],
    ids=["soft_orthogonality", "srip"],
)
@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 2, 2)], ids=["linear", "conv2d"])
def test_gradcheck(fn, shape):
    w = rand(shape, away_from_zero=True).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (w,))


# ---------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    "name,fn",
    [("soft_orthogonality", RF.soft_orthogonality), ("srip", lambda w: RF.srip(w, torch.ones(2)))],
    ids=["soft_orthogonality", "srip"],
)
def test_bad_inputs_raise_with_name(name, fn):
    for x in bad_weights(matrix=True):
        with pytest.raises(RegularizerInputError, match=name):
            fn(x)


def test_srip_bad_vector():
    with pytest.raises(RegularizerInputError, match="srip"):
        RF.srip(rand((3, 4)), torch.ones(4))  # smaller Gram is 3×3


def test_list_rejects_non_finite():
    ts = [rand((4, 3)), rand((4, 3))]
    ts[1][2, 1] = float("nan")
    with pytest.raises(RegularizerInputError, match="soft_orthogonality"):
        reglab.create("soft_orthogonality").penalty(ts)


# ------------------------------------------------------------ resumable state
def test_srip_state_resumes_standalone():
    check_power_iteration_resumes_standalone("srip")


def test_srip_state_resumes_through_attach():
    check_state_resumes_through_attach("srip")


# ---------------------------------------------------------------- invariances
def _orthogonal(n, seed):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q


@settings(max_examples=20, deadline=None)
@given(rows=st.integers(2, 7), cols=st.integers(2, 7), seed=st.integers(0, 10_000))
def test_soft_orthogonality_permutation_and_rotation_invariant(rows, cols, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g, dtype=torch.float64)
    value = RF.soft_orthogonality(w)
    perm = torch.randperm(rows, generator=g)
    torch.testing.assert_close(RF.soft_orthogonality(w[perm]), value)
    torch.testing.assert_close(RF.soft_orthogonality(_orthogonal(rows, seed) @ w), value)


# ---------------------------------------- the official SRIP coefficient decay (issue 15)
def test_srip_decay_is_the_official_schedule():
    """VITA-Group/Orthogonality-in-CNNs, Wide-Resnet/train_n.py: adjust_ortho_decay_rate(epoch + 1),
    0.01 for epochs 1-20, ×1e-3 to 50, ×1e-4 to 70, ×1e-6 to 120, then 0 (1-based epochs)."""
    spe = 7
    sched = reglab.schedules.srip_decay(spe)

    def official(epoch):  # 1-based, as the official code calls it
        o_d = 1e-2
        if epoch > 120:
            return 0.0
        if epoch > 70:
            return 1e-6 * o_d
        if epoch > 50:
            return 1e-4 * o_d
        if epoch > 20:
            return 1e-3 * o_d
        return o_d

    for step in range(0, 130 * spe, 3):
        assert sched(step) == pytest.approx(official(step // spe + 1), rel=1e-12, abs=0)
    reg = reglab.SRIP(sched)
    again = reglab.from_config(reg.get_config())
    assert again.weight == sched and again.weight(21 * spe) == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        reglab.schedules.srip_decay(0)
