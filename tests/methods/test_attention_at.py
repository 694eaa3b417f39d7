"""Attention AT / iAT (Kitada & Iyatomi, 2021): the perturbation by loops; the two-pass step; bad input."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError


def ref_perturb(scores, grad, epsilon, sign=1.0, mask=None):
    """Per row: a_t + sign·ε·m_t g_t / max(sqrt(Σ_t (m_t g_t)²), 1e-12)."""
    out = []
    rows_a, rows_g = scores.tolist(), grad.tolist()
    rows_m = mask.tolist() if mask is not None else [[1.0] * len(r) for r in rows_a]
    for a, g, m in zip(rows_a, rows_g, rows_m):
        gm = [gi * float(mi) for gi, mi in zip(g, m)]
        norm = max(math.sqrt(sum(v * v for v in gm)), 1e-12)
        out.append([ai + sign * epsilon * v / norm for ai, v in zip(a, gm)])
    return torch.tensor(out, dtype=torch.float64)


def test_values_match_loops():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 7, generator=g, dtype=torch.float64)
    grad = torch.randn(4, 7, generator=g, dtype=torch.float64)
    mask = torch.ones(4, 7, dtype=torch.bool)
    mask[1, 5:] = False
    mask[3, 2:] = False
    at = reglab.create("attention_at", epsilon=0.3)
    assert torch.allclose(at(a, grad), ref_perturb(a, grad, 0.3), rtol=1e-12, atol=1e-12)
    assert torch.allclose(at(a, grad, mask=mask), ref_perturb(a, grad, 0.3, mask=mask), rtol=1e-12, atol=1e-12)
    iat = RF.attention_at(a, grad, 2.0, "iat", mask)
    assert torch.allclose(iat, ref_perturb(a, grad, 2.0, sign=-1.0, mask=mask), rtol=1e-12, atol=1e-12)
    # the perturbation has norm ε per row; a zero gradient row is left as it is
    r = at(a, grad) - a
    assert torch.allclose(r.norm(dim=1), torch.full((4,), 0.3, dtype=torch.float64))
    assert torch.equal(at(a, torch.zeros_like(a)), a)


def test_multihead_scores_normalize_over_keys():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    grad = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    out = RF.attention_at(a, grad, 0.5)
    expected = ref_perturb(a.reshape(-1, 5), grad.reshape(-1, 5), 0.5).reshape(2, 3, 4, 5)
    assert torch.allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_gradient_flows_through_scores_only():
    a = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: RF.attention_at(s, grad, 0.7), (a,))
    out = RF.attention_at(a, grad, 0.7)
    out.sum().backward()
    assert torch.equal(a.grad, torch.ones_like(a))
    assert grad.grad is None  # the perturbation is a constant, as in the official code


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(4, 1, bias=False).double(), torch.nn.Linear(4, 1).double()


def _loss(score_layer, head, h, y, delta=None, r=None):
    scores = score_layer(h).squeeze(-1)
    if delta is not None:
        scores = scores + delta
    if r is not None:
        scores = r(scores)
    weights = torch.softmax(scores, dim=1)
    logit = head((weights.unsqueeze(-1) * h).sum(1)).squeeze(-1)
    return torch.nn.functional.binary_cross_entropy_with_logits(logit, y), scores


def test_two_pass_step_raises_the_loss_for_at_and_lowers_it_for_iat():
    g = torch.Generator().manual_seed(2)
    h = torch.randn(8, 6, 4, generator=g, dtype=torch.float64)
    y = (torch.rand(8, generator=g) > 0.5).double()
    score_layer, head = _model()
    with torch.no_grad():
        scores = score_layer(h).squeeze(-1)
    delta = torch.zeros_like(scores, requires_grad=True)
    loss0, _ = _loss(score_layer, head, h, y, delta=delta)
    (gr,) = torch.autograd.grad(loss0, delta)
    eps = 1e-3
    up, _ = _loss(score_layer, head, h, y, r=lambda s: RF.attention_at(s, gr, eps, "at"))
    down, _ = _loss(score_layer, head, h, y, r=lambda s: RF.attention_at(s, gr, eps, "iat"))
    # first order: L(a ± ε g/‖g‖) ≈ L(a) ± ε Σ_rows ‖g_row‖
    first_order = eps * gr.norm(dim=1).sum()
    assert up.item() > loss0.item() and down.item() < loss0.item()
    assert math.isclose(up.item() - loss0.item(), first_order.item(), rel_tol=1e-2)
    assert math.isclose(loss0.item() - down.item(), first_order.item(), rel_tol=1e-2)


def test_bad_input_is_named():
    a, grad = torch.randn(2, 5), torch.randn(2, 5)
    with pytest.raises(RegularizerInputError, match="AttentionAT.*epsilon"):
        reglab.create("attention_at")
    with pytest.raises(RegularizerInputError, match="AttentionAT.*epsilon"):
        reglab.create("attention_at", epsilon=0.0)
    with pytest.raises(RegularizerInputError, match="AttentionAT.*epsilon"):
        RF.attention_at(a, grad)
    with pytest.raises(RegularizerInputError, match="AttentionAT.*variant"):
        reglab.create("attention_at", epsilon=1.0, variant="vat")
    at = reglab.create("attention_at", epsilon=1.0)
    with pytest.raises(RegularizerInputError, match="AttentionAT.*same shape"):
        at(a, torch.randn(2, 4))
    with pytest.raises(RegularizerInputError, match="AttentionAT.*grad"):
        at(a, torch.tensor([[1.0, float("nan"), 0.0, 0.0, 0.0]] * 2))
    with pytest.raises(RegularizerInputError, match="AttentionAT.*torch.Tensor"):
        at([[1.0]], grad)
    with pytest.raises(RegularizerInputError, match="AttentionAT.*mask"):
        at(a, grad, mask=torch.ones(3, 5))
