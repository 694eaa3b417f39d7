"""SCAD, CEL0 and ℓq against plain loops; their proximal maps against a brute-force 1-D solver."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._weights import bad_weights, check_list_matches_references, prox, rand


# ---------------------------------------------------------------- references (from the papers)
def scad_scalar(t, lam=0.05, a=3.7):
    """Fan & Li (2001): λθ; (2aλθ − θ² − λ²)/(2(a−1)); λ²(a+1)/2."""
    t = abs(t)
    if t <= lam:
        return lam * t
    if t <= a * lam:
        return (2 * a * lam * t - t * t - lam * lam) / (2 * (a - 1))
    return lam * lam * (a + 1) / 2


def cel0_scalar(t, lam=1e-3, a=1.0):
    """Soubies et al. (2015), Eq. 6."""
    t, knee = abs(t), math.sqrt(2 * lam) / a
    return lam - 0.5 * a * a * (t - knee) ** 2 if t <= knee else lam


def lq_scalar(t, q=0.5):
    return abs(t) ** q


def ref_scad(w, lam=0.05, a=3.7):
    return sum(scad_scalar(x, lam, a) for x in w.flatten().tolist())


def ref_cel0(w, lam=1e-3, a=1.0):
    return sum(cel0_scalar(x, lam, a) for x in w.flatten().tolist())


def ref_lq(w, q=0.5):
    return sum(lq_scalar(x, q) for x in w.flatten().tolist())


REFERENCES = {"scad": ref_scad, "cel0": ref_cel0, "lq": ref_lq}

SCALARS = {"scad": scad_scalar, "cel0": cel0_scalar, "lq": lq_scalar}


def brute_prox(z, t, p):
    """argmin_x ½(x − z)² + t·p(x) by a dense grid on [−|z|, |z|] (the prox of a penalty that
    is even and non-decreasing in |x| lies between 0 and z), refined by a finer grid around it."""
    f = np.vectorize(lambda x: 0.5 * (x - z) ** 2 + t * p(x))
    grid = np.linspace(-abs(z), abs(z), 20001)
    x0 = grid[np.argmin(f(grid))]
    h = 2 * abs(z) / 20000
    fine = np.linspace(x0 - h, x0 + h, 1001)
    vals = f(fine)
    candidates = np.append(fine, 0.0)
    vals = np.append(vals, f(0.0))
    i = np.argmin(vals)
    return candidates[i], vals[i]


# ------------------------------------------------------------------------------------ values
@pytest.mark.parametrize("name,kwargs", [
    ("scad", {"lam": 0.3, "a": 3.7}), ("scad", {"lam": 0.8, "a": 2.5}),
    ("cel0", {"lam": 0.1, "a": 1.0}), ("cel0", {"lam": 0.5, "a": 2.0}),
    ("lq", {"q": 0.5}), ("lq", {"q": 0.2}),
])
def test_matches_loop(name, kwargs):
    w = rand((6, 5))
    got = getattr(RF, name)(w, **kwargs).item()
    assert got == pytest.approx(REFERENCES[name](w, **kwargs), rel=1e-12)


def test_scad_pieces_and_continuity():
    lam, a = 0.5, 3.7
    # linear, then quadratic, then flat; continuous at λ and aλ
    for x in (lam, a * lam):
        lo, hi = torch.tensor([x - 1e-9], dtype=torch.float64), torch.tensor([x + 1e-9], dtype=torch.float64)
        assert RF.scad(lo, lam, a).item() == pytest.approx(RF.scad(hi, lam, a).item(), abs=1e-8)
    assert RF.scad(torch.tensor([10.0], dtype=torch.float64), lam, a).item() == pytest.approx(lam**2 * (a + 1) / 2)


def test_cel0_is_flat_beyond_the_knee_and_zero_at_zero():
    lam = 0.02
    knee = math.sqrt(2 * lam)
    w = torch.tensor([0.0, knee, 2 * knee, 10.0], dtype=torch.float64)
    vals = [RF.cel0(x.reshape(1), lam).item() for x in w]
    assert vals == pytest.approx([0.0, lam, lam, lam])


def test_list_equals_sum_of_references():
    check_list_matches_references(reglab.SCAD(lam=0.4), lambda w: ref_scad(w, 0.4))
    check_list_matches_references(reglab.CEL0(lam=0.1), lambda w: ref_cel0(w, 0.1))
    check_list_matches_references(reglab.LqPenalty(q=0.3), lambda w: ref_lq(w, 0.3))


@pytest.mark.parametrize("fn,kwargs", [
    (RF.scad, {"lam": 0.4}), (RF.cel0, {"lam": 0.3, "a": 1.5}), (RF.lq, {"q": 0.5}),
])
def test_gradcheck(fn, kwargs):
    w = rand((4, 3), away_from_zero=True).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: fn(x, **kwargs), (w,))


def test_lq_gradient_is_zero_at_zero_not_nan():
    w = torch.tensor([0.0, 0.5, -0.25], dtype=torch.float64, requires_grad=True)
    RF.lq(w, 0.5).backward()
    assert torch.isfinite(w.grad).all() and w.grad[0] == 0.0
    assert w.grad[1].item() == pytest.approx(0.5 * 0.5**-0.5)


# -------------------------------------------------------------------------- proximal maps
PROX_CASES = [
    ("scad", {"lam": 0.5, "a": 3.7}, (0.1, 1.0, 2.5, 4.0)),  # t < a−1 (closed form) and t ≥ a−1 (non-convex)
    ("cel0", {"lam": 0.2, "a": 1.0}, (0.1, 0.5, 1.0, 3.0)),  # t·a² < 1 and ≥ 1 (hard threshold)
    ("cel0", {"lam": 0.2, "a": 2.0}, (0.1, 0.3)),
    ("lq", {"q": 0.5}, (0.05, 0.3, 1.0)),
    ("lq", {"q": 0.25}, (0.1, 0.7)),
]


@pytest.mark.parametrize("name,kwargs,steps", PROX_CASES)
def test_prox_matches_brute_force(name, kwargs, steps):
    reg = reglab.from_config({"name": name, **kwargs})
    p = lambda x: SCALARS[name](x, **kwargs)  # noqa: E731
    g = torch.Generator().manual_seed(3)
    z = 2.5 * torch.randn(12, dtype=torch.float64, generator=g)
    for t in steps:
        u = prox(reg, z, t)
        for zi, ui in zip(z.tolist(), u.tolist()):
            x_ref, f_ref = brute_prox(zi, t, p)
            f_ours = 0.5 * (ui - zi) ** 2 + t * p(ui)
            assert f_ours <= f_ref + 1e-10, (name, t, zi, ui, x_ref)
            assert ui == pytest.approx(x_ref, abs=2e-4), (name, t, zi, ui, x_ref)


def test_scad_prox_closed_form_for_small_steps():
    """Fan & Li's thresholding rule (their Eq. 2.8, step 1, generalized to step t < a − 1)."""
    lam, a, t = 0.5, 3.7, 0.4
    z = torch.linspace(-3, 3, 61, dtype=torch.float64)
    u = prox(reglab.SCAD(lam=lam, a=a), z, t)
    for zi, ui in zip(z.tolist(), u.tolist()):
        s, m = math.copysign(1, zi), abs(zi)
        if m <= lam * (1 + t):
            expected = s * max(m - t * lam, 0.0)
        elif m <= a * lam:
            expected = s * ((a - 1) * m - t * a * lam) / (a - 1 - t)
        else:
            expected = zi
        assert ui == pytest.approx(expected, abs=1e-12)


