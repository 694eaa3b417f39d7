"""Attention-entropy regularization (Jha & Reagen 2025) against a plain-loop reference and the sheet's vector."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._reference import Reference


# ---------------------------------------------------------------- reference
def ref_attention_entropy(attn, threshold=0.5, tolerance=0.2, context_size=None):
    """Loops over layers, heads, batch and query rows, as the paper's equations (numpy, float64)."""
    layers = [attn] if isinstance(attn, torch.Tensor) else list(attn)
    arrays = [a.detach().double().numpy() for a in layers]
    ctx = context_size or arrays[0].shape[-1]
    h_max = math.log(ctx)
    total = 0.0
    for a in arrays:
        b, h, t, _ = a.shape
        thetas = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (h,))
        layer = 0.0
        for head in range(h):
            for bi in range(b):
                for i in range(t):
                    row = a[bi, head, i]
                    e = -sum(p * math.log(p + 1e-9) for p in row)
                    d = e - thetas[head] * h_max
                    if abs(d) > tolerance * h_max:
                        layer += d * d
        total += layer / h
    return total / len(arrays)


def probs(g, b=2, h=2, t=5, s=None, scale=2.0, dtype=torch.float64):
    return (scale * torch.randn(b, h, t, s or t, generator=g, dtype=dtype)).softmax(-1)


REFERENCES = {"attention_entropy": Reference(ref_attention_entropy, inputs=lambda g: (probs(g, 3, 2, 5),), rtol=1e-9)}


# -------------------------------------------------------------- sheet vector
def sheet_attn():
    torch.manual_seed(0)
    return (torch.randn(1, 2, 4, 4, dtype=torch.float64) * 2).softmax(-1)


