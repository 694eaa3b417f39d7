"""Spectral norm regularization (Yoshida & Miyato, 2017).

R(W) = ½·σ_max(W)² (their Eq. 4: the loss adds (λ/2)·Σ_l σ(W_l)², so the
gradient of λR is λ·σ·u·vᵀ). σ is estimated with one power-iteration step
per call from a persistent left vector u (their Algorithm 1):
v = Wᵀu/‖Wᵀu‖, u' = Wv/‖Wv‖, σ = u'ᵀWv with u', v held constant. Conv
kernels are read as the (out, in·k…) matrix, as in the paper.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import Paper, PowerIterationState, register
from reglab.ops import (
    as_tensors, checked_total, flatten_rows, full_precision, paired_tensors, per_tensor_result, safe_norm, sum_terms,
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
    formula = "R(W) = ½ σ_max(W)²"
    paper = PAPER
    function = spectral_norm
    default_weight = 1e-2


    def _state_shape(self, w: torch.Tensor) -> tuple[int, ...]:
        return (w.shape[0],)

    def penalty(self, w: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        return super().penalty(as_tensors("spectral_norm", w, min_ndim=2, upcast=False))
