"""Minimum hyperspherical energy (Liu et al., 2018) on weights and on embeddings, against pair loops."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._weights import IDS, SHAPES, bad_weights, check_list_matches_references, rand, rows_np


# ---------------------------------------------------------------- references
def ref_hyperspherical_energy(rows, s=0, half_space=False):
    """Mean over pairs i<j of f_s(‖ŵ_i − ŵ_j‖), f_s(r) = r^{−s} or log(1/r), by a loop over a
    list of rows, with the official code's ‖w‖ = √(Σw² + 1e-4) and r² = 2 − 2⟨ŵ_i, ŵ_j⟩."""
    unit = []
    for r in rows:
        norm = math.sqrt(sum(x * x for x in r) + 1e-4)
        unit.append([x / norm for x in r])
    if half_space:
        unit = unit + [[-x for x in u] for u in unit]
    terms = []
    for i in range(len(unit)):
        for j in range(i + 1, len(unit)):
            dist = math.sqrt(2 - 2 * sum(a * b for a, b in zip(unit[i], unit[j])))
            terms.append(math.log(1 / dist) if s == 0 else dist ** (-s))
    return sum(terms) / len(terms)


def ref_mhe(w, s=0, half_space=False):
    """E_s = 1/(N(N−1)) Σ_{i≠j} f_s(‖ŵ_i − ŵ_j‖) over the output filters (Eq. 1–2), by a loop
    over ordered pairs."""
    m = rows_np(w)
    units = [row / math.sqrt((row**2).sum() + 1e-4) for row in m]
    if half_space:
        units = units + [-u for u in units]
    n, total = len(units), 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                r = math.sqrt(2 - 2 * float(units[i] @ units[j]))
                total += math.log(1 / r) if s == 0 else r ** (-s)
    return total / (n * (n - 1))


def ref_mhe_features(z):
    return ref_hyperspherical_energy(z.tolist())


REFERENCES = {"mhe": ref_mhe, "mhe_features": ref_mhe_features}


# ------------------------------------------------------------ weights: values
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("s,half", [(0, False), (1, False), (2, False), (0, True), (1.5, True)])
def test_mhe_matches_pair_loop(shape, s, half):
    w = rand(shape)
    assert RF.mhe(w, s, half).item() == pytest.approx(ref_mhe(w, s, half), rel=1e-9)


def test_list_equals_sum_of_references():
    check_list_matches_references(reglab.MHE(s=1), lambda w: ref_mhe(w, 1, False))


@pytest.mark.parametrize(
    "fn", [lambda w: RF.mhe(w, 0), lambda w: RF.mhe(w, 2, True)], ids=["mhe_s0", "mhe_s2_half"]
)
@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 2, 2)], ids=["linear", "conv2d"])
def test_gradcheck(fn, shape):
    w = rand(shape, away_from_zero=True).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (w,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_dtypes(dtype):
    w = rand((8, 4, 3, 3), dtype=torch.float32)
    exact = RF.mhe(w.double(), 1).item()
    got = RF.mhe(w.to(dtype), 1)
    assert got.dtype == torch.float32  # accumulated in float32 whatever the weight dtype
    assert got.item() == pytest.approx(exact, rel=1e-5 if dtype == torch.float32 else 5e-2)


def test_mhe_coincident_filters_give_finite_energy():
    w = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    for s in (0, 1, 2):
        value = RF.mhe(w, s)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(w.grad).all()
        w.grad = None


@settings(max_examples=20, deadline=None)
@given(rows=st.integers(2, 6), cols=st.integers(2, 6), seed=st.integers(0, 10_000), s=st.sampled_from([0, 1, 2]))
def test_mhe_invariant_to_positive_row_scaling(rows, cols, seed, s):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g, dtype=torch.float64)
    w = w / w.norm(dim=1, keepdim=True) * 100  # ‖w‖² ≫ the official ε = 1e-4
    # near-coincident filters make log r² ill-conditioned; the invariance is about well-posed inputs
    unit = w / w.norm(dim=1, keepdim=True)
    assume(float((2 - 2 * unit @ unit.T + 4 * torch.eye(rows, dtype=w.dtype)).min()) > 1e-3)
    scale = 0.5 + 2 * torch.rand(rows, 1, generator=g, dtype=torch.float64)
    torch.testing.assert_close(RF.mhe(w * scale, s), RF.mhe(w, s), rtol=1e-4, atol=1e-6)
    perm = torch.randperm(rows, generator=g)
    torch.testing.assert_close(RF.mhe(w[perm], s), RF.mhe(w, s))


# -------------------------------------------------------- weights: bad input
def test_bad_inputs_raise_with_name():
    for x in bad_weights(matrix=True):
        with pytest.raises(RegularizerInputError, match="mhe"):
            RF.mhe(x)


def test_bad_arguments():
    with pytest.raises(RegularizerInputError, match="mhe"):
        RF.mhe(torch.ones(1, 4))
    with pytest.raises(RegularizerInputError, match="MHE expects s to be a non-negative number"):
        reglab.MHE(s=-1)


def test_list_rejects_non_finite():
    ts = [rand((4, 3)), rand((4, 3))]
    ts[1][2, 1] = float("nan")
    with pytest.raises(RegularizerInputError, match="mhe"):
        reglab.create("mhe").penalty(ts)


