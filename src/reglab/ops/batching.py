"""Fused batching over many weight tensors: one tensor or a sequence, one code path.

Every weight penalty accepts a tensor or a sequence of tensors; for a
sequence it returns the sum of the per-tensor penalties, computed with
``torch._foreach_*`` (elementwise norms) or one batched matmul/SVD per
distinct shape (matrix penalties). Validation costs one device sync on CPU
and none on accelerators: type, dtype and shape are checked per tensor
without touching the data, and finiteness once, on the result (a NaN/inf
anywhere makes the sum non-finite); only on failure are the tensors
inspected one by one to name the offender. On accelerators that finite
check is queued and read once per step (``reglab.core.checks``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from reglab.core import checks as _checks
from reglab.core.errors import RegularizerInputError
from reglab.ops.validation import check_tensor, describe, has_data

__all__ = ["full_precision", "no_autocast", "as_tensors", "paired_tensors", "per_tensor_result", "checked_total", "stack_by_shape", "sum_terms", "norms_sum", "squared_norm", "squared_distance"]


def as_tensors(
    who: str,
    w: torch.Tensor | Sequence[torch.Tensor],
    *,
    arg: str = "weight",
    min_ndim: int | None = None,
    upcast: bool = True,
) -> list[torch.Tensor]:
    """One tensor or a sequence as a non-empty list, structurally checked (no device sync).

    With ``upcast`` (the default, for the formulas) float16/bfloat16 tensors
    come back as differentiable float32 copies: a penalty accumulates in
    float32 whatever the parameter dtype (Σw² of a 1000×1000 fp16 weight of
    std 0.3 is 9e4, past fp16's 65504). Callers that key state on the
    tensors themselves (anchors, power-iteration vectors) pass ``upcast=False``.
    """
    if isinstance(w, torch.Tensor):
        tensors = [w]
    elif isinstance(w, (list, tuple)):
        tensors = list(w)
    else:
        raise RegularizerInputError(f"{who} expects a torch.Tensor (or a list of them) as {arg}, got {describe(w)}")
    if not tensors:
        raise RegularizerInputError(f"{who} got an empty list of tensors")
    for t in tensors:
        check_tensor(who, t, arg=arg, min_ndim=min_ndim, finite=False)
    if upcast:
        tensors = [t.float() if t.dtype in (torch.float16, torch.bfloat16) else t for t in tensors]
    return tensors


def no_autocast(z: torch.Tensor):
    """A context that turns autocast off on ``z``'s device (nothing to turn off on the meta device,
    nor where autocast is already off: entering ``torch.autocast`` costs tens of µs per call)."""
    if z.device.type == "meta" or not _autocast_enabled(z.device.type):
        import contextlib

        return contextlib.nullcontext()
    return torch.autocast(device_type=z.device.type, enabled=False)


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled() if device_type == "cuda" else True


def full_precision(fn: Callable) -> Callable:
    """Run a weight penalty ``fn(w, ...)`` with autocast off on ``w``'s device (``no_autocast``):
    its matmuls and SVDs in the weights' own (at least float32) precision, and custom autograd
    Functions that see the dtypes they saved. A plain ``with`` block, so ``torch.compile`` traces it."""
    import functools

    @functools.wraps(fn)
    def wrapped(w, *args, **kwargs):
        first = _first_tensor(w)
        if first is None:  # not a tensor: fn's own validation names the problem
            return fn(w, *args, **kwargs)
        with no_autocast(first):
            return fn(w, *args, **kwargs)

    return wrapped


def _first_tensor(w: object) -> torch.Tensor | None:
    if isinstance(w, torch.Tensor):
        return w
    if isinstance(w, (list, tuple)):
        return next((t for t in w if isinstance(t, torch.Tensor)), None)
    return None


def paired_tensors(
    who: str,
    w: torch.Tensor | Sequence[torch.Tensor],
    other: torch.Tensor | Sequence[torch.Tensor],
    arg: str,
    shape_for: Callable[[torch.Tensor], tuple[int, ...]],
    *,
    min_ndim: int | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Weights and one companion tensor each (an anchor, a power-iteration vector), of
    shape ``shape_for(weight)``; one tensor and one companion, or two equal-length lists."""
    ws = as_tensors(who, w, min_ndim=min_ndim)
    others = as_tensors(who, other, arg=arg)
    if len(others) != len(ws):
        raise RegularizerInputError(f"{who} expects one {arg} per weight, got {len(others)} for {len(ws)}")
    for t, o in zip(ws, others):
        expected = tuple(shape_for(t))
        if tuple(o.shape) != expected:
            raise RegularizerInputError(
                f"{who} expects a {arg} of shape {expected} for the weight of shape {tuple(t.shape)}, "
                f"got {tuple(o.shape)}"
            )
    return ws, others


