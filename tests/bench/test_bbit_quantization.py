"""The bbit_quantization task: quick runs with and without the arm, and the b-bit uniform quantizer."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("sklearn")

from reglab.bench.experiments.bbit_quantization import quantize_uniform  # noqa: E402
from reglab.bench.tasks import get_task  # noqa: E402


@pytest.mark.parametrize("arm", [None, {"name": "pseudo_quantization_noise", "bits": 2}])
def test_bbit_quantization_runs_quick_with_and_without_the_arm(arm):
    res = get_task("bbit_quantization")(arm, seed=0, quick=True, bits=2)
    m = res.metrics
    assert all(math.isfinite(v) for v in m.values())
    for k in ("test_accuracy", "quantized_accuracy", "val_quantized_accuracy"):
        assert 0.0 <= m[k] <= 1.0
    assert m["test_accuracy"] > 0.5  # it learned something in 3 epochs
    assert m["quantization_drop"] == pytest.approx(m["test_accuracy"] - m["quantized_accuracy"])
    assert 0.0 < m["quantization_error"] < 1.0
    assert 1 <= m["best_epoch"] <= 3
    assert res.setup["selection"] and res.setup["model"]


def test_the_arm_changes_training_and_is_deterministic():
    run = get_task("bbit_quantization")
    plain = run(None, seed=1, quick=True, bits=2).metrics
    noisy = run({"name": "pseudo_quantization_noise", "bits": 2}, seed=1, quick=True, bits=2).metrics
    again = run({"name": "pseudo_quantization_noise", "bits": 2}, seed=1, quick=True, bits=2).metrics
    assert noisy == again
    assert noisy["quantization_error"] != plain["quantization_error"]


def test_a_non_module_arm_is_rejected():
    with pytest.raises(ValueError, match="weight transform"):
        get_task("bbit_quantization")({"name": "l2"}, seed=0, quick=True)


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_quantizer_gives_at_most_2_to_the_b_levels_in_the_tensors_range(bits):
    w = torch.randn(128, 128, generator=torch.Generator().manual_seed(bits))
    q = quantize_uniform(w, bits)
    assert q.unique().numel() <= 2**bits
    assert float(q.min()) == pytest.approx(float(w.min())) and float(q.max()) == pytest.approx(float(w.max()))
    step = (w.max() - w.min()) / (2**bits - 1)
    assert float((w - q).abs().max()) <= float(step) / 2 + 1e-6  # rounding to the nearest level
    assert torch.equal(quantize_uniform(torch.full((3, 3), 0.5), bits), torch.full((3, 3), 0.5))
