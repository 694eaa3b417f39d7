"""L2 Init: regenerative regularization toward the initial parameters (Kumar, Marklund & Van Roy, 2023).

Their Sec. 3, Eq. 1: L(θ) = L_task(θ) + λ‖θ − θ₀‖₂², with θ₀ the parameters
at time step 0 (a fixed copy), over every parameter, added to the loss at
every gradient step (not decoupled). The attractor is θ₀, not 0 as in weight
decay, so units stay where the initialization left them trainable. Default
λ = 1e-2: "achieves the best performance across problems" (App. A.2.5, Fig. 12;
the optimum of Tables 3-4 except 5+1 CIFAR with SGD, λ = 1e-5).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import BEIR_ADAPTER_SETTINGS, AnchorState, Baseline, Baselines, Claim, Paper, register
from reglab.ops import add_scaled_, as_tensors, checked_total, squared_distance, squared_norm

__all__ = ["l2_init", "L2Init"]

PAPER = Paper(
    "Maintaining Plasticity in Continual Learning via Regenerative Regularization",
    "Kumar, S., Marklund, H. and Van Roy, B.", 2023, arxiv="2308.11958")


def l2_init(
    w: torch.Tensor | Sequence[torch.Tensor], anchor: torch.Tensor | Sequence[torch.Tensor]
) -> torch.Tensor:
    """L2 Init ``‖θ − θ₀‖²`` (Kumar et al., 2023, Eq. 1; no ½): the squared distance of the
    weights to their initial values ``anchor``, summed over tensors."""
    return squared_distance("l2_init", w, anchor)


@register
class L2Init(AnchorState):
    """L2 Init (regenerative regularization): R(θ) = ‖θ − θ₀‖², θ₀ = the initial parameters.

    Kumar, Marklund & Van Roy (2023), Eq. 1: L(θ) = L_task(θ) + λ‖θ − θ₀‖²,
    summed over **all** parameters, every step, no ½ (the gradient adds
    2λ(θ − θ₀)). Default λ = 1e-2, the value the paper finds best across
    its problems (App. A.2.5; 5+1 CIFAR with SGD preferred 1e-5).

    θ₀ is copied when the parameters are set up (``reglab.attach``
    calls ``setup``) into buffers ``anchor__<param name>``, so it lives
    in ``state_dict``; attach right after building the model. Used
    standalone, ``reg(w)`` anchors a tensor the first time it sees it (pass
    the parameters themselves, not copies), or pass ``anchor=`` yourself.
    The paper regularizes every parameter: attach with
    ``L2Init().on(exclude=None)``; a bare ``attach(model, L2Init())`` uses
    the library's default selection (no biases, no norm parameters).

    Related: with plain SGD, L2 Init equals a per-step shrink toward θ₀,
    ``θ ← (1 − 2ηλ)θ + 2ηλθ₀`` before the gradient step (App. A.3; the
    paper writes λ for our 2λ); with Adam the two differ, as L2 and
    decoupled weight decay do. Proximal map (``mode="prox"``):
    ``θ₀ + (θ − θ₀)/(1 + 2t)``.
    """

    name = "l2_init"
    formula = "R(θ) = ‖θ − θ₀‖²,  θ₀ = parameters at initialization (attach time)"
    paper = PAPER
    function = l2_init
    default_weight = 1e-2
    claims = (
        Claim(
            "L2 Init keeps a warm-started network plastic: trained on a growing dataset chunk after chunk, "
            "its final test accuracy beats plain warm starting",
            task="warm_start", metric="final_test_accuracy", direction="higher",
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(
                Baseline("plain warm start"),
                Baseline(
                    "warm start + L2 (5e-4)", {"name": "l2", "weight": 5e-4},
                    why="weight decay toward 0, the usual regularizer; L2 Init's difference is the attractor θ₀",
                ),
            ),
            datasets=("digits", "digits_half"),
            settings="the paper's setting is continual learning over non-stationary tasks (permuted / random-label "
            "MNIST, 5+1 CIFAR, continual ImageNet); the lab tests the growing-data warm-start setting of Ash & "
            "Adams (2020) instead, where loss of plasticity shows as the warm-start generalization gap. λ = 1e-2 "
            "(the paper's best), all parameters (exclude=None), Adam lr 1e-3 re-created each chunk; nothing tuned "
            "(developed on seeds 0-4)",
            source="Kumar et al. 2023, Sec. 5 and Fig. 2-4 (L2 Init keeps plasticity where plain training loses it)",
        ),
        Claim(
            "L2 toward the initialization (the identity adapter, i.e. the pretrained encoder) improves the test "
            "nDCG@10 of a retrieval adapter fine-tuned on a few hundred queries",
            task="beir_adapter", metric="ndcg10", direction="higher",
            min_effect=0.01, min_effect_reason="0.01 nDCG@10, the issue's δ for BEIR comparisons",
            baselines=(Baselines.INFONCE_ADAPTER,), datasets=("scifact",),
            settings=BEIR_ADAPTER_SETTINGS + "; λ = 1e-2 (the paper's best) on every adapter parameter; the "
            "paper's setting is continual learning, here the anchor is the pretrained map (as L2-SP anchors "
            "fine-tuning), and the plain baseline already stops early on validation",
            source="Kumar et al. 2023, Sec. 3 (regularizing toward θ₀ keeps the initialization's useful "
            "properties while training)",
        ),
    )

    def penalty(self, w: torch.Tensor | Sequence[torch.Tensor], anchor: torch.Tensor | None = None) -> torch.Tensor:
        if anchor is not None:
            return l2_init(w, anchor)
        ws = as_tensors("l2_init", w, upcast=False)
        return l2_init(ws, [self.state_of(t) for t in ws])

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        anchor = self.state_of(w)
        w.copy_(anchor + (w - anchor) / (1.0 + 2.0 * step_size))

    def grad_(self, tensors, grads, alpha):
        """``g += α·2(θ − θ₀)`` (the gradient of ‖θ − θ₀‖²); returns ‖θ − θ₀‖² from the same differences."""
        ws = as_tensors("l2_init", list(tensors))
        diffs = torch._foreach_sub(ws, [self.state_of(t).to(w.dtype) for t, w in zip(tensors, ws)])
        value = checked_total("l2_init", squared_norm(diffs), ws)
        add_scaled_(grads, diffs, 2.0 * alpha)
        return value
