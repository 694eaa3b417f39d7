"""Spectral norm regularization (Yoshida & Miyato, 2017).

R(W) = ½·σ_max(W)² (their Eq. 4: the loss adds (λ/2)·Σ_l σ(W_l)², so the
gradient of λR is λ·σ·u·vᵀ). σ is estimated with one power-iteration step
per call from a persistent left vector u (their Algorithm 1):
v = Wᵀu/‖Wᵀu‖, u' = Wv/‖Wv‖, σ = u'ᵀWv with u', v held constant. Conv
kernels are read as the (out, in·k…) matrix, as in the paper.

Functional form: ``RF.spectral_norm_penalty(w)`` returns the scalar ½σ²
(exact σ_max without a vector; one power-iteration step from ``u=`` with
one); the class keeps the persistent power-iteration vector. The name
avoids torch's ``torch.nn.utils.parametrizations.spectral_norm``, a
reparametrization (W/σ), not a penalty. ``RF.spectral_norm(w, u)`` (returns
``(value, u')``) is kept, deprecated, until the next release.

Gradient (``mode="grad"``): with u', v held constant, ∂(½σ²)/∂W = σ·u'vᵀ
(one outer product after the power-iteration step; no autograd graph).
Worth applying lazily (``.on(every=k)``, weight k·λ) on large models.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from reglab.core import Baseline, Claim, Paper, PowerIterationState, register
from reglab.ops import (
    add_scaled_, as_tensors, check_tensor, checked_total, flatten_rows, full_precision, no_autocast, paired_tensors,
    per_tensor_result, safe_norm, sum_terms,
)

PAPER = Paper(
    "Spectral Norm Regularization for Improving the Generalizability of Deep Learning",
    "Yoshida, Y. and Miyato, T.", 2017, arxiv="1705.10941")


@full_precision
def _power_step(
    w: torch.Tensor | Sequence[torch.Tensor], u: torch.Tensor | Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor | list[torch.Tensor]]:
    """``½σ(W)²`` by one power-iteration step, and the advanced vector (what ``SpectralNorm`` keeps).

    From the left vector ``u`` (size out): ``v = Wᵀu/‖Wᵀu‖``, ``u' = Wv/‖Wv‖``,
    ``σ = u'ᵀWv`` with ``u', v`` held constant (Algorithm 1). Returns
    ``(½σ², u')``; for a list of weights and a list of vectors, ``(Σ ½σ², [u'…])``.
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


@full_precision
def spectral_norm_penalty(
    w: torch.Tensor | Sequence[torch.Tensor], u: torch.Tensor | Sequence[torch.Tensor] | None = None
) -> torch.Tensor:
    """Spectral norm regularization ``½σ(W)²`` (Yoshida & Miyato, 2017): a scalar.

    Without ``u``: the exact largest singular value of each weight read as the
    (out, in·k…) matrix (one SVD per tensor; its gradient is σ·u₁v₁ᵀ). With
    ``u`` (one unit vector of size out per weight): the paper's estimate, one
    power-iteration step from it (Algorithm 1), whose gradient is σ·u'vᵀ with
    ``u', v`` held constant. ``SpectralNorm`` keeps ``u`` across steps
    (the paper's persistent vector, in ``state_dict``). A list of weights
    gives the sum.
    """
    if u is not None:
        return _power_step(w, u)[0]
    who = "spectral_norm"
    ws = as_tensors(who, w, min_ndim=2)
    for t in ws:  # LAPACK fails on non-finite input, so check before the SVD (it dwarfs the check)
        check_tensor(who, t, arg="weight")
    values = [0.5 * torch.linalg.matrix_norm(flatten_rows(t), ord=2).pow(2) for t in ws]
    return checked_total(who, sum_terms(values), ws)


def spectral_norm(
    w: torch.Tensor | Sequence[torch.Tensor], u: torch.Tensor | Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor | list[torch.Tensor]]:
    """Deprecated: ``(½σ², u')`` by one power-iteration step; use ``spectral_norm_penalty``
    (a scalar; the name no longer shadows torch's ``spectral_norm`` reparametrization)."""
    warnings.warn(
        "reglab.functional.spectral_norm(w, u) is deprecated and returns (value, u'): use "
        "spectral_norm_penalty(w) (exact σ) or spectral_norm_penalty(w, u) (one power-iteration step), "
        "which return the penalty alone; reglab.SpectralNorm keeps the vector",
        DeprecationWarning,
        stacklevel=2,
    )
    return _power_step(w, u)


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
    function = spectral_norm_penalty
    power_step = _power_step  # the step that also returns the advanced vector (PowerIterationState)
    call_args = ("u",)
    default_weight = 1e-2


    def _state_shape(self, w: torch.Tensor) -> tuple[int, ...]:
        return (w.shape[0],)

    def penalty(self, w: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        return super().penalty(as_tensors("spectral_norm", w, min_ndim=2, upcast=False))

    @torch.no_grad()
    def grad_(self, tensors, grads, alpha):
        """``g += α·σ·u'vᵀ`` after one power-iteration step (Algorithm 1); returns Σ½σ².

        Advances each tensor's vector to u', as ``penalty`` does."""
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
