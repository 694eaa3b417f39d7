"""Enveloping and homogeneity losses for imbalanced regression (Dong, Wu, Chen, Zou, Zhang, Zhou, CVPR 2025).

Both act on the *trace*: the L representations (L, D) ordered by target value
(the per-label centroids or surrogates of the label range), normalized to the
unit sphere.

* Enveloping: with P fixed random points on the sphere (Gaussian, normalized),
  L_env = 1 − mean_{p ∈ P} max_i cos(t_i, p): every direction of the sphere
  should have a trace point near it (the trace envelops the sphere).
* Homogeneity: with c_i = cos(t_i, t_{i+1}) of consecutive trace points,
  L_hom = α·Σ_i c_i + β·Var(c), α = −1, β = 0.1 (unbiased variance): a
  smooth trace whose steps are evenly spaced.

Pinned from the official code, yilei-wu/imbalanced-regression @ 375b52a:
``agedb-dir/dfr.py`` ``generate_gaussian_vectors`` (L42–61), ``uniformity_loss``
(L63–88), ``smooth_loss`` (L90–103) and ``dfr_simple`` (the trace = the
label-ordered, normalized centroids, completed with the surrogates);
``agedb-dir/evaluate.py`` L106–108 (weights 1e2 for the enveloping term,
1e-2 for the homogeneity term, 2000 points) and ``sts-b-dir/trainer.py``
(the points are drawn once before training).
"""

from __future__ import annotations

from typing import Any

import torch

from reglab.core import Claim, Paper, RegularizerInputError, RepresentationRegularizer, register
from reglab.ops import check_tensor, hyperparameters, integer, no_autocast, normalize_rows, prepare_batch

__all__ = ["enveloping", "homogeneity", "Enveloping", "Homogeneity"]

PAPER = Paper(
    "Improve Representation for Imbalanced Regression through Geometric Constraints",
    "Dong, Wu, Chen, Zou, Zhang, Zhou", 2025, arxiv="2503.00876", venue="CVPR",
    code="https://github.com/yilei-wu/imbalanced-regression")

_UNTESTABLE = Claim(
    "The enveloping and homogeneity constraints improve imbalanced regression, most in the few-shot target "
    "regions (AgeDB-DIR, IMDB-WIKI-DIR, STS-B-DIR)",
    testable=False,
    untestable_reason="needs a regression task with a skewed target distribution and per-region (many/medium/few-"
    "shot) errors, trained with the paper's surrogate framework; the lab has no imbalanced regression task",
)


def enveloping(trace: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``1 − mean_p max_i cos(t_i, p)`` over the fixed random ``points`` (P, D) (official ``uniformity_loss``)."""
    who = "Enveloping"
    t = prepare_batch(who, trace, arg="trace", min_batch=1, gather=False)
    check_tensor(who, points, arg="points", ndim=2)
    if points.shape[1] != t.shape[1]:
        raise RegularizerInputError(
            f"{who} expects points with the trace's dimension {t.shape[1]}, got shape {tuple(points.shape)}")
    with no_autocast(t):
        cos = normalize_rows(t) @ normalize_rows(points.to(t.dtype)).T  # (L, P)
        return 1.0 - cos.max(dim=0).values.mean()


def homogeneity(trace: torch.Tensor, *, alpha: float = -1.0, beta: float = 0.1) -> torch.Tensor:
    """``α·Σ_i cos(t_i, t_{i+1}) + β·Var_i cos(t_i, t_{i+1})`` (official ``smooth_loss``; unbiased variance)."""
    who = "Homogeneity"
    t = prepare_batch(who, trace, arg="trace", min_batch=3, gather=False)
    with no_autocast(t):
        x = normalize_rows(t)
        steps = (x[1:] * x[:-1]).sum(dim=1)
        return alpha * steps.sum() + beta * steps.var()


@register
class Enveloping(RepresentationRegularizer):
    """Enveloping loss: 1 − mean_p max_i cos(t_i, p): the target-ordered trace should cover the sphere.

    ``reg(trace)`` with the trace (L, D) of label-ordered representations
    (e.g. the per-label-bin centroids of the batch); P = 2000 random unit
    points are drawn at the first call from the global RNG and kept fixed
    (buffer ``points``, in ``state_dict``), as the official code draws them
    once before training; or pass ``points=``. Default weight 100
    (``--loss_w2``). No gather: the trace is whatever the caller builds.
    """

    name = "enveloping"
    paper = PAPER
    formula = "1 − mean_{p∈P} max_i cos(t_i, p), P fixed random unit points"
    function = enveloping
    num_inputs = 1
    call_args = ("points",)
    default_weight = 100.0
    takes_embedding_batches = False  # fixed random points: its own tests cover it
    claims = (_UNTESTABLE,)

    def __init__(self, weight: Any = 100.0, num_points: int = 2000):
        super().__init__(weight)
        self.num_points = integer(1)("Enveloping", "num_points", num_points)
        self.register_buffer("points", torch.zeros(0, 0))

    def penalty(self, trace: torch.Tensor, points: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        if points is None:
            check_tensor("Enveloping", trace, arg="trace", ndim=2)
            if self.points.shape != (self.num_points, trace.shape[1]):
                p = torch.randn(self.num_points, trace.shape[1], dtype=torch.float32, device=trace.device)
                self.points = p / p.norm(dim=1, keepdim=True)
            points = self.points
        return enveloping(trace, points)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        stored = state_dict.get(prefix + "points")
        if isinstance(stored, torch.Tensor) and stored.shape != self.points.shape:
            self.points = torch.empty_like(stored)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)


@register
class Homogeneity(RepresentationRegularizer):
    """Homogeneity loss: α·Σ_i cos(t_i, t_{i+1}) + β·Var(cos): a smooth, evenly spaced target-ordered trace.

    ``reg(trace)`` with the trace (L ≥ 3, D) ordered by target. Defaults
    α = −1, β = 0.1 (official ``smooth_loss``) and weight 0.01
    (``--loss_w3``).
    """

    name = "homogeneity"
    paper = PAPER
    formula = "α·Σ_i cos(t_i, t_{i+1}) + β·Var_i cos(t_i, t_{i+1})"
    function = homogeneity
    num_inputs = 1
    default_weight = 0.01
    takes_embedding_batches = False  # an ordered trace, not an exchangeable batch: its own tests cover it
    claims = (_UNTESTABLE,)
