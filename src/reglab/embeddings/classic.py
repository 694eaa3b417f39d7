"""Classic post-hoc conditioning with no single paper: centering and L2 normalization.

* ``Center``: x̃ = x − μ, μ the mean of the fitted rows; removes the
  common direction that makes raw cosine similarities all positive
  (anisotropy), and is the first step of every whitening and of
  all-but-the-top.
* ``Normalize``: x̃ = x / ‖x‖₂ (needs no fit); after it the dot product
  is the cosine similarity.
"""

from __future__ import annotations

import numpy as np
import torch

from reglab.core import Claim, register
from reglab.embeddings.base import EmbeddingTransform, centered_chunks, sts_claim
from reglab.ops import normalize_rows
from reglab.ops.linalg import row_chunk

__all__ = ["Center", "Normalize"]


@register
class Center(EmbeddingTransform):
    """Centering: subtract the mean embedding of the fitted data.

    x̃ = x − μ with μ = mean of the fitted rows. The first step of every
    whitening and of all-but-the-top; on its own it removes the common
    direction that makes raw cosine similarities all positive (anisotropy).
    """

    name = "center"
    claims = (
        sts_claim("Centering improves STS correlation of cosine similarity (static word vectors)", "static",
                  source="Mu & Viswanath 2018, Sec. 2 (the common mean vector dominates cosine similarity)"),
        sts_claim("Centering improves STS correlation of a contrastive sentence encoder", "minilm",
                  source="Mu & Viswanath 2018, Sec. 2; an extension to sentence encoders"),
    )
    formula = "x̃ = x − μ,  μ = (1/n) Σ_i x_i"
    _state_keys = ("mean",)

    def __init__(self) -> None:
        pass

    def _fit(self, x, **fit_params):
        super()._fit(x, **fit_params)
        mean = torch.from_numpy(x.sum(axis=0, dtype=np.float64) / x.shape[0])  # float64 sum, no copy
        if not torch.isfinite(mean).all():
            self._raise_nonfinite(x)
        return {"mean": mean}

    def _transform(self, x):
        out = np.empty(x.shape, dtype=x.dtype)
        for _ in centered_chunks(x, self._state["mean"], out=out):
            pass
        return out


@register
class Normalize(EmbeddingTransform):
    """L2 normalization of each embedding (needs no fit).

    x̃ = x / ‖x‖₂ (rows of zero norm stay zero). After it, the dot product
    is the cosine similarity; typically the last step of a pipeline.
    """

    name = "normalize"
    claims = (
        Claim(
            "Unit-normalizing embeddings makes inner-product search equal cosine search",
            testable=False,
            untestable_reason="cosine similarity, the STS score, is invariant to normalization, so the lab's STS "
            "task cannot see it; it is a prerequisite for inner-product indexes (see `reglab retrieval`), not a "
            "claim about quality",
        ),
    )
    formula = "x̃ = x / ‖x‖₂"

    def __init__(self) -> None:
        pass

    def _transform(self, x):
        out = np.empty(x.shape, dtype=x.dtype)
        rows = row_chunk(x.shape[1])
        for start in range(0, x.shape[0], rows):
            sl = slice(start, start + rows)
            xb = x[sl]
            sq = np.einsum("ij,ij->i", xb, xb)  # plain squared norms, one pass
            if np.isfinite(sq).all() and (sq >= np.finfo(x.dtype).tiny).all():
                np.divide(xb, np.sqrt(sq)[:, None], out=out[sl])
            else:  # zero rows, or squares that over/underflow: the overflow-safe scaled norm
                xb = xb if x.flags.writeable else xb.copy()  # torch wants writable memory
                torch.from_numpy(out[sl]).copy_(normalize_rows(torch.from_numpy(xb)))
        return out
