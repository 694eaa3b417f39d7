"""The posthoc_pruning task: quick runs of both arms, and the comparison models pruned to the arm's counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

pytest.importorskip("sklearn")

from reglab.bench.experiments.posthoc_pruning import _magnitude_copy, _wanda_row_keep  # noqa: E402
from reglab.bench.tasks import get_task  # noqa: E402


@pytest.mark.parametrize(
    "arm,args",
    [({"name": "net_trim"}, {}), ({"name": "ecoflap"}, {"depth": 2}), ({"name": "ecoflap", "sparsity": 0.7}, {}),
     (None, {})],
)
def test_posthoc_pruning_runs_quick_with_its_metrics(arm, args):
    res = get_task("posthoc_pruning")(arm, seed=0, quick=True, **args)
    m = res.metrics
    assert all(math.isfinite(v) for v in m.values())
    assert res.setup["selection"] and res.setup["model"]
    for k in ("accuracy", "magnitude_matched_accuracy", "wanda_matched_accuracy", "magnitude_uniform_accuracy",
              "wanda_uniform_accuracy"):
        assert 0.0 <= m[k] <= 1.0
    if arm is None:  # nothing pruned: every comparison model is the dense one
        assert m["sparsity"] == 0.0 and m["accuracy"] == m["dense_accuracy"] == m["wanda_uniform_accuracy"]
    else:
        assert 0.2 < m["sparsity"] < 0.95
        assert abs(m["uniform_sparsity"] - m["sparsity"]) < 0.02  # equal overall sparsity, up to per-row rounding
    if arm is not None and arm["name"] == "ecoflap":
        # ECoFLaP is Wanda with its own per-layer sparsities: Wanda at its per-row counts is the same model
        assert m["wanda_matched_accuracy"] == m["accuracy"]
        assert m["sparsity"] == pytest.approx(arm.get("sparsity", 0.5), abs=0.02)


def test_the_task_refuses_other_arms():
    with pytest.raises(ValueError, match="net_trim or ecoflap"):
        get_task("posthoc_pruning")({"name": "l1"}, seed=0, quick=True)


def test_comparison_masks_keep_the_given_counts():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    pruned = _magnitude_copy(model, [7, 4])
    counts = [int((m.weight != 0).sum()) for m in pruned if isinstance(m, nn.Linear)]
    assert counts == [7, 4]
    kept = pruned[0].weight.abs()[pruned[0].weight != 0]
    assert kept.min() >= model[0].weight.abs()[pruned[0].weight == 0].max()  # the largest |W| stay
    w, x = torch.randn(4, 6), torch.randn(10, 6)
    x[:, 0] = 0.0  # a dead input: |W|·‖X‖ = 0, pruned first
    keep = _wanda_row_keep(w, x, torch.tensor([0, 1, 3, 6]))
    assert keep.sum(1).tolist() == [0, 1, 3, 6]
    score = w.abs() * x.norm(dim=0)
    for r in (1, 2):
        assert score[r][keep[r]].min() >= score[r][~keep[r]].max()
        assert not keep[r, 0]
