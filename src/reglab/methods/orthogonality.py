"""Orthogonality regularizers of Bansal, Chen & Wang (NeurIPS 2018): soft orthogonality and SRIP.

W is the (out, in·k…) matrix of a layer's filters; G is its smaller Gram
(WWᵀ, or WᵀW when rows > cols, so the penalty is never forced above the
rank bound).

* Soft orthogonality (SO, their Eq. 2): R(W) = ‖G − I‖²_F.
* SRIP (their Eq. 6): R(W) = σ_max(G − I), estimated by power iteration
  with **two** iterations as the paper states and the official code does
  (VITA-Group/Orthogonality-in-CNNs, ``l2_reg_ortho``: v = Mb/‖Mb‖,
  σ ≈ ‖Mv‖, gradients through both steps).

Closed-form gradients (``mode="grad"``). With X the smaller Gram side (the
flattened (out, in·k…) weight, or its transpose when rows > cols), G = XXᵀ,
D = G − I:

* SO: ∂‖D‖²_F/∂X = 4·D·X (one k²d GEMM; the k×k Gram is the other).
* SRIP, through both power-iteration steps: with a = Du, v = a/‖a‖,
  b = Dv, σ = ‖b‖ and c = (I − vvᵀ)·Db/‖a‖,
  ∂σ/∂X = (b·vᵀ + v·bᵀ + c·uᵀ + u·cᵀ)·X/σ, i.e. four outer products of
  matrix-vector products, never forming G.

Both are worth applying lazily (``.on(every=k)``, weight k·λ) on large
models: each costs a GEMM or several matrix-vector products per weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import Baseline, Claim, Paper, PowerIterationState, WeightRegularizer, register
from reglab.ops import (
    add_scaled_, as_tensors, checked_total, flatten_rows, full_precision, gram, indices_by_shape, no_autocast,
    paired_tensors, per_tensor_result, safe_norm, stack_by_shape, sum_terms, zero_safe_inverse,
)

PAPER = Paper(
    "Can We Gain More from Orthogonality Regularizations in Training Deep CNNs?",
    "Bansal, N., Chen, X. and Wang, Z.", 2018, arxiv="1810.09102", venue="NeurIPS", code="https://github.com/VITA-Group/Orthogonality-in-CNNs")


def _is_tall(w: torch.Tensor) -> bool:
    """More rows (output units) than columns in the flattened weight."""
    return w.shape[0] > w[0].numel()


def _smaller_gram_side(w: torch.Tensor) -> torch.Tensor:
    """The flattened weight, transposed when rows > cols, so ``m mᵀ`` is the smaller Gram."""
    m = flatten_rows(w)
    return m.T if m.shape[0] > m.shape[1] else m


class _GramDeviation(torch.autograd.Function):
    """Σ_b ‖X_b X_bᵀ − I‖²_F for a batch (B, k, d), with the closed-form gradient 4(XXᵀ − I)X.

    Autograd through ``x @ xᵀ`` would spend two k²d matmuls in backward (one
    per operand); the closed form needs one, which cuts the cost by about a
    third. First-order only.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        d = gram(x)
        d.diagonal(dim1=-2, dim2=-1).sub_(1.0)
        ctx.save_for_backward(x, d)
        return d.pow(2).sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x, d = ctx.saved_tensors
        return (4.0 * grad) * (d @ x)


