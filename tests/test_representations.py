"""Representation regularizers against naive references written here (loops over
pairs and dimensions), gradchecks, dtype/autocast behaviour and input errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reglab
from reglab import functional as RF
from reglab._validation import RegularizerInputError

NAMES = [
    "vicreg",
    "vcreg",
    "barlow_twins",
    "alignment",
    "uniformity",
    "vne",
    "effective_rank",
    "dispersive",
    "flops",
    "l1_activation",
    "least_volume",
    "ldreg",
    "mhe_features",
]
WHO = {
    "vicreg": "VICReg",
    "vcreg": "VCReg",
    "barlow_twins": "BarlowTwins",
    "alignment": "Alignment",
    "uniformity": "Uniformity",
    "vne": "VNE",
    "effective_rank": "EffectiveRank",
    "dispersive": "Dispersive",
    "flops": "FLOPS",
    "l1_activation": "L1Activation",
    "least_volume": "LeastVolume",
    "ldreg": "LDReg",
    "mhe_features": "MHEFeatures",
}


def _inputs(reg, z, noise=0.3):
    if reg.num_inputs == 2:
        return (z, z + noise * torch.randn_like(z))
    return (z,)


# ------------------------------------------------------------ naive references
def _mean(xs):
    return sum(xs) / len(xs)


def _var_unbiased(col):
    m = _mean(col)
    return sum((c - m) ** 2 for c in col) / (len(col) - 1)


def _cov_unbiased(a, b):
    ma, mb = _mean(a), _mean(b)
    return sum((x - ma) * (y - mb) for x, y in zip(a, b)) / (len(a) - 1)


def ref_vicreg_terms(z1, z2, gamma=1.0, eps=1e-4):
    n, d = len(z1), len(z1[0])
    inv = sum((z1[i][j] - z2[i][j]) ** 2 for i in range(n) for j in range(d)) / (n * d)

    def v(z):
        cols = [[z[i][j] for i in range(n)] for j in range(d)]
        return sum(max(0.0, gamma - math.sqrt(_var_unbiased(c) + eps)) for c in cols) / d

    def c(z):
        cols = [[z[i][j] for i in range(n)] for j in range(d)]
        return sum(_cov_unbiased(cols[a], cols[b]) ** 2 for a in range(d) for b in range(d) if a != b) / d

    return inv, (v(z1) + v(z2)) / 2, c(z1) + c(z2)


def ref_barlow(z1, z2, lambd=0.0051, eps=1e-5):
    n, d = len(z1), len(z1[0])

    def bn(z):
        out = [[0.0] * d for _ in range(n)]
        for j in range(d):
            col = [z[i][j] for i in range(n)]
            m = _mean(col)
            var = sum((x - m) ** 2 for x in col) / n
            for i in range(n):
                out[i][j] = (z[i][j] - m) / math.sqrt(var + eps)
        return out

    a, b = bn(z1), bn(z2)
    loss = 0.0
    for p in range(d):
        for q in range(d):
            c = sum(a[i][p] * b[i][q] for i in range(n)) / n
            loss += (1 - c) ** 2 if p == q else lambd * c**2
    return loss


def _unit(v):
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def ref_uniformity(z, t=2.0):
    u = [_unit(r) for r in z]
    terms = [math.exp(-t * sum((a - b) ** 2 for a, b in zip(u[i], u[j]))) for i, j in itertools.combinations(range(len(u)), 2)]
    return math.log(_mean(terms))


def ref_alignment(z1, z2, alpha=2.0):
    return _mean([math.sqrt(sum((a - b) ** 2 for a, b in zip(_unit(x), _unit(y)))) ** alpha for x, y in zip(z1, z2)])


def ref_dispersive(z, tau=1.0):
    n, d = len(z), len(z[0])
    terms = [math.exp(-sum((a - b) ** 2 for a, b in zip(z[i], z[j])) / (tau * d)) for i in range(n) for j in range(n)]
    return math.log(_mean(terms))


def ref_flops(z):
    n, d = len(z), len(z[0])
    return sum((sum(abs(z[i][j]) for i in range(n)) / n) ** 2 for j in range(d))


def ref_vne(z):
    # eigenvalues of the d×d autocorrelation of row-normalized z, by numpy's symmetric eigensolver
    import numpy as np

    u = np.array([_unit(r) for r in z])
    rho = u.T @ u / len(z)
    lam = np.linalg.eigvalsh(rho)
    return float(-sum(x * math.log(x) for x in lam if x > 1e-15))


def ref_spectral_entropy(z, eps=1e-7):
    import numpy as np

    # singular values as square roots of the eigenvalues of zᵀz (an independent route)
    m = np.array(z)
    s = np.sqrt(np.clip(np.linalg.eigvalsh(m.T @ m), 0, None))[::-1][: min(m.shape)]
    p = s / s.sum() + eps
    return float(-(p * np.log(p)).sum())


def ref_least_volume(z, eta=1e-2):
    n, d = len(z), len(z[0])
    logs = [math.log(math.sqrt(_var_unbiased([z[i][j] for i in range(n)])) + eta) for j in range(d)]
    return math.exp(sum(logs) / d)


def ref_ldreg(z, k=16):
    n = len(z)
    k = min(k, n - 2)
    out = []
    for i in range(n):
        r = sorted(math.dist(z[i], z[j]) for j in range(n))  # r[0] is the point itself
        m = sum(r[1:k]) / (k - 1)
        out.append(-abs(math.log(m / (r[k] - m))))
    return sum(out) / n


# ------------------------------------------------------------------- values
@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(3)
    z1 = torch.randn(7, 5, generator=g, dtype=torch.float64)
    z2 = z1 + 0.5 * torch.randn(7, 5, generator=g, dtype=torch.float64)
    return z1, z2


def test_vicreg_matches_reference(pair):
    z1, z2 = pair
    inv, var, cov = ref_vicreg_terms(z1.tolist(), z2.tolist())
    t = reglab.create("vicreg").components(z1, z2)
    assert t._fields == ("invariance", "variance", "covariance")
    assert float(t.invariance) == pytest.approx(inv, rel=1e-10)
    assert float(t.variance) == pytest.approx(var, rel=1e-10)
    assert float(t.covariance) == pytest.approx(cov, rel=1e-10)
    assert float(reglab.create("vicreg").penalty(z1, z2)) == pytest.approx(25 * inv + 25 * var + cov, rel=1e-10)


def test_vicreg_variance_hinge_active():
    # columns with std far below γ=1: the hinge must be positive
    z = 0.01 * torch.randn(16, 4, dtype=torch.float64)
    assert float(RF.vcreg_terms(z).variance) > 0.9


@pytest.mark.parametrize("n,d", [(6, 9), (12, 4)])  # both the Gram (n<d) and the d×d route
def test_vcreg_matches_reference(n, d):
    z = torch.randn(n, d, dtype=torch.float64) * torch.linspace(0.2, 2, d, dtype=torch.float64)
    _, var2, cov2 = ref_vicreg_terms(z.tolist(), z.tolist())
    t = reglab.create("vcreg").components(z)
    assert float(t.variance) == pytest.approx(var2, rel=1e-10)
    assert float(t.covariance) == pytest.approx(cov2 / 2, rel=1e-9)


@pytest.mark.parametrize("n,d", [(7, 5), (5, 9)])  # the d×d route and the Gram (n<d) route
def test_barlow_twins_matches_reference(n, d):
    z1 = torch.randn(n, d, dtype=torch.float64)
    z2 = z1 + 0.5 * torch.randn(n, d, dtype=torch.float64)
    reg = reglab.create("barlow_twins")
    assert float(reg.penalty(z1, z2)) == pytest.approx(ref_barlow(z1.tolist(), z2.tolist()), rel=1e-9)
    assert reg.components(z1, z2)._fields == ("on_diagonal", "off_diagonal")


def test_alignment_and_uniformity_match_reference(pair):
    z1, z2 = pair
    assert float(RF.alignment(z1, z2)) == pytest.approx(ref_alignment(z1.tolist(), z2.tolist()), rel=1e-10)
    assert float(RF.alignment(z1, z2, alpha=1.0)) == pytest.approx(ref_alignment(z1.tolist(), z2.tolist(), 1.0), rel=1e-10)
    assert float(RF.uniformity(z1)) == pytest.approx(ref_uniformity(z1.tolist()), rel=1e-10)
    assert float(RF.uniformity(z1, t=0.5)) == pytest.approx(ref_uniformity(z1.tolist(), 0.5), rel=1e-10)


def test_dispersive_flops_l1_match_reference(pair):
    z, _ = pair
    assert float(RF.dispersive(z)) == pytest.approx(ref_dispersive(z.tolist()), rel=1e-10)
    assert float(RF.dispersive(z, tau=0.5)) == pytest.approx(ref_dispersive(z.tolist(), 0.5), rel=1e-10)
    assert float(RF.flops(z)) == pytest.approx(ref_flops(z.tolist()), rel=1e-12)
    ref_l1 = _mean([sum(abs(x) for x in row) for row in z.tolist()])
    assert float(RF.l1_activation(z)) == pytest.approx(ref_l1, rel=1e-12)
    # images: flattened per sample
    img = torch.randn(4, 2, 3, 3, dtype=torch.float64)
    assert float(RF.dispersive(img)) == pytest.approx(ref_dispersive(img.reshape(4, -1).tolist()), rel=1e-10)


@pytest.mark.parametrize("n,d", [(5, 8), (9, 4)])
def test_spectral_terms_match_reference(n, d):
    z = torch.randn(n, d, dtype=torch.float64)
    assert float(RF.vne(z)) == pytest.approx(ref_vne(z.tolist()), rel=1e-8)
    reg = reglab.create("effective_rank")
    t = reg.components(z)
    assert float(t.entropy) == pytest.approx(ref_spectral_entropy(z.tolist()), rel=1e-8)
    assert float(t.effective_rank) == pytest.approx(math.exp(ref_spectral_entropy(z.tolist())), rel=1e-8)
    assert float(reg.penalty(z)) == pytest.approx(-float(t.entropy))
    assert float(reglab.create("vne").penalty(z)) == pytest.approx(-ref_vne(z.tolist()), rel=1e-8)


@pytest.mark.parametrize("n,k", [(30, 16), (9, 16), (12, 4)])  # k clamped to n − 2 in the second case
def test_ldreg_matches_reference(n, k):
    z = torch.randn(n, 5, dtype=torch.float64)
    t = reglab.create("ldreg", k=k).components(z)
    assert float(t.penalty) == pytest.approx(ref_ldreg(z.tolist(), k), rel=1e-9)
    assert float(t.lid) > 0


def test_least_volume_matches_reference(pair):
    z, _ = pair
    assert float(RF.least_volume(z)) == pytest.approx(ref_least_volume(z.tolist()), rel=1e-12)
    assert float(RF.least_volume(z, eta=1.0)) == pytest.approx(ref_least_volume(z.tolist(), 1.0), rel=1e-12)
    # a collapsed latent dimension drags the geometric mean towards η
    z2 = z.clone()
    z2[:, 0] = 3.0
    assert float(RF.least_volume(z2)) < float(RF.least_volume(z))


def test_ldreg_bad_k():
    with pytest.raises(RegularizerInputError, match="LDReg expects k"):
        RF.ldreg(torch.randn(8, 3), k=1)
    with pytest.raises(RegularizerInputError, match="LDReg needs a batch of at least 3"):
        RF.ldreg(torch.randn(2, 3))


def test_effective_rank_extremes():
    rank_one = torch.randn(10, 1, dtype=torch.float64) @ torch.randn(1, 6, dtype=torch.float64)
    assert float(RF.effective_rank(rank_one)) == pytest.approx(1.0, abs=1e-3)
    ortho = torch.eye(6, dtype=torch.float64)
    assert float(RF.effective_rank(ortho)) == pytest.approx(6.0, rel=1e-5)
    assert math.isfinite(float(RF.effective_rank(torch.zeros(4, 3))))


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", [n for n in NAMES if n != "ldreg"])
def test_gradcheck(name):
    reg = reglab.create(name)
    g = torch.Generator().manual_seed(1)
    # distinct singular values and no zero entries keep every term smooth at the point
    z = (torch.randn(6, 4, generator=g, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.0, 0.5], dtype=torch.float64)).requires_grad_()
    if reg.num_inputs == 2:
        z2 = (z.detach() + 0.3 * torch.randn(6, 4, generator=g, dtype=torch.float64)).requires_grad_()
        assert torch.autograd.gradcheck(lambda a, b: reg.penalty(a, b), (z, z2))
    else:
        assert torch.autograd.gradcheck(lambda a: reg.penalty(a), (z,))


# ------------------------------------------------------------ dtypes, autocast
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_scalar(name, dtype):
    reg = reglab.create(name)
    z = torch.randn(8, 6, dtype=dtype, requires_grad=True)
    out = reg(*_inputs(reg, z))
    assert out.shape == () and out.dtype == dtype and torch.isfinite(out)
    out.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_matches_float32(name):
    reg = reglab.create(name)
    torch.manual_seed(0)
    lin = torch.nn.Linear(16, 12)
    x = torch.randn(32, 16)
    x2 = x + 0.1 * torch.randn_like(x)
    with torch.no_grad():
        z_ref = lin(x), lin(x2)
    ref = reg(*(z_ref[: reg.num_inputs]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = lin(x), lin(x2)
        assert z[0].dtype == torch.bfloat16
        out = reg(*(z[: reg.num_inputs]))
    assert out.dtype == torch.float32
    assert torch.isfinite(out)
    # the only error left is bf16's rounding of the embeddings themselves (8 bits of mantissa)
    assert float(out) == pytest.approx(float(ref), rel=5e-2, abs=5e-3)
    # statistics ran in float32: identical to the float32 loss on the upcast bf16 embeddings
    same = reg(*(t.float() for t in z[: reg.num_inputs]))
    assert float(out) == pytest.approx(float(same), rel=1e-6, abs=1e-7)


# ------------------------------------------------------------------ bad input
BAD = [
    ("rank", lambda: torch.randn(4, 3, 2)),
    ("empty", lambda: torch.randn(0, 3)),
    ("nan", lambda: torch.tensor([[1.0, float("nan")], [0.0, 1.0], [1.0, 2.0]])),
    ("inf", lambda: torch.tensor([[1.0, float("inf")], [0.0, 1.0], [1.0, 2.0]])),
    ("int", lambda: torch.ones(4, 3, dtype=torch.long)),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case,make", BAD, ids=[b[0] for b in BAD])
def test_bad_inputs_name_the_regularizer(name, case, make):
    reg = reglab.create(name)
    if case == "rank" and name in ("dispersive", "l1_activation", "ldreg"):
        pytest.skip("accepts (n, ...) activations, flattened per sample")
    z = make()
    with pytest.raises(RegularizerInputError, match=WHO[name]):
        reg(*([z] * reg.num_inputs))


@pytest.mark.parametrize(
    "name",
    ["vicreg", "vcreg", "barlow_twins", "uniformity", "vne", "effective_rank", "dispersive", "least_volume", "mhe_features"],
)
def test_batch_of_one_rejected(name):
    reg = reglab.create(name)
    z = torch.randn(1, 8)
    with pytest.raises(RegularizerInputError, match=rf"{WHO[name]} needs a batch of at least 2 embeddings, got shape \(1, 8\)"):
        reg(*([z] * reg.num_inputs))


@pytest.mark.parametrize("name", ["vicreg", "barlow_twins", "alignment"])
def test_views_must_match(name):
    with pytest.raises(RegularizerInputError, match="same shape"):
        reglab.create(name)(torch.randn(4, 3), torch.randn(5, 3))


def test_bad_hyperparameters():
    with pytest.raises(RegularizerInputError, match="Uniformity"):
        RF.uniformity(torch.randn(4, 3), t=0.0)
    with pytest.raises(RegularizerInputError, match="Dispersive"):
        RF.dispersive(torch.randn(4, 3), tau=-1.0)


# -------------------------------------------------------- registry metadata
@pytest.mark.parametrize("name", NAMES)
def test_metadata_and_config_roundtrip(name):
    cls = reglab.registry.get(name)
    assert cls.kind == "representation" and cls.form == "penalty" and cls.formula
    reg = reglab.create(name, weight=0.5)
    again = reglab.from_config(reg.get_config())
    z = torch.randn(6, 4)
    assert float(again(*_inputs(again, z, 0.0))) == pytest.approx(float(reg(*_inputs(reg, z, 0.0))))
    assert type(reg.components(*_inputs(reg, z)))._fields


def test_vicreg_claims_point_to_lab_task():
    claims = reglab.registry.get("vicreg").claims
    assert {c.metric for c in claims} == {"effective_rank", "linear_probe_accuracy"}
    assert all(c.task == "ssl_collapse" and c.direction == "higher" for c in claims)


# --------------------------------------------------------------- invariances
_small = st.integers(min_value=0, max_value=10_000)


@settings(max_examples=15, deadline=None)
@given(seed=_small, scale=st.floats(0.1, 10.0))
def test_scale_invariance(seed, scale):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(8, 5, generator=g, dtype=torch.float64)
    z2 = z + 0.2 * torch.randn(8, 5, generator=g, dtype=torch.float64)
    # normalized / spectral / standardized losses do not see a global scale
    for f in (RF.uniformity, RF.vne, RF.spectral_entropy):
        assert float(f(scale * z)) == pytest.approx(float(f(z)), rel=1e-7, abs=1e-9)
    assert float(RF.alignment(scale * z, scale * z2)) == pytest.approx(float(RF.alignment(z, z2)), rel=1e-7)
    # FLOPS and L1 are homogeneous of degree 2 and 1
    assert float(RF.flops(scale * z)) == pytest.approx(scale**2 * float(RF.flops(z)), rel=1e-9)
    assert float(RF.l1_activation(scale * z)) == pytest.approx(scale * float(RF.l1_activation(z)), rel=1e-9)


@settings(max_examples=15, deadline=None)
@given(seed=_small)
def test_permutation_and_rotation_invariance(seed):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(9, 4, generator=g, dtype=torch.float64)
    z2 = z1 + 0.3 * torch.randn(9, 4, generator=g, dtype=torch.float64)
    perm = torch.randperm(9, generator=g)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    # batch order never matters
    for name in NAMES:
        reg = reglab.create(name)
        args = (z1, z2)[: reg.num_inputs]
        assert float(reg.penalty(*(a[perm] for a in args))) == pytest.approx(float(reg.penalty(*args)), rel=1e-9, abs=1e-12)
    # distances / spectra are rotation invariant (VICReg's per-dimension terms are not)
    for f in (RF.uniformity, RF.vne, RF.spectral_entropy, RF.dispersive, RF.ldreg):
        assert float(f(z1 @ q)) == pytest.approx(float(f(z1)), rel=1e-8, abs=1e-10)
    # Barlow Twins's diagonal term is permutation-equivariant over dimensions
    dperm = torch.randperm(4, generator=g)
    assert float(RF.barlow_twins(z1[:, dperm], z2[:, dperm])) == pytest.approx(float(RF.barlow_twins(z1, z2)), rel=1e-9)


# ------------------------------------------------------------------- lab task
def test_ssl_collapse_task_quick():
    from reglab.bench.tasks import get_task

    fn = get_task("ssl_collapse")
    base = fn(None, seed=0, quick=True)
    full = fn({"name": "vicreg"}, seed=0, quick=True)
    for r in (base, full):
        assert set(r.metrics) >= {"effective_rank", "linear_probe_accuracy"}
        assert len(r.curves["effective_rank"]) == 6 and r.step_seconds > 0
    assert 1.0 <= full.metrics["effective_rank"] <= 32.0
    assert full.metrics["linear_probe_accuracy"] > 0.5


def test_ldreg_gradient_treats_reference_as_constant():
    # LDReg's reference set is detached (official code), so finite differences
    # of the whole function do not apply; check against a fixed-reference version.
    g = torch.Generator().manual_seed(5)
    z = torch.randn(10, 3, generator=g, dtype=torch.float64, requires_grad=True)
    ref = z.detach().clone()
    k = 4

    def fixed(data):
        r, _ = torch.sort(torch.cdist(data, ref), dim=1)
        m = r[:, 1:k].mean(dim=1)
        return -torch.log(m / (r[:, k] - m)).abs().mean()

    # the self-distance is exactly 0 only at the point itself; gradcheck away from it
    assert torch.autograd.gradcheck(fixed, (z.detach().clone().add_(1e-3).requires_grad_(),))
    (ours,) = torch.autograd.grad(RF.ldreg(z, k=k), z)
    (want,) = torch.autograd.grad(fixed(z), z)
    torch.testing.assert_close(ours, want, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("name", ["vicreg", "vcreg", "barlow_twins"])
def test_gradcheck_gram_route(name):
    # n < d: the covariance / cross-correlation sums go through n×n Gram matrices
    reg = reglab.create(name)
    z = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    z2 = (z.detach() + 0.3 * torch.randn(4, 7, dtype=torch.float64)).requires_grad_()
    args = (z, z2)[: reg.num_inputs]
    assert torch.autograd.gradcheck(lambda *a: reg.penalty(*a), args)


def ref_hyperspherical_energy(rows, s):
    """Loop over pairs, with the official code's ‖z‖ = √(Σz² + 1e-4) and r² = 2 − 2⟨ẑ_i, ẑ_j⟩."""
    unit = []
    for r in rows:
        norm = math.sqrt(sum(x * x for x in r) + 1e-4)
        unit.append([x / norm for x in r])
    terms = []
    for i in range(len(unit)):
        for j in range(i + 1, len(unit)):
            dist = math.sqrt(2 - 2 * sum(a * b for a, b in zip(unit[i], unit[j])))
            terms.append(math.log(1 / dist) if s == 0 else dist ** (-s))
    return sum(terms) / len(terms)


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
    with pytest.raises(RegularizerInputError, match="MHEFeatures expects s >= 0"):
        RF.mhe_features(z, s=-1)
