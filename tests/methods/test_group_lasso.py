"""Group lasso (Yuan & Lin, 2006; Scardapane et al., 2017) against a loop over groups; its proximal map."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError
from reglab.ops.groups import group_prox_

from ._weights import (
    IDS,
    PROX_IDS,
    PROX_SHAPES,
    SHAPES,
    TOL,
    bad_weights,
    check_list_matches_references,
    groups_of,
    prox,
    rand,
)


# ---------------------------------------------------------------- references
def ref_group_lasso(w, groups="out"):
    """Σ_g √p_g ‖w_g‖₂ by a loop: rows (``"out"``), dim-1 slices (``"in"``) or a map of ids."""
    if groups == "out":
        members = [w[i].flatten().tolist() for i in range(w.shape[0])]
    elif groups == "in":
        members = [w[:, j].flatten().tolist() for j in range(w.shape[1])]
    else:
        bucket = {}
        for x, g in zip(w.flatten().tolist(), groups.flatten().tolist()):
            bucket.setdefault(g, []).append(x)
        members = list(bucket.values())
    return sum(math.sqrt(len(m)) * math.sqrt(sum(x * x for x in m)) for m in members)


def ref_group_lasso_global(ts):
    """Each whole tensor one group: Σ_t √p_t ‖w_t‖₂."""
    return sum(math.sqrt(t.numel()) * math.sqrt(sum(x * x for x in t.flatten().tolist())) for t in ts)


REFERENCES = {"group_lasso": ref_group_lasso}


# -------------------------------------------------------------------- values
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("groups", ["out", "in"])
def test_group_lasso_matches_loop(shape, groups):
    w = rand(shape)
    assert RF.group_lasso(w, groups).item() == pytest.approx(ref_group_lasso(w, groups))


def test_group_lasso_user_map_with_gaps_in_ids():
    w = rand((3, 2, 2, 2))
    ids = torch.randint(0, 4, w.shape) * 5  # ids 0, 5, 10, 15: not contiguous
    assert RF.group_lasso(w, ids).item() == pytest.approx(ref_group_lasso(w, ids))
    w.requires_grad_(True)
    zero_group = w.detach().clone()
    zero_group[ids == 5] = 0.0
    zero_group.requires_grad_(True)
    RF.group_lasso(zero_group, ids).backward()
    assert torch.isfinite(zero_group.grad).all()
    assert (zero_group.grad[ids == 5] == 0).all()  # subgradient 0 at an all-zero group


def test_group_lasso_global_is_one_group_per_tensor():
    ts = [rand(s) for s in SHAPES]
    assert reglab.GroupLasso().penalty_global(ts).item() == pytest.approx(ref_group_lasso_global(ts))


@pytest.mark.parametrize("groups", ["out", "in"])
def test_list_equals_sum_of_references(groups):
    check_list_matches_references(reglab.GroupLasso(groups=groups), lambda w: ref_group_lasso(w, groups))


def test_attached_penalty_matches_references():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Flatten(), nn.Linear(4, 3))
    model.double()
    regs = reglab.attach(model, [reglab.GroupLasso(0.5).on(modules=nn.Conv2d)])
    convs = [model[0].weight, model[2].weight]
    expected = 0.5 * sum(ref_group_lasso(w, "out") for w in convs)
    assert regs.penalty().item() == pytest.approx(expected)
    glob = reglab.attach(model, reglab.GroupLasso(1.0).on(modules=nn.Conv2d, scope="global"))
    assert glob.penalty().item() == pytest.approx(ref_group_lasso_global(convs))


# ----------------------------------------------------------------- gradients
@pytest.mark.parametrize("groups", ["out", "in"])
@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 2, 2)], ids=["linear", "conv2d"])
def test_gradcheck(groups, shape):
    w = rand(shape, away_from_zero=True).requires_grad_(True)  # group norms: not at zero
    assert torch.autograd.gradcheck(lambda x: RF.group_lasso(x, groups), (w,))


# ---------------------------------------------------------------- bad inputs
def test_bad_inputs_raise_with_name():
    for x in bad_weights(matrix=False):
        with pytest.raises(RegularizerInputError, match="group_lasso"):
            RF.group_lasso(x)


def test_bad_arguments():
    w = rand((3, 4))
    with pytest.raises(RegularizerInputError, match="group_lasso"):
        RF.group_lasso(w, "rows")
    with pytest.raises(RegularizerInputError, match="group_lasso"):
        RF.group_lasso(w, torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(RegularizerInputError, match="group_lasso"):
        RF.group_lasso(w, torch.zeros(3, 4))
    with pytest.raises(RegularizerInputError, match="group_lasso"):
        RF.group_lasso(torch.ones(3), "in")


def test_list_rejects_non_finite():
    ts = [rand((4, 3)), rand((4, 3))]
    ts[1][2, 1] = float("nan")
    with pytest.raises(RegularizerInputError, match="group_lasso"):
        reglab.create("group_lasso").penalty(ts)


# ----------------------------------------------------- proximal closed forms
@pytest.mark.parametrize("shape", PROX_SHAPES, ids=PROX_IDS)
@pytest.mark.parametrize("groups", ["out", "in"])
def test_prox_closed_form(shape, groups):
    w, t = torch.randn(shape, dtype=torch.float64), 0.3
    u = prox(reglab.GroupLasso(groups=groups), w, t)
    for wg, ug in zip(groups_of(w, groups), groups_of(u, groups)):
        thr = t * math.sqrt(wg.numel())
        norm = wg.norm().item()
        expected = wg * max(0.0, 1 - thr / norm)
        torch.testing.assert_close(ug, expected)


@pytest.mark.parametrize("shape", PROX_SHAPES, ids=PROX_IDS)
@pytest.mark.parametrize("groups", ["out", "in"])
@pytest.mark.parametrize("t", [0.1, 0.6, 3.0])
def test_prox_subgradient_condition(shape, groups, t):
    w = torch.randn(shape, dtype=torch.float64)
    u = prox(reglab.GroupLasso(groups=groups), w, t)
    for wg, ug in zip(groups_of(w, groups), groups_of(u, groups)):
        g, c = (wg - ug) / t, math.sqrt(wg.numel())
        if ug.norm() > 0:
            torch.testing.assert_close(g, c * ug / ug.norm())
        else:
            assert g.norm() <= c + TOL


def test_prox_rejects_a_map_of_group_ids():
    w = rand((3, 4))
    with pytest.raises(RegularizerInputError, match="GroupLasso: mode='prox' supports"):
        group_prox_("GroupLasso", w, torch.zeros(3, 4, dtype=torch.long), 0.1)


# ------------------------------------------- scale="none" (Wen et al. 2016) and 1-D tensors
def ref_group_lasso_unscaled(w, groups="out"):
    """Σ_g ‖w_g‖₂ (Wen et al. 2016): the group norms, no √p_g, by a loop."""
    if groups == "out":
        members = [w[i].flatten().tolist() for i in range(w.shape[0])]
    else:
        members = [w[:, j].flatten().tolist() for j in range(w.shape[1])]
    return sum(math.sqrt(sum(x * x for x in m)) for m in members)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("groups", ["out", "in"])
def test_scale_none_matches_loop(shape, groups):
    w = rand(shape)
    assert RF.group_lasso(w, groups, scale="none").item() == pytest.approx(ref_group_lasso_unscaled(w, groups))
    reg = reglab.GroupLasso(groups=groups, scale="none")
    assert reg.penalty(w).item() == pytest.approx(ref_group_lasso_unscaled(w, groups))
    ts = [rand(shape), rand(shape)]
    glob = reglab.create("group_lasso", scale="none").penalty_global(ts)
    assert glob.item() == pytest.approx(sum(t.norm().item() for t in ts))


def test_scale_none_on_a_map_of_ids():
    w, ids = rand((3, 4)), torch.tensor([[0, 0, 1, 1], [0, 2, 2, 1], [5, 5, 5, 5]])
    expected = sum(w[ids == g].norm().item() for g in (0, 1, 2, 5))
    assert RF.group_lasso(w, ids, scale="none").item() == pytest.approx(expected)


def test_each_element_of_a_1d_tensor_is_its_own_group():
    w = rand((7,))
    assert RF.group_lasso(w).item() == pytest.approx(w.abs().sum().item())


@pytest.mark.parametrize("shape", PROX_SHAPES, ids=PROX_IDS)
@pytest.mark.parametrize("groups", ["out", "in"])
def test_prox_respects_scale_none(shape, groups):
    w, t = torch.randn(shape, dtype=torch.float64), 0.3
    u = prox(reglab.GroupLasso(groups=groups, scale="none"), w, t)
    for wg, ug in zip(groups_of(w, groups), groups_of(u, groups)):
        torch.testing.assert_close(ug, wg * max(0.0, 1 - t / wg.norm().item()))


def test_bad_scale_is_named():
    with pytest.raises(RegularizerInputError, match=r"GroupLasso expects scale to be one of \['sqrt', 'none'\]"):
        reglab.GroupLasso(scale="l2")
    with pytest.raises(RegularizerInputError, match="group_lasso"):
        RF.group_lasso(rand((3, 2)), scale=2)
