"""Zipfian whitening (Yokoi et al. 2024, NeurIPS): PCA whitening under the items' frequencies.

With p_i = f_i / Σ_j f_j (§3; official code cl-tohoku/zipfian-whitening,
``zipfian_whitening.py``)::

    μ = Σ_i p_i x_i,   Σ = Σ_i p_i (x_i − μ)(x_i − μ)ᵀ = UΛUᵀ,
    x̃ = (x − μ) U Λ^{-1/2}

i.e. ``Whitening`` with the population
moments weighted by p instead of uniform; with uniform frequencies the two
are exactly equal. The paper uses mode="pca", no k, no ε.
"""

from __future__ import annotations

from typing import Any

from reglab.core import Baseline, Paper, RegularizerInputError, register
from reglab.embeddings.base import frequency_weights, sts_claim
from reglab.embeddings.whitening import Whitening

__all__ = ["ZipfianWhitening"]

PAPER = Paper(
    "Zipfian Whitening", "Yokoi, Bao, Kurita, Shimodaira", 2024,
    arxiv="2411.00680", venue="NeurIPS", code="https://github.com/cl-tohoku/zipfian-whitening")


@register
class ZipfianWhitening(Whitening):
    """Zipfian whitening: PCA whitening under the items' empirical frequencies.

    With p_i = f_i / Σ_j f_j (Yokoi et al. 2024, §3; official code
    cl-tohoku/zipfian-whitening, ``zipfian_whitening.py``)::

        μ = Σ_i p_i x_i,   Σ = Σ_i p_i (x_i − μ)(x_i − μ)ᵀ = UΛUᵀ,
        x̃ = (x − μ) U Λ^{-1/2}

    The official code computes the same thing as the SVD of √p_i (x_i − μ)
    and applies no normalization after the transform; cosine similarity is
    taken on the whitened vectors (for sentences, of the mean of the
    whitened word vectors, which equals whitening the mean word vector since
    the map is affine). ``fit(x, frequencies)`` requires one frequency per
    row; with uniform frequencies it is exactly ``Whitening``. ``mode``,
    ``k``, ``eps`` and ``shrinkage`` act as in ``Whitening`` (the paper
    uses mode="pca", no k, no ε).
    """

    name = "zipfian_whitening"
    claims = (
        sts_claim(
            "Whitening under the words' Zipfian frequencies beats uniform whitening on STS", "static",
            baselines=(Baseline("uniform whitening", {"name": "whitening"}, why="the method it corrects"),),
            source="Yokoi et al. 2024, Table 1 (Zipfian vs uniform whitening of static word vectors on STS)",
            settings="needs token frequencies, so only the static encoder (MiniLM has no word table)",
        ),
    )
    paper = PAPER
    takes_frequencies = True
    formula = "p = f/Σf;  μ = Σ p_i x_i;  Σ_p = Σ p_i (x_i−μ)(x_i−μ)ᵀ = UΛUᵀ;  x̃ = (x − μ) U Λ^{-1/2}"

    def _weights_for_fit(self, x, frequencies=None, **fit_params):
        if fit_params:
            raise TypeError(f"{self._who}.fit got unexpected arguments {sorted(fit_params)}")
        if frequencies is None:
            raise RegularizerInputError(
                f"{self._who}.fit needs the items' frequencies: fit(embeddings, frequencies=counts) "
                f"with one count per row (use Whitening for uniform weights)"
            )
        return frequency_weights(self._who, frequencies, x.shape[0])

    def fit(self, x: Any, y: Any = None, frequencies: Any = None, **fit_params: Any) -> ZipfianWhitening:
        return super().fit(x, y, frequencies=frequencies, **fit_params)

    def fit_transform(self, x: Any, y: Any = None, frequencies: Any = None, **fit_params: Any) -> Any:
        return self.fit(x, y, frequencies=frequencies, **fit_params).transform(x)
