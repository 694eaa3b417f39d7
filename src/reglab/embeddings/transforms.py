"""Post-hoc embedding conditioning: centering, normalization, whitening, all-but-the-top.

Every transform follows scikit-learn's ``fit`` / ``transform`` /
``fit_transform``. Inputs are (n, d) numpy arrays or torch tensors (a single
(d,) vector is accepted by ``transform``); the output has the input's type,
dtype and device. Statistics are computed and stored in float64 whatever the
input dtype, because eigenvalues of a covariance of float32 embeddings lose
the small directions that whitening amplifies.

Fitted statistics live in ``state_dict()`` (a dict of float64 tensors);
``save(path)`` writes config and state, ``EmbeddingTransform.load(path)``
rebuilds a fitted transform.

Covariances are population estimates (divide by n, or weights summing to 1):
that makes Zipfian whitening with uniform frequencies *exactly* plain
whitening, and the whitened fitted data have identity covariance under the
same estimator. BERT-whitening's ``np.cov`` divides by n−1 instead; the two
differ by the global factor √((n−1)/n), which no cosine similarity can see.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from reglab._validation import RegularizerInputError, check_choice, check_positive, check_probability
from reglab.config import Configurable
from reglab.functional._common import covariance, normalize_rows
from reglab.paper import Paper
from reglab.registry import register

__all__ = [
    "NotFittedError",
    "EmbeddingTransform",
    "Center",
    "Normalize",
    "Whitening",
    "ZipfianWhitening",
    "AllButTheTop",
    "Pipeline",
]


class NotFittedError(RegularizerInputError, AttributeError):
    """``transform`` was called on a transform that needs ``fit`` first."""


# ---------------------------------------------------------------------------
# input handling shared by every transform


def _to_float64(who: str, x: Any, *, arg: str = "embeddings", allow_vector: bool = False):
    """Validate ``x`` and return (float64 2-D tensor, restore function)."""
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise RegularizerInputError(
                f"{who} expects floating-point {arg}, got a numpy array of dtype {x.dtype}; "
                f"convert it with .astype(np.float32) first"
            )
        t = torch.from_numpy(np.ascontiguousarray(x))
        dtype = x.dtype

        def restore(y: torch.Tensor) -> np.ndarray:
            return y.numpy().astype(dtype, copy=False)

    elif isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise RegularizerInputError(
                f"{who} expects floating-point {arg}, got a tensor of dtype {x.dtype}; "
                f"convert it with .float() first"
            )
        t = x.detach()
        dtype, device = x.dtype, x.device

        def restore(y: torch.Tensor) -> torch.Tensor:
            return y.to(device=device, dtype=dtype)

    else:
        raise RegularizerInputError(
            f"{who} expects {arg} as a numpy array or torch tensor of shape (n, d), "
            f"got {type(x).__name__}"
        )
    vector = allow_vector and t.ndim == 1
    if vector:
        t = t.unsqueeze(0)
    if t.ndim != 2:
        want = "(n, d) or (d,)" if allow_vector else "(n, d)"
        raise RegularizerInputError(f"{who} expects {arg} of shape {want}, got shape {tuple(x.shape)}")
    if t.numel() == 0:
        raise RegularizerInputError(f"{who} got empty {arg} of shape {tuple(x.shape)}")
    t = t.to(device="cpu", dtype=torch.float64)
    bad = ~torch.isfinite(t).all(dim=1)
    if bad.any():
        rows = bad.nonzero().flatten().tolist()
        shown = ", ".join(str(r) for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
        raise RegularizerInputError(
            f"{who} got NaN/inf in {len(rows)} row(s) of {arg} of shape {tuple(x.shape)} "
            f"(rows {shown}); drop or impute those rows first"
        )
    if vector:
        base = restore
        restore = lambda y: base(y.squeeze(0))  # noqa: E731
    return t, restore


def _weights(who: str, frequencies: Any, n: int) -> torch.Tensor:
    """Frequencies → float64 probabilities p (p ≥ 0, Σp = 1)."""
    if isinstance(frequencies, np.ndarray):
        f = torch.from_numpy(np.asarray(frequencies, dtype=np.float64))
    elif isinstance(frequencies, torch.Tensor):
        f = frequencies.detach().to("cpu", torch.float64)
    else:
        try:
            f = torch.as_tensor(list(frequencies), dtype=torch.float64)
        except (TypeError, ValueError):
            raise RegularizerInputError(
                f"{who} expects frequencies as a 1-D array of {n} non-negative numbers, "
                f"got {type(frequencies).__name__}"
            ) from None
    if f.ndim != 1 or f.shape[0] != n:
        raise RegularizerInputError(
            f"{who} expects one frequency per embedding row: shape ({n},), got shape {tuple(f.shape)}"
        )
    if not torch.isfinite(f).all() or (f < 0).any() or f.sum() <= 0:
        raise RegularizerInputError(
            f"{who} expects finite non-negative frequencies with a positive sum"
        )
    return f / f.sum()


def _moments(x: torch.Tensor, p: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population covariance of the rows of x, optionally weighted by p (Σp = 1)."""
    if p is None:
        return x.mean(dim=0), covariance(x, unbiased=False)
    mu = p @ x
    xc = (x - mu) * p.sqrt()[:, None]
    return mu, xc.T @ xc