def test_sheet_vector():
    attn = sheet_attn()
    entropy = -(attn * torch.log(attn + 1e-9)).sum(-1)[0]
    torch.testing.assert_close(entropy[0], torch.tensor([0.311583, 1.296311, 0.690628, 0.750705], dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(entropy[1], torch.tensor([0.916887, 1.217579, 0.407828, 0.211725], dtype=torch.float64), atol=1e-6, rtol=0)
    theta = torch.tensor([0.5, 0.9], dtype=torch.float64)
    assert RF.attention_entropy([attn], threshold=theta).item() == pytest.approx(1.198655, abs=1e-6)
    reg = reglab.AttentionEntropy(num_heads=2, learn_thresholds=False)
    reg.thresholds.copy_(theta.float())
    assert reg([attn]).item() == pytest.approx(1.198655e-05, rel=1e-6)
    assert ref_attention_entropy([attn], threshold=[0.5, 0.9]) == pytest.approx(1.198655, abs=1e-6)


# ------------------------------------------------------------------- values
@pytest.mark.parametrize("threshold", [0.5, 0.1, 0.9])
@pytest.mark.parametrize("tolerance", [0.0, 0.2, 0.5])
def test_matches_reference(threshold, tolerance):
    g = torch.Generator().manual_seed(3)
    layers = [probs(g, 3, 4, 6), probs(g, 3, 4, 6, scale=0.3)]
    got = RF.attention_entropy(layers, threshold=threshold, tolerance=tolerance)
    assert got.item() == pytest.approx(ref_attention_entropy(layers, threshold, tolerance), rel=1e-10, abs=1e-12)


def test_per_head_thresholds_context_size_and_rectangular_maps():
    g = torch.Generator().manual_seed(4)
    a = probs(g, 2, 3, 4, s=7)
    theta = torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64)
    got = RF.attention_entropy(a, threshold=theta, context_size=1024)
    assert got.item() == pytest.approx(ref_attention_entropy(a, [0.2, 0.5, 0.8], 0.2, 1024), rel=1e-10)


def test_layers_are_averaged_and_one_tensor_equals_one_layer_list():
    g = torch.Generator().manual_seed(5)
    a, b = probs(g), probs(g, scale=5.0)
    one, two = RF.attention_entropy(a), RF.attention_entropy(b)
    assert RF.attention_entropy([a]).item() == pytest.approx(one.item())
    assert RF.attention_entropy([a, b]).item() == pytest.approx((one + two).item() / 2)


def test_dead_zone_inside_margin_is_zero():
    """Uniform rows have entropy log T = Hmax; with θ = 1 every δ = 0, inside any margin."""
    a = torch.full((2, 2, 4, 4), 0.25, dtype=torch.float64)
    assert RF.attention_entropy(a, threshold=1.0).item() == 0.0
    # θ = 0.5: δ = Hmax/2 > 0.2·Hmax, penalty δ² per row (not shifted by the margin)
    expected = 2 * 4 * (0.5 * math.log(4)) ** 2  # per head: B·T rows; mean over heads
    assert RF.attention_entropy(a, threshold=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_penalty_sums_over_batch_and_queries():
    g = torch.Generator().manual_seed(6)
    a = probs(g, 1, 2, 5)
    assert RF.attention_entropy(a.repeat(3, 1, 1, 1)).item() == pytest.approx(3 * RF.attention_entropy(a).item())


# ---------------------------------------------------------------- gradients
def test_gradcheck_attention_and_thresholds():
    g = torch.Generator().manual_seed(7)
    logits = (2 * torch.randn(2, 2, 4, 4, generator=g, dtype=torch.float64)).requires_grad_()
    theta = torch.tensor([0.3, 0.8], dtype=torch.float64, requires_grad=True)

    def f(z, th):
        return RF.attention_entropy(z.softmax(-1), threshold=th, tolerance=0.05)

    assert torch.autograd.gradcheck(f, (logits, theta))


def test_learnable_thresholds_are_trained_and_in_state_dict():
    reg = reglab.AttentionEntropy(num_heads=2)
    assert [n for n, _ in reg.named_parameters()] == ["thresholds"]
    a = torch.full((1, 2, 4, 4), 0.25)
    reg(a).backward()
    # entropies = Hmax above θ·Hmax = Hmax/2: dR/dθ = −2·Σδ·Hmax/H < 0
    assert (reg.thresholds.grad < 0).all()
    fixed = reglab.AttentionEntropy(num_heads=2, learn_thresholds=False)
    assert list(fixed.parameters()) == [] and "thresholds" in fixed.state_dict()
    again = reglab.from_config(reg.get_config())
    with torch.no_grad():
        reg.thresholds.fill_(0.7)
    again.load_state_dict(reg.state_dict())
    assert torch.equal(again.thresholds, reg.thresholds)


def test_without_num_heads_the_float_threshold_is_used():
    g = torch.Generator().manual_seed(8)
    a = probs(g).float()
    reg = reglab.AttentionEntropy(weight=2.0, threshold=0.3)
    assert reg(a).item() == pytest.approx(2 * ref_attention_entropy(a, 0.3), rel=1e-5)


def test_multihead_attention_weights_plug_in():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(3, 5, 8)
    _, weights = mha(x, x, x, need_weights=True, average_attn_weights=False)
    assert weights.shape == (3, 2, 5, 5)
    value = reglab.AttentionEntropy(weight=1.0)(weights)
    value.backward()
    assert mha.in_proj_weight.grad is not None
    assert value.item() == pytest.approx(ref_attention_entropy(weights), rel=1e-5)


def test_bfloat16_probabilities_are_accepted():
    g = torch.Generator().manual_seed(9)
    a = probs(g, 2, 2, 16, dtype=torch.float32).bfloat16()
    got = RF.attention_entropy(a)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(ref_attention_entropy(a.float()), rel=1e-5)


# ---------------------------------------------------------------- bad input
def test_rows_not_summing_to_one_are_rejected():
    g = torch.Generator().manual_seed(10)
    scores = torch.randn(2, 2, 4, 4, generator=g)
    with pytest.raises(RegularizerInputError, match="AttentionEntropy.*probabilities.*sum to"):
        RF.attention_entropy(scores)
    with pytest.raises(RegularizerInputError, match="AttentionEntropy"):
        RF.attention_entropy(probs(g) * 1.02)


def test_negative_entries_are_rejected():
    a = torch.tensor([[[[1.5, -0.5], [0.5, 0.5]]]])
    with pytest.raises(RegularizerInputError, match="AttentionEntropy.*≥ 0"):
        RF.attention_entropy(a)


@pytest.mark.parametrize("shape", [(4, 4), (2, 4, 4), (1, 2, 2, 4, 4)])
def test_wrong_rank_names_the_expected_shape(shape):
    a = torch.full(shape, 0.25)
    with pytest.raises(RegularizerInputError, match=r"AttentionEntropy.*\(batch, heads, queries, keys\)"):
        RF.attention_entropy(a)


def test_nan_is_an_error_not_skipped():
    a = sheet_attn().clone()
    a[0, 0, 0, 0] = float("nan")
    with pytest.raises(RegularizerInputError, match="AttentionEntropy.*NaN"):
        RF.attention_entropy(a)


@pytest.mark.parametrize(
    "kwargs",
    [{"tolerance": -0.1}, {"context_size": 1}, {"context_size": 2.5}, {"threshold": float("nan")}, {"threshold": "a"}],
)
def test_bad_hyperparameters(kwargs):
    with pytest.raises(RegularizerInputError, match="AttentionEntropy"):
        RF.attention_entropy(sheet_attn(), **kwargs)
    with pytest.raises(RegularizerInputError, match="AttentionEntropy"):
        reglab.AttentionEntropy(**kwargs)


def test_bad_threshold_shape_and_num_heads():
    with pytest.raises(RegularizerInputError, match=r"AttentionEntropy.*\(2,\)"):
        RF.attention_entropy(sheet_attn(), threshold=torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(RegularizerInputError, match="AttentionEntropy.*num_heads"):
        reglab.AttentionEntropy(num_heads=0)
    with pytest.raises(RegularizerInputError, match=r"AttentionEntropy.*\(2,\)"):
        reglab.AttentionEntropy(num_heads=3)(sheet_attn())
