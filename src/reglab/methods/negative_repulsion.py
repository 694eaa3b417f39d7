"""Repulsion from a negatively adapted model in parameter space (Adapt-then-Unlearn; Tiwary et al., TMLR 2025).

Step 1 adapts a copy of the pretrained model on the negative (to-forget)
samples, giving θ_N; step 2 trains the original on positive samples with a
repulsion term that pushes θ away from θ_N. Official code
(atriguha/Adapt_Unlearn, ``Unlearning/Unlearning_MNIST/train_different_losses.py``
and ``Unlearning/Unlearning_CelebA/unlearn_main.py``, ``calc_difference_param_new``):
the distance is, per parameter tensor, ``nn.MSELoss()(θ_N, θ)`` (the mean
squared difference), each divided by the number of tensors and halved, then
summed, ``d = (1/(2T))·Σ_t mean((θ_t − θ_N,t)²)`` (one negative model; the
code multiplies by the number of negative models). The three repulsion
forms of the same files, with ``val_factor = 1/γ``:

* ``"exp"`` (EL2, the paper's choice): ``100·exp(−γ·d)``; 100 is our default weight;
* ``"l2"`` (NL2): ``−γ·d``;
* ``"inverse"`` (IL2): ``γ/d``.

γ = 1 in the MNIST script (``--gamma 1 --loss_type exp``). The official
distance pools all tensors; that is ``scope="global"`` here. The local
(default) scope applies the form to each tensor's own ``d_t = mean/2`` and
sums, which keeps "one tensor == a list" additive.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from reglab.core import AnchorState, Claim, Paper, RegularizerInputError, register
from reglab.ops import as_tensors, check_tensor, checked_total, hyperparameters, one_of, positive, sum_terms

__all__ = ["negative_repulsion", "negative_repulsion_global", "NegativeRepulsion"]

PAPER = Paper(
    "Adapt then Unlearn: Exploring Parameter Space Semantics for Unlearning in Generative Adversarial Networks",
    "Tiwary, P., Guha, A., Panda, S. and Prathosh, A. P.", 2025, arxiv="2309.14054", venue="TMLR",
    code="https://github.com/atriguha/Adapt_Unlearn")

_KINDS = ("exp", "l2", "inverse")


def _pairs(w, negative):
    ws = as_tensors("NegativeRepulsion", w)
    negs = as_tensors("NegativeRepulsion", negative, arg="negative-model parameter")
    if len(ws) != len(negs):
        raise RegularizerInputError(
            f"NegativeRepulsion got {len(ws)} parameters but {len(negs)} negative-model parameters"
        )
    for t, n in zip(ws, negs):
        check_tensor("NegativeRepulsion", t, arg="parameter")  # exp(−γ·inf) = 0 would hide an inf
        check_tensor("NegativeRepulsion", n, arg="negative-model parameter")
        if t.shape != n.shape:
            raise RegularizerInputError(
                f"NegativeRepulsion expects each negative-model parameter with its parameter's shape "
                f"{tuple(t.shape)}, got {tuple(n.shape)}"
            )
    return ws, negs


def _form(d: torch.Tensor, kind: str, gamma: float) -> torch.Tensor:
    if kind == "exp":
        return torch.exp(-gamma * d)
    if kind == "l2":
        return -gamma * d
    return gamma / d


@hyperparameters("NegativeRepulsion", gamma=positive, kind=one_of(*_KINDS))
def negative_repulsion(
    w: torch.Tensor | Sequence[torch.Tensor],
    negative: torch.Tensor | Sequence[torch.Tensor],
    gamma: float = 1.0,
    kind: str = "exp",
) -> torch.Tensor:
    """Per tensor ``f(d_t)``, ``d_t = mean((θ_t − θ_N,t)²)/2``, summed; ``f`` = exp(−γd) | −γd | γ/d.

    The local form of Adapt-then-Unlearn's repulsion (one tensor at a time);
    ``negative_repulsion_global`` pools the tensors as the official code does.
    """
    ws, negs = _pairs(w, negative)
    terms = [_form((t - n.detach().to(t.dtype)).pow(2).mean() / 2, kind, gamma) for t, n in zip(ws, negs)]
    return checked_total("NegativeRepulsion", sum_terms(terms), ws)


@hyperparameters("NegativeRepulsion", gamma=positive, kind=one_of(*_KINDS))
def negative_repulsion_global(
    w: Sequence[torch.Tensor], negative: Sequence[torch.Tensor], gamma: float = 1.0, kind: str = "exp"
) -> torch.Tensor:
    """``f(d)``, ``d = (1/(2T))·Σ_t mean((θ_t − θ_N,t)²)`` over the T tensors (official ``calc_difference_param_new``)."""
    ws, negs = _pairs(w, negative)
    d = sum_terms([(t - n.detach().to(t.dtype)).pow(2).mean() for t, n in zip(ws, negs)]) / (2 * len(ws))
    return checked_total("NegativeRepulsion", _form(d, kind, gamma), ws)


@register
class NegativeRepulsion(AnchorState):
    """Parameter-space repulsion from a negatively adapted model θ_N (Adapt-then-Unlearn), default 100·exp(−γ·d).

    ``d`` is the halved mean squared parameter difference (per tensor in
    the local scope; averaged over the tensors with ``.on(scope="global")``,
    the official form). Forms (``kind``): ``"exp"`` exp(−γd) (EL2, the
    paper's; weight 100 as in the official code), ``"l2"`` −γd, ``"inverse"``
    γ/d. The negative model's parameters are buffers ``anchor__<param name>``:
    attach to the model, then ``reg.set_negative(negative_model)`` copies
    the adapted copy's parameters by name (``state_dict`` keeps them), or
    pass ``negative=`` standalone. Before ``set_negative`` the buffers hold
    the parameters at attach time.
    """

    name = "negative_repulsion"
    formula = "R(θ) = exp(−γ·d(θ, θ_N)),  d = mean((θ − θ_N)²)/2 (or −γ·d, γ/d)"
    paper = PAPER
    function = negative_repulsion
    global_function = negative_repulsion_global
    default_weight = 100.0
    claims = (
        Claim(
            "Repulsion from the negatively adapted model unlearns the negative class while keeping the rest",
            testable=False,
            untestable_reason="the claim is class- and feature-level unlearning in StyleGAN2 generators (MNIST, "
            "AFHQ, CelebA-HQ), judged by classifiers on generated images; the lab has no generative model and no "
            "unlearning task",
            source="Tiwary et al. 2025, Sec. 5, Tables 1-3",
        ),
    )

    def set_negative(self, negative: nn.Module | Sequence[tuple[str, torch.Tensor]]) -> None:
        """Copy the adapted (negative) model's parameters into the buffers of the same parameter names."""
        named = negative.named_parameters() if isinstance(negative, nn.Module) else negative
        done = 0
        with torch.no_grad():
            for pname, p in named:
                key = self._state_prefix + pname.replace(".", "__")
                buf = self._buffers.get(key)
                if buf is None:
                    continue
                if buf.shape != p.shape:
                    raise RegularizerInputError(
                        f"NegativeRepulsion.set_negative: {pname!r} has shape {tuple(p.shape)}, the bound parameter "
                        f"{tuple(buf.shape)}"
                    )
                buf.copy_(p.detach())
                done += 1
        if done == 0:
            raise RegularizerInputError(
                "NegativeRepulsion.set_negative matched no bound parameter by name: attach the regularizer to the "
                "model first, and pass the adapted copy of the same architecture"
            )

    def penalty(self, w: torch.Tensor | Sequence[torch.Tensor], negative=None) -> torch.Tensor:
        if negative is not None:
            return negative_repulsion(w, negative, gamma=self.gamma, kind=self.kind)
        ws = as_tensors("NegativeRepulsion", w, upcast=False)
        return negative_repulsion(ws, [self.state_of(t) for t in ws], gamma=self.gamma, kind=self.kind)

    def penalty_global(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        ws = as_tensors("NegativeRepulsion", list(tensors), upcast=False)
        return negative_repulsion_global(ws, [self.state_of(t) for t in ws], gamma=self.gamma, kind=self.kind)
