"""SIREN: top-p entropy, per-sequence quantile selection and the anchored square, against loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._reference import Reference


def ref_top_p_entropy(row, p=0.8, k=10000):
    """Sorted probabilities; keep those before the first whose running sum reaches p; renormalize; entropy."""
    z = [math.exp(v - max(row)) for v in row]
    probs = sorted((v / sum(z) for v in z), reverse=True)[:k]
    cum, cut = 0.0, len(probs)
    for i, q in enumerate(probs):
        cum += q
        if cum >= p:
            cut = i
            break
    kept = probs[:cut]
    total = sum(kept)
    q = [v / (total + 1e-12) for v in kept]
    return -sum(v * math.log(v + 1e-12) for v in q)


def ref_selected(logits, mask=None, p=0.8, quantile=0.8):
    b, t, _ = logits.shape
    per_seq = []
    for i in range(b):
        hs = [ref_top_p_entropy(logits[i, j].tolist(), p) for j in range(t)]
        valid = [j for j in range(t) if mask is None or bool(mask[i, j])]
        lower = float(np.quantile([hs[j] for j in valid], quantile))  # linear interpolation, as nanquantile
        kept = [hs[j] for j in valid if hs[j] > lower]
        per_seq.append(sum(kept) / len(kept))
    return sum(per_seq) / len(per_seq)


def ref_siren_first_call(logits):
    return 0.0  # the anchor is the first batch's selected entropy


REFERENCES = {"siren": Reference(ref_siren_first_call, inputs=lambda g: (3 * torch.randn(3, 9, 12, generator=g,
                                                                                           dtype=torch.float64),))}


def test_top_p_entropy_matches_loop():
    logits = 2 * torch.randn(7, 30, dtype=torch.float64)
    got = RF.top_p_entropy(logits, 0.8, 10000)
    for i in range(7):
        assert got[i].item() == pytest.approx(ref_top_p_entropy(logits[i].tolist()), abs=1e-9)
    peaked = torch.tensor([[10.0, 0.0, 0.0]])  # top-1 probability ≥ p: nothing before it, entropy 0
    assert RF.top_p_entropy(peaked).item() == pytest.approx(0.0, abs=1e-9)


def test_selected_entropy_and_anchored_penalty_match_loops():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 10, 20, generator=g, dtype=torch.float64)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[1, 7:] = False
    h = RF.siren_selected_entropy(logits, mask)
    assert h.item() == pytest.approx(ref_selected(logits, mask), abs=1e-9)
    assert RF.siren(logits, mask, anchor=0.5).item() == pytest.approx((ref_selected(logits, mask) - 0.5) ** 2, abs=1e-9)


def test_anchor_is_the_first_batch_and_round_trips():
    g = torch.Generator().manual_seed(2)
    first, later = torch.randn(2, 8, 15, generator=g), 2 * torch.randn(2, 8, 15, generator=g)
    reg = reglab.SIREN()
    assert reg(first).item() == 0.0
    h0 = RF.siren_selected_entropy(first).item()
    assert reg.anchor.item() == pytest.approx(h0)
    assert reg.penalty(later).item() == pytest.approx((RF.siren_selected_entropy(later).item() - h0) ** 2, rel=1e-5)
    fresh = reglab.SIREN()
    fresh.load_state_dict(reg.state_dict())
    assert fresh.anchor.item() == pytest.approx(h0)
    reg.reset_anchor()
    assert reg(later).item() == 0.0


def test_gradient_flows_through_the_selected_tokens_only():
    g = torch.Generator().manual_seed(3)
    small = torch.randn(2, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: RF.siren(x, anchor=3.0), (small,))
    logits = torch.randn(2, 10, 16, generator=g, dtype=torch.float64, requires_grad=True)
    RF.siren(logits, anchor=3.0).backward()
    touched = logits.grad.abs().sum(dim=-1) > 0
    assert touched.sum(dim=1).tolist() == [2, 2]  # 10 tokens, above the 0.8 quantile: 2 per sequence


def test_defaults_are_the_official_script():
    reg = reglab.SIREN()
    assert reg.current_weight == pytest.approx(0.005)
    assert (reg.top_p, reg.top_k, reg.quantile) == (0.8, 10000, 0.8)


def test_bad_input_is_named():
    with pytest.raises(RegularizerInputError, match="SIREN"):
        RF.siren_selected_entropy(torch.randn(4, 5))
    with pytest.raises(RegularizerInputError, match="SIREN.*mask"):
        RF.siren_selected_entropy(torch.randn(2, 4, 5), torch.ones(3, 4))
    with pytest.raises(RegularizerInputError, match="SIREN.*no token above"):
        RF.siren_selected_entropy(torch.zeros(2, 4, 5))
    with pytest.raises(RegularizerInputError, match="SIREN"):
        reglab.SIREN(top_p=1.5)