def test_cel0_prox_is_hard_threshold_for_large_steps():
    """t·a² ≥ 1: prox = z·1[|z| > √(2tλ)] (Soubies et al. 2015)."""
    lam, t = 0.2, 1.5
    z = torch.linspace(-2, 2, 41, dtype=torch.float64)
    u = prox(reglab.CEL0(lam=lam), z, t)
    thr = math.sqrt(2 * t * lam)
    expected = torch.where(z.abs() > thr, z, torch.zeros_like(z))
    torch.testing.assert_close(u, expected)


def test_lq_prox_threshold():
    """ℓ1/2: the prox is 0 below 1.5·t^{2/3} and jumps to 2/3 of z there (Marjanovic & Solo)."""
    t = 0.2
    tau = 1.5 * t ** (2 / 3)
    u = prox(reglab.LqPenalty(q=0.5), torch.tensor([tau * 0.999, tau * 1.001], dtype=torch.float64), t)
    assert u[0] == 0.0
    assert u[1].item() == pytest.approx(2 / 3 * tau * 1.001, rel=5e-3)


def test_prox_mode_makes_exact_zeros():
    torch.manual_seed(0)
    model = torch.nn.Linear(20, 20)
    regs = reglab.attach(model, reglab.SCAD(weight=1.0, lam=0.5).on(mode="prox", params=["weight"]))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    opt.step()  # no gradient: only the proximal step moves the weights
    regs.step(opt)
    w = model.weight.detach()
    assert (w == 0).all()  # |w| ≤ 1/√20 < λ(1 + t): soft threshold by t·λ = 0.25 zeroes all


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name", ["scad", "cel0", "lq"])
def test_bad_inputs_raise_with_name(name):
    for x in bad_weights(matrix=False):
        with pytest.raises(RegularizerInputError, match=name):
            getattr(RF, name)(x)


def test_bad_arguments():
    with pytest.raises(RegularizerInputError, match=r"SCAD expects a > 2"):
        reglab.SCAD(a=1.5)
    with pytest.raises(RegularizerInputError, match="SCAD"):
        reglab.SCAD(lam=0.0)
    with pytest.raises(RegularizerInputError, match="CEL0"):
        reglab.CEL0(a=-1.0)
    with pytest.raises(RegularizerInputError, match=r"LqPenalty expects q in \(0, 1\)"):
        reglab.LqPenalty(q=1.0)
    with pytest.raises(RegularizerInputError, match="LqPenalty"):
        RF.lq(rand((3, 3)), 0.0)
