"""The feature_alignment lab task: the alignment arm and the MSE baseline act on the projected hidden layer."""

from __future__ import annotations

import pytest

pytest.importorskip("sklearn")

from reglab.bench.tasks import get_task  # noqa: E402


def test_quick_runs_report_the_metrics_and_the_alignment_moves_the_cosine():
    run = get_task("feature_alignment")
    plain = run(None, seed=0, quick=True)
    repa = run({"name": "repa"}, seed=0, quick=True)
    for r in (plain, repa):
        assert set(r.metrics) == {"test_accuracy", "final_accuracy", "alignment_cosine"}
        assert 0.0 <= r.metrics["test_accuracy"] <= 1.0
    assert repa.metrics["alignment_cosine"] > plain.metrics["alignment_cosine"] + 0.3


def test_a_single_input_arm_is_refused():
    with pytest.raises(ValueError, match="feature_alignment: the arm must take"):
        get_task("feature_alignment")({"name": "koleo"}, seed=0, quick=True)
