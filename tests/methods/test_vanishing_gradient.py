"""Pascanu et al.'s Ω (vanishing-gradient regularizer) by loops, on an unrolled tanh RNN."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._reference import Reference


def ref_omega(grad_h, h, w_hh, squared=True, bound=1e-20):
    """By loops, as pascanur/trainingRNNs RNN.py: per step k and sample b, the ratio of the (squared) norm of
    (d_k ⊙ (1 − x_k²))·W over that of d_k, (ratio − 1)² for the kept terms, batch mean, sum over k, divided by
    the summed kept fraction."""
    T, B, H = h.shape
    d, x, w = grad_h.tolist(), h.tolist(), w_hh.tolist()
    total, kept = 0.0, 0.0
    for k in range(T):
        step, n_kept = 0.0, 0
        for b in range(B):
            a = [d[k][b][i] * (1 - x[k][b][i] ** 2) for i in range(H)]
            back = [sum(a[i] * w[i][j] for i in range(H)) for j in range(H)]
            num, den = sum(v * v for v in back), sum(v * v for v in d[k][b])
            if den < bound:
                continue
            ratio = num / den if squared else math.sqrt(num / den)
            step += (ratio - 1) ** 2
            n_kept += 1
        total += step / B
        kept += n_kept / B
    return total / kept


def _rnn_inputs(g):
    """An unrolled tanh RNN x_t = tanh(x_{t−1}·Wᵀ + u_t·Uᵀ), loss on the last state; the total ∂E/∂x_t."""
    T, B, H, D = 5, 3, 4, 2
    w = torch.randn(H, H, generator=g, dtype=torch.float64) * 0.8
    u_w = torch.randn(H, D, generator=g, dtype=torch.float64)
    u = torch.randn(T, B, D, generator=g, dtype=torch.float64)
    target = torch.randn(B, H, generator=g, dtype=torch.float64)
    x = torch.zeros(B, H, dtype=torch.float64)
    states = []
    with torch.enable_grad():
        w_graph = w.clone().requires_grad_(True)
        for t in range(T):
            x = torch.tanh(x @ w_graph.T + u[t] @ u_w.T)
            states.append(x)
        loss = ((states[-1] - target) ** 2).sum()
        grads = torch.autograd.grad(loss, states)
    return torch.stack(grads), torch.stack(states).detach(), w


REFERENCES = {"vanishing_gradient": Reference(ref_omega, inputs=_rnn_inputs)}


def test_paper_form_and_gradient_reaches_w_only():
    grad_h, h, w = _rnn_inputs(torch.Generator().manual_seed(1))
    got = RF.vanishing_gradient_penalty(grad_h, h, w, squared=False)
    assert float(got) == pytest.approx(ref_omega(grad_h, h, w, squared=False), rel=1e-10)
    w = w.clone().requires_grad_(True)
    hh = h.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: RF.vanishing_gradient_penalty(grad_h, h, v), (w,))
    RF.vanishing_gradient_penalty(grad_h, hh, w).backward()
    assert hh.grad is None  # the states and errors are constants (Sec. 3.3)


def test_zero_for_an_error_preserving_step_and_dropped_terms():
    """Linear RNN with an orthogonal W: ‖d·W‖ = ‖d‖, Ω = 0; a vanished error (‖d‖² < bound) is not counted."""
    q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))
    d = torch.randn(3, 2, 4, dtype=torch.float64)
    h = torch.randn(3, 2, 4, dtype=torch.float64)
    assert float(RF.vanishing_gradient_penalty(d, h, q, nonlinearity="linear")) < 1e-20
    d[1, 0] = 0.0
    w = 2 * q  # ratio 4 everywhere: (4 − 1)² = 9 on every kept term, so Ω = 9·(kept fraction)/(kept fraction)
    assert float(RF.vanishing_gradient_penalty(d, h, w, nonlinearity="linear")) == pytest.approx(9.0 * 3 / 3)


def test_defaults_and_bad_inputs():
    reg = reglab.create("vanishing_gradient")
    assert reg.weight == 2.0 and reg.squared and reg.bound == 1e-20  # RNN.py: alpha = 2, bound = 1e-20
    grad_h, h, w = _rnn_inputs(torch.Generator().manual_seed(2))
    assert float(reg(grad_h, h, w)) == pytest.approx(2.0 * ref_omega(grad_h, h, w), rel=1e-10)
    with pytest.raises(RegularizerInputError, match="VanishingGradient.*same shape"):
        reg(grad_h, h[:2], w)
    with pytest.raises(RegularizerInputError, match="VanishingGradient.*w_hh"):
        reg(grad_h, h, w[:2])
    with pytest.raises(RegularizerInputError, match="nonlinearity"):
        reglab.create("vanishing_gradient", nonlinearity="gelu")


def test_float32_overflow_of_the_squared_norms_is_an_error_not_nan():
    grad_h, h, w = _rnn_inputs(torch.Generator().manual_seed(2))
    big = (grad_h * 1e20).float()  # ‖∂E/∂x_t‖² ≈ 1e40: beyond float32
    w32 = w.float().requires_grad_()
    with pytest.raises(RegularizerInputError, match="VanishingGradient.*not finite.*float64"):
        RF.vanishing_gradient_penalty(big, h.float(), w32)  # was a silent NaN
    w64 = w.clone().requires_grad_()  # float64 holds it, and Ω does not depend on the scale of grad_h
    value = RF.vanishing_gradient_penalty(big, h, w64)
    value.backward()
    assert torch.isfinite(w64.grad).all()
    assert float(value) == pytest.approx(ref_omega(grad_h, h, w), rel=1e-6)
