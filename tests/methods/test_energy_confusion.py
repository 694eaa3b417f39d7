"""ECAML energy confusion (Chen & Deng 2019) against a loop transcription of energy_confusion.cpp."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._reference import Reference


def ref_energy(z, labels, r, generator_seed):
    """Loops: the pair weights counted over i<j, then the official random partners (same draws; a seed of
    None draws from the global RNG, as the penalty does without a generator)."""
    n = len(z)
    w_pos = sum(1 for i in range(n) for j in range(i + 1, n) if labels[i] == labels[j])
    w_neg = n * (n - 1) // 2 - w_pos
    g = None if generator_seed is None else torch.Generator().manual_seed(generator_seed)
    e = 0.0
    for i in range(max(n - 2 * r, 0)):
        for j in (torch.randperm(n - i - 2, generator=g)[:r] + i + 2).tolist():
            w = w_pos if labels[i] == labels[j] else w_neg
            e += 0.5 * sum((a - b) ** 2 for a, b in zip(z[i], z[j])) / w
    return math.log(e)


def _inputs(g):
    return (torch.randn(24, 5, generator=g, dtype=torch.float64), torch.arange(24) // 2)


REFERENCES = {
    "energy_confusion": Reference(
        lambda z, y: ref_energy(z.tolist(), y.tolist(), 10, None),
        inputs=_inputs,
    )
}


def test_matches_loops_for_other_r_and_labels():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(12, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 2, 3, 3, 3])
    got = RF.energy_confusion(z, y, num_pairs=3, generator=torch.Generator().manual_seed(5))
    assert float(got) == pytest.approx(ref_energy(z.tolist(), y.tolist(), 3, 5), rel=1e-12)
    reg = reglab.create("energy_confusion", num_pairs=3)
    assert reg.weight == 0.13
    assert float(reg(z, y, generator=torch.Generator().manual_seed(5))) == pytest.approx(0.13 * float(got), rel=1e-12)


def test_partners_skip_the_next_row_and_gradcheck():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(9, 2, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.arange(9) // 2
    assert torch.autograd.gradcheck(
        lambda a: RF.energy_confusion(a, y, num_pairs=2, generator=torch.Generator().manual_seed(3)), (z,))
    from reglab.methods.energy_confusion import _pairs

    i, j = _pairs(9, 2, torch.Generator().manual_seed(0))
    assert bool((j >= i + 2).all()) and i.max() < 9 - 4 and len(i) == 2 * 5


def test_descent_pulls_pairs_together():
    z = torch.randn(30, 4, dtype=torch.float64, requires_grad=True)
    y = torch.arange(30) // 2
    RF.energy_confusion(z, y, generator=torch.Generator().manual_seed(0)).backward()
    with torch.no_grad():
        after = RF.energy_confusion(z - 0.05 * z.grad, y, generator=torch.Generator().manual_seed(0))
        before = RF.energy_confusion(z, y, generator=torch.Generator().manual_seed(0))
    assert float(after) < float(before)


def test_bad_input():
    z = torch.randn(24, 3)
    with pytest.raises(RegularizerInputError, match="EnergyConfusion expects one label per embedding"):
        RF.energy_confusion(z, torch.arange(23))
    with pytest.raises(RegularizerInputError, match="EnergyConfusion expects integer class labels"):
        RF.energy_confusion(z, torch.zeros(24))
    with pytest.raises(RegularizerInputError, match="EnergyConfusion needs a batch of at least 21"):
        RF.energy_confusion(torch.randn(20, 3), torch.arange(20))
    with pytest.raises(RegularizerInputError, match="EnergyConfusion expects num_pairs"):
        reglab.EnergyConfusion(num_pairs=0)
