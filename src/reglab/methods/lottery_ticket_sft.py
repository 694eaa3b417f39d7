"""Lottery-ticket sparse fine-tuning, LT-SFT (Ansell, Ponti, Korhonen & Vulić, ACL 2022).

Two phases per fine-tuning (official code: cambridgeltl/composable-sft, ``src/sft/lt_sft.py``,
``LotteryTicketSparseFineTuner.train`` and ``unfreeze_k_most_changed_params``; ``src/sft/trainer.py``
``training_step``; defaults in ``src/sft/sft_args.py``):

1. full fine-tuning from θ₀ to θ₁;
2. keep the K entries with the largest |θ₁ − θ₀| (threshold = the K-th largest |Δ|, entries with
   |Δ| ≥ threshold kept: ties may keep a few more), reset every parameter to θ₀, and fine-tune
   again with the gradients of all other entries multiplied by 0 (``p.grad *= mask``).

The result φ = θ₂ − θ₀ is a sparse diff that composes additively with others (θ₀ + φ_task +
φ_lang). K = ``proportion``·(number of selected entries), ``ft_params_proportion`` = 0.01 by
default; one selection iteration (``n_ft_iterations`` = 1); no ℓ1 pull toward θ₀ (``full_l1_reg`` =
``sparse_l1_reg`` = 0, their defaults). The official trainer masks every parameter of the model
(``maskable_params`` = all); here the selection is the module you pass (e.g. the pretrained body,
leaving a new head dense). Use a fresh optimizer for phase 2 (as the official code does) and no
decoupled weight decay on the masked entries (Adam with zero gradients leaves them still; AdamW's
decay would not).
"""

from __future__ import annotations

import torch
from torch import nn

from reglab.core import Baseline, Claim, Paper, RegularizerInputError, register
from reglab.core.config import Configurable
from reglab.core.registry import Registered
from reglab.ops import hyperparameters, probability
from reglab.ops.validation import describe

__all__ = ["most_changed_masks", "LotteryTicketSFT"]

PAPER = Paper(
    "Composable Sparse Fine-Tuning for Cross-Lingual Transfer", "Ansell, A., Ponti, E. M., Korhonen, A. and "
    "Vulić, I.", 2022, arxiv="2110.07560", venue="ACL", code="https://github.com/cambridgeltl/composable-sft")

WHO = "LotteryTicketSFT"


@torch.no_grad()
def most_changed_masks(
    current: list[torch.Tensor], original: list[torch.Tensor], k: int
) -> list[torch.Tensor]:
    """Keep-masks (bool) of the entries with |current − original| ≥ the k-th largest |Δ| over all tensors."""
    if len(current) != len(original) or not current:
        raise RegularizerInputError(f"{WHO} needs the same non-empty list of current and original tensors")
    deltas = [(c.detach() - o).abs() for c, o in zip(current, original)]
    flat = torch.cat([d.flatten() for d in deltas])
    if not 1 <= k <= flat.numel():
        raise RegularizerInputError(f"{WHO}: cannot keep {k} of {flat.numel()} entries")
    thresh = flat.double().kthvalue(flat.numel() - k + 1).values
    return [d.double() >= thresh for d in deltas]


@hyperparameters(WHO, proportion=probability)
def _config(proportion: float = 0.01) -> None:
    """The constructor's signature (LT-SFT's one hyperparameter)."""


