"""Cutout (DeVries & Taylor, 2017): masks against a loop reference, per-sample squares."""

from __future__ import annotations

import pytest
import torch

import reglab
from reglab.core.errors import RegularizerInputError


def cutout_reference(x, size, n_holes, seed):
    """Loop reference: same centre draws (cy for all, then cx), square [c − s//2, c − s//2 + s)."""
    g = torch.Generator().manual_seed(seed)
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    cy = torch.randint(0, h, (n, n_holes, 1, 1), generator=g)
    cx = torch.randint(0, w, (n, n_holes, 1, 1), generator=g)
    out = x.clone()
    for i in range(n):
        for k in range(n_holes):
            y0, x0 = int(cy[i, k]) - size // 2, int(cx[i, k]) - size // 2
            for r in range(max(y0, 0), min(y0 + size, h)):
                for c in range(max(x0, 0), min(x0 + size, w)):
                    out[i, ..., r, c] = 0
    return out


@pytest.mark.parametrize("shape, size, holes", [((6, 2, 9, 7), 4, 1), ((5, 8, 8), 3, 2), ((4, 1, 8, 8), 16, 1)])
def test_cutout_matches_loop_reference(shape, size, holes):
    x = torch.rand(shape) + 0.5  # strictly positive, so zeros mark the holes
    cut = reglab.Cutout(size=size, n_holes=holes)
    got = cut(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(got, cutout_reference(x, size, holes, 3))


def test_cutout_is_per_sample_and_bounded():
    x = torch.ones(64, 1, 16, 16)
    out = reglab.create("cutout", size=5)(x)
    zeros = (out == 0).flatten(1).sum(1)
    assert (zeros <= 25).all() and (zeros > 0).all()
    assert (zeros == 25).any() and (zeros < 25).any()  # interior squares and border-clipped ones
    masks = (out == 0).flatten(1)
    assert len({tuple(m.tolist()) for m in masks}) > 10  # different squares per sample


def test_cutout_eval_identity_dtype_and_bad_input():
    cut = reglab.Cutout(4)
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    assert cut(x).dtype == torch.float64
    assert cut(x.bfloat16()).dtype == torch.bfloat16
    cut.eval()
    assert cut(x) is x
    with pytest.raises(RegularizerInputError, match="Cutout.*3 or 4 dimensions"):
        cut(torch.rand(8, 8))
    with pytest.raises(RegularizerInputError, match="Cutout.*NaN"):
        cut(torch.full((1, 1, 4, 4), float("nan")))
    with pytest.raises(RegularizerInputError, match="Cutout.*size"):
        reglab.Cutout(0)


def test_small_data_cnn_task_quick():
    from reglab.bench.tasks import get_task

    r = get_task("small_data_cnn")({"name": "cutout", "size": 4}, seed=0, quick=True)
    assert 0 <= r.metrics["occluded_accuracy"] <= 1 and r.metrics["test_accuracy"] > 0.2
