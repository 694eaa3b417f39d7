"""Progressive Self-Knowledge Distillation (Kim et al., 2021): α ramp, targets, state, bad inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import reglab
from reglab.core.errors import RegularizerInputError


def test_pskd_alpha_ramp_and_targets():
    pskd = reglab.create("pskd", num_samples=6, num_classes=3, total_epochs=4)
    assert pskd.alpha == pytest.approx(0.8 * 1 / 4)
    y, idx = torch.tensor([0, 2]), torch.tensor([1, 4])
    z = torch.randn(2, 3)
    first = pskd(y, idx, z)
    # never seen: p_prev is the one-hot label, so the target is the label itself
    assert torch.allclose(first, F.one_hot(y, 3).float())
    pskd.set_epoch(2)
    assert pskd.alpha == pytest.approx(0.8 * 3 / 4)
    second = pskd(y, idx, torch.randn(2, 3))
    expected = (1 - 0.6) * F.one_hot(y, 3).float() + 0.6 * torch.softmax(z, 1)
    assert torch.allclose(second, expected, atol=1e-6)
    pskd.next_epoch()
    assert pskd.alpha == pytest.approx(0.8)
    pskd.next_epoch()
    assert pskd.alpha == pytest.approx(0.8)  # capped at α_T after T epochs


def test_pskd_eval_does_not_record_and_state_round_trips():
    pskd = reglab.PSKD(5, 3, total_epochs=2)
    pskd(torch.tensor([1]), torch.tensor([2]), torch.randn(1, 3))
    pskd.set_epoch(1)
    fresh = reglab.PSKD(5, 3, total_epochs=2)
    fresh.load_state_dict(pskd.state_dict())
    assert fresh.alpha == pskd.alpha and bool(fresh.seen[2])
    fresh.eval()
    before = fresh.predictions.clone()
    fresh(torch.tensor([0]), torch.tensor([3]), torch.randn(1, 3))
    assert torch.equal(fresh.predictions, before) and not bool(fresh.seen[3])


@pytest.mark.parametrize(
    "labels, index, logits, match",
    [
        (torch.tensor([0, 3]), torch.tensor([0, 1]), torch.randn(2, 3), r"\[0, 3\)"),
        (torch.tensor([0, 1]), torch.tensor([0, 1]), torch.randn(2, 4), "num_classes=3"),
        (torch.tensor([0, 1]), torch.tensor([0, 5]), torch.randn(2, 3), "dataset indices"),
        (torch.tensor([0]), torch.tensor([0, 1]), torch.randn(2, 3), "1 labels for a batch of 2"),
        (torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([[0.0, float("nan"), 1.0]] * 2), "NaN"),
    ],
)
def test_pskd_bad_inputs(labels, index, logits, match):
    with pytest.raises(RegularizerInputError, match="PSKD") as err:
        reglab.PSKD(5, 3)(labels, index, logits)
    assert err.match(match)


def test_calibration_task_quick():
    from reglab.bench.tasks import get_task

    r = get_task("calibration")({"name": "pskd"}, seed=0, quick=True)
    assert 0 <= r.metrics["ece"] <= 1 and r.metrics["accuracy"] > 0.3
