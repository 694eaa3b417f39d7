"""Fixed simplex-ETF head (FedLoGe SSE-C): geometry, logits against a loop, sparse variant, state, bad input."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
from reglab import RegularizerInputError
from reglab.methods.simplex_etf import simplex_etf, simplex_etf_logits


@pytest.mark.parametrize("k,d", [(2, 3), (5, 16), (10, 10)])
def test_dense_etf_is_a_simplex_etf(k, d):
    """Unit columns with pairwise cosine −1/(K−1): Mᵀ M = K/(K−1)·(I − 11ᵀ/K); columns sum to 0."""
    m = simplex_etf(k, d, generator=torch.Generator().manual_seed(0)).double()
    assert m.shape == (d, k)
    gram = m.T @ m
    for i in range(k):
        for j in range(k):
            expected = 1.0 if i == j else -1.0 / (k - 1)
            assert gram[i, j].item() == pytest.approx(expected, abs=1e-6)
    assert torch.allclose(m.sum(dim=1), torch.zeros(d, dtype=torch.float64), atol=1e-6)


def test_logits_match_a_loop_and_gradcheck():
    m = simplex_etf(4, 6, generator=torch.Generator().manual_seed(1)).double()
    h = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    got = simplex_etf_logits(h, m)
    for n in range(3):
        for c in range(4):
            assert got[n, c].item() == pytest.approx(sum(h[n, i].item() * m[i, c].item() for i in range(6)), rel=1e-12)
    assert torch.autograd.gradcheck(lambda x: simplex_etf_logits(x, m), (h,))


def test_head_is_frozen_and_round_trips_state():
    head = reglab.SimplexETFHead(in_features=8, num_classes=4)
    assert list(head.parameters()) == []
    assert "etf" in head.state_dict()
    other = reglab.SimplexETFHead(in_features=8, num_classes=4)
    other.load_state_dict(head.state_dict())
    x = torch.randn(5, 8)
    assert torch.equal(other(x), head(x))
    assert reglab.from_config(head.get_config()).get_config() == head.get_config()


def test_sparse_variant_zeroes_the_share_and_respreads_the_rest():
    """int(β·d·K) zeros stay zero; the refinement only moves the kept entries (FedLoGe gen_sparse_ETF)."""
    torch.manual_seed(0)
    d, k, beta = 12, 4, 0.5
    refined = simplex_etf(k, d, sparsity=beta, steps=50, lr=1e-2, generator=torch.Generator().manual_seed(3))
    raw = simplex_etf(k, d, sparsity=beta, steps=0, generator=torch.Generator().manual_seed(3))
    assert int((raw == 0).sum()) == int(beta * d * k)
    assert torch.equal(refined == 0, raw == 0)
    assert not torch.equal(refined, raw)
    # the loss pulls column norms toward 0.1 (from ≈ 0.7 after zeroing half the entries)
    assert (refined.norm(dim=0) - 0.1).abs().sum() < (raw.norm(dim=0) - 0.1).abs().sum()


def test_sparse_refinement_loss_decreases():
    def loss(x):
        norms = x.norm(dim=0)
        cos = (x / norms).T @ (x / norms) - 2 * torch.eye(x.shape[1])
        return float(((norms - 0.1) ** 2).sum() - torch.acos(cos.max(dim=1).values.clamp(-0.99999, 0.99999)).mean())

    raw = simplex_etf(5, 10, sparsity=0.6, steps=0, generator=torch.Generator().manual_seed(4))
    refined = simplex_etf(5, 10, sparsity=0.6, steps=100, lr=1e-2, generator=torch.Generator().manual_seed(4))
    assert loss(refined) < loss(raw)


def test_bad_input_is_named():
    with pytest.raises(RegularizerInputError, match="SimplexETFHead.*dim >= num_classes"):
        reglab.SimplexETFHead(in_features=3, num_classes=5)
    with pytest.raises(RegularizerInputError, match="SimplexETFHead"):
        reglab.SimplexETFHead(in_features=8, num_classes=4, sparsity=1.5)
    head = reglab.SimplexETFHead(in_features=8, num_classes=4)
    with pytest.raises(RegularizerInputError, match="SimplexETFHead.*width 8"):
        head(torch.randn(3, 7))
    with pytest.raises(RegularizerInputError, match="SimplexETFHead"):
        head(torch.full((3, 8), float("nan")))
    with pytest.raises(RegularizerInputError, match="SimplexETFHead"):
        head(torch.ones(3, 8, dtype=torch.long))


def test_scale_is_sqrt_k_over_k_minus_1_times_an_orthonormal_projection():
    m = simplex_etf(6, 9, generator=torch.Generator().manual_seed(5)).double()
    # M = √(K/(K−1))·P(I − 11ᵀ/K): its nonzero singular values are all √(K/(K−1)), K−1 of them
    s = torch.linalg.svdvals(m)
    assert torch.allclose(s[:5], torch.full((5,), math.sqrt(6 / 5), dtype=torch.float64), atol=1e-6)
    assert s[5].item() == pytest.approx(0.0, abs=1e-6)
