"""ARoW: Anti-Robust Weighted regularization (Yang, Kong & Kim, ICML 2023: "Improving Adversarial
Robustness by Putting More Regularizations on Less Robust Samples").

The TRADES robustness term KL(p(x) ‖ p(x_adv)), weighted per sample by 1 − p_y(x_adv), the model's
probability of missing the true class at the adversarial point, so the samples that are least robust
are regularized most. Pinned from the official code (dyoony/ARoW, commit 0039411e, ``loss.py``
``ARoW_loss``: ``true_probs`` = the adversarial softmax at the label (not detached),
``rob_loss = (kl_div((adv_probs + 1e-12).log(), nat_probs).sum(1) · (1 − true_probs)).mean()``;
``main.py``: ``--lamb 6`` default, README: ``--lamb 7 --ls 0.2`` for the paper's 2λ = 7 with
label-smoothed cross-entropy, ε_ls = 0.2, as the supervised term). This class is the weighted
robustness term; the supervised term is ``label_smoothing`` (ε = 0.2) with
``reglab.functional.soft_cross_entropy``, and the adversarial inputs come from the user's attack
(the paper: PGD-10 maximizing the KL, as TRADES).
"""

from __future__ import annotations

import torch

from reglab.core import Claim, Paper, Regularizer, RegularizerInputError, register
from reglab.ops import check_logits, has_data

__all__ = ["arow", "ARoW"]

PAPER = Paper(
    "Improving Adversarial Robustness by Putting More Regularizations on Less Robust Samples",
    "Yang, Kong, Kim", 2023, arxiv="2206.03353", venue="ICML", code="https://github.com/dyoony/ARoW")

WHO = "ARoW"


def arow(logits: torch.Tensor, adv_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``mean_i KL(p(x_i) ‖ p(x_i^adv))·(1 − p_{y_i}(x_i^adv))`` from natural and adversarial logits
    (the official ``ARoW_loss`` robustness term: 1e-12 inside the log of the adversarial probabilities,
    the weight not detached)."""
    check_logits(WHO, logits)
    check_logits(WHO, adv_logits, arg="adversarial logits")
    if adv_logits.shape != logits.shape:
        raise RegularizerInputError(f"{WHO} expects natural and adversarial logits of the same shape, got "
                                    f"{tuple(logits.shape)} and {tuple(adv_logits.shape)}")
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.shape != logits.shape[:1]:
        raise RegularizerInputError(f"{WHO} expects integer labels of shape {tuple(logits.shape[:1])}, got "
                                    f"{type(y).__name__ if not isinstance(y, torch.Tensor) else (y.dtype, tuple(y.shape))}")
    if y.numel() and has_data(y) and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
        raise RegularizerInputError(f"{WHO}: labels must lie in [0, {logits.shape[1]})")
    nat = torch.softmax(logits, dim=1)
    adv = torch.softmax(adv_logits, dim=1)
    # F.kl_div(log q, p) = Σ p (log p − log q), with 0·log 0 = 0 as torch's xlogy; log p taken at 1 where p
    # underflows to 0 (far-apart or 1e20-scale logits), so the gradient there is 0, not 0·(−inf) = NaN
    nat_log = torch.where(nat > 0, nat, torch.ones_like(nat)).log()
    kl = (nat * nat_log - nat * (adv + 1e-12).log()).sum(dim=1)
    true_adv = adv.gather(1, y.long()[:, None])[:, 0]
    return (kl * (1 - true_adv)).mean()


@register
class ARoW(Regularizer):
    """ARoW: the TRADES KL term weighted by each sample's adversarial error probability.

    ``reg(logits, adv_logits, y)`` returns ``λ·mean_i KL(p(x_i) ‖ p(x_i^adv))·(1 − p_{y_i}(x_i^adv))``
    (Yang et al., 2023; the official ``loss.py``); add it to the label-smoothed cross-entropy on the natural inputs
    (ε = 0.2: ``soft_cross_entropy(logits, label_smoothing(y, C))`` with ``LabelSmoothing(epsilon=0.2)``).
    λ = 7 is the official code's (``--lamb 7``; the paper writes it as 2λ with λ = 3.5). The weight
    1 − p_y(x_adv) is differentiated too, as in the official ``loss.py``. The adversarial inputs are
    the caller's (TRADES-style PGD on the KL in the paper).
    """

    name = "arow"
    kind = "output"
    form = "penalty"
    num_inputs = 3
    paper = PAPER
    formula = "R = mean_i KL(p(x_i) ‖ p(x_i^adv)) · (1 − p_{y_i}(x_i^adv))"
    default_weight = 7.0
    claims = (
        Claim(
            "ARoW improves both clean and PGD accuracy over TRADES",
            testable=False,
            untestable_reason="the lab has no adversarial-training task: the claim needs PGD-10 training and "
            "PGD/AutoAttack evaluation of a CNN (the paper: ResNet-18/WRN on CIFAR-10/100, SVHN, FMNIST); the "
            "lab's robustness task measures Gaussian-noise accuracy of models trained without an attack",
            source="Yang et al. 2023, Tables 2-4 (ARoW vs TRADES, MART, HAT)",
        ),
    )

    def __init__(self, weight: float = 7.0):
        super().__init__(weight)

    def penalty(self, logits: torch.Tensor, adv_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return arow(logits, adv_logits, y)
