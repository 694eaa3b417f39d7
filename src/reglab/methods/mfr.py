"""Mutual feature regularization (MFR) across parallel sparse autoencoders (Marks, Paren, Krueger, Barez, 2024).

Several SAEs are trained side by side on the same activations; each one's loss gets the consensus term

    R = mean_{pairs (a, b)} (1 − MMCS(W_a, W_b)),   MMCS(A, B) = mean_k cos(a_{π(k)}, b_k),

the columns of A and B (d, m) being the SAEs' features (``encoder.weight.t()``), normalized, and π the
one-to-one matching of A's features to B's that maximizes the total cosine (Hungarian algorithm on
1 − cos, computed without gradient; the gradient flows through the matched cosines). Features found by
several SAEs are taken to be real features of the input. Pinned from the official code,
luke-marks0/mutual-feature-regularization @ e9ec664: ``utils/sae_trainer.py``
``calculate_consensus_loss`` (mean over ``itertools.combinations``, a cosine warm-up over
``warmup_steps`` = 100) and ``utils/general_utils.py`` ``calculate_MMCS`` (``linear_sum_assignment``);
weight 0.005 in ``configs/gpt2.yaml`` (``ensemble_consistency_weight``).
"""

from __future__ import annotations

import itertools

import torch

from reglab.core import Claim, Paper, Regularizer, RegularizerInputError, register
from reglab.ops import check_tensor, has_data, no_autocast, normalize_rows

__all__ = ["mutual_feature_regularization", "MutualFeatureRegularization"]

PAPER = Paper(
    "Enhancing Neural Network Interpretability with Feature-Aligned Sparse Autoencoders",
    "Marks, Paren, Krueger, Barez", 2024, arxiv="2411.01220",
    code="https://github.com/luke-marks0/mutual-feature-regularization")

WHO = "MutualFeatureRegularization"


def _matching(cos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError as e:  # pragma: no cover - scipy ships with the lab extra
        raise ImportError(f"{WHO} needs scipy for the Hungarian matching: pip install scipy") from e
    rows, cols = linear_sum_assignment((1.0 - cos.detach()).cpu().double().numpy())
    return torch.as_tensor(rows, device=cos.device), torch.as_tensor(cols, device=cos.device)


def mutual_feature_regularization(*dictionaries: torch.Tensor) -> torch.Tensor:
    """``mean_{pairs} (1 − MMCS)`` over two or more feature dictionaries (d, m), one column per feature
    (``encoder.weight.t()`` of each SAE), with the Hungarian-matched mean cosine as the MMCS."""
    if len(dictionaries) < 2:
        raise RegularizerInputError(f"{WHO} needs the dictionaries of at least 2 SAEs, got {len(dictionaries)}")
    ds = [check_tensor(WHO, w, arg=f"dictionary {i}", ndim=2) for i, w in enumerate(dictionaries)]
    if len({w.shape[0] for w in ds}) != 1:
        raise RegularizerInputError(
            f"{WHO} expects dictionaries over the same input dimension (rows), got shapes {[tuple(w.shape) for w in ds]}")
    dtype = torch.float64 if any(w.dtype == torch.float64 for w in ds) else torch.float32
    if not all(has_data(w) for w in ds):  # meta / fake tensors: the shape of the result only
        return sum(w.to(dtype).sum() for w in ds) * 0.0
    with no_autocast(ds[0]):
        cols = [normalize_rows(w.to(dtype).T) for w in ds]  # features as unit rows
        terms = []
        for a, b in itertools.combinations(cols, 2):
            cos = a @ b.T
            i, j = _matching(cos)
            terms.append(1.0 - cos[i, j].mean())
        return torch.stack(terms).mean()


@register
class MutualFeatureRegularization(Regularizer):
    """Mutual feature regularization: 1 − the Hungarian-matched mean cosine between the features of
    parallel SAEs, averaged over pairs.

    ``reg(sae1.encoder.weight.t(), sae2.encoder.weight.t(), ...)``; add it to every SAE's loss (the
    official trainer adds the same term to each). Default weight 0.005 (the GPT-2 config); the
    official code warms it up with a half-cosine over 100 steps (use a reglab schedule on ``weight``).
    Needs scipy (Hungarian matching, no gradient).
    """

    name = "mutual_feature_regularization"
    kind = "weight"
    form = "penalty"
    num_inputs = 2
    paper = PAPER
    formula = "mean_{(a,b)} (1 − mean_k cos(W_a[:, π(k)], W_b[:, k])), π the Hungarian matching"
    function = mutual_feature_regularization
    default_weight = 0.005
    claims = (
        Claim(
            "Training SAEs in parallel with mutual feature regularization lowers reconstruction loss and "
            "recovers more of the true features (synthetic, GPT-2 Small, EEG)",
            testable=False,
            untestable_reason="needs several sparse autoencoders trained jointly on a model's activations or on "
            "synthetic superposition data with known features; no lab task trains SAEs",
        ),
    )
