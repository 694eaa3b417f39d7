"""LT-SFT (Ansell et al. 2022): top-K |Δ| selection, reset to θ₀ and masked phase-2 gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import reglab
from reglab import RegularizerInputError
from reglab.methods.lottery_ticket_sft import most_changed_masks


def ref_masks(current, original, k):
    """composable-sft unfreeze_k_most_changed_params: threshold = the k-th largest |Δ| over all
    entries (np.partition), keep |Δ| ≥ threshold; by sorting a plain list."""
    diffs = sorted((abs(float(c) - float(o)) for cc, oo in zip(current, original)
                    for c, o in zip(cc.flatten(), oo.flatten())), reverse=True)
    thresh = diffs[k - 1]
    return [torch.tensor([abs(float(c) - float(o)) >= thresh for c, o in zip(cc.flatten(), oo.flatten())])
            .reshape(cc.shape) for cc, oo in zip(current, original)]


@pytest.mark.parametrize("k", [1, 5, 17])
def test_masks_match_reference(k):
    g = torch.Generator().manual_seed(k)
    orig = [torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)]
    cur = [o + torch.randn(o.shape, generator=g, dtype=torch.float64) for o in orig]
    got = most_changed_masks(cur, orig, k)
    for a, b in zip(got, ref_masks(cur, orig, k)):
        assert torch.equal(a, b)
    assert sum(int(m.sum()) for m in got) == k


def test_two_phases():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(5, 8), nn.ReLU())
    head = nn.Linear(8, 3)
    lt = reglab.LotteryTicketSFT(proportion=0.1)
    lt.begin(body)
    theta0 = [p.detach().clone() for p in body.parameters()]
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    opt = torch.optim.SGD(list(body.parameters()) + list(head.parameters()), lr=0.5)
    for _ in range(3):  # phase 1: full fine-tuning
        opt.zero_grad()
        nn.functional.cross_entropy(head(body(x)), y).backward()
        opt.step()
    theta1 = [p.detach().clone() for p in body.parameters()]
    lt(body)
    for p, t in zip(body.parameters(), theta0):  # reset to θ₀
        torch.testing.assert_close(p.detach(), t)
    masks = lt.masks()
    expected = ref_masks(theta1, theta0, int(0.1 * sum(t.numel() for t in theta0)))
    for a, b in zip(masks, expected):
        assert torch.equal(a, b)
    opt = torch.optim.SGD(list(body.parameters()) + list(head.parameters()), lr=0.5)
    for _ in range(3):  # phase 2: only the kept entries move
        opt.zero_grad()
        nn.functional.cross_entropy(head(body(x)), y).backward()
        opt.step()
    diff = lt.diff(body)
    assert all(bool((d[~m] == 0).all()) for d, m in zip(diff, masks))
    assert any(bool((d[m] != 0).any()) for d, m in zip(diff, masks))
    lt.release()
    opt.zero_grad()
    nn.functional.cross_entropy(head(body(x)), y).backward()
    assert any(bool((p.grad[~m] != 0).any()) for p, m in zip(body.parameters(), masks))


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="LotteryTicketSFT"):
        reglab.LotteryTicketSFT(proportion=1.5)
    with pytest.raises(RuntimeError, match="LotteryTicketSFT: call begin"):
        reglab.LotteryTicketSFT()(nn.Linear(2, 2))
    with pytest.raises(RegularizerInputError, match="LotteryTicketSFT"):
        reglab.LotteryTicketSFT().begin("model")
    lt = reglab.LotteryTicketSFT()
    lt.begin(nn.Linear(2, 2))
    with pytest.raises(RegularizerInputError, match="LotteryTicketSFT"):
        lt(nn.Linear(3, 2))
    with pytest.raises(RegularizerInputError, match="LotteryTicketSFT"):
        most_changed_masks([torch.zeros(3)], [torch.zeros(3)], 4)
