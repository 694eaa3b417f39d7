"""L1, L2 and the elastic net (Zou & Hastie, 2005) against loop references; their proximal maps."""

from __future__ import annotations

import pytest
import torch

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._weights import (
    IDS,
    PROX_IDS,
    PROX_SHAPES,
    SHAPES,
    TOL,
    bad_weights,
    check_list_matches_references,
    prox,
    rand,
    soft,
)


# ---------------------------------------------------------------- references
def ref_l1(w):
    return sum(abs(x) for x in w.flatten().tolist())


def ref_l2(w):
    return 0.5 * sum(x * x for x in w.flatten().tolist())


def ref_elastic_net(w, rho=0.5):
    """ρ‖w‖₁ + (1−ρ)·½‖w‖₂², scikit-learn's default ρ = 0.5."""
    return rho * ref_l1(w) + (1 - rho) * ref_l2(w)


REFERENCES = {"l1": ref_l1, "l2": ref_l2, "elastic_net": ref_elastic_net}


# -------------------------------------------------------------------- values
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_elementwise_penalties_match_loops(shape):
    w = rand(shape)
    assert RF.l1(w).item() == pytest.approx(ref_l1(w))
    assert RF.l2(w).item() == pytest.approx(ref_l2(w))
    rho = 0.3
    expected = rho * ref_l1(w) + (1 - rho) * ref_l2(w)
    assert RF.elastic_net(w, rho).item() == pytest.approx(expected)
    assert reglab.ElasticNet(l1_ratio=rho).penalty(w).item() == pytest.approx(expected)


@pytest.mark.parametrize(
    "make,ref",
    [
        (reglab.L1, ref_l1),
        (reglab.L2, ref_l2),
        (lambda: reglab.ElasticNet(l1_ratio=0.25), lambda w: 0.25 * ref_l1(w) + 0.75 * ref_l2(w)),
    ],
    ids=["l1", "l2", "elastic_net"],
)
def test_list_equals_sum_of_references(make, ref):
    check_list_matches_references(make(), ref)


# ----------------------------------------------------------------- gradients
@pytest.mark.parametrize("fn", [RF.l2, lambda w: RF.elastic_net(w, 0.4)], ids=["l2", "elastic_net"])
@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 2, 2)], ids=["linear", "conv2d"])
def test_gradcheck(fn, shape):
    w = rand(shape, away_from_zero=True).requires_grad_(True)  # l1: not at zero
    assert torch.autograd.gradcheck(fn, (w,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_weights_accumulate_in_float32(dtype):
    """A penalty is a loss term: float32 whatever the parameter dtype, never an fp16 overflow."""
    w = (torch.randn(1000, 1000, generator=torch.Generator().manual_seed(0)) * 0.3).to(dtype)
    exact = RF.l2(w.double()).item()  # ≈ 4.5e4: Σw² (9e4) is past fp16's 65504
    for name in ("l2", "elastic_net", "l1"):
        got = getattr(RF, name)(w)
        assert got.dtype == torch.float32
    got = RF.l2(w.requires_grad_())
    assert got.item() == pytest.approx(exact, rel=1e-4)
    got.backward()
    assert w.grad.dtype == dtype and torch.isfinite(w.grad).all()


# ---------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("name", ["l1", "l2", "elastic_net"])
def test_bad_inputs_raise_with_name(name):
    fn = getattr(RF, name)
    for x in bad_weights(matrix=False):
        with pytest.raises(RegularizerInputError, match=name):
            fn(x)


def test_bad_l1_ratio():
    with pytest.raises(RegularizerInputError, match=r"ElasticNet expects l1_ratio in \[0, 1\]"):
        reglab.ElasticNet(l1_ratio=1.5)
    with pytest.raises(RegularizerInputError, match=r"elastic_net expects l1_ratio in \[0, 1\]"):
        RF.elastic_net(rand((3, 4)), 1.5)


@pytest.mark.parametrize("name", ["l1", "l2"])
def test_list_rejects_non_finite(name):
    reg = reglab.create(name)
    ts = [rand((4, 3)), rand((4, 3))]
    ts[1][2, 1] = float("nan")
    with pytest.raises(RegularizerInputError, match=name):
        reg.penalty(ts)


# ----------------------------------------------------- proximal closed forms
@pytest.mark.parametrize("shape", PROX_SHAPES, ids=PROX_IDS)
def test_prox_closed_forms(shape):
    w, t = torch.randn(shape, dtype=torch.float64), 0.4
    u = prox(reglab.L1(), w, t)
    expected = torch.where(w > t, w - t, torch.where(w < -t, w + t, torch.zeros_like(w)))
    torch.testing.assert_close(u, expected)
    torch.testing.assert_close(prox(reglab.L2(), w, t), w / (1 + t))
    rho = 0.3
    torch.testing.assert_close(prox(reglab.ElasticNet(l1_ratio=rho), w, t), soft(w, t * rho) / (1 + t * (1 - rho)))


@pytest.mark.parametrize("t", [0.05, 0.5, 2.0])
def test_prox_subgradient_conditions(t):
    w = 2 * torch.randn(6, 5, dtype=torch.float64)
    for rho in (1.0, 0.6):
        reg = reglab.L1() if rho == 1.0 else reglab.ElasticNet(l1_ratio=rho)
        u = prox(reg, w, t)
        g = (w - u) / t - (1 - rho) * u  # must lie in ρ·∂‖u‖₁
        nz = u != 0
        torch.testing.assert_close(g[nz], rho * torch.sign(u[nz]))
        assert (g[~nz].abs() <= rho + TOL).all()
    u = prox(reglab.L2(), w, t)
    torch.testing.assert_close((w - u) / t, u)
