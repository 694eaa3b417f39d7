"""The ``transformer`` lab task: tokens, attention maps, arms and the length-generalization option (quick runs)."""

from __future__ import annotations

import pytest
import torch

from reglab.bench.experiments.transformer import (
    LearnedPositions, SinusoidalPositions, TinyTransformer, tokenize, transformer,
)


def test_tokenize_patches_in_raster_order():
    x = torch.arange(64.0).reshape(1, 64)
    t = tokenize(x, (1, 8, 8), 2)
    assert t.shape == (1, 16, 4)
    assert t[0, 0].tolist() == [0.0, 1.0, 8.0, 9.0] and t[0, 1].tolist() == [2.0, 3.0, 10.0, 11.0]
    assert tokenize(torch.zeros(3, 40), (1, 40), 2).shape == (3, 10, 4)
    with pytest.raises(ValueError, match="patch 3"):
        tokenize(x, (1, 8, 8), 3)


def test_attention_maps_are_probabilities_with_their_graph():
    torch.manual_seed(0)
    model = TinyTransformer(4, 10, LearnedPositions(16, 32))
    model(torch.randn(5, 16, 4)).sum().backward()
    maps = model.attention_maps()
    assert len(maps) == 2 and all(m.shape == (5, 4, 16, 16) and m.requires_grad for m in maps)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(5, 4, 16))


def test_positions_index_the_full_sequence():
    pe = SinusoidalPositions(8)
    h = torch.zeros(1, 3, 8)
    torch.testing.assert_close(pe(h, torch.tensor([5, 6, 7]))[0, 0], pe(torch.zeros(1, 8, 8), torch.arange(8))[0, 5])


@pytest.mark.parametrize(
    "arm, args",
    [
        (None, {}),
        ({"name": "attention_entropy", "weight": 1e-4}, {"lr": 3e-2}),
        ({"name": "sigma_reparam"}, {"warmup": 10, "clip": 1.0}),
        (None, {"train_tokens": 8, "positional": "sinusoidal"}),
    ],
)
def test_quick_runs_report_the_metrics(arm, args):
    r = transformer(arm, seed=0, quick=True, **args)
    for key in ("test_accuracy", "attention_entropy", "min_head_entropy", "diverged"):
        assert key in r.metrics
    assert 0.0 <= r.metrics["attention_entropy"] <= torch.log(torch.tensor(16.0)).item() + 1e-4
    assert r.metrics["diverged"] == 0.0
    assert ("test_accuracy_short" in r.metrics) == bool(args.get("train_tokens"))
    assert len(r.curves["val_accuracy"]) == 3


def test_a_non_finite_loss_is_reported_as_divergence():
    r = transformer(None, seed=0, quick=True, lr=1e6)
    assert r.metrics["diverged"] in (0.0, 1.0)
    assert all(v == v for v in r.metrics.values())  # finite selection even when training blows up


def test_bad_task_arguments():
    with pytest.raises(ValueError, match="positional"):
        transformer(None, seed=0, quick=True, positional="rope")
    with pytest.raises(ValueError, match="train_tokens"):
        transformer(None, seed=0, quick=True, train_tokens=99)
    with pytest.raises(ValueError, match="transformer takes"):
        transformer({"name": "label_smoothing"}, seed=0, quick=True)
