"""The compatible_embedding lab task (BCT's old/new model pair): retrieval scores, quick runs, refusals."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("sklearn")

import torch  # noqa: E402

from reglab.bench.experiments.compatible_embedding import Embedder, influence_classifier, recall_at_1  # noqa: E402
from reglab.bench.tasks import get_task  # noqa: E402

METRICS = {"new_new_recall_at_1", "old_old_recall_at_1", "cross_recall_at_1", "cross_minus_old_old",
           "val_cross_recall_at_1", "val_new_new_recall_at_1", "new_test_accuracy"}  # fmt: skip


def test_recall_is_leave_one_out_and_cross_model():
    y = torch.tensor([0, 0, 1, 1])
    z = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert recall_at_1(z, z, y) == 1.0  # each image's own copy is excluded from its gallery
    assert recall_at_1(z, z[:, [1, 0]], y) == 0.0  # a gallery in swapped coordinates is incompatible
    assert recall_at_1(z, 3 * z, y) == 1.0  # cosine: the scale of the other model does not matter


def test_influence_classifier_keeps_old_rows_and_synthesizes_new_ones():
    torch.manual_seed(0)
    old = Embedder(4, 3, 2)
    x, y = torch.randn(12, 4), torch.arange(12) % 4
    w = influence_classifier(old, x, y, 4)
    assert w.shape == (4, 3) and not w.requires_grad
    torch.testing.assert_close(w[:2], old.classifier.weight.detach())
    with torch.no_grad():
        torch.testing.assert_close(w[3], old(x[y == 3]).mean(dim=0))


def test_quick_runs_report_the_metrics_and_bct_and_l2_make_the_models_compatible():
    run = get_task("compatible_embedding")
    plain = run(None, seed=0, quick=True)
    bct = run({"name": "bct"}, seed=0, quick=True)
    l2 = run(None, seed=0, quick=True, l2_weight=0.1)
    for r in (plain, bct, l2):
        assert set(r.metrics) == METRICS
        assert all(math.isfinite(v) and -1.0 <= v <= 1.0 for v in r.metrics.values())
        assert r.setup["selection"] and r.setup["model"]
        assert r.metrics["cross_minus_old_old"] == pytest.approx(
            r.metrics["cross_recall_at_1"] - r.metrics["old_old_recall_at_1"])
    # the old model depends on the seed only, not on the arm
    assert plain.metrics["old_old_recall_at_1"] == bct.metrics["old_old_recall_at_1"] == l2.metrics["old_old_recall_at_1"]
    assert bct.metrics["cross_recall_at_1"] > plain.metrics["cross_recall_at_1"] + 0.2
    assert l2.metrics["cross_recall_at_1"] > plain.metrics["cross_recall_at_1"] + 0.2


def test_other_arms_and_an_arm_with_l2_are_refused():
    run = get_task("compatible_embedding")
    with pytest.raises(ValueError, match="compatible_embedding: the arm must take"):
        run({"name": "koleo"}, seed=0, quick=True)
    with pytest.raises(ValueError, match="either an arm or l2_weight"):
        run({"name": "bct"}, seed=0, quick=True, l2_weight=0.1)


def test_bct_claims_run_on_this_task():
    from reglab.core.registry import get

    claims = [c for c in get("bct").claims if c.testable]
    assert {c.metric for c in claims} == {"cross_recall_at_1", "new_new_recall_at_1"}
    assert all(c.task == "compatible_embedding" for c in claims)
    cross = next(c for c in claims if c.metric == "cross_recall_at_1")
    assert "old_old_recall_at_1" in {b.metric for b in cross.baselines}
