"""Input handling shared by the multi-vector (token-level) index transforms: token pooling, MUVERA.

A multi-vector document is a point cloud, an (n_i, d) matrix of token
embeddings; a collection is a list of them. ``as_clouds`` validates one cloud
or a list (numpy arrays or torch tensors, floating point, finite, one d) and
returns float64 numpy matrices and a ``restore`` that gives results back in
the input's type (numpy or torch, its float dtype and device).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from reglab.core import RegularizerInputError

__all__ = ["as_clouds", "maxsim", "refuse_meta"]


def _one(who: str, x: Any, i: int | None) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    where = "" if i is None else f" (document {i})"
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise RegularizerInputError(f"{who} expects floating-point token embeddings{where}, got dtype {x.dtype}")
        dtype = x.dtype
        a = x.astype(np.float64)

        def restore(y: np.ndarray) -> Any:
            return y.astype(dtype, copy=False)

    elif isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise RegularizerInputError(f"{who} expects floating-point token embeddings{where}, got dtype {x.dtype}")
        if x.device.type == "meta":
            raise RegularizerInputError(f"{who} got token embeddings{where} on the meta device (no values)")
        dtype, device = x.dtype, x.device
        a = x.detach().to("cpu", torch.float64).numpy()

        def restore(y: np.ndarray) -> Any:
            return torch.from_numpy(np.ascontiguousarray(y)).to(device=device, dtype=dtype)

    else:
        raise RegularizerInputError(
            f"{who} expects token embeddings as (n, d) numpy arrays or torch tensors{where}, got {type(x).__name__}"
        )
    if a.ndim != 2:
        raise RegularizerInputError(f"{who} expects an (n_tokens, d) matrix per document{where}, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise RegularizerInputError(f"{who} got an empty token matrix{where} of shape {a.shape}")
    if not np.isfinite(a).all():
        raise RegularizerInputError(f"{who} got NaN/inf token embeddings{where} of shape {a.shape}")
    return a, restore


def refuse_meta(who: str, clouds: Any) -> None:
    """The meta-device check of ``as_clouds`` alone, for a ``fit`` that has nothing to estimate: a meta
    tensor (a shape without values) is refused there too, not only later in ``transform``."""
    items = [clouds] if isinstance(clouds, torch.Tensor) else clouds if isinstance(clouds, (list, tuple)) else []
    for i, x in enumerate(items):
        if isinstance(x, torch.Tensor) and x.device.type == "meta":
            where = "" if isinstance(clouds, torch.Tensor) else f" (document {i})"
            raise RegularizerInputError(f"{who} got token embeddings{where} on the meta device (no values)")


def as_clouds(who: str, clouds: Any) -> tuple[list[np.ndarray], list[Callable[[np.ndarray], Any]], bool]:
    """(float64 matrices, restore per cloud, whether a single cloud was given)."""
    single = isinstance(clouds, (np.ndarray, torch.Tensor))
    items = [clouds] if single else clouds
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise RegularizerInputError(
            f"{who} expects one (n, d) token matrix or a list of them, got {type(clouds).__name__}"
        )
    if not items:
        raise RegularizerInputError(f"{who} got an empty list of documents")
    parsed = [_one(who, x, None if single else i) for i, x in enumerate(items)]
    dims = {a.shape[1] for a, _ in parsed}
    if len(dims) > 1:
        raise RegularizerInputError(f"{who} expects every document's tokens in one dimension, got dimensions {sorted(dims)}")
    return [a for a, _ in parsed], [r for _, r in parsed], single


def maxsim(query: np.ndarray, doc: np.ndarray) -> float:
    """Chamfer / ColBERT late-interaction score Σ_i max_j ⟨q_i, d_j⟩."""
    return float((np.asarray(query, dtype=np.float64) @ np.asarray(doc, dtype=np.float64).T).max(axis=1).sum())
