"""Spectral norm regularization (Yoshida & Miyato, 2017).

R(W) = ½·σ_max(W)² (their Eq. 4: the loss adds (λ/2)·Σ_l σ(W_l)², so the
gradient of λR is λ·σ·u·vᵀ). σ is estimated with one power-iteration step
per call from a persistent left vector u (their Algorithm 1):
v = Wᵀu/‖Wᵀu‖, u' = Wv/‖Wv‖, σ = u'ᵀWv with u', v held constant. Conv
kernels are read as the (out, in·k…) matrix, as in the paper.

Gradient (``mode="grad"``): with u', v held constant, ∂(½σ²)/∂W = σ·u'vᵀ
(one outer product after the power-iteration step; no autograd graph).
Worth applying lazily (``.on(every=k)``, weight k·λ) on large models.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import Baseline, Claim, Paper, PowerIterationState, register
from reglab.ops import (
    add_scaled_, as_tensors, checked_total, flatten_rows, full_precision, no_autocast, paired_tensors,
    per_tensor_result, safe_norm, sum_terms,
)

PAPER = Paper(
    "Spectral Norm Regularization for Improving the Generalizability of Deep Learning",
    "Yoshida, Y. and Miyato, T.", 2017, arxiv="1705.10941")


@full_precision
def spectral_norm(
    w: torch.Tensor | Sequence[torch.Tensor], u: torch.Tensor | Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor | list[torch.Tensor]]:
    """Spectral norm regularization ``½σ(W)²`` (Yoshida & Miyato, 2017).

    One power-iteration step from the persistent left vector ``u`` (size
    out): ``v = Wᵀu/‖Wᵀu‖``, ``u' = Wv/‖Wv‖``, ``σ = u'ᵀWv`` with ``u', v``
    held constant (Algorithm 1). Returns ``(½σ², u')``; for a list of weights
    and a list of vectors, ``(Σ ½σ², [u'…])``.
    """
    who = "spectral_norm"
    ws, us = paired_tensors(who, w, u, "power-iteration vector", lambda t: (t.shape[0],), min_ndim=2)
    values, news = [], []
    for wt, ut in zip(ws, us):
        m = flatten_rows(wt)
        with torch.no_grad():
            md = m.detach()
            v = md.T @ ut.to(m.dtype)
            v = v / safe_norm(v).clamp_min(1e-12)
            u_new = md @ v
            u_new = u_new / safe_norm(u_new).clamp_min(1e-12)
        sigma = u_new @ (m @ v)
        values.append(0.5 * sigma.pow(2))
        news.append(u_new)
    total = checked_total(who, sum_terms(values), ws)
    return per_tensor_result(w, total, news)


@register
class SpectralNorm(PowerIterationState):
    """Spectral norm regularization: R(W) = ½·σ_max(W)².

    Yoshida & Miyato (2017), Eq. 4: the loss adds (λ/2)·Σ_l σ(W_l)², so
    ``SpectralNorm(λ)`` has gradient λ·σ·u·vᵀ. σ is estimated with one
    power-iteration step per call from a persistent left vector u per
    tensor (their Algorithm 1), kept in a buffer so state_dict resumes it.
    Conv kernels are read as the (out, in·k…) matrix, as in the paper.
    No global scope. The default weight is a library choice.
    """

    name = "spectral_norm"
    claims = (
        Claim(
            "Spectral norm regularization makes the network less sensitive to input perturbations",
            task="robustness", metric="noisy_accuracy", direction="higher",
            min_effect=0.01, min_effect_reason="one point of accuracy on noisy test images",
            baselines=(
                Baseline("no regularizer"),
                Baseline("weight decay (L2 5e-4)", {"name": "l2", "weight": 5e-4},
                         why="the regularizer the paper compares with"),
            ),
            datasets=("digits", "digits_half"),
            settings="an MLP on 8×8 digits, Adam 60 epochs, epoch selected on clean validation, test images with "
            "Gaussian noise σ 0.3 (a proxy for the paper's perturbation-sensitivity argument); λ = 0.01 (the "
            "paper's CIFAR value)",
            source="Yoshida & Miyato 2017, Sec. 3-4 (small sensitivity to input perturbation)",
        ),
        Claim(
            "Spectral norm regularization gives a smaller generalization gap and better test accuracy",
            task="robustness", metric="test_accuracy", direction="higher",
            min_effect=0.005, min_effect_reason="half a point of test accuracy",
            baselines=(Baseline("no regularizer"), Baseline("weight decay (L2 5e-4)", {"name": "l2", "weight": 5e-4})),
            datasets=("digits", "digits_half"),
            settings="as above",
            source="Yoshida & Miyato 2017, Sec. 5 (test accuracy vs weight decay, adversarial training)",
        ),
    )
    formula = "R(W) = ½ σ_max(W)²"
    paper = PAPER
    function = spectral_norm
    default_weight = 1e-2


    def _state_shape(self, w: torch.Tensor) -> tuple[int, ...]:
        return (w.shape[0],)

    def penalty(self, w: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        return super().penalty(as_tensors("spectral_norm", w, min_ndim=2, upcast=False))

    @torch.no_grad()
    def grad_(self, tensors, grads, alpha):
        """``g += α·σ·u'vᵀ`` after one power-iteration step (Algorithm 1); returns Σ½σ².

        Advances each tensor's vector to u', as :meth:`penalty` does."""
        who = "spectral_norm"
        raw = as_tensors(who, list(tensors), min_ndim=2, upcast=False)
        bufs = [self.state_of(t) for t in raw]
        ws = as_tensors(who, raw, min_ndim=2)
        values, updates, news = [], [], []
        with no_autocast(ws[0]):
            for wt, buf in zip(ws, bufs):
                m = flatten_rows(wt)
                v = m.T @ buf.to(m.dtype)
                v = v / safe_norm(v).clamp_min(1e-12)
                mv = m @ v
                u_new = mv / safe_norm(mv).clamp_min(1e-12)
                sigma = u_new @ mv
                values.append(0.5 * sigma.pow(2))
                updates.append((sigma * torch.outer(u_new, v)).reshape(wt.shape))
                news.append(u_new)
        value = checked_total(who, sum_terms(values), ws)
        for buf, u in zip(bufs, news):
            buf.copy_(u)
        add_scaled_(grads, updates, alpha)
        return value