def _eigh_desc(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors with a deterministic sign.

    Each eigenvector's largest-magnitude entry is made positive so numpy and
    torch inputs, and repeated fits, give the same matrix.
    """
    evals, evecs = torch.linalg.eigh(cov)
    evals, evecs = evals.flip(0), evecs.flip(1)
    idx = evecs.abs().argmax(dim=0)
    signs = torch.sign(evecs[idx, torch.arange(evecs.shape[1])])
    signs[signs == 0] = 1.0
    return evals, evecs * signs


# ---------------------------------------------------------------------------
# base class


class EmbeddingTransform(Configurable):
    """Base of the post-hoc transforms: fit/transform, state_dict, save/load.

    Subclasses implement ``_fit(x64, **fit_params) -> dict[str, Tensor]``
    (the fitted statistics) and ``_transform(x64) -> Tensor``.
    """

    kind: ClassVar[str] = "embedding"
    form: ClassVar[str] = "posthoc"
    paper: ClassVar[Paper | None] = None
    formula: ClassVar[str] = ""
    #: statistics names; empty means the transform needs no fit
    _state_keys: ClassVar[tuple[str, ...]] = ()

    @property
    def _who(self) -> str:
        return type(self).__name__

    # -- sklearn-style API -------------------------------------------------
    def fit(self, x: Any, y: Any = None, **fit_params: Any) -> EmbeddingTransform:
        x64, _ = _to_float64(self._who, x)
        self._check_fit_size(x64)
        state = self._fit(x64, **fit_params)
        self._state = {k: v.to(torch.float64).contiguous() for k, v in state.items()}
        return self

    def transform(self, x: Any) -> Any:
        x64, restore = _to_float64(self._who, x, allow_vector=True)
        self._check_fitted()
        d_in = self.n_features_in_
        if d_in is not None and x64.shape[1] != d_in:
            raise RegularizerInputError(
                f"{self._who} was fitted on {d_in}-dimensional embeddings, got shape {tuple(x.shape)}"
            )
        return restore(self._transform(x64))

    def fit_transform(self, x: Any, y: Any = None, **fit_params: Any) -> Any:
        return self.fit(x, y, **fit_params).transform(x)

    __call__ = transform

    # -- state -------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return not self._state_keys or bool(getattr(self, "_state", None))

    @property
    def n_features_in_(self) -> int | None:
        state = getattr(self, "_state", None)
        return int(state["mean"].shape[0]) if state and "mean" in state else None

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in getattr(self, "_state", {}).items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        if not state:
            self._state = {}
            return
        missing = set(self._state_keys) - set(state)
        extra = set(state) - set(self._state_keys)
        if missing or extra:
            raise RegularizerInputError(
                f"{self._who}.load_state_dict expects keys {sorted(self._state_keys)}, "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        self._state = {k: torch.as_tensor(v).to("cpu", torch.float64).clone() for k, v in state.items()}

    def save(self, path: str | Path) -> None:
        """Write config and fitted statistics to ``path`` (torch.save format)."""
        torch.save({"config": self.get_config(), "state": self.state_dict()}, Path(path))

    @staticmethod
    def load(path: str | Path) -> EmbeddingTransform:
        """Rebuild a transform written by :meth:`save` (any registered transform)."""
        from reglab.registry import from_config

        blob = torch.load(Path(path), weights_only=True)
        obj = from_config(blob["config"])
        obj.load_state_dict(blob["state"])
        return obj

    def __repr__(self) -> str:
        cfg = self.get_config()
        cfg.pop("name")
        args = ", ".join(f"{k}={v!r}" for k, v in cfg.items())
        fitted = "" if self.is_fitted or not self._state_keys else ", unfitted"
        return f"{type(self).__name__}({args}{fitted})"

    # -- hooks -------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"{self._who} is not fitted yet: call .fit(embeddings) (or fit_transform) before .transform"
            )

    def _check_fit_size(self, x64: torch.Tensor) -> None:
        if x64.shape[0] < 2 and self._state_keys:
            raise RegularizerInputError(
                f"{self._who} needs at least 2 embeddings to fit, got shape {tuple(x64.shape)}"
            )

    def _fit(self, x64: torch.Tensor, **fit_params: Any) -> dict[str, torch.Tensor]:
        if fit_params:
            raise TypeError(f"{self._who}.fit got unexpected arguments {sorted(fit_params)}")
        return {}

    def _transform(self, x64: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


# ---------------------------------------------------------------------------
# the transforms


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
    the whitened fitted data have exactly identity covariance. A full
    whitening needs a covariance of full rank: with n ≤ d samples (or
    collinear dimensions) ``fit`` refuses and says to set ``k`` or
    ``shrinkage``/``eps``.
    """

    name = "whitening"
    paper = Paper(
        title="Whitening Sentence Representations for Better Semantics and Faster Retrieval",
        authors="Su, Cao, Liu, Ou",
        year=2021,
        arxiv="2103.15316",
        code="https://github.com/bojone/BERT-whitening",
    )
    formula = "x̃ = (x − μ) U Λ^{-1/2} [:, :k]  (PCA);  (x − μ) U Λ^{-1/2} Uᵀ  (ZCA)"
    _state_keys = ("mean", "matrix", "eigenvalues")
    # Eigenvalues below this fraction of the largest count as zero (float64 round-off).
    _rank_tol: ClassVar[float] = 1e-10

    def __init__(self, mode: str = "pca", k: int | None = None, eps: float = 0.0, shrinkage: float = 0.0):
        who = type(self).__name__
        check_choice(who, "mode", mode, ("pca", "zca"))
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
            raise RegularizerInputError(f"{who} expects k to be a positive int or None, got {k!r}")
        check_positive(who, "eps", eps, allow_zero=True)
        check_probability(who, "shrinkage", shrinkage, inclusive_one=True)
        self.mode = mode
        self.k = k
        self.eps = eps
        self.shrinkage = shrinkage

    def _weights_for_fit(self, x64: torch.Tensor, **fit_params: Any) -> torch.Tensor | None:
        super()._fit(x64, **fit_params)  # rejects unknown arguments
        return None

    def _fit(self, x64, **fit_params):
        p = self._weights_for_fit(x64, **fit_params)
        n, d = x64.shape
        if self.k is not None and self.k > d:
            raise RegularizerInputError(
                f"{self._who} cannot keep k={self.k} dimensions of {d}-dimensional embeddings"
            )
        mu, cov = _moments(x64, p)
        if self.shrinkage:
            target = torch.eye(d, dtype=cov.dtype) * (torch.trace(cov) / d)
            cov = (1.0 - self.shrinkage) * cov + self.shrinkage * target
        evals, evecs = _eigh_desc(cov)
        keep = self.k or d
        regularized = self.eps > 0 or self.shrinkage > 0
        if not regularized:
            if n <= keep:
                raise RegularizerInputError(
                    f"{self._who} needs more samples than kept dimensions: got {n} samples of "
                    f"dimension {d} for {keep} whitened dimensions (the covariance has rank ≤ {n - 1}); "
                    f"keep fewer dimensions (k ≤ {max(n - 1, 1)}), or pass shrinkage>0 or eps>0"
                )
            small = evals[:keep] <= self._rank_tol * evals[0].clamp_min(torch.finfo(evals.dtype).tiny)
            if small.any():
                rank = int((~small).sum())
                raise RegularizerInputError(
                    f"{self._who}: the covariance of the {n} fitted embeddings has only {rank} "
                    f"non-negligible eigenvalues of {keep} to whiten (collinear or constant dimensions); "
                    f"keep k ≤ {max(rank, 1)} dimensions, or pass shrinkage>0 or eps>0"
                )
        scale = (evals[:keep] + self.eps).clamp_min(torch.finfo(evals.dtype).tiny).rsqrt()
        u = evecs[:, :keep]
        matrix = u * scale if self.mode == "pca" else (u * scale) @ u.T
        return {"mean": mu, "matrix": matrix, "eigenvalues": evals}

    def _transform(self, x64):
        return (x64 - self._state["mean"]) @ self._state["matrix"]


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
    row; with uniform frequencies it is exactly :class:`Whitening`. ``mode``,
    ``k``, ``eps`` and ``shrinkage`` act as in :class:`Whitening` (the paper
    uses mode="pca", no k, no ε).
    """

    name = "zipfian_whitening"
    paper = Paper(
        title="Zipfian Whitening",
        authors="Yokoi, Bao, Kurita, Shimodaira",
        year=2024,
        arxiv="2411.00680",
        venue="NeurIPS",
        code="https://github.com/cl-tohoku/zipfian-whitening",
    )
    formula = "p = f/Σf;  μ = Σ p_i x_i;  Σ_p = Σ p_i (x_i−μ)(x_i−μ)ᵀ = UΛUᵀ;  x̃ = (x − μ) U Λ^{-1/2}"

    def _weights_for_fit(self, x64, frequencies=None, **fit_params):
        if fit_params:
            raise TypeError(f"{self._who}.fit got unexpected arguments {sorted(fit_params)}")
        if frequencies is None:
            raise RegularizerInputError(
                f"{self._who}.fit needs the items' frequencies: fit(embeddings, frequencies=counts) "
                f"with one count per row (use Whitening for uniform weights)"
            )
        return _weights(self._who, frequencies, x64.shape[0])

    def fit(self, x: Any, y: Any = None, frequencies: Any = None, **fit_params: Any) -> ZipfianWhitening:
        return super().fit(x, y, frequencies=frequencies, **fit_params)

    def fit_transform(self, x: Any, y: Any = None, frequencies: Any = None, **fit_params: Any) -> Any:
        return self.fit(x, y, frequencies=frequencies, **fit_params).transform(x)


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
    paper = Paper(
        title="All-but-the-Top: Simple and Effective Postprocessing for Word Representations",
        authors="Mu, Viswanath",
        year=2018,
        arxiv="1702.01417",
        venue="ICLR",
    )
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

    def _fit(self, x64, **fit_params):
        super()._fit(x64, **fit_params)
        n, d = x64.shape
        D = self.n_components if self.n_components is not None else max(1, round(d / 100))
        if D >= d:
            raise RegularizerInputError(
                f"AllButTheTop cannot remove {D} directions from {d}-dimensional embeddings"
            )
        mu, cov = _moments(x64, None)
        _, evecs = _eigh_desc(cov)
        return {"mean": mu, "components": evecs[:, :D].T.contiguous()}

    def _transform(self, x64):
        xc = x64 - self._state["mean"]
        u = self._state["components"]
        return xc - (xc @ u.T) @ u


@register
class Pipeline(EmbeddingTransform):
    """A chain of embedding transforms, fitted in order (each on the previous output).

    ``Pipeline([Center(), Whitening(k=128), Normalize()])`` or the same steps
    as config dicts (``[{"name": "center"}, {"name": "whitening", "k": 128}]``),
    which is what ``get_config`` stores. ``fit(x, frequencies=...)`` passes
    the frequencies to the steps that take them (Zipfian whitening).
    """

    name = "embedding_pipeline"
    formula = "x̃ = T_m(… T_2(T_1(x)))"

    def __init__(self, steps: list | tuple = ()):
        from reglab.registry import from_config

        objs = []
        for s in steps:
            if isinstance(s, EmbeddingTransform):
                objs.append(s)
            elif isinstance(s, dict):
                obj = from_config(s)
                if not isinstance(obj, EmbeddingTransform):
                    raise RegularizerInputError(f"Pipeline step {s!r} is not an embedding transform")
                objs.append(obj)
            else:
                raise RegularizerInputError(
                    f"Pipeline steps must be embedding transforms or their config dicts, got {type(s).__name__}"
                )
        self.transforms = objs
        self.steps = [o.get_config() for o in objs]

    @property
    def is_fitted(self) -> bool:
        return all(t.is_fitted for t in self.transforms)

    @property
    def n_features_in_(self) -> int | None:
        return self.transforms[0].n_features_in_ if self.transforms else None

    def fit(self, x: Any, y: Any = None, frequencies: Any = None) -> Pipeline:
        # Steps exchange float64 tensors so a float32 input is rounded only once, at the end.
        x64, _ = _to_float64(self._who, x)
        for t in self.transforms:
            params = {"frequencies": frequencies} if isinstance(t, ZipfianWhitening) else {}
            x64 = t.fit_transform(x64, **params)
        return self

    def fit_transform(self, x: Any, y: Any = None, frequencies: Any = None) -> Any:
        return self.fit(x, y, frequencies=frequencies).transform(x)

    def transform(self, x: Any) -> Any:
        x64, restore = _to_float64(self._who, x, allow_vector=True)
        self._check_fitted()
        for t in self.transforms:
            x64 = t.transform(x64)
        return restore(x64)

    __call__ = transform

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{i}.{k}": v for i, t in enumerate(self.transforms) for k, v in t.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        parts: list[dict[str, torch.Tensor]] = [{} for _ in self.transforms]
        for key, value in state.items():
            idx, _, sub = key.partition(".")
            if not idx.isdigit() or int(idx) >= len(self.transforms):
                raise RegularizerInputError(f"Pipeline.load_state_dict got unexpected key {key!r}")
            parts[int(idx)][sub] = value
        for t, part in zip(self.transforms, parts):
            t.load_state_dict(part)

