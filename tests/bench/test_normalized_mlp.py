"""The normalized_mlp lab task: scale-invariant hidden weights, quick runs of the plain optimizers and of AdamP/SGDP."""

from __future__ import annotations

import math

import pytest
import torch

from reglab.bench.experiments.normalized_mlp import NormalizedMLP
from reglab.bench.suite import check_claims, collect_claims
from reglab.bench.tasks import TASK_DATASETS, get_task


def test_hidden_weights_are_scale_invariant_and_the_head_is_not():
    torch.manual_seed(0)
    model = NormalizedMLP(64, 32, 10).train()
    x = torch.randn(50, 64)
    out = model(x)
    with torch.no_grad():
        for w in model.scale_invariant_weights():
            w.mul_(3.0)
    assert torch.allclose(model(x), out, atol=1e-4)
    with torch.no_grad():
        model.head.weight.mul_(3.0)
    assert not torch.allclose(model(x), out, atol=1e-4)


@pytest.mark.parametrize(
    "arm,args",
    [
        (None, {"optimizer": "adam"}),
        (None, {"optimizer": "adamw", "weight_decay": 1e-2}),
        (None, {"optimizer": "sgd", "weight_decay": 1e-5}),
        ({"name": "adamp"}, {"optimizer": "adam", "weight_decay": 1e-2}),
        ({"name": "sgdp"}, {"optimizer": "sgd", "weight_decay": 1e-5}),
    ],
)
def test_quick_run_reports_sane_metrics(arm, args):
    res = get_task("normalized_mlp")(arm, seed=0, quick=True, **args)
    assert {"test_accuracy", "val_accuracy", "norm_growth"} <= set(res.metrics)
    assert all(math.isfinite(v) for v in res.metrics.values())
    assert 0.5 < res.metrics["test_accuracy"] <= 1.0  # 3 epochs of a BatchNorm MLP on digits
    assert 0.9 < res.metrics["norm_growth"] < 1.5
    assert len(res.curves["norm_growth"]) == len(res.curves["val_accuracy"]) == 3
    assert res.setup["selection"] and "BatchNorm1d" in res.setup["model"]


def test_the_projection_slows_the_norm_growth_of_adam():
    """The mechanism the claims test, on one seed: without the radial update the hidden norms grow less."""
    task = get_task("normalized_mlp")
    adam = task(None, seed=0, quick=True, optimizer="adam")
    adamp = task({"name": "adamp"}, seed=0, quick=True, optimizer="adam")
    assert adam.metrics["norm_growth"] > 1.0
    assert adamp.metrics["norm_growth"] < adam.metrics["norm_growth"]


def test_the_task_refuses_what_it_does_not_own():
    task = get_task("normalized_mlp")
    with pytest.raises(ValueError, match="optimizer must be"):
        task(None, seed=0, quick=True, optimizer="lbfgs")
    with pytest.raises(ValueError, match="leave them out"):
        task({"name": "adamp", "lr": 0.1}, seed=0, quick=True)
    with pytest.raises(ValueError, match="optimizer wrapper"):
        task({"name": "l2"}, seed=0, quick=True)
    with pytest.raises(ValueError, match="'adamw' is for the plain run"):
        task({"name": "adamp"}, seed=0, quick=True, optimizer="adamw")


def test_adamp_and_sgdp_claims_run_on_the_task():
    refs = collect_claims(["adamp", "sgdp"])
    assert len(refs) == 4 and not check_claims(refs)
    for ref in refs:
        c = ref.claim
        assert c.task == "normalized_mlp" and set(c.datasets) <= set(TASK_DATASETS["normalized_mlp"])
        assert len(c.compared_with) == 2 and c.min_effect and c.settings
    assert {r.claim.metric for r in refs} == {"norm_growth", "test_accuracy"}
