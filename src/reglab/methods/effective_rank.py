"""Effective rank (Roy & Vetterli, EUSIPCO 2007): exp of the entropy of the normalized singular values.

p_k = σ_k/Σσ + ε over the singular values of the batch, H = −Σ p log p,
erank = exp(H) ∈ [1, min(n, d)]; ε = 1e-7 as in RankMe (Garrido et al.,
2023, Eq. 1), which measures the same quantity on embeddings. The
regularizer adds L = −H, so minimizing raises the effective rank.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from reglab.core import Paper, RepresentationRegularizer, register, ssl_claims
from reglab.core.paper import PARTIAL_COLLAPSE, PARTIAL_COLLAPSE_SETTINGS
from reglab.ops import no_autocast, prepare_batch, spectrum_entropy

PAPER = Paper(
    "The effective rank: A measure of effective dimensionality", "Roy, Vetterli", 2007,
    venue="EUSIPCO", doi="10.5281/zenodo.40472")


class _RankTerms(NamedTuple):
    entropy: torch.Tensor
    effective_rank: torch.Tensor


def spectral_entropy(z: torch.Tensor, *, eps: float = 1e-7, gather: bool = True) -> torch.Tensor:
    """Entropy of the normalized singular values ``p_k = σ_k/Σσ + ε`` of the
    batch (Roy & Vetterli, 2007; ε as in RankMe, Garrido et al., 2023)."""
    z = prepare_batch("EffectiveRank", z, gather=gather)
    with no_autocast(z):
        s = torch.linalg.svdvals(z)
        # clamp: an all-zero batch gives a uniform-eps spectrum instead of NaN, with no host sync
        p = s / s.sum().clamp_min(torch.finfo(s.dtype).tiny) + eps
        return spectrum_entropy(p)


def effective_rank(z: torch.Tensor, **options: Any) -> torch.Tensor:
    """``exp(spectral_entropy(z))``: between 1 and min(n, d); ``options`` as ``spectral_entropy``."""
    return spectral_entropy(z, **options).exp()


@register
class EffectiveRank(RepresentationRegularizer):
    """Effective rank: L = −H(p), p_k = σ_k/Σσ + ε over the batch's singular
    values, so minimizing raises the effective rank exp(H) (Roy & Vetterli).

    ε = 1e-7 as in RankMe (Garrido et al., 2023, Eq. 1), which measures the
    same quantity on embeddings. ``components()`` reports the entropy and the
    effective rank exp(H).

    Roy & Vetterli (2007), "The effective rank: A measure of effective
    dimensionality", EUSIPCO.
    """

    name = "effective_rank"
    claims = ssl_claims(
        "Maximizing the entropy of the singular values raises the embeddings' effective rank",
        "A higher effective rank gives a better linear probe (RankMe's premise)",
        settings="two-view SSL on 8×8 digits (MLP encoder 64-256-32, Adam), −H next to the invariance MSE, "
            "weight 1 (not a paper value: Roy & Vetterli define the measure, RankMe uses it to select models, "
            "neither trains with it); " + PARTIAL_COLLAPSE_SETTINGS + " (RankMe measures the embeddings)",
        task_args=PARTIAL_COLLAPSE,
        source_mechanism="Roy & Vetterli 2007 (definition); the penalty is −H, so this checks it does what its formula "
            "says",
        source_outcome="Garrido et al. 2023 (RankMe), Sec. 4: rank correlates with downstream performance",
    )
    paper = PAPER
    formula = "−H(σ/Σσ + ε), erank = exp(H)"
    function = spectral_entropy

    def components(self, z: torch.Tensor) -> _RankTerms:
        h = spectral_entropy(z, **self.function_kwargs())
        return _RankTerms(h, h.exp())

    def penalty(self, z: torch.Tensor) -> torch.Tensor:
        return -spectral_entropy(z, **self.function_kwargs())