# ------------------------------------------------------------- mhe_features
@pytest.mark.parametrize("s", [0, 1, 2])
def test_mhe_features_matches_reference_and_weight_mhe(s):
    z = torch.randn(9, 5, dtype=torch.float64)
    assert float(RF.mhe_features(z, s=s)) == pytest.approx(ref_hyperspherical_energy(z.tolist(), s), rel=1e-6)
    # the same energy as the weight penalty on a matrix with these rows
    assert float(RF.mhe_features(z, s=s)) == pytest.approx(float(RF.mhe(z, s)), rel=1e-12)
    half = RF.mhe_features(z, s=s, half_space=True)
    both = torch.cat([z, -z])
    assert float(half) == pytest.approx(ref_hyperspherical_energy(both.tolist(), s), rel=1e-6)


def test_mhe_features_gradcheck_and_bad_s():
    z = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: RF.mhe_features(x, s=1), (z,))
    with pytest.raises(RegularizerInputError, match="MHEFeatures expects s to be a non-negative number"):
        RF.mhe_features(z, s=-1)
    with pytest.raises(RegularizerInputError, match="MHEFeatures expects s to be a non-negative number"):
        reglab.MHEFeatures(s=-1)


# ---------------------------------------- official-code variants (wy1iu/MHE, code/architecture.py)
def ref_mhe_official(w, power, half_space=False):
    """``_add_thomson_constraint`` by loops: cos with the 1e-4 norm ε; '0': −log(2 − 2cos), '1'/'2':
    (2 − 2cos)^(−1/2), (2 − 2cos)^(−1); 'a0'/'a1'/'a2': θ = acos(cos)/π + 1e-4, −log θ, θ^(−1), θ^(−2);
    mean over pairs i<j (their multipliers left out)."""
    m = rows_np(w)
    units = [row / math.sqrt((row**2).sum() + 1e-4) for row in m]
    if half_space:
        units = units + [-u for u in units]
    terms = []
    for i in range(len(units)):
        for j in range(i + 1, len(units)):
            c = float(units[i] @ units[j])
            if power.startswith("a"):
                theta = math.acos(c) / math.pi + 1e-4
                terms.append(-math.log(theta) if power == "a0" else theta ** (-int(power[1])))
            else:
                r2 = 2 - 2 * c
                terms.append(-math.log(r2) if power == "0" else r2 ** (-int(power) / 2))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("power,half", [("a0", False), ("a1", False), ("a2", False), ("a1", True), ("0", False)])
def test_official_variants_match_their_formula(shape, power, half):
    w = rand(shape)
    if power.startswith("a"):
        got = RF.mhe(w, float(power[1]), half, distance="angular")
    else:
        got = RF.mhe(w, 0.0, half, s0_form="official")
    assert got.item() == pytest.approx(ref_mhe_official(w, power, half), rel=1e-9)


def test_official_s0_is_twice_the_papers():
    w = rand((6, 5))
    assert RF.mhe(w, 0, s0_form="official").item() == pytest.approx(2 * ref_mhe(w, 0), rel=1e-10)
    assert RF.mhe(w, 1, s0_form="official").item() == pytest.approx(ref_mhe(w, 1), rel=1e-10)  # s > 0 unaffected


def test_last_layer_weight_scales_the_last_tensor():
    ws = [rand((4, 3)), rand((5, 2, 2)), rand((3, 4))]
    want = ref_mhe(ws[0]) + ref_mhe(ws[1]) + 10 * ref_mhe(ws[2])
    assert RF.mhe(ws, last_layer_weight=10.0).item() == pytest.approx(want, rel=1e-9)
    reg = reglab.MHE(last_layer_weight=10.0, distance="angular", s=1)
    assert reglab.from_config(reg.get_config()).penalty(ws).item() == pytest.approx(reg.penalty(ws).item())
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 5))
    regs = reglab.attach(net, reglab.MHE(last_layer_weight=10.0))
    want = ref_mhe(net[0].weight.detach().double()) + 10 * ref_mhe(net[2].weight.detach().double())
    assert regs.penalty().item() == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("s", [0, 1, 2])
def test_angular_gradcheck_and_coincident_filters(s):
    w = rand((4, 3), away_from_zero=True).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: RF.mhe(t, s, distance="angular"), (w,))
    dup = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-3.0, 0.0]], dtype=torch.float64, requires_grad=True)
    value = RF.mhe(dup, s, distance="angular")
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(dup.grad).all()


def test_variant_options_are_checked_and_reach_features():
    with pytest.raises(RegularizerInputError, match="MHE expects distance to be one of"):
        reglab.MHE(distance="geodesic")
    with pytest.raises(RegularizerInputError, match="mhe expects s0_form to be one of"):
        RF.mhe(rand((3, 2)), s0_form="tf")
    with pytest.raises(RegularizerInputError, match="MHE expects last_layer_weight"):
        reglab.MHE(last_layer_weight=-1.0)
    z = torch.randn(7, 4, dtype=torch.float64)
    assert float(RF.mhe_features(z, s=2, distance="angular")) == pytest.approx(
        float(RF.mhe(z, 2, distance="angular")), rel=1e-12
    )
