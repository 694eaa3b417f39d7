"""The ``vq_code`` lab task (VQ autoencoder on digits) runs each of its arms and reports its metrics."""

import math

import pytest

from reglab.bench.tasks import get_task


@pytest.mark.parametrize("arm", [None, {"name": "simvq"}, {"name": "codebook_entropy"}, {"name": "sinkhorn_codes"}])
def test_vq_code_runs_quick(arm):
    res = get_task("vq_code")(arm, seed=0, quick=True)
    assert set(res.metrics) == {"test_mse", "utilization", "perplexity", "probe_accuracy"}
    assert all(math.isfinite(v) for v in res.metrics.values())
    assert 0 < res.metrics["utilization"] <= 1 and 1 <= res.metrics["perplexity"] <= 64
    assert res.setup["selection"] and res.setup["model"]


def test_vq_code_refuses_other_arms():
    with pytest.raises(ValueError, match="vq_code task: the arm must be one of"):
        get_task("vq_code")({"name": "l2"}, seed=0, quick=True)
