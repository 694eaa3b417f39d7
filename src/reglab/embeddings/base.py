"""The base of the post-hoc embedding transforms: input handling, fit/transform, state, pipelines.

The transforms themselves live one paper per file: :mod:`reglab.embeddings.classic`
(centering, normalization), :mod:`reglab.embeddings.whitening`,
:mod:`reglab.embeddings.zipfian_whitening` and :mod:`reglab.embeddings.all_but_the_top`.

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

from reglab.core import Configurable, RegularizerInputError

from reglab.core.registry import Registered, from_config, register

__all__ = [
    "NotFittedError",
    "EmbeddingTransform",
    "Pipeline",
    "as_float64",
    "frequency_weights",
]


class NotFittedError(RegularizerInputError, AttributeError):
    """``transform`` was called on a transform that needs ``fit`` first."""


# ---------------------------------------------------------------------------
# input handling shared by every transform


def as_float64(who: str, x: Any, *, arg: str = "embeddings", allow_vector: bool = False):
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


def frequency_weights(who: str, frequencies: Any, n: int) -> torch.Tensor:
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


# ---------------------------------------------------------------------------
# base class


class EmbeddingTransform(Registered, Configurable):
    """Base of the post-hoc transforms: fit/transform, state_dict, save/load.

    Subclasses implement ``_fit(x64, **fit_params) -> dict[str, Tensor]``
    (the fitted statistics) and ``_transform(x64) -> Tensor``.
    """

    kind: ClassVar[str] = "embedding"
    form: ClassVar[str] = "posthoc"
    #: statistics names; empty means the transform needs no fit
    _state_keys: ClassVar[tuple[str, ...]] = ()
    #: whether ``fit`` takes per-row ``frequencies`` (passed on to it by :class:`Pipeline`)
    takes_frequencies: ClassVar[bool] = False

    @property
    def _who(self) -> str:
        return type(self).__name__

    # -- sklearn-style API -------------------------------------------------
    def fit(self, x: Any, y: Any = None, **fit_params: Any) -> EmbeddingTransform:
        x64, _ = as_float64(self._who, x)
        self._check_fit_size(x64)
        state = self._fit(x64, **fit_params)
        self._state = {k: v.to(torch.float64).contiguous() for k, v in state.items()}
        return self

    def transform(self, x: Any) -> Any:
        x64, restore = as_float64(self._who, x, allow_vector=True)
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

    # -- scikit-learn estimator protocol (clone, Pipeline, GridSearchCV) ------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, as scikit-learn's ``clone`` and grid search read them."""
        params = {k: getattr(self, k) for k in self.get_config() if k != "name"}
        if deep:
            for key, value in list(params.items()):
                if hasattr(value, "get_params") and not isinstance(value, type):
                    params.update({f"{key}__{k}": v for k, v in value.get_params(deep=True).items()})
        return params

    def set_params(self, **params: Any) -> EmbeddingTransform:
        """Set constructor arguments (validated as by the constructor); drops any fitted state."""
        current = self.get_params(deep=False)
        unknown = sorted(k for k in params if k.split("__", 1)[0] not in current)
        if unknown:
            raise ValueError(f"{self._who}.set_params: unknown parameters {unknown}; valid: {sorted(current)}")
        nested = {k: v for k, v in params.items() if "__" in k}
        for key, value in nested.items():
            outer, inner = key.split("__", 1)
            current[outer].set_params(**{inner: value})
        fresh = type(self)(**{**current, **{k: v for k, v in params.items() if "__" not in k}})
        self.__dict__.clear()
        self.__dict__.update(fresh.__dict__)
        return self

    def __sklearn_tags__(self):
        from sklearn.utils import Tags, TargetTags, TransformerTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False), transformer_tags=TransformerTags())

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
# pipelines


@register
class Pipeline(EmbeddingTransform):
    """A chain of embedding transforms, fitted in order (each on the previous output).

    ``Pipeline([Center(), Whitening(k=128), Normalize()])`` or the same steps
    as config dicts (``[{"name": "center"}, {"name": "whitening", "k": 128}]``),
    which is what ``get_config`` stores. ``fit(x, frequencies=...)`` passes
    the frequencies to the steps that take them (``takes_frequencies``: Zipfian whitening).
    """

    name = "embedding_pipeline"
    formula = "x̃ = T_m(… T_2(T_1(x)))"

    def __init__(self, steps: list | tuple = ()):
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
        self._steps_arg = steps  # what get_params returns: scikit-learn's clone checks identity

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        params: dict[str, Any] = {"steps": self._steps_arg}
        if deep:
            for i, t in enumerate(self.transforms):
                params.update({f"steps__{i}__{k}": v for k, v in t.get_params(deep=True).items()})
        return params

    def set_params(self, **params: Any) -> Pipeline:
        if set(params) - {"steps"}:
            raise ValueError(f"Pipeline.set_params takes steps= only, got {sorted(params)}")
        self.__init__(params.get("steps", self._steps_arg))
        return self

    @property
    def is_fitted(self) -> bool:
        return all(t.is_fitted for t in self.transforms)

    @property
    def n_features_in_(self) -> int | None:
        return self.transforms[0].n_features_in_ if self.transforms else None

    def fit(self, x: Any, y: Any = None, frequencies: Any = None) -> Pipeline:
        # Steps exchange float64 tensors so a float32 input is rounded only once, at the end.
        x64, _ = as_float64(self._who, x)
        for t in self.transforms:
            params = {"frequencies": frequencies} if t.takes_frequencies else {}
            x64 = t.fit_transform(x64, **params)
        return self

    def fit_transform(self, x: Any, y: Any = None, frequencies: Any = None) -> Any:
        return self.fit(x, y, frequencies=frequencies).transform(x)

    def transform(self, x: Any) -> Any:
        x64, restore = as_float64(self._who, x, allow_vector=True)
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