@register
class LotteryTicketSFT(Registered, Configurable):
    """LT-SFT: full fine-tune, keep the K most-changed entries, reset to θ₀, fine-tune only those.

    ::

        lt = reglab.LotteryTicketSFT(proportion=0.01)
        lt.begin(model.body)            # remember θ₀ of the selected part
        train(model)                    # phase 1: full fine-tuning
        lt(model.body)                  # keep top-K |θ₁ − θ₀|, reset to θ₀, mask the other gradients
        train(model)                    # phase 2, with a fresh optimizer (no weight decay on the body)
        diff = lt.diff(model.body)      # φ = θ₂ − θ₀, zero outside the mask

    ``proportion`` = 0.01 (official ``ft_params_proportion``). ``lt.release()`` removes the
    gradient hooks.
    """

    name = "lottery_ticket_sft"
    kind = "weight"
    form = "operation"
    paper = PAPER
    formula = "M = 1[|θ₁ − θ₀| ≥ top-K];  θ ← θ₀;  ∇θ ← M ⊙ ∇θ;  φ = θ₂ − θ₀"
    function = _config
    claims = (
        Claim(
            "LT-SFT matches full fine-tuning while changing 1 % of the pretrained parameters (Ansell et al. "
            "2022: sparse fine-tunings compete with full fine-tuning and beat adapters)",
            task="diff_transfer", metric="test_accuracy", direction="higher", kind="non-inferiority",
            arm={"name": "lottery_ticket_sft", "proportion": 0.01},
            min_effect=0.02, min_effect_reason="two points of test accuracy",
            baselines=(Baseline("full fine-tuning"),),
            control=Baseline("head only (body frozen, no diff)", task_args={"freeze_body": True},
                             why="fine-tuning no pretrained parameter at all; must fall short of full fine-tuning"),
            datasets=("digits",),
            settings="the diff_transfer task (the transfer task's MLP body pre-trained on digits 0-4, 10 % of 5-9 "
            "to fine-tune, epoch picked on validation); phase 1 and phase 2 each run the task's 60 epochs "
            "(official: equal step budgets per phase), Adam 1e-3 recreated for phase 2; K = 1 % of the body "
            "(official default); cross-lingual composition not tested (paper: XLM-R, MasakhaNER, UD, AmericasNLI); "
            "proportion not tuned",
            source="Ansell et al. 2022, Sec. 3 and 5",
        ),
    )

    def _params(self, module: nn.Module) -> list[nn.Parameter]:
        if not isinstance(module, nn.Module):
            raise RegularizerInputError(f"{WHO} is applied to an nn.Module, got {describe(module)}")
        ps = [p for p in module.parameters() if p.requires_grad]
        if not ps:
            raise RegularizerInputError(f"{WHO} found no trainable parameter in {type(module).__name__}")
        return ps

    def begin(self, module: nn.Module) -> None:
        """Remember θ₀ of ``module``'s trainable parameters (before phase 1)."""
        self.__dict__["_theta0"] = [p.detach().clone() for p in self._params(module)]

    @torch.no_grad()
    def __call__(self, module: nn.Module) -> nn.Module:
        """After phase 1: select the top-K |θ₁ − θ₀|, reset to θ₀ and mask the other entries' gradients."""
        theta0 = self.__dict__.get("_theta0")
        if theta0 is None:
            raise RuntimeError(f"{WHO}: call begin(module) before the full fine-tuning phase")
        ps = self._params(module)
        if len(ps) != len(theta0) or any(p.shape != t.shape for p, t in zip(ps, theta0)):
            raise RegularizerInputError(f"{WHO}: the module's parameters are not those begin() saw")
        total = sum(p.numel() for p in ps)
        k = max(int(self.proportion * total), 1)
        masks = most_changed_masks(list(ps), theta0, k)
        self.release()
        hooks = []
        for p, t, m in zip(ps, theta0, masks):
            p.copy_(t)
            keep = m.to(p.dtype)
            hooks.append(p.register_hook(lambda g, keep=keep: g * keep))
        self.__dict__["_masks"] = masks
        self.__dict__["_hooks"] = hooks
        return module

    apply = __call__

    def masks(self) -> list[torch.Tensor]:
        return list(self.__dict__.get("_masks") or [])

    @torch.no_grad()
    def diff(self, module: nn.Module) -> list[torch.Tensor]:
        """φ = θ − θ₀ per parameter (zero outside the mask after phase 2)."""
        theta0 = self.__dict__.get("_theta0")
        if theta0 is None:
            raise RuntimeError(f"{WHO}: call begin(module) first")
        return [p.detach() - t for p, t in zip(self._params(module), theta0)]

    def release(self) -> None:
        """Remove the gradient masks."""
        for h in self.__dict__.get("_hooks") or []:
            h.remove()
        self.__dict__["_hooks"] = []

    def __repr__(self) -> str:
        return f"LotteryTicketSFT(proportion={self.proportion!r})"
