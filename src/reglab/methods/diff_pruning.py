"""Diff pruning (Guo, Rush & Kim, ACL 2021): fine-tune a sparse, hard-concrete-gated diff on frozen weights.

Each selected tensor becomes θ = θ₀ + z ⊙ z_g ⊙ δ with θ₀ the frozen pretrained value, δ a
trainable diff (initialized at 0), z = hard-concrete(log α) one gate per entry and z_g one
gate per tensor (``structured=True``, the official default ``--per_params_alpha 1``). The
training loss adds λ·E‖z‖₀.

Official code: dguo98/DiffPruning, ``examples/run_glue_diffpruning.py``:

* ``concrete_stretched`` (lines 121-131): u ~ U(0.0001, 0.9999),
  s = sigmoid(log u − log(1 − u) + log α) (temperature 1), z = clamp(s·(r − l) + l, 0, 1);
  the gradient of z w.r.t. log α is ``(t < 1)·(u > 0)·(r − l)·s(1 − s)``, which is the
  autograd derivative of that expression (clamps included);
* the penalty (lines 341-390): Σ sigmoid(log α − log(−l/r)) over the entries, plus
  sigmoid(log α_g − log(−l/r)) once per tensor for the tensor gate; times
  ``--sparsity_pen`` (λ = 1.25e-7);
* defaults: l = −1.5, r = 1.5 (``--concrete_lower/upper``), log α₀ = 5 (``--alpha_init``),
  α optimized by AdamW at lr 0.1 (the diff at the task's lr), δ₀ = 0; the classifier head is
  fine-tuned densely (apply this to the body, not to a new head).

At evaluation (``.eval()``) the gate is Louizos et al.'s deterministic estimator
ẑ = clamp(sigmoid(log α)(r − l) + l, 0, 1) (the official script evaluates the last sampled
θ instead). Not included: the final magnitude projection to an exact sparsity and the
fixed-mask re-fine-tuning (``run_glue_fixmask_finetune.py``), a second training run.
The hard-concrete distribution is Louizos, Welling & Kingma (ICLR 2018), Eq. 10-12.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from reglab.core import Baseline, Claim, Paper, RegularizerInputError, register
from reglab.core.config import Configurable
from reglab.core.paper import Tuned, Tuning
from reglab.core.registry import Registered
from reglab.ops import check_tensor, hyperparameters, non_negative
from reglab.ops.validation import describe

__all__ = ["hard_concrete", "hard_concrete_l0", "DiffPruningWeight", "diff_pruning_", "DiffPruning"]

PAPER = Paper(
    "Parameter-Efficient Transfer Learning with Diff Pruning", "Guo, D., Rush, A. M. and Kim, Y.", 2021,
    arxiv="2012.07463", venue="ACL", code="https://github.com/dguo98/DiffPruning")

WHO = "DiffPruning"


def _check_stretch(low: float, high: float) -> None:
    if not (low < 0 < 1 < high):
        raise RegularizerInputError(f"{WHO} expects the stretch interval low < 0 and high > 1, got ({low}, {high})")


def hard_concrete(
    log_alpha: torch.Tensor, low: float = -1.5, high: float = 1.5, training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A hard-concrete gate per entry of ``log_alpha`` (temperature 1): in training
    ``clamp(sigmoid(log u − log(1 − u) + log α)(high − low) + low, 0, 1)``, u ~ U(1e-4, 1 − 1e-4);
    in eval the deterministic ``clamp(sigmoid(log α)(high − low) + low, 0, 1)``."""
    check_tensor(WHO, log_alpha, arg="log_alpha")
    _check_stretch(low, high)
    if training:
        u = torch.rand(log_alpha.shape, device=log_alpha.device, dtype=log_alpha.dtype, generator=generator)
        u = u.clamp(1e-4, 1 - 1e-4)
        s = torch.sigmoid(u.log() - (1 - u).log() + log_alpha)
    else:
        s = torch.sigmoid(log_alpha)
    return (s * (high - low) + low).clamp(0.0, 1.0)


def hard_concrete_l0(log_alpha: torch.Tensor, low: float = -1.5, high: float = 1.5) -> torch.Tensor:
    """E‖z‖₀ = Σ sigmoid(log α − log(−low/high)) (the probability that each gate is non-zero)."""
    check_tensor(WHO, log_alpha, arg="log_alpha")
    _check_stretch(low, high)
    return torch.sigmoid(log_alpha - math.log(-low / high)).sum()


