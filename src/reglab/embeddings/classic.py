"""Classic post-hoc conditioning with no single paper: centering and L2 normalization.

* :class:`Center`: x̃ = x − μ, μ the mean of the fitted rows; removes the
  common direction that makes raw cosine similarities all positive
  (anisotropy), and is the first step of every whitening and of
  all-but-the-top.
* :class:`Normalize`: x̃ = x / ‖x‖₂ (needs no fit); after it the dot product
  is the cosine similarity.
"""

from __future__ import annotations

from reglab.core import register
from reglab.embeddings.base import EmbeddingTransform
from reglab.ops import normalize_rows

__all__ = ["Center", "Normalize"]


@register
class Center(EmbeddingTransform):
    """Centering: subtract the mean embedding of the fitted data.

    x̃ = x − μ with μ = mean of the fitted rows. The first step of every
    whitening and of all-but-the-top; on its own it removes the common
    direction that makes raw cosine similarities all positive (anisotropy).
    """

    name = "center"
    formula = "x̃ = x − μ,  μ = (1/n) Σ_i x_i"
    _state_keys = ("mean",)

    def __init__(self) -> None:
        pass

    def _fit(self, x64, **fit_params):
        super()._fit(x64, **fit_params)
        return {"mean": x64.mean(dim=0)}

    def _transform(self, x64):
        return x64 - self._state["mean"]


@register
class Normalize(EmbeddingTransform):
    """L2 normalization of each embedding (needs no fit).

    x̃ = x / ‖x‖₂ (rows of zero norm stay zero). After it, the dot product
    is the cosine similarity; typically the last step of a pipeline.
    """

    name = "normalize"
    formula = "x̃ = x / ‖x‖₂"

    def __init__(self) -> None:
        pass

    def _transform(self, x64):
        return normalize_rows(x64)
