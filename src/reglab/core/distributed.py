"""The one place reglab talks to ``torch.distributed``.

Batch-statistic regularizers (VICReg, Barlow Twins, uniformity, FLOPS, ...)
call :func:`gather` on their inputs. Under an initialized process group with
world size > 1 it returns the global batch (all ranks' rows, in rank order);
otherwise it returns its input unchanged, at no cost.

Gradient contract. Every rank computes the same loss ``L`` on the global
batch. :func:`gather`'s backward all-reduces (sums) the incoming gradient and
returns this rank's slice, so rank ``r`` receives ``W·∂L/∂z_r`` (each of the
``W`` identical copies of ``L`` contributes ``∂L/∂z_r``). DDP then averages
parameter gradients over ranks, giving ``Σ_r ∂L/∂z_r·∂z_r/∂θ``: exactly the
gradient of the single-process loss on the concatenated batch. Gathers that
return only the local slice of the gradient without the sum are the
1/world_size bug that peer libraries shipped.

Ranks may hold different batch sizes (the last batch of an epoch); sizes are
exchanged first and rows padded for the collective.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["is_distributed", "world_size", "rank", "gather", "all_gather_nograd", "all_gather_indexed", "all_reduce_sum"]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def _sizes(x: torch.Tensor) -> list[int]:
    n = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    out = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(out, n)
    return [int(s.item()) for s in out]


def _gather_rows(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    biggest = max(sizes)
    if x.shape[0] < biggest:
        pad = x.new_zeros((biggest - x.shape[0],) + tuple(x.shape[1:]))
        x = torch.cat([x, pad])
    parts = [torch.empty_like(x) for _ in sizes]
    dist.all_gather(parts, x.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        sizes = _sizes(x)
        ctx.sizes = sizes
        ctx.rank = dist.get_rank()
        return _gather_rows(x, sizes)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]]


def gather(x: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    """All ranks' rows of ``x`` concatenated along dim 0, differentiable.

    A no-op when ``enabled`` is False or no multi-process group is running.
    """
    if not enabled or not is_distributed():
        return x
    return _Gather.apply(x)


@torch.no_grad()
def all_gather_nograd(x: torch.Tensor) -> torch.Tensor:
    """All ranks' rows of ``x`` concatenated, without autograd (for buffers)."""
    if not is_distributed():
        return x
    return _gather_rows(x, _sizes(x))


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """In-place sum over ranks (no autograd); returns ``x``."""
    if is_distributed():
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def all_gather_indexed(index: torch.Tensor, rows: torch.Tensor, enabled: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """All ranks' ``(index, rows)`` (no autograd), so every rank writes the same per-sample buffer rows.

    Used by the per-sample EMA / prediction buffers (ELR, PS-KD). Two gathers:
    packing indices into float rows would lose exactness past 2**24 samples.
    """
    if not (enabled and is_distributed()):
        return index, rows
    return all_gather_nograd(index), all_gather_nograd(rows)
