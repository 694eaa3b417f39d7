"""Hierarchical Channel Sampling (Bao et al., 2024) against a plain re-draw and its sampling law."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError


def hcs_by_hand(x, generator):
    """The official two-step draw with the same generator calls: count, then which channels to drop."""
    present = [c for c in range(x.shape[1]) if bool((x[:, c] != 0).any())]
    k = len(present)
    keep = int(torch.randint(1, k + 1, (1,), generator=generator))
    order = torch.randperm(k, generator=generator).tolist()
    dropped = {present[i] for i in order[: k - keep]}
    out = x.clone()
    for c in range(x.shape[1]):
        out[:, c] = 0.0 if c in dropped else x[:, c] * (k / keep)
    return out


def test_matches_the_hand_written_draw():
    x = torch.randn(3, 5, 4, 4, dtype=torch.float64)
    for seed in range(6):
        got = RF.hierarchical_channel_sampling(x, generator=torch.Generator().manual_seed(seed))
        want = hcs_by_hand(x, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(got, want)


def test_kept_count_is_uniform_and_absent_channels_stay_out():
    x = torch.ones(2, 5, 3)
    x[:, 4] = 0.0  # an absent channel: C = 4
    g = torch.Generator().manual_seed(0)
    counts = Counter()
    for _ in range(2000):
        out = RF.hierarchical_channel_sampling(x, generator=g)
        kept = int((out[0, :, 0] != 0).sum())
        counts[kept] += 1
        assert torch.all(out[:, 4] == 0)
        assert float(out[0, :, 0].max()) == pytest.approx(4 / kept)  # rescaled by C/m
    assert set(counts) == {1, 2, 3, 4}
    assert all(abs(v / 2000 - 0.25) < 0.05 for v in counts.values())


def test_identity_in_eval_gradient_flows_and_bad_input():
    hcs = reglab.create("hierarchical_channel_sampling").eval()
    x = torch.randn(2, 3, 4, requires_grad=True)
    assert hcs(x) is x
    out = hcs.train()(x, generator=torch.Generator().manual_seed(1))
    out.sum().backward()
    assert x.grad is not None
    for bad in (torch.tensor([1.0, 2.0]), torch.tensor([[float("nan"), 1.0]]), "x"):
        with pytest.raises(RegularizerInputError, match="HierarchicalChannelSampling"):
            hcs(bad)
