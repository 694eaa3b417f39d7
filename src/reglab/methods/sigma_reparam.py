"""σReparam (Zhai, Likhomanenko, Littwin, Busbridge, Ramapuram, Zhang, Gu & Susskind, "Stabilizing
Transformer Training by Preventing Attention Entropy Collapse", ICML 2023).

Every Linear (and convolution) weight is reparametrized as

    Ŵ = (γ / σ(W)) · W

with γ a learnable scalar and σ(W) the spectral norm, estimated with one
power-iteration step per forward from a persistent unit vector u (a buffer):
``v ← normalize(W u)``, ``u ← normalize(Wᵀ v)`` under no_grad, then
``σ = vᵀ W u`` (the gradient flows through W there, not through u, v). u is
updated only in training; in eval mode σ is still recomputed from the stored
u. At application u is the first right singular vector of W₀ (exact SVD)
and **γ = σ(W₀)**, so Ŵ = W₀ at first: applying σReparam does not change the
model's function. Convolution kernels are read as the (out, in·k…) matrix.
σ is computed in at least float32 (the official ``FP32SpectralNormedWeight``).
All of this follows the official code (apple/ml-sigma-reparam,
``vision/layers.py``: ``SpectralNormedWeight.get_sigma/forward``, ``SNLinear``,
``convert_to_sn``).

One difference from the official code: ``convert_to_sn`` replaces each layer
by a freshly initialised ``SNLinear`` (weights ``trunc_normal(std=0.02·gain)``);
``sigma_reparam_`` keeps the layer's existing weights (so it can be applied to
any model, before training) unless ``init_std`` is given, which re-draws them
as the official layers do. The paper's optional removal of LayerNorm is an
architecture choice, not part of the reparametrization.

It is a ``torch.nn.utils.parametrize`` parametrization: the state (the
original weight, u, γ) lives in ``state_dict`` under
``<layer>.parametrizations.weight.{original, 0.u, 0.gamma}``; to restore a
checkpoint, build the model, apply ``sigma_reparam_`` and then
``load_state_dict``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from reglab.core.paper import Tuning
from reglab.core import Baseline, Claim, Paper, register
from reglab.core.config import Configurable
from reglab.core.errors import RegularizerInputError
from reglab.core.registry import Registered
from reglab.ops import check_tensor, checked_total, flatten_rows, full_precision, hyperparameters, positive
from reglab.ops.linalg import safe_norm
from reglab.ops.validation import describe

__all__ = ["sigma_reparam", "sigma_reparam_", "SigmaReparamWeight", "SigmaReparam"]

PAPER = Paper(
    "Stabilizing Transformer Training by Preventing Attention Entropy Collapse",
    "Zhai, Likhomanenko, Littwin, Busbridge, Ramapuram, Zhang, Gu, Susskind", 2023, arxiv="2303.06296",
    venue="ICML", code="https://github.com/apple/ml-sigma-reparam")

WHO = "SigmaReparam"
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _compute_dtype(w: torch.Tensor) -> torch.dtype:
    return torch.float64 if w.dtype == torch.float64 else torch.float32


def _unit(x: torch.Tensor) -> torch.Tensor:
    """``x/‖x‖`` (zero stays zero), the norm scaled before squaring: a 1e20-scale float32 weight
    gives ``W u`` entries near 1e20, whose plain squared norm overflows (σ became 0, Ŵ inf)."""
    return x / safe_norm(x).clamp_min(1e-12)


@full_precision
def sigma_reparam(
    w: torch.Tensor, u: torch.Tensor, gamma: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """σReparam: ``Ŵ = (γ / σ(W))·W`` with σ from one power-iteration step (Zhai et al. 2023).

    ``w`` (out, in, k…) is read as the (out, in·k…) matrix; ``u`` (in·k…,)
    the persistent unit vector; ``gamma`` a scalar. Under no_grad:
    ``v = normalize(W u)``, ``u' = normalize(Wᵀ v)``; then ``σ = vᵀ W u'``
    with the gradient through W only (official ``get_sigma``). σ in at least
    float32; Ŵ in w's dtype. Returns ``(Ŵ, u')``: the caller stores u' (in
    training only). A zero W has σ = 0 and gives Ŵ = 0 (σ clamped at 1e−12).
    """
    check_tensor(WHO, w, arg="weight", min_ndim=2, finite=False)
    m = flatten_rows(w)
    check_tensor(WHO, u, arg="power-iteration vector u", ndim=1, finite=False)
    if u.shape[0] != m.shape[1]:
        raise RegularizerInputError(
            f"{WHO} expects u of shape ({m.shape[1]},) (the weight's in·k… columns) for a weight of shape "
            f"{tuple(w.shape)}, got shape {tuple(u.shape)}"
        )
    if not isinstance(gamma, torch.Tensor) or gamma.numel() != 1:
        raise RegularizerInputError(f"{WHO} expects gamma as a one-element tensor, got {describe(gamma)}")
    mc = m.to(_compute_dtype(w))
    with torch.no_grad():
        md = mc.detach()
        v = _unit(md @ u.to(md.dtype))
        u_new = _unit(md.T @ v)
    sigma = checked_total(WHO, v @ (mc @ u_new), [w])
    scale = gamma.reshape(()).to(sigma.dtype) / sigma.clamp_min(1e-12)
    return scale.to(w.dtype) * w, u_new


class SigmaReparamWeight(nn.Module):
    """The parametrization ``W ↦ (γ/σ(W))·W`` of one weight (``torch.nn.utils.parametrize``).

    Built from the weight it will reparametrize: ``u`` (buffer) = its first
    right singular vector and ``gamma`` (parameter) = its largest singular
    value, both by exact SVD (official ``SpectralNormedWeight.__init__`` and
    ``SNLinear``), so Ŵ = W at first. Each forward runs ``sigma_reparam``
    and, in training mode only, stores the new u.
    """

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        check_tensor(WHO, weight, arg="weight", min_ndim=2)
        with torch.no_grad():
            m = flatten_rows(weight.detach()).to(_compute_dtype(weight))
            _, s, vh = torch.linalg.svd(m, full_matrices=False)
        self.register_buffer("u", vh[0].clone())
        self.gamma = nn.Parameter(s[0].detach().clone().to(weight.dtype))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        w_hat, u_new = sigma_reparam(w, self.u, self.gamma)
        if self.training:
            with torch.no_grad():
                self.u.copy_(u_new)
        return w_hat

    @torch.no_grad()
    def sigma(self, w: torch.Tensor) -> torch.Tensor:
        """The current one-step estimate σ(W) from the stored u (does not update u)."""
        m = flatten_rows(w).to(_compute_dtype(w))
        v = _unit(m @ self.u.to(m.dtype))
        return v @ (m @ _unit(m.T @ v))


def _init_std(who: str, name: str, value: object) -> object:
    return value if value is None else positive(who, name, value)


@hyperparameters(WHO, init_std=_init_std)
def sigma_reparam_(module: nn.Module, conv: bool = True, init_std: float | None = None) -> nn.Module:
    """Apply σReparam in place to every ``nn.Linear`` of ``module`` (and every Conv1d/2d/3d when
    ``conv``), or to ``module`` itself if it is one; returns ``module``.

    Each weight gets a ``SigmaReparamWeight`` parametrization (γ = σ(W₀),
    u from the SVD of W₀). ``init_std``: first re-draw each weight from
    ``trunc_normal(0, init_std)`` as the official ``SNLinear`` does (0.02 there);
    None (default) keeps the current weights. Layers that already carry σReparam
    are left alone. Apply it before building the optimizer (it adds the γ
    parameters), and before ``load_state_dict`` of a σReparam checkpoint.
    """
    if not isinstance(module, nn.Module):
        raise RegularizerInputError(f"{WHO} is applied to an nn.Module, got {describe(module)}")
    if not isinstance(conv, bool):
        raise RegularizerInputError(f"{WHO} expects conv to be True or False, got {conv!r}")
    kinds = (nn.Linear, *_CONVS) if conv else (nn.Linear,)
    layers = [m for m in module.modules() if isinstance(m, kinds)]
    if not layers:
        what = "nn.Linear or convolution" if conv else "nn.Linear"
        raise RegularizerInputError(f"{WHO} found no {what} layer in {type(module).__name__}")
    for layer in layers:
        if parametrize.is_parametrized(layer, "weight") and any(
            isinstance(p, SigmaReparamWeight) for p in layer.parametrizations.weight
        ):
            continue
        if isinstance(layer.weight, nn.parameter.UninitializedParameter):
            raise RegularizerInputError(f"{WHO} cannot reparametrize a lazy layer before its first forward: {layer}")
        if init_std is not None:
            with torch.no_grad():
                nn.init.trunc_normal_(layer.weight, std=init_std)
        parametrize.register_parametrization(layer, "weight", SigmaReparamWeight(layer.weight))
    return module


_TUNING = Tuning(
    note="no arm or baseline hyperparameter tuned (warm-up length 200 steps not tuned); every arm runs the task's "
    "lr 3e-2, picked on dev seeds as the learning rate where the plain model's attention collapses",
)


@register
class SigmaReparam(Registered, Configurable):
    """σReparam: reparametrize every Linear (and conv) weight as Ŵ = (γ/σ(W))·W, γ learnable, γ₀ = σ(W₀).

    Zhai et al. (ICML 2023): bounding each layer's spectral norm by a learned
    scale prevents attention entropy collapse and stabilizes transformer
    training. σ(W) comes from one power-iteration step per training forward
    (u a buffer, updated in training only); γ starts at σ(W₀) (exact SVD),
    so the model's function is unchanged at application (official
    apple/ml-sigma-reparam ``vision/layers.py``). Not a loss term: apply it
    to the model before building the optimizer::

        reglab.SigmaReparam()(model)          # = reglab.functional.sigma_reparam_(model)
        opt = torch.optim.AdamW(model.parameters(), lr)

    ``conv=False`` leaves convolutions alone; ``init_std=0.02`` re-draws the
    weights as the official ``SNLinear`` (default: keep them). The state
    (original weight, u, γ) is in ``state_dict``: build the model, apply,
    then ``load_state_dict``.
    """

    name = "sigma_reparam"
    kind = "weight"
    form = "reparametrization"
    paper = PAPER
    formula = "Ŵ = (γ/σ(W))·W,  σ = vᵀWu by one power-iteration step per forward,  γ₀ = σ(W₀)"
    function = sigma_reparam_
    claims = (
        Claim(
            "σReparam prevents attention entropy collapse at a high learning rate: the mean attention entropy of "
            "the trained model on test is higher than without it",
            task="transformer", metric="attention_entropy", direction="higher", role="mechanism",
            task_args={"lr": 3e-2},
            min_effect=0.1, min_effect_reason="0.1 nat of mean row entropy (log 16 = 2.77 is uniform attention)",
            baselines=(
                Baseline("no σReparam, lr 3e-2"),
                Baseline("linear warm-up (200 steps), lr 3e-2", task_args={"warmup": 200},
                         why="learning-rate warm-up, the usual remedy for unstable transformer training"),
            ),
            datasets=("digits", "digits_half"),
            settings="a 2-layer, 4-head pre-norm transformer (d 32, LayerNorm kept) on 8×8 digits as 16 patch "
            "tokens, AdamW 3e-2 (the learning rate at which the plain model's attention collapses on dev seeds), "
            "40 epochs, instead of ViT-B on ImageNet; σReparam on every Linear with the existing (PyTorch default) "
            "initialization rather than trunc_normal(0.02); developed on seeds 0-4",
            source="Zhai et al. 2023, Sec. 3-5 and Fig. 1 (entropy collapse and its prevention by σReparam)",
            tuning=_TUNING,
        ),
        Claim(
            "σReparam stabilizes training at a high learning rate: test accuracy at lr 3e-2 is higher",
            task="transformer", metric="test_accuracy", direction="higher", role="outcome",
            task_args={"lr": 3e-2},
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(
                Baseline("no σReparam, lr 3e-2"),
                Baseline("linear warm-up (200 steps), lr 3e-2", task_args={"warmup": 200},
                         why="learning-rate warm-up, the usual remedy for unstable transformer training"),
            ),
            datasets=("digits", "digits_half"),
            settings="as above",
            source="Zhai et al. 2023, Sec. 5.1 and Table 2 (ViT training stability without warm-up / at high lr)",
            tuning=_TUNING,
        ),
    )

    def __call__(self, module: nn.Module) -> nn.Module:
        return sigma_reparam_(module, self.conv, self.init_std)

    apply = __call__

    def __repr__(self) -> str:
        return f"SigmaReparam(conv={self.conv!r}, init_std={self.init_std!r})"
