"""Group views of a weight for the group-sparsity penalties (group lasso, sparse group lasso)."""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence

import torch

from reglab.core.errors import RegularizerInputError
from reglab.ops.batching import stack_by_shape, sum_terms
from reglab.ops.prox import group_soft_threshold

__all__ = ["GROUPINGS", "grouping", "group_rows", "check_group_map", "group_map_norms", "group_norm_sum", "group_prox_"]

#: Named groupings: output units/filters, or input units/channels.
GROUPINGS = ("out", "in")


def grouping(who: str, name: str, value: object) -> object:
    """Constraint: a named grouping (``"out"``, ``"in"``) or a tensor of group ids."""
    if not isinstance(value, torch.Tensor) and value not in GROUPINGS:
        raise RegularizerInputError(
            f"{who} expects {name} to be one of {list(GROUPINGS)} or an integer tensor of group ids, got {value!r}"
        )
    return value


def group_rows(who: str, w: torch.Tensor, groups: str) -> torch.Tensor:
    """The weight as a matrix with one group per row.

    ``"out"``: rows of the flattened weight (output units / filters; each
    element of a 1-D tensor is its own group). ``"in"``: input units /
    channels, i.e. dim 1 with every other dim flattened into the group.
    """
    if w.ndim == 0:
        raise RegularizerInputError(f"{who} needs a weight with at least 1 dimension to group, got a 0-d tensor")
    if groups == "out":
        return w.reshape(w.shape[0], -1) if w.ndim != 1 else w.reshape(-1, 1)
    if w.ndim < 2:
        raise RegularizerInputError(
            f"{who} with groups='in' needs a weight with at least 2 dimensions, got shape {tuple(w.shape)}"
        )
    return w.transpose(0, 1).reshape(w.shape[1], -1)


def check_group_map(who: str, w: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """An integer tensor of non-negative group ids with the weight's shape.

    The value check (no negative id) reads the map once: a map is checked
    again only after it changed (its version counter moved), so a penalty
    called every step on an accelerator does not sync the host every step."""
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise RegularizerInputError(f"{who} expects an integer tensor of group ids, got dtype {ids.dtype}")
    if ids.shape != w.shape:
        raise RegularizerInputError(
            f"{who} expects a group map with the weight's shape {tuple(w.shape)}, got {tuple(ids.shape)}"
        )
    if _cached(ids, "checked") is None:
        if ids.numel() and int(ids.min()) < 0:
            raise RegularizerInputError(f"{who} expects non-negative group ids, got a minimum of {int(ids.min())}")
        _store(ids, "checked", True)
    return ids


#: Per group map, what was derived from its values: ``id(ids) -> (weakref to ids, version, {key: value})``.
#: Keyed by id with a weak reference to tell a reused id from the same tensor (tensors cannot be
#: dictionary keys: their ``==`` is elementwise). Bounded: the oldest maps are forgotten first.
_MAP_CACHE: dict[int, tuple[weakref.ref, int, dict[object, object]]] = {}
_MAP_CACHE_SIZE = 64


def _derived(ids: torch.Tensor) -> dict[object, object] | None:
    """What was derived from this map while it is the same tensor, unchanged; None otherwise."""
    entry = _MAP_CACHE.get(id(ids))
    return entry[2] if entry is not None and entry[0]() is ids and entry[1] == ids._version else None


def _cached(ids: torch.Tensor, key: object) -> object | None:
    derived = _derived(ids)
    return None if derived is None else derived.get(key)


def _store(ids: torch.Tensor, key: object, value: object) -> None:
    derived = _derived(ids)
    if derived is None:
        if len(_MAP_CACHE) >= _MAP_CACHE_SIZE:
            _MAP_CACHE.pop(next(iter(_MAP_CACHE)))
        derived = {}
        _MAP_CACHE[id(ids)] = (weakref.ref(ids), ids._version, derived)
    derived[key] = value


def group_map_norms(w: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-group L2 norms for a user map of group ids.

    Returns ``(norms, sizes, inverse)``: one entry per distinct id (ids need
    not be contiguous) and, per element, the index of its group. The group
    structure (``torch.unique``, which reads the number of groups back to the
    host) is computed once per map and device, then reused while the map is
    unchanged.
    """
    key = ("structure", w.device, w.dtype)
    structure = _cached(ids, key)
    if structure is None:
        _, inverse = torch.unique(ids.reshape(-1).to(w.device), return_inverse=True)
        num = int(inverse.max()) + 1
        sizes = torch.bincount(inverse, minlength=num).to(w.dtype)
        structure = (inverse, num, sizes)
        _store(ids, key, structure)
    inverse, num, sizes = structure  # type: ignore[misc]
    sq = torch.zeros(num, dtype=w.dtype, device=w.device).index_add(0, inverse, w.reshape(-1).pow(2))
    # sqrt with subgradient 0 at an all-zero group (plain sqrt would give NaN there).
    pos = sq > 0
    norms = torch.where(pos, torch.where(pos, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))
    return norms, sizes, inverse


def group_norm_sum(
    who: str, tensors: Sequence[torch.Tensor], groups: str | torch.Tensor, sqrt_size: bool = True
) -> torch.Tensor:
    """Σ over tensors of Σ_g c_g ‖w_g‖₂ with c_g = √p_g (``sqrt_size``) or 1: one batched norm
    per distinct group-matrix shape, or, for a map of group ids (one tensor only), the per-id norms."""
    if isinstance(groups, torch.Tensor):
        if len(tensors) != 1:
            raise RegularizerInputError(f"{who} takes a map of group ids for one tensor, got {len(tensors)} tensors")
        norms, sizes, _ = group_map_norms(tensors[0], check_group_map(who, tensors[0], groups))
        return ((sizes.sqrt() * norms) if sqrt_size else norms).sum()
    mats = [group_rows(who, w, groups) for w in tensors]
    return sum_terms([
        (math.sqrt(b.shape[-1]) if sqrt_size else 1.0) * torch.linalg.vector_norm(b, dim=-1).sum()
        for b in stack_by_shape(mats)
    ])


def group_prox_(who: str, w: torch.Tensor, groups: str, threshold: float, sqrt_size: bool = True) -> None:
    """In place: group soft thresholding of ``w`` at ``threshold·c_g`` per group (named groupings),
    c_g = √p_g (``sqrt_size``) or 1."""
    if isinstance(groups, torch.Tensor):
        raise RegularizerInputError(f"{who}: mode='prox' supports groups='out' or 'in', not a map of group ids")
    rows = group_rows(who, w, groups)
    shrunk = group_soft_threshold(rows, threshold * (math.sqrt(rows.shape[1]) if sqrt_size else 1.0))
    if groups == "out":
        w.copy_(shrunk.reshape(w.shape))
    else:  # rows were (in, out·k…): undo the transpose
        w.copy_(shrunk.reshape((w.shape[1], w.shape[0]) + tuple(w.shape[2:])).transpose(0, 1))
