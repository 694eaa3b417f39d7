"""Whitening (BERT-whitening, Su et al. 2021; WhiteningBERT, Huang et al. 2021).

Fit μ = mean(X) and Σ = Cov(X) = UΛUᵀ (population covariance, float64, see
``reglab.embeddings.base``), then

* PCA whitening (Su et al. 2021 §2): x̃ = (x − μ) U Λ^{-1/2}, optionally
  keeping only the top-k columns (their dimensionality reduction,
  BERT-whitening-256 for 768-d BERT);
* ZCA whitening: x̃ = (x − μ) U Λ^{-1/2} Uᵀ, the whitening closest to the
  identity.

``eps`` adds ε to every eigenvalue (Λ + εI) and ``shrinkage`` α blends Σ
toward a scaled identity, (1−α)Σ + α·tr(Σ)/d·I; with both at 0 (the default)
the whitened fitted data have exactly identity covariance on the span of the
data: null directions (eigenvalues at round-off level) are dropped, not
amplified (see ``Whitening``). Official code:
https://github.com/bojone/BERT-whitening.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from reglab.core import Paper, RegularizerInputError, register
from reglab.embeddings.base import EmbeddingTransform, beir_claim, beir_index, centered_chunks, sts_claim
from reglab.ops import check_choice, check_positive, check_probability, eigh_descending

__all__ = ["Whitening"]

PAPER = Paper(
    "Whitening Sentence Representations for Better Semantics and Faster Retrieval", "Su, Cao, Liu, Ou", 2021,
    arxiv="2103.15316", code="https://github.com/bojone/BERT-whitening")


@register
class Whitening(EmbeddingTransform):
    """Whitening (WhiteningBERT / BERT-whitening): decorrelate and equalize variances.

    Fit μ = mean(X) and Σ = Cov(X) = UΛUᵀ (population covariance, float64).

    * ``mode="pca"`` (BERT-whitening, Su et al. 2021 §2; WhiteningBERT,
      Huang et al. 2021): x̃ = (x − μ) U Λ^{-1/2}. With ``k`` only the first
      k columns are kept (the top-k variance directions), Su et al.'s
      dimensionality reduction (BERT-whitening-256 for 768-d BERT).
    * ``mode="zca"``: x̃ = (x − μ) U Λ^{-1/2} Uᵀ, the whitening closest to
      the identity (symmetric matrix); with ``k`` it whitens inside the top-k
      subspace and drops the rest, keeping the input dimension.

    ``eps`` is added to every eigenvalue (Λ + εI) and ``shrinkage`` α blends
    Σ toward a scaled identity, (1−α)Σ + α·tr(Σ)/d·I; both default to 0, so
    the whitened fitted data have exactly identity covariance on their span.

    **Null directions** (the default, ``eps = shrinkage = 0``): eigenvalues at
    most 1e-10 of the largest are round-off of an exactly rank-deficient
    covariance (collinear or constant dimensions), not variance; their
    directions get scale 0 (PCA: those output columns are 0; ZCA: they are
    projected out) instead of having their round-off blown up to unit
    variance. Why this default: common sentence encoders are rank-deficient.
    all-MiniLM-L6-v2 (the README's encoder) spans 381 of its 384 dimensions:
    on 1,200 STS sentences the 3 smallest covariance eigenvalues are ~1e-18
    of the largest, the smallest real one 5e-4 of it. Refusing them (this
    class's earlier default) made ``Whitening()`` fail on it, and a
    ``GridSearchCV`` over ``k`` score NaN at ``k=None``; dropping them gives
    the same result as ``k=rank`` (cosines unchanged by zero columns), and
    ``eps``/``shrinkage`` remain for a soft floor. With no more samples than
    kept dimensions (n ≤ k, or n ≤ d without ``k``) ``fit`` still refuses and
    says to set ``k`` or ``shrinkage``/``eps``: there even the nonzero
    eigenvalues are too few samples' noise.

    ``precision`` (not in the papers; speed vs accuracy for float32 input):
    the covariance is always accumulated in float64 from row chunks centered
    at their own mean; the per-chunk products run in float32 for float32 input
    (scikit-learn PCA's speed, one BLAS symmetric update) or in float64 (about
    twice the time). Float32 products err by ≈ ε₃₂·(tr Σ/d)/λ relative along an
    eigenvalue λ, which whitening amplifies. ``"auto"`` (default) uses float32
    products and redoes them in float64 when that predicted error exceeds 1e-5
    for a kept direction (ill-conditioned spectra); ``"float32"`` never redoes
    them; ``"float64"`` always uses float64. float64 input always computes in
    float64.
    """

    name = "whitening"
    claims = (
        sts_claim(
            "Whitening the sentence embeddings improves STS correlation (static word vectors)", "static",
            source="Su et al. 2021, Table 1 (whitening improves BERT/GloVe-style embeddings on STS)",
            settings="mode and k are this class's defaults (full PCA whitening)",
        ),
        sts_claim(
            "Whitening the sentence embeddings improves STS correlation (a contrastive sentence encoder)", "minilm",
            arm={"k": 256},
            source="Su et al. 2021, Table 1 (whitening-256; and its note that supervised encoders gain less)",
            settings="k = 256 kept dimensions, the paper's whitening-k setting (MiniLM's 384-d covariance has "
            "3 null directions, which full whitening drops)",
        ),
        beir_claim(
            "Whitening (to 256 dimensions) improves retrieval with a contrastive sentence encoder",
            arm={"k": 256},
            baselines=(beir_index("float32 (exact)", "exact", "the uncompressed index: no post-processing"),),
            settings="k = 256 (the paper's whitening-256), fitted on the corpus; queries get the same transform",
            source="Su et al. 2021 (title: better semantics and faster retrieval; Sec. 4 whitening-k)",
        ),
    )
    paper = PAPER
    formula = "x̃ = (x − μ) U Λ^{-1/2} [:, :k]  (PCA);  (x − μ) U Λ^{-1/2} Uᵀ  (ZCA)"
    _state_keys = ("mean", "matrix", "eigenvalues")
    # Eigenvalues at most this fraction of the largest count as zero (float64 round-off): null
    # directions, given scale 0 when neither eps nor shrinkage is set.
    _rank_tol: ClassVar[float] = 1e-10
    # precision="auto": the largest predicted relative error of float32 products along a
    # kept direction before the covariance is recomputed with float64 products.
    _float32_rtol: ClassVar[float] = 1e-5

    def __init__(
        self, mode: str = "pca", k: int | None = None, eps: float = 0.0, shrinkage: float = 0.0,
        precision: str = "auto",
    ):
        who = type(self).__name__
        check_choice(who, "mode", mode, ("pca", "zca"))
        check_choice(who, "precision", precision, ("auto", "float32", "float64"))
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
            raise RegularizerInputError(f"{who} expects k to be a positive int or None, got {k!r}")
        check_positive(who, "eps", eps, allow_zero=True)
        check_probability(who, "shrinkage", shrinkage, inclusive_one=True)
        self.mode = mode
        self.k = k
        self.eps = eps
        self.shrinkage = shrinkage
        self.precision = precision

    def _weights_for_fit(self, x: np.ndarray, **fit_params: Any) -> torch.Tensor | None:
        super()._fit(x, **fit_params)  # rejects unknown arguments
        return None

    def _fit(self, x, **fit_params):
        p = self._weights_for_fit(x, **fit_params)
        n, d = x.shape
        if self.k is not None and self.k > d:
            raise RegularizerInputError(
                f"{self._who} cannot keep k={self.k} dimensions of {d}-dimensional embeddings"
            )
        keep = self.k or d
        single = x.dtype != np.float64 and self.precision != "float64"
        mu, evals, evecs = self._spectrum(x, p, np.float32 if single else np.float64)
        if single and self.precision == "auto":
            # float32 products err by ≈ ε₃₂·(tr Σ/d)/λ relative along λ (see streaming_moments);
            # where that exceeds _float32_rtol for a kept direction, redo them in float64.
            lam = float(evals[keep - 1]) + self.eps
            predicted = 2.0**-23 * float(evals.clamp_min(0).mean()) / lam if lam > 0 else float("inf")
            if not predicted <= self._float32_rtol:
                mu, evals, evecs = self._spectrum(x, p, np.float64)
        regularized = self.eps > 0 or self.shrinkage > 0
        if not regularized:
            if n <= keep:
                raise RegularizerInputError(
                    f"{self._who} needs more samples than kept dimensions: got {n} samples of "
                    f"dimension {d} for {keep} whitened dimensions (the covariance has rank ≤ {n - 1}); "
                    f"keep fewer dimensions (k ≤ {max(n - 1, 1)}), or pass shrinkage>0 or eps>0"
                )
        scale = (evals[:keep] + self.eps).clamp_min(torch.finfo(evals.dtype).tiny).rsqrt()
        if not regularized:
            null = evals[:keep] <= self._rank_tol * evals[0].clamp_min(torch.finfo(evals.dtype).tiny)
            if bool(null.all()):  # constant embeddings: whitening would map every vector to 0
                raise RegularizerInputError(
                    f"{self._who} found no non-negligible eigenvalues: the {n} embeddings have no variance in "
                    f"any direction (largest eigenvalue {float(evals[0]):.3g}); nothing to whiten"
                )
            scale = scale.masked_fill(null, 0.0)  # collinear/constant directions: dropped, not amplified
        u = evecs[:, :keep]
        matrix = u * scale if self.mode == "pca" else (u * scale) @ u.T
        return {"mean": mu, "matrix": matrix, "eigenvalues": evals}

    def _spectrum(self, x, p, dtype):
        """Mean, and eigenvalues (descending) / eigenvectors of the (shrunk) covariance."""
        mu, cov = self._moments(x, p, dtype=dtype)
        if self.shrinkage:
            d = cov.shape[0]
            target = torch.eye(d, dtype=cov.dtype) * (torch.trace(cov) / d)
            cov = (1.0 - self.shrinkage) * cov + self.shrinkage * target
        evals, evecs = eigh_descending(cov)
        return mu, evals, evecs

    def _transform(self, x):
        matrix = self._state["matrix"].numpy().astype(x.dtype)
        out = np.empty((x.shape[0], matrix.shape[1]), dtype=x.dtype)
        for rows, xc in centered_chunks(x, self._state["mean"]):
            np.matmul(xc, matrix, out=out[rows])
        return out
