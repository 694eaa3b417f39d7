"""The open_world_metric and feature_compression tasks: scores on hand-made embeddings, quick runs."""

from __future__ import annotations

import math

import pytest
import torch

from reglab.bench.experiments.open_world_metric import open_world_scores
from reglab.bench.tasks import get_task


def test_scores_on_hand_made_embeddings():
    g = torch.Generator().manual_seed(0)
    centers = torch.eye(3, 8, dtype=torch.float64)
    y = torch.arange(3).repeat_interleave(10)
    # tight, equally spread classes: perfect recall and one threshold behaves alike for every class
    tight = centers[y] + 0.01 * torch.randn(30, 8, generator=g, dtype=torch.float64)
    scores = open_world_scores(tight, y)
    assert scores["recall_at_1"] == 1.0
    assert scores["threshold_inconsistency"] < 0.05  # only the ~0.1-10% false accepts differ by class
    # one class spread wide: a global threshold rejects its pairs far more often
    loose = tight.clone()
    loose[y == 2] = centers[2] + 0.8 * torch.randn(10, 8, generator=g, dtype=torch.float64)
    worse = open_world_scores(loose, y)
    assert worse["threshold_inconsistency"] > 1.0


def test_runs_quick_with_tcm_and_without():
    for arm in (None, {"name": "tcm"}, {"name": "uniformity"}):
        res = get_task("open_world_metric")(arm, seed=0, quick=True)
        assert set(res.metrics) == {"recall_at_1", "threshold_inconsistency"}
        assert all(math.isfinite(v) for v in res.metrics.values())
        assert res.setup["selection"] and res.setup["model"]


def test_energy_confusion_runs_on_the_detached_embedding_layer():
    task = get_task("open_world_metric")
    res = task({"name": "energy_confusion"}, seed=0, quick=True, detached_embedding_layer=True)
    assert all(math.isfinite(v) for v in res.metrics.values())
    assert "detached" in res.setup["penalty"]
    with pytest.raises(ValueError, match="needs an arm"):
        task(None, seed=0, quick=True, detached_embedding_layer=True)


def test_a_baseline_argument_of_none_drops_the_claims_argument():
    from reglab.bench.suite import collect_claims

    (ref,) = collect_claims(["energy_confusion"])
    runs = ref.runs("digits", 200, quick=False)
    assert runs[0].task_args == {"detached_embedding_layer": True}
    assert all(r.task_args == {} for r in runs[1:])  # the plain and uniformity runs tcm's claims also use
    (tcm_plain,) = [r for r in collect_claims(["tcm"])[0].runs("digits", 200, False) if r.arm is None]
    assert runs[1].key == tcm_plain.key


def test_feature_compression_runs_quick_with_each_bottleneck():
    task = get_task("feature_compression")
    for arm, args in ((None, {}), ({"name": "nested_dropout"}, {}), (None, {"dropout": 0.3})):
        res = task(arm, seed=0, quick=True, **args)
        assert set(res.metrics) == {"final_accuracy", "test_accuracy", "memorization"}
        assert all(math.isfinite(v) for v in res.metrics.values())
    import pytest

    with pytest.raises(ValueError, match="either an arm or dropout"):
        task({"name": "nested_dropout"}, seed=0, quick=True, dropout=0.3)