def per_tensor_result(w: object, total: torch.Tensor, states: list[torch.Tensor]):
    """``(total, state)`` for one tensor, ``(total, [states…])`` for a list: how the
    power-iteration penalties return the vectors to feed back."""
    return (total, states[0]) if isinstance(w, torch.Tensor) else (total, states)


def checked_total(who: str, value: torch.Tensor, tensors: Sequence[torch.Tensor], arg: str = "weight") -> torch.Tensor:
    """``value`` if finite; else the error naming the non-finite input (one sync on success).

    On an accelerator the check is queued instead, with no sync, and raised at
    the step's end (``reglab.core.checks``)."""
    if has_data(value) and _checks.defers(value):
        shapes = ", ".join(str(tuple(t.shape)) for t in tensors[:4]) + (", ..." if len(tensors) > 4 else "")
        _checks.defer_check(
            torch.isfinite(value.detach()).all(),
            f"{who} produced a non-finite penalty from its {arg}s (shapes {shapes}): NaN or inf values in a "
            f"{arg}, or intermediate sums overflowing {value.dtype}",
        )
        return value
    if has_data(value) and not bool(torch.isfinite(value.detach())):
        for w in tensors:  # slow path, only on failure: name the offending tensor
            check_tensor(who, w, arg=arg)
        largest = max(float(w.detach().abs().max()) for w in tensors if w.numel())
        raise RegularizerInputError(
            f"{who} produced a non-finite penalty ({float(value)}) from finite {arg}s: with values up to "
            f"{largest:.3g} its intermediate sums overflow {value.dtype}; pass float64 {arg}s, or rescale"
        )
    return value


def stack_by_shape(mats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """One (B, n, d) batch per distinct matrix shape, so a single bmm/SVD serves them all.

    Only on accelerators, where the cost is kernel launches. On CPU the copy
    into (and gradient split out of) the stack cost more than it saved in
    benchmarks/bench_weight_penalty.py (ResNet-18: soft orthogonality 94 ms
    stacked vs 69 ms per tensor), so there each matrix is its own batch (a view).
    """
    if all(m.device.type == "cpu" for m in mats):
        return [m.unsqueeze(0) for m in mats]
    by_shape: dict[tuple[int, ...], list[torch.Tensor]] = {}
    for m in mats:
        by_shape.setdefault(tuple(m.shape), []).append(m)
    return [torch.stack(ms) if len(ms) > 1 else ms[0].unsqueeze(0) for ms in by_shape.values()]


def sum_terms(values: Sequence[torch.Tensor]) -> torch.Tensor:
    """Left-to-right sum of scalar tensors (no stack: keeps each term's graph separate)."""
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


def norms_sum(tensors: Sequence[torch.Tensor], ord: float) -> torch.Tensor:
    """Σ_t ‖w_t‖_ord with one ``_foreach_norm``."""
    return torch.stack(torch._foreach_norm(list(tensors), ord)).sum()


class _SquaredNorm(torch.autograd.Function):
    """Σ_t ‖w_t‖² with backward 2·g·w_t in one ``_foreach_mul``.

    Autograd through ``_foreach_norm(...)²`` divides by the norms and
    multiplies back (several passes over every weight); this is one pass,
    and measured about half the time on ResNet-18 (CPU).
    """

    @staticmethod
    def forward(ctx, *tensors: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(*tensors)
        return torch.stack(torch._foreach_norm(list(tensors), 2)).pow(2).sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        return tuple(torch._foreach_mul(list(ctx.saved_tensors), 2.0 * grad))


def squared_norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Σ_t ‖w_t‖₂² (fused forward and one-pass backward)."""
    return _SquaredNorm.apply(*tensors)


def squared_distance(
    who: str, w: torch.Tensor | Sequence[torch.Tensor], anchor: torch.Tensor | Sequence[torch.Tensor]
) -> torch.Tensor:
    """Σ_t ‖w_t − a_t‖₂² over paired weights and anchors of the same shape (each anchor cast to its
    weight's dtype), checked finite; the distance to a fixed point (L2-SP, L2 Init)."""
    ws, anchors = paired_tensors(who, w, anchor, "anchor", lambda t: tuple(t.shape))
    diffs = torch._foreach_sub(ws, [a.to(t.dtype) for t, a in zip(ws, anchors)])
    return checked_total(who, squared_norm(diffs), [*ws, *anchors])
