"""Lab task ``beir_adapter`` on a tiny synthetic BEIR folder (hash encoder): runs, is deterministic, selects on
validation only, and its claims name arms and metrics the task has."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tests.embeddings.test_beir import HashEncoder, write_beir

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pytrec_eval") is None or importlib.util.find_spec("faiss") is None,
    reason="the task scores with pytrec_eval and searches binary codes with faiss",
)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    import reglab.embeddings.encoders as E
    from reglab.bench.experiments import beir_adapter as A

    write_beir(tmp_path / "toy", n_docs=200, n_queries=110)  # 30 test queries, 80 train queries
    monkeypatch.setattr(E, "get_encoder", lambda name, **kw: HashEncoder())
    monkeypatch.setattr(E, "default_cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(A, "_FROZEN", {})
    return str(tmp_path / "toy")


def test_runs_quick_deterministically_with_every_metric(toy):
    from reglab.bench.experiments.beir_adapter import beir_adapter

    a = beir_adapter(None, seed=3, quick=True, data=toy)
    b = beir_adapter(None, seed=3, quick=True, data=toy)
    assert a.metrics == b.metrics
    assert set(a.metrics) >= {"ndcg10", "ndcg10_lvq4", "ndcg10_binary", "recall100", "mrr10", "val_ndcg10",
                              "epoch", "nn_distance"}  # fmt: skip
    for key in ("ndcg10", "ndcg10_lvq4", "ndcg10_binary"):
        assert 0.0 <= a.metrics[key] <= 1.0
    assert a.units == {}  # judged per seed (the mean over the test queries); per-query values are not stored
    assert len(a.curves["val_ndcg10"]) == 3  # epoch 0 (the identity) and the two quick epochs
    assert a.metrics["val_ndcg10"] == max(a.curves["val_ndcg10"])
    assert a.metrics["epoch"] == int(np.argmax(a.curves["val_ndcg10"]))


def test_zero_epochs_is_the_frozen_encoder_and_seeds_change_the_validation_share(toy):
    from reglab.bench.experiments.beir import beir_task
    from reglab.bench.experiments.beir_adapter import beir_adapter

    frozen = beir_adapter(None, seed=0, epochs=0, data=toy)
    assert frozen.metrics["epoch"] == 0
    exact = beir_task(None, index="exact", data=toy)  # the identity adapter = exact search on the encoder
    assert frozen.metrics["ndcg10"] == pytest.approx(exact.metrics["ndcg10"])
    assert frozen.metrics["recall100"] == pytest.approx(exact.metrics["recall100"])
    other = beir_adapter(None, seed=1, epochs=0, data=toy)
    assert other.metrics["ndcg10"] == frozen.metrics["ndcg10"]  # same test evaluation ...
    assert other.metrics["val_ndcg10"] != frozen.metrics["val_ndcg10"]  # ... on another validation share


@pytest.mark.parametrize("arm", [{"name": "koleo"}, {"name": "l2_init"}, {"name": "vcreg"}])
def test_representation_and_weight_arms_change_training(toy, arm):
    from reglab.bench.experiments.beir_adapter import beir_adapter

    base = beir_adapter(None, seed=0, quick=True, data=toy)
    reg = beir_adapter(arm, seed=0, quick=True, data=toy)
    assert reg.curves["train_loss"] != base.curves["train_loss"]


def test_bad_arguments_are_named(toy):
    from reglab.bench.experiments.beir_adapter import beir_adapter

    with pytest.raises(ValueError, match="epochs"):
        beir_adapter(None, seed=0, epochs=-1, data=toy)
    with pytest.raises(TypeError, match="unknown arguments"):
        beir_adapter(None, seed=0, data=toy, lr=0.1)
    with pytest.raises(ValueError, match="representation or weight"):
        beir_adapter({"name": "confidence_penalty"}, seed=0, quick=True, data=toy)


def test_claims_on_the_task_name_its_metrics_and_a_failing_control():
    from reglab.bench.suite import collect_claims

    refs = [r for r in collect_claims() if r.claim.task == "beir_adapter"]
    assert {r.regularizer for r in refs} >= {"koleo", "uniformity", "vcreg", "flops", "l2_init"}
    for ref in refs:
        assert ref.claim.metric in ("ndcg10", "ndcg10_lvq4", "ndcg10_binary", "nn_distance")
        assert ref.claim.datasets == ("scifact",) and ref.claim.paired_over == "seeds"
        if ref.claim.kind == "non-inferiority":
            assert ref.claim.control is not None and ref.claim.control.task_args == {"epochs": 0}


def test_bench_task_filter_names_unknown_tasks_and_empty_selections(tmp_path, capsys):
    from reglab.cli import main

    assert main(["bench", "--quick", "--only", "koleo", "--task", "beir_adaptor", "--out", str(tmp_path)]) == 2
    assert "unknown lab tasks ['beir_adaptor']" in capsys.readouterr().err
    assert main(["bench", "--quick", "--only", "l2", "--task", "beir_adapter", "--out", str(tmp_path)]) == 2
    assert "no claim of the selected names is on the tasks ['beir_adapter']" in capsys.readouterr().err