@full_precision
def soft_orthogonality(w: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Soft orthogonality ``‖WWᵀ − I‖²_F`` on the flattened rows (Bansal et al., 2018), summed over tensors.

    Uses the smaller Gram (``WᵀW − I`` when rows > cols), the convention for
    over-complete layers. Same-shaped weights share one batched matmul on
    accelerators.
    """
    who = "soft_orthogonality"
    ws = as_tensors(who, w, min_ndim=2)
    batches = stack_by_shape([_smaller_gram_side(t) for t in ws])
    return checked_total(who, sum_terms([_GramDeviation.apply(b) for b in batches]), ws)


def _gram_minus_identity_matvec(m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(G − I)·v`` for the smaller Gram ``G`` of ``m``, without forming ``G``."""
    if m.shape[0] > m.shape[1]:
        return m.T @ (m @ v) - v
    return m @ (m.T @ v) - v


@full_precision
def srip(
    w: torch.Tensor | Sequence[torch.Tensor], u: torch.Tensor | Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor | list[torch.Tensor]]:
    """SRIP ``σ(WᵀW − I)`` by two power-iteration steps from ``u`` (Bansal et al., 2018).

    With ``M = G − I`` (``G`` the smaller Gram of the flattened weight):
    ``v = Mu/‖Mu‖``, ``σ ≈ ‖Mv‖``. Returns ``(σ, v)``; feed ``v`` back as the
    next ``u`` (it is detached). Gradients flow through both steps, as in the
    official code. For a list of weights pass a list of vectors: returns
    ``(Σσ, [v…])``.
    """
    who = "srip"
    ws, us = paired_tensors(who, w, u, "power-iteration vector", lambda t: (min(flatten_rows(t).shape),), min_ndim=2)
    sigmas, vs = [], []
    for wt, ut in zip(ws, us):
        m = flatten_rows(wt)
        v1 = _gram_minus_identity_matvec(m, ut.to(m.dtype))
        v = v1 / safe_norm(v1).clamp_min(1e-12)
        sigmas.append(safe_norm(_gram_minus_identity_matvec(m, v)))
        vs.append(v.detach())
    total = checked_total(who, sum_terms(sigmas), ws)
    return per_tensor_result(w, total, vs)


@register
class SoftOrthogonality(WeightRegularizer):
    """Soft orthogonality (SO): R(W) = ‖WWᵀ − I‖²_F on the flattened rows.

    Bansal, Chen & Wang (2018), Eq. 2: W is the (out, in·k…) matrix of
    filters. The penalty uses the smaller Gram side: WWᵀ − I, or WᵀW − I
    when rows > cols, so an over-complete layer is never pushed toward an
    identity its rank cannot reach (the paper's Eq. 2 writes WᵀW and
    discusses the over-complete case; the official repository has no
    soft-orthogonality code to compare with). The default weight is a
    library choice for ResNet-scale models, not a value from the paper.

    ``mode="grad"``: adds 4·(XXᵀ − I)·X on the smaller side X (transposed
    back when rows > cols), the derivative of the penalty.
    """

    name = "soft_orthogonality"
    claims = (
        Claim(
            "Soft orthogonality improves the accuracy of a deep plain network",
            task="deep_plain", metric="test_accuracy", direction="higher",
            min_effect=0.005, min_effect_reason="half a point of test accuracy",
            baselines=(
                Baseline("no regularizer"),
                Baseline("weight decay (L2 5e-4)", {"name": "l2", "weight": 5e-4},
                         why="the regularizer orthogonality is added to or compared with in the paper"),
            ),
            datasets=("digits", "digits_half"),
            settings="a 12-layer plain ReLU MLP without normalization (He init, SGD 0.01 momentum 0.9, 30 epochs) "
            "instead of ResNets/WideResNets on CIFAR; weight 1e-4 (this class's default; the paper uses 0.1 "
            "decayed over training)",
            source="Bansal et al. 2018, Tables 1-3",
        ),
        Claim(
            "Soft orthogonality speeds up training (lower training loss early on)",
            task="deep_plain", metric="train_loss_first_half", direction="lower",
            min_effect=0.02, min_effect_reason="0.02 nats of mean training loss",
            baselines=(Baseline("no regularizer"),),
            datasets=("digits", "digits_half"),
            settings="as above",
            source="Bansal et al. 2018, Sec. 4 (faster, more stable convergence)",
        ),
    )
    formula = "R(W) = ‖WWᵀ − I‖²_F  (WᵀW if rows > cols)"
    paper = PAPER
    function = soft_orthogonality
    default_weight = 1e-4

    @torch.no_grad()
    def grad_(self, tensors, grads, alpha):
        """``g += α·4(XXᵀ − I)X`` on the smaller Gram side X; returns Σ‖XXᵀ − I‖²_F from the same D."""
        who = "soft_orthogonality"
        ws = as_tensors(who, list(tensors), min_ndim=2)
        updates: list[torch.Tensor] = [ws[0]] * len(ws)
        terms = []
        with no_autocast(ws[0]):
            sides = [_smaller_gram_side(t) for t in ws]
            for idx in indices_by_shape(sides):
                x = torch.stack([sides[i] for i in idx]) if len(idx) > 1 else sides[idx[0]].unsqueeze(0)
                d = gram(x)
                d.diagonal(dim1=-2, dim2=-1).sub_(1.0)
                terms.append(d.pow(2).sum())
                g = 4.0 * (d @ x)
                for j, i in enumerate(idx):
                    gi = g[j].T if _is_tall(ws[i]) else g[j]
                    updates[i] = gi.reshape(ws[i].shape)
        value = checked_total(who, sum_terms(terms), ws)
        add_scaled_(grads, updates, alpha)
        return value


@register
class SRIP(PowerIterationState):
    """Spectral restricted isometry property (SRIP) regularization: R(W) = σ(WᵀW − I).

    Bansal, Chen & Wang (2018), Eq. 6: the spectral norm of the Gram minus
    identity (smaller Gram of the flattened (out, in·k…) weight), estimated
    by power iteration with **two** iterations, as the paper states and the
    official code does (VITA-Group/Orthogonality-in-CNNs, ``l2_reg_ortho``:
    v = Mb/‖Mb‖, σ ≈ ‖Mv‖, gradients through both steps). Differences from
    that code: the start vector b is kept per tensor in a buffer (warm
    start, in ``state_dict``) instead of redrawn each step, products with
    M = G − I are computed as W(Wᵀv) − v without forming G, and the penalty
    is σ as in the paper's Eq. 6 (their PyTorch script adds σ², their Keras
    script σ). Each call advances the iteration.

    Default weight 0.01 = the official ``--ortho-decay``; the official code
    then decays it (×1e-3 after epoch 20, ×1e-4 after 50, ×1e-6 after 70, 0
    after 120): ``SRIP(reglab.schedules.srip_decay(steps_per_epoch))``.

    ``mode="grad"``: the closed-form derivative of σ through both
    power-iteration steps (module docstring), from matrix-vector products
    only; the vector advances as in penalty mode. Lazy application
    (``.on(every=k)``) suits it on large models.
    """

    name = "srip"
    claims = (
        Claim(
            "SRIP improves the accuracy of a deep plain network, more than soft orthogonality",
            task="deep_plain", metric="test_accuracy", direction="higher",
            min_effect=0.005, min_effect_reason="half a point of test accuracy",
            baselines=(
                Baseline("no regularizer"),
                Baseline("soft orthogonality (1e-4)", {"name": "soft_orthogonality"},
                         why="the cheaper orthogonality penalty SRIP is compared with"),
            ),
            datasets=("digits", "digits_half"),
            settings="a 12-layer plain ReLU MLP without normalization (He init, SGD 0.01 momentum 0.9, 30 epochs) "
            "instead of ResNets/WideResNets on CIFAR; weight 1e-2 constant (the official code's starting value, "
            "without its epoch decay `reglab.schedules.srip_decay`, which is written for 200-epoch runs)",
            source="Bansal et al. 2018, Tables 1-3 (SRIP best among the orthogonality regularizers)",
        ),
    )
    formula = "R(W) = σ_max(WᵀW − I), 2-step power iteration"
    paper = PAPER
    function = srip
    default_weight = 1e-2


    def _state_shape(self, w: torch.Tensor) -> tuple[int, ...]:
        return (min(flatten_rows(w).shape),)

    def penalty(self, w: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        return super().penalty(as_tensors("srip", w, min_ndim=2, upcast=False))

    @torch.no_grad()
    def grad_(self, tensors, grads, alpha):
        """``g += α·∂σ/∂W`` through both power-iteration steps (module docstring); returns Σσ.

        Advances each tensor's vector to v, as ``penalty`` does."""
        who = "srip"
        raw = as_tensors(who, list(tensors), min_ndim=2, upcast=False)
        bufs = [self.state_of(t) for t in raw]
        ws = as_tensors(who, raw, min_ndim=2)
        sigmas, updates, news = [], [], []
        with no_autocast(ws[0]):
            for wt, buf in zip(ws, bufs):
                x = _smaller_gram_side(wt)  # (k, d), k ≤ d; D = xxᵀ − I

                def dmv(y, x=x):
                    return x @ (x.T @ y) - y

                u = buf.to(x.dtype)
                a = dmv(u)
                na = safe_norm(a).clamp_min(1e-12)
                v = a / na
                b = dmv(v)
                sigma = safe_norm(b)
                db = dmv(b)
                c = (db - v * (v @ db)) / na
                xt = x.T
                gx = (torch.outer(b, xt @ v) + torch.outer(v, xt @ b) + torch.outer(c, xt @ u)
                      + torch.outer(u, xt @ c)) * zero_safe_inverse(sigma)
                updates.append((gx.T if _is_tall(wt) else gx).reshape(wt.shape))
                sigmas.append(sigma)
                news.append(v)
        value = checked_total(who, sum_terms(sigmas), ws)
        for buf, v in zip(bufs, news):
            buf.copy_(v)
        add_scaled_(grads, updates, alpha)
        return value