class DiffPruningWeight(nn.Module):
    """The parametrization θ₀ ↦ θ₀ + z ⊙ z_g ⊙ δ of one tensor (θ₀ is the frozen original)."""

    def __init__(self, original: torch.Tensor, low: float, high: float, alpha_init: float, structured: bool):
        super().__init__()
        self.low, self.high, self.structured = low, high, structured
        self.delta = nn.Parameter(torch.zeros_like(original.detach()))
        self.log_alpha = nn.Parameter(torch.full_like(original.detach(), float(alpha_init)))
        self.log_alpha_group = nn.Parameter(
            torch.full((1,), float(alpha_init), dtype=original.dtype, device=original.device)) if structured else None

    def gate(self) -> torch.Tensor:
        z = hard_concrete(self.log_alpha, self.low, self.high, self.training)
        if self.log_alpha_group is not None:
            z = z * hard_concrete(self.log_alpha_group, self.low, self.high, self.training)
        return z

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return original + self.gate() * self.delta

    def l0(self) -> torch.Tensor:
        value = hard_concrete_l0(self.log_alpha, self.low, self.high)
        if self.log_alpha_group is not None:
            value = value + hard_concrete_l0(self.log_alpha_group, self.low, self.high)
        return value

    @torch.no_grad()
    def changed(self) -> tuple[int, int]:
        """(entries whose deterministic diff ẑ·δ is non-zero, entries)."""
        z = hard_concrete(self.log_alpha, self.low, self.high, training=False)
        if self.log_alpha_group is not None:
            z = z * hard_concrete(self.log_alpha_group, self.low, self.high, training=False)
        return int(((z * self.delta) != 0).sum()), self.delta.numel()

    def alpha_parameters(self) -> list[nn.Parameter]:
        return [self.log_alpha] + ([self.log_alpha_group] if self.log_alpha_group is not None else [])


_KINDS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.LayerNorm, nn.Embedding)


@hyperparameters(WHO, sparsity_pen=non_negative)
def diff_pruning_(
    module: nn.Module, sparsity_pen: float = 1.25e-7, low: float = -1.5, high: float = 1.5, alpha_init: float = 5.0,
    structured: bool = True,
) -> list[DiffPruningWeight]:
    """Reparametrize every weight and bias of the Linear, Conv, LayerNorm and Embedding layers of
    ``module`` as θ₀ + z ⊙ z_g ⊙ δ (θ₀ frozen); returns the parametrizations."""
    if not isinstance(module, nn.Module):
        raise RegularizerInputError(f"{WHO} is applied to an nn.Module, got {describe(module)}")
    _check_stretch(low, high)
    if not isinstance(structured, bool):
        raise RegularizerInputError(f"{WHO} expects structured to be True or False, got {structured!r}")
    layers = [m for m in module.modules() if isinstance(m, _KINDS)]
    if not layers:
        raise RegularizerInputError(f"{WHO} found no Linear, Conv, LayerNorm or Embedding layer in "
                                    f"{type(module).__name__}")
    out = []
    for layer in layers:
        for name in ("weight", "bias"):
            p = getattr(layer, name, None)
            if not isinstance(p, nn.Parameter) or parametrize.is_parametrized(layer, name):
                continue
            w = DiffPruningWeight(p, low, high, alpha_init, structured)
            parametrize.register_parametrization(layer, name, w)
            getattr(layer.parametrizations, name).original.requires_grad_(False)  # θ₀ stays the pretrained value
            out.append(w)
    return out


_SETTINGS = (
    "the transfer task's setting (MLP body 64-256-256 pre-trained on digits 0-4, 10 % of 5-9 to fine-tune, 60 "
    "epochs, epoch picked on validation) with the diff on the whole body and a dense new head; Adam 1e-3 for the "
    "diff and head, Adam 0.1 for the gates (official); λ = 1e-5 per entry, picked on dev seeds (BERT-scale "
    "1.25e-7 is for 110 M entries); no magnitude projection or fixed-mask re-fine-tuning (paper: BERT-large on "
    "GLUE); digits only (1.5 CPU-s per run)"
)
_TUNING = Tuning(arm=Tuned(
    "sparsity_pen", (1e-5, 1e-4, 1e-3), 1e-5,
    "digits seeds 0-2, rule fixed before the grid ran: the largest λ whose mean validation accuracy stays within "
    "one point of full fine-tuning (0.972); mean val / test / changed share: 1e-5 0.972 / 0.923 / 0.64, "
    "1e-4 0.944 / 0.889 / 0.51, 1e-3 0.889 / 0.789 / 0.74; full fine-tuning 0.972 / 0.906 / 0.74, head only "
    "0.694 / 0.608 / 0"))


