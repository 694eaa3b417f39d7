"""Cauchy–Schwarz regularizers (Taner et al., 2025) against loop references and the sheet's test vectors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reglab
from reglab import RegularizerInputError
from reglab import functional as RF
from reglab.core.registry import get

from ._reference import Reference


# ---------------------------------------------------------------- references
def _rows(w, groups="filter"):
    if w.ndim == 1:
        return [w.tolist()]
    if groups == "kernel" and w.ndim >= 3:
        return [list(k) for k in w.reshape(w.shape[0] * w.shape[1], -1).tolist()]
    return [list(r) for r in w.reshape(w.shape[0], -1).tolist()]


def ref_binary_group(x, r=2.0):
    n = len(x)
    l4 = sum(v**4 for v in x) ** 0.25
    l2 = math.sqrt(sum(v * v for v in x))
    return n ** (r / 2 - r / 4) * l4**r - l2**r


def ref_ternary_group(x):
    return sum(v**2 for v in x) * sum(v**6 for v in x) - sum(v**4 for v in x) ** 2


def ref_orthogonal(w):
    """K·Σ_{a,b}⟨m_a, m_b⟩² − (Σ m²)² over the K = min(rows, cols) vectors that must be orthogonal."""
    m = w.reshape(w.shape[0], -1).tolist()
    rows, cols = len(m), len(m[0])
    vecs = m if rows <= cols else [[m[i][j] for i in range(rows)] for j in range(cols)]
    k = len(vecs)
    gram2 = sum(sum(a * b for a, b in zip(u, v)) ** 2 for u in vecs for v in vecs)
    fro2 = sum(x * x for v in vecs for x in v)
    return k * gram2 - fro2**2


def ref_cauchy_schwarz(w, variant="binary", r=2.0, groups="filter", normalize=True):
    if variant == "orthogonal":
        value = ref_orthogonal(w)
    elif variant == "binary":
        value = sum(ref_binary_group(x, r) for x in _rows(w, groups))
    else:
        value = sum(ref_ternary_group(x) for x in _rows(w, groups))
    return value / w.numel() if normalize else value


REFERENCES = {"cauchy_schwarz": Reference(ref_cauchy_schwarz)}

CASES = [
    dict(variant="binary"),
    dict(variant="binary", r=4.0),
    dict(variant="binary", groups="kernel"),
    dict(variant="ternary"),
    dict(variant="ternary", groups="kernel", normalize=False),
    dict(variant="orthogonal"),
    dict(variant="orthogonal", normalize=False),
]
SHAPES = [(5, 4), (4, 3, 3, 3), (3, 7), (6,)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_matches_loop_reference(shape, kw):
    if kw["variant"] == "orthogonal" and len(shape) == 1:
        pytest.skip("orthogonality needs a matrix")
    g = torch.Generator().manual_seed(3)
    w = torch.randn(*shape, generator=g, dtype=torch.float64)
    assert float(RF.cauchy_schwarz(w, **kw)) == pytest.approx(ref_cauchy_schwarz(w, **kw), rel=1e-10, abs=1e-14)
    assert float(reglab.create("cauchy_schwarz", **kw).penalty(w)) == pytest.approx(
        ref_cauchy_schwarz(w, **kw), rel=1e-10, abs=1e-14
    )


def test_sheet_test_vectors():
    w = torch.tensor([0.9, -1.1, 1.0, -0.95], dtype=torch.float64)
    assert float(RF.cauchy_schwarz(w, r=4.0, normalize=False)) == pytest.approx(0.352819, abs=1e-6)  # Lbin
    assert float(RF.cauchy_schwarz(w, normalize=False)) == pytest.approx(0.044719, abs=1e-6)  # L4L2
    t = torch.tensor([0.0, 0.7, -0.7, 0.0, 0.75], dtype=torch.float64)
    assert float(RF.cauchy_schwarz(t, "ternary", normalize=False)) == pytest.approx(2.897508e-03, rel=1e-6)
    torch.manual_seed(1)
    x = torch.randn(4, 3, dtype=torch.float64)
    assert float(RF.cauchy_schwarz(x, "orthogonal", normalize=False)) == pytest.approx(25.364934, abs=1e-6)
    c = torch.randn(4, 4, dtype=torch.float64)
    c = (c + c.T) / 2
    v = torch.randn(4, dtype=torch.float64)
    assert float(RF.cauchy_schwarz_eigenvector(v, c)) == pytest.approx(4.487774, abs=1e-6)
    assert abs(float(RF.cauchy_schwarz_eigenvector(torch.linalg.eigh(c).eigenvectors[:, 1], c))) < 1e-12
    torch.manual_seed(2)
    wc = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    assert float(RF.cauchy_schwarz(wc, groups="kernel")) == pytest.approx(0.455496, abs=1e-6)  # Rconv


def test_zero_exactly_on_the_target_sets():
    g = torch.Generator().manual_seed(0)
    signs = torch.randint(0, 2, (6, 8), generator=g).double() * 2 - 1
    scales = torch.rand(6, 1, generator=g, dtype=torch.float64) + 0.1
    binary = signs * scales  # each row in {±α_row}
    assert abs(float(RF.cauchy_schwarz(binary))) < 1e-14
    assert abs(float(RF.cauchy_schwarz(binary, r=4.0))) < 1e-14
    ternary = binary * torch.randint(0, 2, (6, 8), generator=g).double()  # {0, ±α_row}
    assert abs(float(RF.cauchy_schwarz(ternary, "ternary"))) < 1e-14
    assert float(RF.cauchy_schwarz(ternary)) > 1e-3  # not binary
    q, _ = torch.linalg.qr(torch.randn(7, 3, generator=g, dtype=torch.float64))
    for m in (2.5 * q, 2.5 * q.T):  # orthonormal columns (7×3) and rows (3×7), scaled
        assert abs(float(RF.cauchy_schwarz(m, "orthogonal", normalize=False))) < 1e-12
    # the official script's multiplier N = #rows is not zero on orthogonal columns when N ≠ K
    x = 2.5 * q
    n_form = 7 * (x.T @ x).norm() ** 2 - x.norm() ** 4
    assert float(n_form) == pytest.approx(4 * 3 * 2.5**4, rel=1e-10)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.01, 100.0))
def test_non_negative_and_homogeneous(seed, scale):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(4, 6, generator=g, dtype=torch.float64)
    for kw, degree in [(dict(variant="binary"), 2), (dict(variant="binary", r=4.0), 4),
                       (dict(variant="ternary"), 8), (dict(variant="orthogonal"), 4)]:  # fmt: skip
        value = RF.cauchy_schwarz(w, **kw)
        assert float(value) >= -1e-12 * float(w.norm()) ** degree
        assert float(RF.cauchy_schwarz(scale * w, **kw)) == pytest.approx(scale**degree * float(value), rel=1e-9)


def test_large_and_tiny_weights_stay_finite():
    w = torch.randn(4, 6)
    for kw in CASES:
        exact = ref_cauchy_schwarz(w.double(), **kw)
        degree = 8 if kw["variant"] == "ternary" else (kw.get("r", 2.0) if kw["variant"] == "binary" else 4)
        for scale in (1e8, 1e-8):
            want = exact * scale**degree
            if want > 1e38:  # the value itself overflows float32: a clear error, not inf
                with pytest.raises(RegularizerInputError, match="cauchy_schwarz produced a non-finite penalty"):
                    RF.cauchy_schwarz(w * scale, **kw)
            elif want > 1e-30:  # its powers of w alone would overflow / underflow float32
                assert float(RF.cauchy_schwarz(w * scale, **kw)) == pytest.approx(want, rel=1e-3, abs=0)
            else:  # the value itself underflows float32
                assert torch.isfinite(RF.cauchy_schwarz(w * scale, **kw))


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_gradcheck(kw):
    w = torch.randn(3, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: RF.cauchy_schwarz(t, **kw), (w,))


def test_zero_group_has_zero_gradient():
    w = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]], dtype=torch.float64, requires_grad=True)
    RF.cauchy_schwarz(w).backward()
    assert torch.isfinite(w.grad).all() and torch.equal(w.grad[0], torch.zeros(3, dtype=torch.float64))


def test_fc_ternary_regularizes_the_fc_weight_itself():
    """The official fc 'ternary' branch reuses the previous conv tensor; here each tensor is its own."""
    conv, fc = torch.randn(4, 3, 3, 3, dtype=torch.float64), torch.randn(10, 36, dtype=torch.float64)
    both = RF.cauchy_schwarz([conv, fc], "ternary")
    assert float(both) == pytest.approx(ref_cauchy_schwarz(conv, "ternary") + ref_cauchy_schwarz(fc, "ternary"))
    assert float(RF.cauchy_schwarz([conv, fc * 0 + 1.0], "ternary")) == pytest.approx(ref_cauchy_schwarz(conv, "ternary"))


def test_bad_arguments_are_named():
    with pytest.raises(RegularizerInputError, match="CauchySchwarz expects variant to be one of"):
        reglab.create("cauchy_schwarz", variant="quaternary")
    with pytest.raises(RegularizerInputError, match="cauchy_schwarz expects r to be a positive number"):
        RF.cauchy_schwarz(torch.randn(3, 3), r=0)
    with pytest.raises(RegularizerInputError, match="cauchy_schwarz expects weight with at least 2 dimensions"):
        RF.cauchy_schwarz(torch.randn(5), "orthogonal")
    with pytest.raises(RegularizerInputError, match="cauchy_schwarz_eigenvector expects a square matrix"):
        RF.cauchy_schwarz_eigenvector(torch.randn(3), torch.randn(3, 4))


# ------------------------------------------------------------ lab task
def test_quantizers_match_brute_force():
    from reglab.bench.experiments.quantization import binarize_rows, ternarize_rows

    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 7, generator=g)
    torch.testing.assert_close(binarize_rows(w), w.abs().mean(1, keepdim=True) * w.sign())
    q = ternarize_rows(w)
    for row, qrow in zip(w, q):
        # brute force: over every threshold, the ternary vector α·t (α = mean |kept|) nearest the row
        best = min(
            (float((row - (row.abs()[row.abs() >= th].mean() * row.sign() * (row.abs() >= th))).norm()), th)
            for th in row.abs()
        )
        th = best[1]
        torch.testing.assert_close(qrow, row.abs()[row.abs() >= th].mean() * row.sign() * (row.abs() >= th))


def test_quantization_task_quick_and_claims():
    from reglab.bench.tasks import get_task

    fn = get_task("quantization")
    r = fn({"name": "cauchy_schwarz"}, seed=0, quick=True)
    assert set(r.metrics) == {"test_accuracy", "quantized_accuracy", "quantization_drop", "quantization_error"}
    r = fn({"name": "cauchy_schwarz", "variant": "ternary", "weight": 1e5}, seed=0, quick=True, levels="ternary")
    assert 0 <= r.metrics["quantization_error"] < 1
    with pytest.raises(ValueError, match="levels"):
        fn(None, seed=0, quick=True, levels="octal")
    assert {c.task for c in get("cauchy_schwarz").claims} == {"quantization"}
