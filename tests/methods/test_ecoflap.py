"""ECoFLaP: the allocation against a plain transcription of the official loop, the zeroth-order score
against autograd (exact for a quadratic loss), Wanda masks against loops, the whole operation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import reglab
from reglab import RegularizerInputError
from reglab.methods.ecoflap import ecoflap_sparsities, wanda_mask, zeroth_order_scores


def ref_allocation(scores, sizes, s, s_max):
    keep = [math.ceil(n * (1 - s_max)) for n in sizes]
    total = sum(sizes) * (1 - s)
    scores = list(scores)
    while sum(keep) < total:
        rest = total - sum(keep)
        tot = sum(scores)
        for i in range(len(keep)):
            keep[i] += math.ceil(scores[i] / tot * rest)
        for i in range(len(keep)):
            if keep[i] >= sizes[i]:
                scores[i] = 0.0
                keep[i] = sizes[i]
    return keep


def test_allocation_matches_the_official_loop_and_hits_the_total():
    scores, sizes = [5.0, 1.0, 0.2, 3.0], [100, 400, 300, 200]
    got = ecoflap_sparsities(scores, sizes, 0.5, 0.6)
    keep = [round((1 - v) * n) for v, n in zip(got, sizes)]
    ref = ref_allocation(scores, sizes, 0.5, 0.6)
    assert sum(keep) == 500
    assert all(k >= math.ceil(n * 0.4) for k, n in zip(keep, sizes))  # never above s_max
    # the official loop, less the ceilings' overshoot taken back from the largest groups
    assert all(a <= b for a, b in zip(keep, ref)) and sum(ref) - sum(keep) == sum(ref) - 500
    assert [a for a, b in zip(keep, ref) if a != b] == [keep[1]]  # only the largest group gives back
    full = ecoflap_sparsities([100.0, 1.0], [10, 1000], 0.5, 0.6)
    assert full[0] == 0.0 and full[1] == pytest.approx(1 - 495 / 1000)  # the important small group kept whole
    # equal scores per weight: uniform sparsity
    uni = ecoflap_sparsities([1.0, 4.0], [100, 400], 0.5, 0.6)
    assert uni == pytest.approx([0.5, 0.5], abs=0.011)
    assert ecoflap_sparsities([1.0, 3.0], [100, 100], 0.5) == pytest.approx([0.55, 0.45])  # default s_max = s + 0.1


def test_zeroth_order_score_is_the_directional_derivative_for_a_quadratic():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 4, generator=g, dtype=torch.float64)
    w = nn.Parameter(torch.randn(3, 4, generator=g, dtype=torch.float64))
    model = nn.Module()
    model.w = w
    batches = [torch.randn(4, generator=g, dtype=torch.float64) for _ in range(3)]

    def loss(m, b):
        return ((m.w @ b) ** 2).sum() + (a * m.w).sum()

    got = zeroth_order_scores(model, [w], batches, loss, eps=1e-3, num_noise=2, generator=torch.Generator().manual_seed(7))
    zs = torch.Generator().manual_seed(7)
    expected = 0.0
    for b in batches:
        for _ in range(2):
            z = torch.randn(3, 4, generator=zs, dtype=torch.float64)
            grad = torch.autograd.grad(loss(model, b), w)[0]
            expected += abs(float((grad * z).sum()))
    assert got[0] == pytest.approx(expected, rel=1e-8)
    torch.testing.assert_close(w.detach(), model.w.detach())  # restored


def test_wanda_mask_matches_loops():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(5, 7, generator=g)
    x = torch.randn(20, 7, generator=g)
    keep = wanda_mask(w, x, 0.45)
    norms = [math.sqrt(sum(float(x[t, j]) ** 2 for t in range(20))) for j in range(7)]
    for i in range(5):
        metric = [abs(float(w[i, j])) * norms[j] for j in range(7)]
        drop = sorted(range(7), key=lambda j: metric[j])[: int(7 * 0.45)]
        assert [not bool(keep[i, j]) for j in range(7)] == [j in drop for j in range(7)]


def test_prunes_a_model_to_the_allocated_sparsities():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 3))
    batches = [(torch.randn(32, 10), torch.randint(0, 3, (32,))) for _ in range(2)]
    s = reglab.create("ecoflap", sparsity=0.5)(model, batches, lambda m, b: F.cross_entropy(m(b[0]), b[1]))
    lins = [m for m in model if isinstance(m, nn.Linear)]
    for m, sl in zip(lins, s):
        assert float((m.weight == 0).float().mean()) == pytest.approx(int(m.in_features * sl) / m.in_features)
        assert sl <= 0.6 + 1e-12
    kept = sum((1 - sl) * m.weight.numel() for m, sl in zip(lins, s))
    assert kept == pytest.approx(0.5 * sum(m.weight.numel() for m in lins), abs=1)


def test_bad_input():
    model = nn.Sequential(nn.Linear(3, 2))
    loss = lambda m, b: m(b).sum()  # noqa: E731
    with pytest.raises(RegularizerInputError, match="ECoFLaP"):
        reglab.ECoFLaP(sparsity=1.5)
    with pytest.raises(RegularizerInputError, match="ECoFLaP.*nn.Linear"):
        reglab.ECoFLaP()(nn.Sequential(nn.ReLU()), [torch.randn(4, 3)], loss)
    with pytest.raises(RegularizerInputError, match="ECoFLaP"):
        reglab.ECoFLaP()(model, [], loss)
    with pytest.raises(RegularizerInputError, match="ECoFLaP"):
        reglab.ECoFLaP()(model, [torch.full((4, 3), float("nan"))], loss)
    with pytest.raises(RegularizerInputError, match="ECoFLaP"):
        ecoflap_sparsities([1.0], [10, 20], 0.5)
    with pytest.raises(RegularizerInputError, match="ECoFLaP"):
        ecoflap_sparsities([1.0, 2.0], [10, 20], 0.5, 0.3)
    with pytest.raises(RegularizerInputError, match="ECoFLaP"):
        wanda_mask(torch.randn(2, 3), torch.randn(5, 4), 0.5)
    with pytest.raises(RegularizerInputError, match="ECoFLaP"):
        wanda_mask(torch.randn(2, 3), torch.randn(5, 3), 1.5)
    assert not wanda_mask(torch.randn(2, 3), torch.randn(5, 3), 1.0).any()
