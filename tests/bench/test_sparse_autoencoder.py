"""The ``sparse_autoencoder`` lab task: its synthetic superposition data, its metrics, quick runs of its arms."""

from __future__ import annotations

import math

import pytest
import torch

from reglab.bench.experiments import sparse_autoencoder as S
from reglab.bench.tasks import TASK_DATASETS, get_task

METRICS = {"nmse", "l0", "mmcs", "mmcs_matched", "dead_fraction"}


def test_data_are_sparse_sums_of_unit_features_drawn_by_the_seed():
    features, x_train, x_test = S.make_data("superposition_2x", 0, 256, 64)
    assert features.shape == (S.M, 32) and torch.allclose(features.norm(dim=1), torch.ones(S.M))
    assert x_train.shape == (256, 32) and x_test.shape == (64, 32)
    assert float(x_train.pow(2).mean()) == pytest.approx(1.0, rel=1e-5)
    again = S.make_data("superposition_2x", 0, 256, 64)
    assert torch.equal(again[1], x_train) and not torch.equal(S.make_data("superposition_2x", 1, 256, 64)[1], x_train)
    assert S.make_data("superposition_4x", 0, 8, 8)[0].shape == (S.M, 16)
    with pytest.raises(KeyError, match="sparse_autoencoder runs on"):
        S.make_data("digits", 0, 8, 8)
    assert TASK_DATASETS["sparse_autoencoder"] == ("superposition_2x", "superposition_4x")


def test_metrics_of_a_hand_made_sae_that_holds_the_true_features():
    features, _, x = S.make_data("superposition_2x", 0, 8, 256)
    model = S.SAEs(1, 32, S.M, None)
    with torch.no_grad():
        model.w_dec.copy_(features[None])
    m = S.sae_metrics(model, features, x, torch.zeros(32))
    assert m["mmcs"] == pytest.approx(1.0) and m["mmcs_matched"] == pytest.approx(1.0)
    with torch.no_grad():  # every latent the same feature: the max-cosine MMCS stays high for it alone
        model.w_dec.copy_(features[:1].expand(S.M, -1)[None])
    worse = S.sae_metrics(model, features, x, torch.zeros(32))
    assert worse["mmcs_matched"] < 0.5 and worse["mmcs"] < 0.5


@pytest.mark.parametrize(
    ("arm", "args"),
    [
        (None, {}),
        ({"name": "topk", "k": 4}, {}),
        ({"name": "l1_activation", "weight": 0.01}, {}),
        (None, {"saes": 2, "topk": 4}),
        ({"name": "mutual_feature_regularization", "weight": 0.1}, {"saes": 2, "topk": 4}),
    ],
)
def test_runs_quick_with_each_arm(arm, args):
    res = get_task("sparse_autoencoder")(arm, seed=0, quick=True, **args)
    assert set(res.metrics) == METRICS
    assert all(math.isfinite(v) for v in res.metrics.values())
    assert 0 < res.metrics["mmcs"] <= 1 + 1e-6 and res.metrics["mmcs_matched"] <= res.metrics["mmcs"] + 1e-6
    if (arm or {}).get("name") == "topk" or "topk" in args:
        assert res.metrics["l0"] <= 4
    assert res.setup["selection"] and res.setup["model"]


def test_refuses_arms_it_cannot_apply():
    task = get_task("sparse_autoencoder")
    with pytest.raises(ValueError, match="needs saes >= 2"):
        task({"name": "mutual_feature_regularization"}, seed=0, quick=True)
    with pytest.raises(ValueError, match="sets k itself"):
        task({"name": "topk", "k": 4}, seed=0, quick=True, topk=4)
    with pytest.raises(ValueError, match="takes topk"):
        task({"name": "l2"}, seed=0, quick=True)
