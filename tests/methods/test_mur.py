"""Multi-grained uncertainty regularization (Chen et al.), against a transcription with the same draws."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._reference import Reference


def _ce_diag(logits):
    return sum(-(row[i] - math.log(sum(math.exp(v) for v in row))) for i, row in enumerate(logits)) / len(logits)


def ref_mur(q, t, epoch, seed, total=80, g=1.0):
    """BatchBasedAleatoricLoss + NormalAugmenter with loops; the α and β draws in the same order."""
    b, d = t.shape
    gen = None if seed is None else torch.Generator().manual_seed(seed)
    rows = t.tolist()
    means = [sum(r) / d for r in rows]
    stds = [math.sqrt(sum((v - m) ** 2 for v in r) / (d - 1)) for r, m in zip(rows, means)]
    za = torch.randn(b, d, generator=gen).double().tolist()  # drawn in float32, as the augmenter does
    zb = torch.randn(b, d, generator=gen).double().tolist()
    aug = []
    for i, r in enumerate(rows):
        var = sum((v - means[i]) ** 2 for v in r) / d
        aug.append([(1 + stds[i] * za[i][j]) * (r[j] - means[i]) / math.sqrt(var + 1e-5) + means[i] + stds[i] * zb[i][j]
                    for j in range(d)])
    flat = [v for r in aug for v in r]
    mu = sum(flat) / len(flat)
    sigma = math.sqrt(sum((v - mu) ** 2 for v in flat) / (len(flat) - 1))
    qs = q.tolist()
    dot = lambda a, c: sum(x * y for x, y in zip(a, c))  # noqa: E731
    l_u = 0.5 * (math.exp(-sigma) * _ce_diag([[dot(a, c) for c in aug] for a in qs]) + sigma)
    l_info = _ce_diag([[dot(a, c) for c in rows] for a in qs])
    gamma = math.exp(-g * epoch / total)
    return gamma * l_u + (1 - gamma) * l_info


def _inputs(g):
    return (torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64), 3)


REFERENCES = {"multigrained_uncertainty": Reference(lambda q, t, e: ref_mur(q, t, e, None), inputs=_inputs)}


def test_matches_loops_and_anneals():
    q, t, _ = _inputs(torch.Generator().manual_seed(0))
    for epoch in (0, 40, 79):
        got = RF.multigrained_uncertainty(q, t, epoch, torch.Generator().manual_seed(2))
        assert float(got) == pytest.approx(ref_mur(q, t, epoch, 2), rel=1e-10)
    late = RF.multigrained_uncertainty(q, t, 10_000, torch.Generator().manual_seed(2))
    info = torch.nn.functional.cross_entropy(q @ t.T, torch.arange(5))
    assert float(late) == pytest.approx(float(info), rel=1e-6)  # γ → 0: the plain in-batch loss


def test_gradcheck():
    q, t, _ = _inputs(torch.Generator().manual_seed(1))
    q.requires_grad_()
    # α and β are sampled without gradient from the targets' row statistics (Normal.sample in the official
    # augmenter), so the loss is smooth in the queries; in the targets the analytic gradient holds α, β fixed
    assert torch.autograd.gradcheck(
        lambda a: RF.multigrained_uncertainty(a, t, 5, torch.Generator().manual_seed(0)), (q,))


def test_bad_input():
    q, t, _ = _inputs(torch.Generator().manual_seed(2))
    with pytest.raises(RegularizerInputError, match="MultiGrainedUncertainty expects epoch"):
        RF.multigrained_uncertainty(q, t, -1)
    with pytest.raises(RegularizerInputError, match="MultiGrainedUncertainty"):
        RF.multigrained_uncertainty(q, t[:, :3], 0)
    with pytest.raises(RegularizerInputError, match="MultiGrainedUncertainty expects total_epochs"):
        reglab.MultiGrainedUncertainty(total_epochs=0)
