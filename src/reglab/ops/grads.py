"""Closed-form gradients added in place: the shared pieces of ``mode="grad"``.

A weight regularizer with a closed-form gradient implements
``grad_(tensors, grads, alpha)``: it adds ``alpha·∇R(tensors)`` into
``grads`` in place (one ``torch._foreach_*`` pass where the gradient is
elementwise) and returns the penalty value (detached) from the intermediates
the gradient already formed. Each method states its own derivative next to
its pure function; this module holds only what several methods share: the
in-place scaled add, the group-norm gradient of the group-sparsity
penalties (as per-group coefficients of ``w``, so the gradient is added with
one ``addcmul_`` and no temporary: ``add_coefficients_``, defined in
``reglab.core.regularizer`` because ``regs.add_grads`` fuses the
coefficients of several bindings with it), and the grouping of same-shaped
matrices for one batched matmul.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from reglab.core.errors import RegularizerInputError
from reglab.core.regularizer import add_coefficients_
from reglab.ops.groups import check_group_map, group_map_norms, group_rows

__all__ = [
    "add_coefficients_", "add_scaled_", "group_norm_coefficients", "indices_by_shape", "zero_safe_inverse",
]


def add_scaled_(grads: Sequence[torch.Tensor], updates: Sequence[torch.Tensor], alpha: float | torch.Tensor) -> None:
    """In place: ``grads[i] += alpha·updates[i]`` with one ``_foreach_add_``.

    ``alpha`` is a float, or a 0-d tensor (a GradScaler's scale on its device,
    read without a host sync). Updates computed in float32 for low-precision
    gradients are cast on the add."""
    grads, updates = list(grads), list(updates)
    if not grads:
        return
    if len(grads) != len(updates):
        raise RegularizerInputError(f"add_scaled_ got {len(updates)} updates for {len(grads)} gradients")
    if isinstance(alpha, torch.Tensor):
        updates = torch._foreach_mul(updates, alpha)
        alpha = 1.0
    if any(u.dtype != g.dtype for g, u in zip(grads, updates)):
        updates = [u.to(g.dtype) for g, u in zip(grads, updates)]
    torch._foreach_add_(grads, updates, alpha=alpha)


def zero_safe_inverse(norms: torch.Tensor) -> torch.Tensor:
    """``1/‖·‖`` where the norm is positive, 0 where it is 0: the (sub)gradient of a norm
    at 0 that autograd gives (``torch.linalg.vector_norm``'s backward is 0 there)."""
    pos = norms > 0
    return torch.where(pos, 1.0 / torch.where(pos, norms, torch.ones_like(norms)), torch.zeros_like(norms))


#: Elements per chunk when summing squares over dim 0 (groups="in"): the chunk's
#: squares stay in cache, so no temporary of the weight's size is formed.
_CHUNK = 1 << 18


def _accumulation_dtype(w: torch.Tensor) -> torch.dtype:
    return torch.float32 if w.dtype in (torch.float16, torch.bfloat16) else w.dtype


def _norms_over_dim1(w: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """‖w[:, j, …]‖₂ per index j of dim 1 (input units / channels), without a transposed copy:
    squares summed over dim 0 in cache-sized chunks (any memory layout), then over dims ≥ 2."""
    step = max(1, _CHUNK // max(1, math.prod(w.shape[1:])))
    acc: torch.Tensor | None = None
    for start in range(0, w.shape[0], step):
        chunk = w[start : start + step].to(dtype)
        part = torch.mul(chunk, chunk).sum(0)
        acc = part if acc is None else acc.add_(part)
    if acc is None:  # no rows
        return torch.zeros(w.shape[1], dtype=dtype, device=w.device)
    return acc.reshape(w.shape[1], -1).sum(1).sqrt()


def group_norm_coefficients(
    who: str, tensors: Sequence[torch.Tensor], groups: str | torch.Tensor, sqrt_size: bool = True
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(Σ_g c_g‖w_g‖₂, [coef per tensor])`` with ``∂(c_g‖w_g‖)/∂w_g = coef_g·w_g``.

    ``coef_g = c_g/‖w_g‖`` (0 for an all-zero group, the subgradient autograd
    gives), ``c_g = √p_g`` (``sqrt_size``) or 1, shaped to broadcast against
    the weight: ``(out, 1, …)`` for ``"out"``, ``(1, in, 1, …)`` for ``"in"``
    (no transpose), the weight's shape for a map of group ids or a 1-D
    ``"out"`` weight (each element its own group). The norms are one read of
    each weight; the value comes from the same norms. Low-precision weights
    get float32 norms. Groupings as in ``reglab.ops.groups.group_norm_sum``.
    """
    if isinstance(groups, torch.Tensor):
        if len(tensors) != 1:
            raise RegularizerInputError(f"{who} takes a map of group ids for one tensor, got {len(tensors)} tensors")
        w = tensors[0]
        norms, sizes, inverse = group_map_norms(w, check_group_map(who, w, groups))
        c = sizes.sqrt() if sqrt_size else torch.ones_like(sizes)
        return (c * norms).sum(), [(c * zero_safe_inverse(norms))[inverse].reshape(w.shape)]
    value: torch.Tensor | None = None
    coefs = []
    for w in tensors:
        if w.ndim == 0 or (groups == "in" and w.ndim < 2):
            group_rows(who, w, groups)  # raises the grouping's error
        dtype = _accumulation_dtype(w)
        if groups == "out":
            norms = w.abs().to(dtype) if w.ndim == 1 else torch.linalg.vector_norm(
                w, dim=tuple(range(1, w.ndim)), dtype=dtype)
            shape = tuple(w.shape) if w.ndim == 1 else (w.shape[0],) + (1,) * (w.ndim - 1)
            size = math.prod(w.shape[1:])  # p_g: 1 on a 1-D weight
        else:
            norms = _norms_over_dim1(w, dtype)
            shape = (1, w.shape[1]) + (1,) * (w.ndim - 2)
            size = w.shape[0] * math.prod(w.shape[2:])
        c = math.sqrt(size) if sqrt_size else 1.0
        term = c * norms.sum()
        value = term if value is None else value + term
        coefs.append((c * zero_safe_inverse(norms)).reshape(shape))
    assert value is not None
    return value, coefs


def indices_by_shape(mats: Sequence[torch.Tensor]) -> list[list[int]]:
    """Indices of ``mats`` grouped by shape, for one batched matmul per group on
    accelerators; on CPU each matrix alone (as ``reglab.ops.batching.stack_by_shape``)."""
    if all(m.device.type == "cpu" for m in mats):
        return [[i] for i in range(len(mats))]
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, m in enumerate(mats):
        by_shape.setdefault(tuple(m.shape), []).append(i)
    return list(by_shape.values())
