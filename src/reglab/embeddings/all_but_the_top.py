"""All-but-the-top (Mu & Viswanath 2018, ICLR): remove the mean and the top D principal directions.

Algorithm 1: μ = mean(X); x̃ = x − μ; u_1..u_D = the top D principal
components of the centered data; x' = x̃ − Σ_{i≤D} (u_iᵀ x̃) u_i. The
output keeps the input dimension. Default D = max(1, round(d/100)), the
paper's rule of thumb (§3, "D ≈ d/100").
"""

from __future__ import annotations

import numpy as np

from reglab.core import Paper, RegularizerInputError, register
from reglab.embeddings.base import EmbeddingTransform, beir_claim, beir_index, centered_chunks, sts_claim
from reglab.ops import eigh_descending

__all__ = ["AllButTheTop"]

PAPER = Paper(
    "All-but-the-Top: Simple and Effective Postprocessing for Word Representations", "Mu, Viswanath", 2018,
    arxiv="1702.01417", venue="ICLR")


@register
class AllButTheTop(EmbeddingTransform):
    """All-but-the-top: remove the mean and the top D principal directions.

    Mu & Viswanath (2018), Algorithm 1: μ = mean(X); x̃ = x − μ; u_1..u_D =
    the top D principal components of the centered data;
    x' = x̃ − Σ_{i≤D} (u_iᵀ x̃) u_i. The output keeps the input dimension
    (the D directions are projected out, not dropped from the basis).
    Default D = max(1, round(d/100)), the paper's rule of thumb (§3, "D ≈
    d/100"); pass ``n_components`` to fix it.
    """

    name = "all_but_the_top"
    claims = (
        sts_claim(
            "Removing the mean and the top principal directions improves STS correlation (static word vectors)",
            "static", source="Mu & Viswanath 2018, Table 2 (STS 2012-2016, GloVe and word2vec)",
        ),
        sts_claim(
            "All-but-the-top improves STS correlation of a contrastive sentence encoder", "minilm",
            source="Mu & Viswanath 2018 (word vectors; sentence encoders are this lab's extension)",
        ),
        beir_claim(
            "All-but-the-top improves retrieval with a contrastive sentence encoder", arm={},
            baselines=(beir_index("float32 (exact)", "exact", "the uncompressed index: no post-processing"),),
            settings="D = 4 (≈ d/100), fitted on the corpus; queries get the same transform",
            source="Mu & Viswanath 2018 (word vectors; retrieval with sentence encoders is this lab's extension)",
        ),
    )
    paper = PAPER
    formula = "x' = (x − μ) − Σ_{i≤D} u_i u_iᵀ (x − μ),  u_i = top-D PCs,  D ≈ d/100"
    _state_keys = ("mean", "components")

    def __init__(self, n_components: int | None = None):
        if n_components is not None and (
            not isinstance(n_components, int) or isinstance(n_components, bool) or n_components < 0
        ):
            raise RegularizerInputError(
                f"AllButTheTop expects n_components to be a non-negative int or None, got {n_components!r}"
            )
        self.n_components = n_components

    def _fit(self, x, **fit_params):
        super()._fit(x, **fit_params)
        n, d = x.shape
        D = self.n_components if self.n_components is not None else max(1, round(d / 100))
        if D >= d:
            raise RegularizerInputError(
                f"AllButTheTop cannot remove {D} directions from {d}-dimensional embeddings"
            )
        mu, cov = self._moments(x)
        _, evecs = eigh_descending(cov)
        return {"mean": mu, "components": evecs[:, :D].T.contiguous()}

    def _transform(self, x):
        u = self._state["components"].numpy().astype(x.dtype)  # (D, d), orthonormal rows
        out = np.empty(x.shape, dtype=x.dtype)
        for rows, xc in centered_chunks(x, self._state["mean"], out=out):
            xc -= (xc @ u.T) @ u  # two thin products (D ≪ d), never the d×d projector
        return out
