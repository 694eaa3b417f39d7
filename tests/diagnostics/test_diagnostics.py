"""Diagnostics against naive references written here (loops, numpy, textbook formulas)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import reglab.diagnostics as D
from reglab import RegularizerInputError

# ----------------------------------------------------------- naive references


def ref_entropy_rank(z: np.ndarray, eps: float) -> float:
    s = np.linalg.svd(z, compute_uv=False)
    p = s / s.sum() + eps
    return math.exp(-sum(pk * math.log(pk) for pk in p if pk > 0))


def ref_mean_cosine(z: np.ndarray) -> float:
    n, total = len(z), 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                total += z[i] @ z[j] / (np.linalg.norm(z[i]) * np.linalg.norm(z[j]))
    return total / (n * (n - 1))


def ref_partition_isotropy(z: np.ndarray) -> float:
    _, vecs = np.linalg.eigh(z.T @ z)
    f = [sum(math.exp(sign * c @ zi) for zi in z) for c in vecs.T for sign in (1, -1)]
    return min(f) / max(f)


def ref_uniformity(z: np.ndarray, t: float = 2.0) -> float:
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    vals = [math.exp(-t * np.sum((z[i] - z[j]) ** 2)) for i in range(len(z)) for j in range(i + 1, len(z))]
    return math.log(sum(vals) / len(vals))


@pytest.fixture
def z() -> torch.Tensor:
    return torch.randn(40, 6, dtype=torch.float64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spectral_ranks_match_reference(z, dtype):
    x = z.to(dtype)
    assert D.effective_rank(x) == pytest.approx(ref_entropy_rank(z.numpy(), 0.0), rel=1e-5)
    assert D.rankme(x) == pytest.approx(ref_entropy_rank(z.numpy(), 1e-7), rel=1e-5)
    assert D.singular_values(x).numpy() == pytest.approx(np.linalg.svd(z.numpy(), compute_uv=False), rel=1e-5)
    centered = z.numpy() - z.numpy().mean(0)
    assert D.singular_values(x, center=True).numpy() == pytest.approx(np.linalg.svd(centered, compute_uv=False), rel=1e-5)


def test_effective_rank_extremes():
    rank_one = torch.outer(torch.randn(30), torch.randn(5))
    assert D.effective_rank(rank_one) == pytest.approx(1.0, abs=1e-6)
    eye = torch.eye(8)
    assert D.effective_rank(eye) == pytest.approx(8.0)
    assert D.rankme(eye) == pytest.approx(8.0, rel=1e-5)
    block = torch.zeros(10, 4)
    block[:, :2] = torch.randn(10, 2)
    assert D.effective_rank(block) <= 2.0 + 1e-9


def test_isotropy_matches_reference(z):
    assert D.mean_pairwise_cosine(z) == pytest.approx(ref_mean_cosine(z.numpy()), abs=1e-10)
    assert D.partition_isotropy(z) == pytest.approx(ref_partition_isotropy(z.numpy()), rel=1e-8)
    # a shared offset makes every pair point the same way
    shifted = z + 10.0
    assert D.mean_pairwise_cosine(shifted) > 0.9 > D.mean_pairwise_cosine(z)
    assert D.partition_isotropy(shifted) < 1e-3 < D.partition_isotropy(z)


def test_uniformity_alignment_match_reference(z):
    assert D.uniformity(z) == pytest.approx(ref_uniformity(z.numpy()), rel=1e-8)
    z2 = z + 0.1 * torch.randn_like(z)
    a, b = z.numpy(), z2.numpy()
    a, b = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    assert D.alignment(z, z2) == pytest.approx(float(np.mean(np.sum((a - b) ** 2, axis=1))), rel=1e-8)
    collapsed = torch.ones(10, 3)
    assert D.uniformity(collapsed) == pytest.approx(0.0, abs=1e-12)


def test_dead_units():
    a = torch.relu(torch.randn(50, 8))
    a[:, [1, 5]] = 0.0
    assert D.dead_units(a) == pytest.approx(2 / 8)
    fmap = torch.rand(4, 3, 5, 5)
    fmap[:, 0] = 0.0
    fmap[2, 1, 3, 3] = 0.0  # a single zero does not kill a channel
    assert D.dead_units(fmap) == pytest.approx(1 / 3)


@settings(max_examples=20, deadline=None)
@given(scale=st.floats(0.01, 100.0), seed=st.integers(0, 10_000))
def test_scale_and_rotation_invariance(scale, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(25, 5, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    perm = torch.randperm(25, generator=g)
    for fn in (D.effective_rank, D.rankme, D.mean_pairwise_cosine, D.uniformity):
        ref = fn(z)
        assert fn(scale * z) == pytest.approx(ref, rel=1e-6, abs=1e-9)
        assert fn(z @ q) == pytest.approx(ref, rel=1e-6, abs=1e-9)
        assert fn(z[perm]) == pytest.approx(ref, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(
    "fn",
    [D.effective_rank, D.rankme, D.mean_pairwise_cosine, D.partition_isotropy, D.uniformity, D.singular_values],
)
def test_embedding_diagnostics_reject_bad_input(fn):
    for bad in (torch.randn(5), torch.randn(2, 3, 4), torch.empty(0, 3), torch.ones(4, 3, dtype=torch.long)):
        with pytest.raises(RegularizerInputError):
            fn(bad)
    nan = torch.randn(4, 3)
    nan[1, 1] = float("nan")
    with pytest.raises(RegularizerInputError, match="NaN"):
        fn(nan)
    with pytest.raises(RegularizerInputError, match="inf"):
        fn(torch.full((4, 3), float("inf")))


def test_pairwise_diagnostics_need_two_rows_and_name_themselves():
    with pytest.raises(RegularizerInputError, match="mean_pairwise_cosine needs a batch of at least 2"):
        D.mean_pairwise_cosine(torch.randn(1, 4))
    with pytest.raises(RegularizerInputError, match="rankme"):
        D.rankme(torch.randn(1, 4))
    with pytest.raises(RegularizerInputError, match="alignment needs two views of the same shape"):
        D.alignment(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(RegularizerInputError, match="dead_units"):
        D.dead_units(torch.randn(7))


# ------------------------------------------------------------------- models


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def test_weight_and_group_sparsity_count_zeros_by_hand():
    m = _model()
    with torch.no_grad():
        m[0].weight[1] = 0.0  # one of 4 filters
        m[4].weight[0, :10] = 0.0  # entries, not a whole row
        m[4].weight[2] = 0.0  # one of 3 output units
        m[0].bias.zero_()  # biases are not weights
    total = m[0].weight.numel() + m[4].weight.numel()
    zeros = 9 + 10 + 144
    assert D.weight_sparsity(m) == pytest.approx(zeros / total)
    assert D.group_sparsity(m) == pytest.approx(2 / 7)
    assert D.group_sparsity(m, per_layer=True) == pytest.approx({"0.weight": 0.25, "4.weight": 1 / 3})
    assert D.weight_sparsity(m, tol=10.0) == 1.0


def test_orthogonality_error_and_norms():
    q, _ = torch.linalg.qr(torch.randn(6, 4))
    assert D.orthogonality_error(q) == pytest.approx(0.0, abs=1e-5)  # tall: orthonormal columns
    assert D.orthogonality_error(q.T) == pytest.approx(0.0, abs=1e-5)  # wide: orthonormal rows
    w = torch.randn(3, 5, dtype=torch.float64)
    ref = np.linalg.norm(w.numpy() @ w.numpy().T - np.eye(3))
    assert D.orthogonality_error(w) == pytest.approx(ref)
    m = _model()
    errs = D.orthogonality_error(m)
    assert set(errs) == {"0.weight", "4.weight"}
    assert errs["0.weight"] == pytest.approx(D.orthogonality_error(m[0].weight.reshape(4, -1)))
    norms = D.layer_weight_norms(m)
    assert set(norms) == {"0.weight", "4.weight"}  # no biases, no BatchNorm
    assert norms["4.weight"] == pytest.approx(float(np.sqrt((m[4].weight.detach().double().numpy() ** 2).sum())))
    assert D.layer_weight_norms(m, p=1)["0.weight"] == pytest.approx(float(m[0].weight.abs().sum()), rel=1e-6)


def test_model_diagnostics_bad_input():
    with pytest.raises(RegularizerInputError, match="nn.Module"):
        D.group_sparsity(torch.randn(3, 3))
    with pytest.raises(RegularizerInputError, match="group_sparsity found no weight"):
        D.group_sparsity(nn.ReLU())
    m = _model()
    with torch.no_grad():
        m[4].weight[0, 0] = float("nan")
    with pytest.raises(RegularizerInputError, match="NaN"):
        D.layer_weight_norms(m)
    with pytest.raises(RegularizerInputError, match="orthogonality_error"):
        D.orthogonality_error(torch.randn(5))


# ------------------------------------------------------------------ monitor


def test_monitor_records_every_n_steps_and_plots(tmp_path):
    m = _model()
    mon = D.Monitor(m, every=3, diagnostics=["effective_rank", "group_sparsity", "layer_weight_norms",
                                             ("custom", lambda model, embeddings: 42.0)])  # fmt: skip
    z = torch.randn(20, 5)
    for step in range(10):
        mon.record(step, embeddings=z)
    assert [s for s, _ in mon.history["effective_rank"]] == [0, 3, 6, 9]
    assert mon.history["effective_rank"][0][1] == pytest.approx(D.effective_rank(z))
    assert mon.history["custom"] == [(0, 42.0), (3, 42.0), (6, 42.0), (9, 42.0)]
    assert {"layer_weight_norms/0.weight", "layer_weight_norms/4.weight"} <= set(mon.history)
    path = mon.plot(str(tmp_path / "diag.png"))
    assert (tmp_path / "diag.png").stat().st_size > 1000 and path.endswith("diag.png")


def test_monitor_off_is_free_and_errors_are_clear(monkeypatch):
    calls = []
    monkeypatch.setitem(D.EMBEDDING_DIAGNOSTICS, "effective_rank", lambda z: calls.append(1) or 0.0)
    off = D.Monitor(None, every=0, diagnostics=["effective_rank"])
    disabled = D.Monitor(None, every=1, diagnostics=["effective_rank"], enabled=False)
    for step in range(5):
        assert off.record(step, embeddings=torch.randn(3, 2)) is None
        assert disabled.record(step, embeddings=torch.randn(3, 2)) is None
    assert calls == [] and off.history == {} and disabled.history == {}
    with pytest.raises(ValueError, match="did you mean"):
        D.Monitor(None, diagnostics=["effective_rnk"])
    with pytest.raises(ValueError, match="needs a model"):
        D.Monitor(None, diagnostics=["group_sparsity"])
    with pytest.raises(ValueError, match="needs record"):
        D.Monitor(None, every=1, diagnostics=["rankme"]).record(0)
    with pytest.raises(ValueError):
        D.Monitor(None, every=-1)
    with pytest.raises(ValueError, match="nothing recorded"):
        D.Monitor(None, every=1).plot("/tmp/never.png")
