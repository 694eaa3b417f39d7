"""Diagnostics on a model's weights: sparsity, group sparsity, orthogonality, norms.

"Weights" are the parameters the default selection takes (``reglab.core.selection``'s
``default_exclude``: no biases, no normalization parameters, no 1-d parameters),
so the numbers describe what a weight regularizer acts on.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from reglab.core.errors import RegularizerInputError
from reglab.core.selection import default_exclude
from reglab.ops.linalg import flatten_rows
from reglab.ops.validation import check_tensor

__all__ = [
    "named_weights",
    "weight_sparsity",
    "group_sparsity",
    "orthogonality_error",
    "layer_weight_norms",
]


def named_weights(model: nn.Module, *, min_ndim: int = 2) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, weight)`` for every default-selected parameter with ``ndim ≥ min_ndim``."""
    if not isinstance(model, nn.Module):
        raise RegularizerInputError(f"model diagnostics expect an nn.Module, got {type(model).__name__}")
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if p.ndim >= min_ndim and not default_exclude(full, p, module):
                yield full, p.detach()


def _weights(who: str, model: nn.Module, min_ndim: int) -> list[tuple[str, torch.Tensor]]:
    ws = list(named_weights(model, min_ndim=min_ndim))
    if not ws:
        raise RegularizerInputError(f"{who} found no weight tensors with ≥ {min_ndim} dimensions in the model")
    for name, w in ws:
        check_tensor(who, w, arg=f"parameter {name!r}")
    return ws


def weight_sparsity(model: nn.Module, *, tol: float = 0.0) -> float:
    """Fraction of weight entries with ``|w| ≤ tol`` over all weights (ndim ≥ 1)."""
    ws = _weights("weight_sparsity", model, 1)
    zeros = sum(int((w.abs() <= tol).sum()) for _, w in ws)
    return zeros / sum(w.numel() for _, w in ws)


def group_sparsity(model: nn.Module, *, tol: float = 0.0, per_layer: bool = False) -> float | dict[str, float]:
    """Fraction of zeroed groups: output units of linear layers, filters of
    convolutions (rows of ``w.reshape(out, -1)`` with ``‖row‖₂ ≤ tol``).

    Over all matrix/filter weights together, or a dict per layer.
    """
    ws = _weights("group_sparsity", model, 2)
    counts = {name: (int((flatten_rows(w).norm(dim=1) <= tol).sum()), w.shape[0]) for name, w in ws}
    if per_layer:
        return {name: z / n for name, (z, n) in counts.items()}
    return sum(z for z, _ in counts.values()) / sum(n for _, n in counts.values())


def orthogonality_error(w: torch.Tensor | nn.Module) -> float | dict[str, float]:
    """``‖W Wᵀ − I‖_F`` of a weight viewed as (out, in·k) rows, using the
    Gram matrix of the smaller side (``WᵀW`` when there are more rows than
    columns, so a tall matrix with orthonormal columns scores 0).

    On a module: a dict with one value per weight matrix/filter bank.
    """
    if isinstance(w, nn.Module):
        return {name: orthogonality_error(p) for name, p in _weights("orthogonality_error", w, 2)}
    m = check_tensor("orthogonality_error", w, arg="weight", min_ndim=2).detach().to(torch.float64)
    m = flatten_rows(m)
    g = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    return float((g - torch.eye(g.shape[0], dtype=g.dtype)).norm())


def layer_weight_norms(model: nn.Module, *, p: float = 2.0) -> dict[str, float]:
    """Entrywise ``p``-norm (Frobenius for ``p = 2``) of every weight tensor, by name."""
    return {
        name: float(w.to(torch.float64).flatten().norm(p=p))
        for name, w in _weights("layer_weight_norms", model, 1)
    }
