"""LoL (loss over losses) against the official pairwise hinge written as a loop."""

from __future__ import annotations

import pytest
import torch

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError


def ref_lol(losses, margin=0.0):
    """Mean over samples and pairs (i, j), j seeing more information, of max(0, L_j − L_i + m)."""
    rows = losses.tolist()
    terms = [max(0.0, r[j] - r[i] + margin) for r in rows for i in range(len(r)) for j in range(i + 1, len(r))]
    return sum(terms) / len(terms)


REFERENCES = {"lol": ref_lol}


def test_worked_example():
    losses = torch.tensor([[1.0, 2.0, 0.5], [3.0, 1.0, 0.0]])
    assert RF.lol(losses).item() == pytest.approx(1.0 / 6.0)
    assert RF.lol(losses, margin=0.5).item() == pytest.approx(ref_lol(losses, 0.5))


def test_matches_the_official_margin_ranking_form():
    """zycdev/LoL: effects = −loss with labels K, K−1, …, 1 over columns sorted by decreasing feedback."""
    losses = torch.rand(6, 4, dtype=torch.float64)
    official_order = losses.flip(1)  # column 0 sees the most feedback
    effects = -official_order
    s1, s2 = [], []
    for a in range(4):
        for b in range(4):
            if a < b:  # label_a > label_b
                s1.append(effects[:, a])
                s2.append(effects[:, b])
    s1, s2 = torch.stack(s1, 1).flatten(), torch.stack(s2, 1).flatten()
    official = torch.nn.functional.margin_ranking_loss(s1, s2, torch.ones_like(s1), margin=0.0)
    assert RF.lol(losses).item() == pytest.approx(official.item(), rel=1e-12)


def test_gradcheck_and_no_penalty_when_monotone():
    losses = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(RF.lol, (losses,))
    monotone = torch.tensor([[3.0, 2.0, 1.0]])
    assert RF.lol(monotone).item() == 0.0
    assert reglab.LoL().current_weight == 1.0


def test_bad_input_is_named():
    with pytest.raises(RegularizerInputError, match="LoL.*at least two"):
        RF.lol(torch.rand(4, 1))
    with pytest.raises(RegularizerInputError, match="LoL"):
        RF.lol(torch.rand(4))
