"""SPLADE pooling (Formal et al., 2021), against a loop reference of naver/splade's Splade.encode."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError


def ref_splade(logits, mask, pooling="max"):
    """w[b, j] = max (or sum) over real tokens t of log(1 + max(logit, 0)); written with loops."""
    b, t, v = logits.shape
    out = [[0.0] * v for _ in range(b)]
    for i in range(b):
        for j in range(v):
            acts = [math.log(1 + max(float(logits[i, k, j]), 0.0)) * float(mask[i, k]) for k in range(t)]
            out[i][j] = max(acts) if pooling == "max" else sum(acts)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("pooling", ["max", "sum"])
def test_matches_reference(pooling):
    g = torch.Generator().manual_seed(0)
    logits = 2 * torch.randn(3, 5, 7, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    got = reglab.create("splade_pooling", pooling=pooling)(logits, mask)
    torch.testing.assert_close(got, ref_splade(logits, mask, pooling), rtol=1e-12, atol=1e-12)
    assert (got >= 0).all()


def test_no_mask_means_every_token_and_padding_is_ignored():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 6, generator=g, dtype=torch.float64)
    ones = torch.ones(2, 4, dtype=torch.bool)
    torch.testing.assert_close(RF.splade_pooling(logits), RF.splade_pooling(logits, ones))
    # a padded token with a huge logit changes nothing once masked
    padded = torch.cat([logits, torch.full((2, 1, 6), 50.0, dtype=torch.float64)], dim=1)
    mask = torch.cat([ones, torch.zeros(2, 1, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(RF.splade_pooling(padded, mask), RF.splade_pooling(logits))


def test_log_saturation_values():
    logits = torch.tensor([[[0.0, -3.0, math.e - 1]]], dtype=torch.float64)
    torch.testing.assert_close(RF.splade_pooling(logits), torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64))


def test_gradcheck():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 4, generator=g, dtype=torch.float64).requires_grad_()
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert torch.autograd.gradcheck(lambda x: RF.splade_pooling(x, mask, "max"), (logits,))
    assert torch.autograd.gradcheck(lambda x: RF.splade_pooling(x, mask, "sum"), (logits,))


def test_bad_input():
    pool = reglab.create("splade_pooling")
    with pytest.raises(RegularizerInputError, match="splade_pooling.*logits"):
        pool(torch.randn(3, 4))
    with pytest.raises(RegularizerInputError, match="splade_pooling.*NaN"):
        pool(torch.full((1, 2, 3), float("nan")))
    with pytest.raises(RegularizerInputError, match="splade_pooling.*attention_mask"):
        pool(torch.randn(2, 3, 4), torch.ones(2, 4))
    with pytest.raises(RegularizerInputError, match="SpladePooling.*pooling"):
        reglab.create("splade_pooling", pooling="mean")
