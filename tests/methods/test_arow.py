"""ARoW (Yang et al., 2023): the weighted KL term by loops; gradient; bad input."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._reference import Reference


def ref_arow(logits, adv_logits, y):
    """Per sample: Σ_c p_c (log p_c − log(q_c + 1e-12)) · (1 − q_y), p = softmax(natural), q = softmax(adversarial)."""
    total = 0.0
    for z, za, t in zip(logits.tolist(), adv_logits.tolist(), y.tolist()):
        ez, eza = [math.exp(v) for v in z], [math.exp(v) for v in za]
        p = [v / sum(ez) for v in ez]
        q = [v / sum(eza) for v in eza]
        kl = sum(pc * (math.log(pc) - math.log(qc + 1e-12)) for pc, qc in zip(p, q))
        total += kl * (1 - q[t])
    return total / len(y)


def _inputs(g):
    z = 2 * torch.randn(10, 4, generator=g, dtype=torch.float64)
    return z, z + torch.randn(10, 4, generator=g, dtype=torch.float64), torch.randint(0, 4, (10,), generator=g)


REFERENCES = {"arow": Reference(ref_arow, inputs=_inputs)}


def test_weight_gradient_and_zero_at_equal_logits():
    z, za, y = _inputs(torch.Generator().manual_seed(1))
    reg = reglab.create("arow")
    assert reg.weight == 7.0  # official README: --lamb 7 (the paper's 2λ, λ = 3.5)
    assert float(reg(z, za, y)) == pytest.approx(7.0 * ref_arow(z, za, y), rel=1e-10)
    assert float(RF.arow(z, z, y)) == pytest.approx(0.0, abs=1e-10)
    za = za.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: RF.arow(z, a, y), (za,))


def test_less_robust_samples_weigh_more():
    """Same KL, but the sample whose adversarial prediction misses its label gets the larger weight."""
    z = torch.tensor([[2.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    za = torch.tensor([[0.0, 2.0], [2.0, 0.0]], dtype=torch.float64)
    hit = RF.arow(z[:1], za[:1], torch.tensor([1]))  # adversarial prediction = label 1: small weight
    miss = RF.arow(z[:1], za[:1], torch.tensor([0]))  # misses label 0: large weight
    assert float(miss) > float(hit) > 0


def test_bad_inputs():
    z, za, y = _inputs(torch.Generator().manual_seed(2))
    with pytest.raises(RegularizerInputError, match="ARoW.*same shape"):
        RF.arow(z, za[:, :3], y)
    with pytest.raises(RegularizerInputError, match="ARoW.*labels"):
        RF.arow(z, za, y.double())
    with pytest.raises(RegularizerInputError, match="ARoW"):
        RF.arow(z, za, y + 10)
