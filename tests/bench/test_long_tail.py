"""The long_tail lab task: the long-tailed split and a quick run with a fixed head."""

from __future__ import annotations

import math

import numpy as np
import torch

from reglab.bench.experiments.long_tail import long_tailed_indices
from reglab.bench.tasks import get_task


def test_long_tailed_split_follows_the_ratio():
    y = torch.arange(10).repeat_interleave(50)
    keep = long_tailed_indices(y, 10, 50.0, seed=0)
    counts = np.bincount(y[keep].numpy(), minlength=10)
    expected = [max(1, int(round(50 * 50 ** (-c / 9)))) for c in range(10)]
    assert counts.tolist() == expected
    assert counts[0] == 50 and counts[-1] == 1
    assert len(set(keep.tolist())) == len(keep)


def test_quick_run_with_a_fixed_head_keeps_it_frozen():
    res = get_task("long_tail")({"name": "simplex_etf_head"}, seed=0, quick=True)
    assert set(res.metrics) == {"balanced_accuracy", "tail_accuracy", "test_accuracy"}
    assert all(math.isfinite(v) for v in res.metrics.values())
    assert "long-tailed" in res.setup["data"] and res.setup["selection"]
