"""Closed-form gradients added in place: the shared pieces of ``mode="grad"``.

A weight regularizer with a closed-form gradient implements
``grad_(tensors, grads, alpha)``: it adds ``alpha·∇R(tensors)`` into
``grads`` in place (one ``torch._foreach_*`` pass where the gradient is
elementwise) and returns the penalty value (detached) from the intermediates
the gradient already formed. Each method states its own derivative next to
its pure function; this module holds only what several methods share: the
in-place scaled add, the group-norm gradient of the group-sparsity
penalties, and the grouping of same-shaped matrices for one batched matmul.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from reglab.core.errors import RegularizerInputError
from reglab.ops.groups import check_group_map, group_map_norms, group_rows

__all__ = ["add_scaled_", "group_norm_grads", "indices_by_shape", "zero_safe_inverse"]


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


def group_norm_grads(
    who: str, tensors: Sequence[torch.Tensor], groups: str | torch.Tensor, sqrt_size: bool = True
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(Σ_g c_g‖w_g‖₂, [∇…])`` with ``c_g = √p_g`` (``sqrt_size``) or 1.

    The gradient of ``c_g‖w_g‖`` is ``c_g·w_g/‖w_g‖`` (0 for an all-zero
    group, as autograd gives). Groupings as in
    :func:`reglab.ops.groups.group_norm_sum`: ``"out"``, ``"in"`` or, for one
    tensor, an integer map of group ids.
    """
    if isinstance(groups, torch.Tensor):
        if len(tensors) != 1:
            raise RegularizerInputError(f"{who} takes a map of group ids for one tensor, got {len(tensors)} tensors")
        w = tensors[0]
        norms, sizes, inverse = group_map_norms(w, check_group_map(who, w, groups))
        coef = sizes.sqrt() if sqrt_size else torch.ones_like(sizes)
        factor = (coef * zero_safe_inverse(norms))[inverse].reshape(w.shape)
        return (coef * norms).sum(), [w * factor]
    value: torch.Tensor | None = None
    out = []
    for w in tensors:
        rows = group_rows(who, w, groups)
        c = math.sqrt(rows.shape[1]) if sqrt_size else 1.0
        norms = torch.linalg.vector_norm(rows, dim=1)
        term = c * norms.sum()
        value = term if value is None else value + term
        g = rows * (c * zero_safe_inverse(norms)).unsqueeze(1)
        if groups == "out":
            out.append(g.reshape(w.shape))
        else:  # rows were (in, out·k…): undo the transpose
            out.append(g.reshape((w.shape[1], w.shape[0]) + tuple(w.shape[2:])).transpose(0, 1))
    assert value is not None
    return value, out


def indices_by_shape(mats: Sequence[torch.Tensor]) -> list[list[int]]:
    """Indices of ``mats`` grouped by shape, for one batched matmul per group on
    accelerators; on CPU each matrix alone (as :func:`reglab.ops.batching.stack_by_shape`)."""
    if all(m.device.type == "cpu" for m in mats):
        return [[i] for i in range(len(mats))]
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, m in enumerate(mats):
        by_shape.setdefault(tuple(m.shape), []).append(i)
    return list(by_shape.values())
