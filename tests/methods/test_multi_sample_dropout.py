"""Multi-sample dropout (Inoue, 2019): M masks, shared head, mean of the M losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import reglab
from reglab.core.errors import RegularizerInputError


def test_multi_sample_dropout_shapes_and_eval():
    head = nn.Linear(6, 3)
    msd = reglab.create("multi_sample_dropout", module=head, num_samples=4)
    z = torch.randn(5, 6)
    out = msd(z)
    assert out.shape == (4, 5, 3)
    assert not torch.allclose(out[0], out[1])  # independent masks
    msd.eval()
    assert torch.equal(msd(z), head(z))
    y = torch.tensor([0, 1, 2, 0, 1])
    assert float(msd.loss(z, y)) == pytest.approx(float(F.cross_entropy(head(z), y)))


def test_multi_sample_dropout_loss_is_mean_of_mask_losses():
    head = nn.Linear(6, 3)
    msd = reglab.MultiSampleDropout(head, num_samples=3, p=0.5)
    z, y = torch.randn(4, 6), torch.tensor([0, 1, 2, 1])
    torch.manual_seed(5)
    loss = msd.loss(z, y)
    # reference: the same three masks drawn by hand in the same RNG order
    torch.manual_seed(5)
    masks = F.dropout(torch.ones(3, 4, 6), 0.5, training=True)
    ref = sum(F.cross_entropy(head(z * m), y) for m in masks) / 3
    assert float(loss) == pytest.approx(float(ref), rel=1e-6)


def test_multi_sample_dropout_is_unbiased_for_linear_head():
    head = nn.Linear(6, 3)
    msd = reglab.MultiSampleDropout(head, num_samples=4000, p=0.5)
    z = torch.randn(2, 6)
    assert torch.allclose(msd(z).mean(0), head(z), atol=0.1)


def test_multi_sample_dropout_bad_inputs():
    with pytest.raises(RegularizerInputError, match="MultiSampleDropout"):
        reglab.MultiSampleDropout("head")
    with pytest.raises(RegularizerInputError, match="MultiSampleDropout.*num_samples"):
        reglab.MultiSampleDropout(nn.Linear(2, 2), num_samples=0)
    msd = reglab.MultiSampleDropout(nn.Linear(2, 2))
    with pytest.raises(RegularizerInputError, match="MultiSampleDropout.*at least 2"):
        msd(torch.randn(2))
    with pytest.raises(RegularizerInputError, match="MultiSampleDropout.*inf"):
        msd(torch.tensor([[1.0, float("inf")]]))


def test_dropout_training_task_quick():
    from reglab.bench.tasks import get_task

    r = get_task("dropout_training")({"name": "multi_sample_dropout"}, seed=0, quick=True)
    assert len(r.curves["train_loss"]) == 4 and r.curves["train_loss"][-1] < r.curves["train_loss"][0]
