"""Label smoothing (Szegedy et al., 2016): targets equal to torch's label_smoothing, bad labels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError


def test_label_smoothing_matches_torch():
    z, y = torch.randn(5, 4), torch.tensor([0, 3, 1, 1, 2])
    ls = reglab.create("label_smoothing")
    t = ls(y, 4)
    assert torch.allclose(t.sum(1), torch.ones(5))
    assert float(t[0, 0]) == pytest.approx(0.9 + 0.1 / 4)
    ours = RF.soft_cross_entropy(z, t)
    assert float(ours) == pytest.approx(float(F.cross_entropy(z, y, label_smoothing=0.1)), rel=1e-6)


def test_label_smoothing_bad_labels():
    ls = reglab.LabelSmoothing()
    with pytest.raises(RegularizerInputError, match=r"LabelSmoothing.*\[0, 4\)"):
        ls(torch.tensor([0, 4]), 4)
    with pytest.raises(RegularizerInputError, match="LabelSmoothing.*integer"):
        ls(torch.tensor([0.0, 1.0]), 4)
    with pytest.raises(RegularizerInputError, match="epsilon"):
        reglab.LabelSmoothing(epsilon=1.0)
    with pytest.raises(RegularizerInputError, match=r"LabelSmoothing expects epsilon in \[0, 1\)"):
        reglab.LabelSmoothing(epsilon=1.0)


def test_calibration_task_quick():
    from reglab.bench.tasks import get_task

    r = get_task("calibration")({"name": "label_smoothing"}, seed=0, quick=True)
    assert 0 <= r.metrics["ece"] <= 1