@register
class DiffPruning(Registered, Configurable):
    """Diff pruning: θ = θ₀ + z ⊙ z_g ⊙ δ, θ₀ frozen, z hard-concrete gates, loss + λ·E‖z‖₀ (Guo et al. 2021).

    Apply it to the pretrained part of the model (not to a new head), then train δ and the
    head at the task's learning rate and the gates' log α at 0.1 (official)::

        dp = reglab.DiffPruning(sparsity_pen=1e-4)
        dp(model.body)
        opt = torch.optim.AdamW([{"params": dp.diff_parameters() + list(model.head.parameters())},
                                 {"params": dp.alpha_parameters(), "lr": 0.1}], lr=1e-3)
        loss = task_loss + dp.penalty()

    Defaults from the official script: λ = 1.25e-7 (per entry, summed over BERT's 110 M), stretch
    (−1.5, 1.5), log α₀ = 5, one extra gate per tensor (``structured``). Only the diffs and gates
    train; ``changed_fraction()`` is the share of entries the deterministic diff modifies.
    """

    name = "diff_pruning"
    kind = "weight"
    form = "reparametrization"
    paper = PAPER
    formula = "θ = θ₀ + z⊙z_g⊙δ,  z = clamp(sigmoid(log u − log(1−u) + log α)(r−l) + l, 0, 1);  + λ·Σ sigmoid(log α − log(−l/r))"
    function = diff_pruning_
    claims = (
        Claim(
            "Diff pruning matches full fine-tuning while modifying a share of the pretrained parameters "
            "(Guo et al. 2021: GLUE parity at 0.5 % of BERT's parameters)",
            task="diff_transfer", metric="test_accuracy", direction="higher", kind="non-inferiority",
            arm={"name": "diff_pruning", "sparsity_pen": 1e-5},
            min_effect=0.02, min_effect_reason="two points of test accuracy",
            baselines=(Baseline("full fine-tuning"),),
            control=Baseline("head only (body frozen, no diff)", task_args={"freeze_body": True},
                             why="fine-tuning no pretrained parameter at all; must fall short of full fine-tuning"),
            datasets=("digits",),
            settings=_SETTINGS,
            source="Guo et al. 2021, Sec. 5 and Table 1",
            tuning=_TUNING,
        ),
        Claim(
            "Diff pruning changes fewer pretrained parameters than full fine-tuning (the L0 penalty closes gates)",
            task="diff_transfer", metric="changed_fraction", direction="lower", role="mechanism",
            arm={"name": "diff_pruning", "sparsity_pen": 1e-5},
            min_effect=0.05, min_effect_reason="5 % of the body's entries",
            baselines=(Baseline("full fine-tuning"),),
            datasets=("digits",),
            settings=_SETTINGS,
            source="Guo et al. 2021, Sec. 5 (share of parameters modified)",
            tuning=_TUNING,
        ),
    )

    def __call__(self, module: nn.Module) -> nn.Module:
        self.__dict__.setdefault("_weights", []).extend(
            diff_pruning_(module, self.sparsity_pen, self.low, self.high, self.alpha_init, self.structured))
        return module

    apply = __call__

    def _need(self) -> list[DiffPruningWeight]:
        ws = self.__dict__.get("_weights", [])
        if not ws:
            raise RuntimeError(f"{WHO} is not applied to a model yet: call dp(module) first")
        return ws

    def penalty(self) -> torch.Tensor:
        """λ·E‖z‖₀ over every reparametrized tensor (add it to the loss)."""
        ws = self._need()
        total = ws[0].l0()
        for w in ws[1:]:
            total = total + w.l0()
        return self.sparsity_pen * total

    def diff_parameters(self) -> list[nn.Parameter]:
        return [w.delta for w in self._need()]

    def alpha_parameters(self) -> list[nn.Parameter]:
        return [p for w in self._need() for p in w.alpha_parameters()]

    def changed_fraction(self) -> float:
        """The share of reparametrized entries the deterministic diff ẑ⊙δ changes."""
        counts = [w.changed() for w in self._need()]
        return sum(c for c, _ in counts) / sum(n for _, n in counts)

    def __repr__(self) -> str:
        return (f"DiffPruning(sparsity_pen={self.sparsity_pen!r}, low={self.low!r}, high={self.high!r}, "
                f"alpha_init={self.alpha_init!r}, structured={self.structured!r})")
