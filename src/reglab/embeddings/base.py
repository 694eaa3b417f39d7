"""The base of the post-hoc embedding transforms: input handling, fit/transform, state, pipelines.

The transforms themselves live one paper per file: ``reglab.embeddings.classic``
(centering, normalization), ``reglab.embeddings.whitening``,
``reglab.embeddings.zipfian_whitening`` and ``reglab.embeddings.all_but_the_top``.

Every transform follows scikit-learn's ``fit`` / ``transform`` /
``fit_transform``. Inputs are (n, d) numpy arrays or torch tensors (a single
(d,) vector is accepted by ``transform``); the output has the input's type,
dtype and device.

Precision and memory: the data are never copied whole nor upcast. They are
read in row chunks (``reglab.ops.linalg.row_chunk`` rows, 32 MiB of
float32) and each chunk is computed in the input's precision (float32, or
float64 for float64 input; float16/bfloat16 are read as float32), with
everything that accumulates over rows in float64: the mean, the covariance
(one BLAS update per chunk of data centered at that chunk's mean, merged in
float64, ``reglab.ops.linalg.streaming_moments``) and the eigen
decomposition. Statistics are stored in float64. Peak memory beyond the input
and the output is O(chunk·d + d²). The heavy products run through numpy's
BLAS on CPU (``a.T @ a`` is a symmetric rank-k update there, as in
scikit-learn's PCA); its threads follow ``OMP_NUM_THREADS`` /
``threadpoolctl``, not ``torch.set_num_threads``. Inputs on another device
are computed on CPU (as before) and returned on their device.

NaN/inf rows are reported (with their indices) when they reach a statistic
or an output, so valid input costs no extra pass over the data.

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

from reglab.core import Claim, Configurable, RegularizerInputError

from reglab.core.registry import Registered, from_config, get, list_regularizers, register
from reglab.ops.linalg import row_chunk, streaming_moments

__all__ = [
    "ENCODER_NOTES",
    "NotFittedError",
    "sts_claim",
    "EmbeddingTransform",
    "Pipeline",
    "as_float64",
    "as_matrix",
    "centered_chunks",
    "check_finite_rows",
    "frequency_weights",
    "nonfinite_rows",
]


#: what each built-in encoder of the lab's ``sts`` task is, for the claims' settings
ENCODER_NOTES = {
    "static": "mean of static word vectors (the frequency-weighted baseline encoder of `reglab sts`)",
    "minilm": "all-MiniLM-L6-v2, a contrastively trained sentence encoder (offline copy)",
}


def sts_claim(statement: str, encoder: str, *, source: str, baselines: tuple = (), settings: str = "", **fields: Any):
    """A claim on the lab's ``sts`` task: mean-over-files Spearman of cosine similarity, the arms paired
    file by file (``paired_over="units"``), δ = one Spearman point, against the raw embeddings and
    ``baselines``."""
    from reglab.core.paper import Baseline, Claim

    return Claim(
        statement, task="sts", metric="spearman", direction="higher", paired_over="units",
        task_args={"encoder": encoder}, datasets=("sts",),
        min_effect=0.01, min_effect_reason="one point of Spearman correlation (×100), per STS file",
        baselines=(Baseline("raw embeddings", why="no post-processing at all"), *baselines),
        settings=f"encoder: {ENCODER_NOTES[encoder]}; fitted on the distinct sentences of the STS files "
        f"(transductive, as BERT-whitening does); the paired units are the {encoder} scores of each of the "
        f"12 SemEval STS 2012-2014 test files shipped with reglab. {settings}".strip(),
        source=source, **fields,
    )  # fmt: skip


def beir_claim(
    statement: str, *, arm: dict, baselines: tuple, source: str, settings: str = "", **fields: Any,
):
    """A claim on the lab's ``beir`` task: nDCG@10 on BEIR SciFact's 300 test queries (MiniLM), the arms
    paired query by query (``paired_over="units"``), δ = one point of nDCG@10."""
    from reglab.core.paper import Claim

    return Claim(
        statement, task="beir", metric="ndcg10", direction="higher", paired_over="units", arm=arm,
        datasets=("scifact",), min_effect=0.01,
        min_effect_reason="one point of nDCG@10 (×100), the resolution BEIR and MTEB tables report",
        baselines=baselines,
        settings="BEIR SciFact test (5,183 abstracts, 300 queries), all-MiniLM-L6-v2 embeddings (d = 384) of "
        "title + text, exhaustive cosine search, nDCG@10 by trec_eval paired per query; instead of the paper's "
        f"own datasets. {settings}".strip(),
        source=source, **fields,
    )  # fmt: skip


def beir_index(label: str, index: str, why: str):
    """A baseline of a ``beir`` claim: an index of ``reglab.embeddings.retrieval.index_named``."""
    from reglab.core.paper import Baseline

    return Baseline(label, task_args={"index": index}, why=why)


class NotFittedError(RegularizerInputError, AttributeError):
    """``transform`` was called on a transform that needs ``fit`` first."""


# ---------------------------------------------------------------------------
# input handling shared by every transform


def as_float64(who: str, x: Any, *, arg: str = "embeddings", allow_vector: bool = False):
    """Validate ``x`` and return (float64 2-D tensor, restore function).

    Kept for code that called it; the transforms use ``as_matrix`` (no float64 copy)."""
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
        _refuse_meta(who, x, arg)
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


def _describe_blob(blob: Any) -> str:
    if isinstance(blob, dict):
        return f"a dict with keys {sorted(map(str, blob))[:6]}"
    return type(blob).__name__


def _refuse_meta(who: str, x: torch.Tensor, arg: str) -> None:
    """A post-hoc transform fits and maps values: a meta tensor (a shape without values) has none."""
    if x.device.type == "meta":
        raise RegularizerInputError(
            f"{who} got {arg} of shape {tuple(x.shape)} on the meta device (a shape without values); a post-hoc "
            f"transform fits and transforms actual embeddings: compute them on a real device (cpu, cuda) first"
        )


def _type_error(who: str, x: Any, arg: str, allow_vector: bool) -> None:
    """Raise the error for a non-array or non-floating ``x`` (shared by the input checks)."""
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise RegularizerInputError(
                f"{who} expects floating-point {arg}, got a numpy array of dtype {x.dtype}; "
                f"convert it with .astype(np.float32) first"
            )
    elif isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise RegularizerInputError(
                f"{who} expects floating-point {arg}, got a tensor of dtype {x.dtype}; "
                f"convert it with .float() first"
            )
        _refuse_meta(who, x, arg)
    else:
        raise RegularizerInputError(
            f"{who} expects {arg} as a numpy array or torch tensor of shape (n, d), "
            f"got {type(x).__name__}"
        )
    want = "(n, d) or (d,)" if allow_vector else "(n, d)"
    if x.ndim != 2 and not (allow_vector and x.ndim == 1):
        raise RegularizerInputError(f"{who} expects {arg} of shape {want}, got shape {tuple(x.shape)}")
    if 0 in x.shape:
        raise RegularizerInputError(f"{who} got empty {arg} of shape {tuple(x.shape)}")


def as_matrix(who: str, x: Any, *, arg: str = "embeddings", allow_vector: bool = False):
    """Validate ``x`` and return (2-D numpy array in the compute dtype, restore function).

    The compute dtype is float64 for float64 input and float32 otherwise. numpy
    float32/float64 input and CPU float32/float64 tensors are viewed, not copied;
    other dtypes and devices are converted once (to float32, on CPU). ``restore``
    turns a result in the compute dtype back into the input's type, dtype and
    device (no copy where they already agree). Finiteness is not checked here:
    see ``check_finite_rows``.
    """
    _type_error(who, x, arg, allow_vector)
    if isinstance(x, np.ndarray):
        dtype = x.dtype
        cdt = np.float64 if dtype in (np.float64, np.longdouble) else np.float32
        a = x if dtype == cdt else x.astype(cdt)

        def restore(y: np.ndarray) -> np.ndarray:
            return y.astype(dtype, copy=False)

    else:
        t = x.detach()
        dtype, device = t.dtype, t.device
        cdt = torch.float64 if dtype == torch.float64 else torch.float32
        a = t.to(device="cpu", dtype=cdt).resolve_neg().resolve_conj().numpy()

        def restore(y: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(y).to(device=device, dtype=dtype)

    if a.ndim == 1:
        a = a[None, :]
        base = restore
        restore = lambda y: base(y[0])  # noqa: E731
    return a, restore


def nonfinite_rows(x: np.ndarray) -> np.ndarray:
    """Indices of the rows of ``x`` holding a NaN or inf (a cheap sum per chunk first)."""
    rows = row_chunk(x.shape[1])
    bad = []
    for start in range(0, x.shape[0], rows):
        xb = x[start:start + rows]
        with np.errstate(invalid="ignore", over="ignore"):
            finite = np.isfinite(xb.sum())
        if not finite:  # finite sums (nearly always) need no closer look
            bad.append(start + np.flatnonzero(~np.isfinite(xb).all(axis=1)))
    return np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)


def check_finite_rows(who: str, x: np.ndarray, *, arg: str = "embeddings", shape: tuple | None = None) -> None:
    """Raise, naming the rows, if ``x`` has NaN/inf rows (``shape``: the user's shape, for the message)."""
    rows = nonfinite_rows(x).tolist()
    if rows:
        shown = ", ".join(str(r) for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
        shape = tuple(x.shape) if shape is None else tuple(shape)
        raise RegularizerInputError(
            f"{who} got NaN/inf in {len(rows)} row(s) of {arg} of shape {shape} "
            f"(rows {shown}); drop or impute those rows first"
        )


def frequency_weights(who: str, frequencies: Any, n: int) -> torch.Tensor:
    """Frequencies → float64 probabilities p (p ≥ 0, Σp = 1)."""
    if isinstance(frequencies, np.ndarray):
        f = torch.from_numpy(np.asarray(frequencies, dtype=np.float64))
    elif isinstance(frequencies, torch.Tensor):
        _refuse_meta(who, frequencies, "frequencies")
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

    Subclasses implement ``_fit(x, **fit_params) -> dict[str, Tensor]``
    (the float64 fitted statistics) and ``_transform(x) -> ndarray``, where
    ``x`` is an (n, d) float32/float64 numpy array (``as_matrix``) that
    they stream over in row chunks (``_moments``, ``centered_chunks``)
    and never copy whole or upcast.
    """

    kind: ClassVar[str] = "embedding"
    form: ClassVar[str] = "posthoc"
    #: statistics names; empty means the transform needs no fit
    _state_keys: ClassVar[tuple[str, ...]] = ()
    #: whether ``fit`` takes per-row ``frequencies`` (passed on to it by ``Pipeline``)
    takes_frequencies: ClassVar[bool] = False

    @property
    def _who(self) -> str:
        return type(self).__name__

    # -- sklearn-style API -------------------------------------------------
    def fit(self, x: Any, y: Any = None, **fit_params: Any) -> EmbeddingTransform:
        xm, _ = as_matrix(self._who, x)
        self._check_fit_size(xm)
        if not self._state_keys:  # nothing is estimated, so no statistic would reveal bad rows
            check_finite_rows(self._who, xm)
        state = self._fit(xm, **fit_params)
        self._state = {k: v.to(torch.float64).contiguous() for k, v in state.items()}
        return self

    def transform(self, x: Any) -> Any:
        xm, restore = as_matrix(self._who, x, allow_vector=True)
        self._check_fitted()
        d_in = self.n_features_in_
        if d_in is not None and xm.shape[1] != d_in:
            raise RegularizerInputError(
                f"{self._who} was fitted on {d_in}-dimensional embeddings, got shape {tuple(x.shape)}"
            )
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf rows are reported below
            out = self._transform(xm)
            finite = np.isfinite(out.sum())
        if not finite:  # NaN/inf input rows reach the output; one cheap pass over it
            check_finite_rows(self._who, xm, shape=x.shape)
        return restore(out)

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
        for k, v in state.items():
            if isinstance(v, torch.Tensor):
                _refuse_meta(f"{self._who}.load_state_dict", v, f"state {k!r}")
        self._state = {k: torch.as_tensor(v).to("cpu", torch.float64).clone() for k, v in state.items()}

    def save(self, path: str | Path) -> None:
        """Write config and fitted statistics to ``path`` (torch.save format)."""
        torch.save({"config": self.get_config(), "state": self.state_dict()}, Path(path))

    @staticmethod
    def load(path: str | Path) -> EmbeddingTransform:
        """Rebuild a transform written by ``save`` (any registered transform).

        A file that is not a saved transform (no config and state, or a config
        naming a registered class that is not an embedding transform) raises
        ``RegularizerInputError`` before anything is built."""
        blob = torch.load(Path(path), weights_only=True)
        config = blob.get("config") if isinstance(blob, dict) else None
        if not (isinstance(config, dict) and isinstance(blob.get("state"), dict)):
            raise RegularizerInputError(
                f"EmbeddingTransform.load: {str(path)!r} is not a file written by EmbeddingTransform.save "
                f"(expected a dict with 'config' and 'state', got {_describe_blob(blob)})"
            )
        name = config.get("name")
        known = list_regularizers("embedding")
        cls = get(name) if isinstance(name, str) and name in known else None
        if cls is None or not issubclass(cls, EmbeddingTransform):
            raise RegularizerInputError(
                f"EmbeddingTransform.load: {str(path)!r} names {name!r}, which is not an embedding transform "
                f"(those are: {', '.join(known)})"
            )
        obj = from_config(config)
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

    def _check_fit_size(self, x: np.ndarray) -> None:
        if x.shape[0] < 2 and self._state_keys:
            raise RegularizerInputError(
                f"{self._who} needs at least 2 embeddings to fit, got shape {tuple(x.shape)}"
            )

    def _fit(self, x: np.ndarray, **fit_params: Any) -> dict[str, torch.Tensor]:
        """The fitted statistics of ``x`` (an (n, d) float32/float64 array, see ``as_matrix``)."""
        if fit_params:
            raise TypeError(f"{self._who}.fit got unexpected arguments {sorted(fit_params)}")
        return {}

    def _transform(self, x: np.ndarray) -> np.ndarray:
        """The output for ``x`` (an (n, d) float32/float64 array), in ``x``'s dtype."""
        raise NotImplementedError

    def _moments(self, x: np.ndarray, p: torch.Tensor | None = None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
        """float64 mean and population covariance (weighted by ``p``), streamed; bad rows raise.

        ``dtype``: the precision of the per-chunk products (default ``x``'s), see
        ``reglab.ops.linalg.streaming_moments``."""
        mu, cov = streaming_moments(x, p, dtype=dtype)
        if not (torch.isfinite(mu).all() and torch.isfinite(cov).all()):
            self._raise_nonfinite(x)
        return mu, cov

    def _raise_nonfinite(self, x: np.ndarray) -> None:
        check_finite_rows(self._who, x)
        top = float(np.abs(x).max())
        raise RegularizerInputError(
            f"{self._who}: the statistics of the {x.dtype} embeddings of shape {tuple(x.shape)} overflow "
            f"(largest |value| {top:.3g}); scale the embeddings down (or pass float64) first"
        )


def centered_chunks(x: np.ndarray, mean: torch.Tensor, out: np.ndarray | None = None):
    """Yield (row slice, x[rows] − μ) chunk by chunk, in ``x``'s dtype, accurate to its rounding.

    μ (float64) is split as μ_hi + μ_lo, both in x's dtype: x − μ_hi is (nearly) exact
    however large the offset, and subtracting μ_lo keeps the float64 mean's digits
    (a float32 μ alone would shift every output by up to ε·‖μ‖). With ``out`` (same
    shape as ``x``) the chunks are written into it; otherwise into one reused
    buffer, valid until the next chunk.
    """
    n, d = x.shape
    mu = mean.numpy()
    hi = mu.astype(x.dtype)
    lo = (mu - hi).astype(x.dtype)
    rows = min(row_chunk(d), n)
    buf = np.empty((rows, d), dtype=x.dtype) if out is None else None
    for start in range(0, n, rows):
        sl = slice(start, min(start + rows, n))
        target = out[sl] if out is not None else buf[: sl.stop - start]
        np.subtract(x[sl], hi, out=target)
        if lo.any():
            np.subtract(target, lo, out=target)
        yield sl, target


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
    claims = (
        Claim(
            "A pipeline is its steps: it applies them in order and fits each on the previous one's output",
            testable=False,
            untestable_reason="a container with no effect of its own; the claims of its steps (whitening, "
            "all_but_the_top, ...) are tested one by one",
        ),
    )
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
        # Steps exchange arrays in the compute dtype (float32, or float64 for float64 input).
        xm, _ = as_matrix(self._who, x)
        check_finite_rows(self._who, xm)
        for t in self.transforms:
            params = {"frequencies": frequencies} if t.takes_frequencies else {}
            xm = t.fit_transform(xm, **params)
        return self

    def fit_transform(self, x: Any, y: Any = None, frequencies: Any = None) -> Any:
        return self.fit(x, y, frequencies=frequencies).transform(x)

    def transform(self, x: Any) -> Any:
        xm, restore = as_matrix(self._who, x, allow_vector=True)
        self._check_fitted()
        check_finite_rows(self._who, xm, shape=x.shape)
        for t in self.transforms:
            xm = t.transform(xm)
        return restore(xm)

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

