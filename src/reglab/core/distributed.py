"""The one place reglab talks to ``torch.distributed``.

Batch-statistic regularizers (VICReg, Barlow Twins, uniformity, FLOPS, ...)
call ``gather`` on their inputs. Under an initialized process group with
world size > 1 it returns the global batch (all ranks' rows, in rank order);
otherwise it returns its input unchanged, at no cost.

Gradient contract. Every rank computes the same loss ``L`` on the global
batch. ``gather``'s backward all-reduces (sums) the incoming gradient and
returns this rank's slice, so rank ``r`` receives ``W·∂L/∂z_r`` (each of the
``W`` identical copies of ``L`` contributes ``∂L/∂z_r``). DDP then averages
parameter gradients over ranks, giving ``Σ_r ∂L/∂z_r·∂z_r/∂θ``: exactly the
gradient of the single-process loss on the concatenated batch. Gathers that
return only the local slice of the gradient without the sum are the
1/world_size bug that peer libraries shipped.

Agreement before the first collective. A rank that raised alone would leave
the others waiting in the next collective until the process group's timeout,
and ranks that send tensors of different trailing shapes or dtypes make the
backend fail or abort. So every gather starts with one small all-gather of a
descriptor per rank (``agree``): whether the rank's own checks passed
(with its error message if not), and the number of dimensions, shape and
dtype of each tensor it is about to send. Every rank then judges the same
table and raises the same ``RegularizerInputError`` (naming the
regularizer and which rank sent what), or goes on knowing every rank's row
count, which the gather needs anyway to pad uneven batches (the last batch of
an epoch; a rank may hold 0 rows). Checks that need the global batch (its
size, its values) run after gathering, on the same rows on every rank.
"""

from __future__ import annotations

from types import TracebackType

import torch
import torch.distributed as dist

from reglab.core.errors import RegularizerInputError

__all__ = [
    "is_distributed", "world_size", "rank", "agree", "gather", "all_gather_nograd", "all_gather_indexed",
    "all_reduce_sum",
]  # fmt: skip


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


# ------------------------------------------------------------------ agreement
_MAX_TENSORS = 4  # tensors described in one agreement (two views; index and rows)
_MAX_DIMS = 8
_SLOT = 2 + _MAX_DIMS  # ndim, dtype code, shape
_HEADER = 2 + _MAX_TENSORS * _SLOT  # status, number of tensors, the slots (int64 each)
_MESSAGE_BYTES = 1024  # a failing rank's error message, UTF-8, cut beyond this
_OK, _FAILED = 0, 1
_DTYPES = tuple(
    getattr(torch, name)
    for name in (
        "float32", "float64", "float16", "bfloat16", "complex64", "complex128", "bool", "uint8", "int8", "int16",
        "int32", "int64", "uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2",
    )
    if hasattr(torch, name)
)  # fmt: skip
_UNKNOWN_DTYPE = len(_DTYPES)


def _dtype_code(dtype: torch.dtype) -> int:
    return _DTYPES.index(dtype) if dtype in _DTYPES else _UNKNOWN_DTYPE


def _dtype_name(code: int) -> str:
    return str(_DTYPES[code]) if 0 <= code < len(_DTYPES) else "an unlisted dtype"


def _descriptor_device() -> torch.device:
    """Where the descriptors travel: the CPU on gloo/MPI (or a group with a CPU backend), else the
    current accelerator (NCCL and friends take device tensors only). It depends on the backend alone,
    never on the input, so every rank picks the same kind of device even when its input is not a tensor."""
    backend = str(dist.get_backend()).lower()
    if any(cpu in backend for cpu in ("gloo", "mpi", "cpu:")):
        return torch.device("cpu")
    accelerator = torch.accelerator.current_accelerator() if hasattr(torch, "accelerator") else None
    if accelerator is None:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(accelerator.type, torch.accelerator.current_device_index())


class agree:
    """A block of per-rank checks that every rank passes or fails together, before any collective.

    ::

        with agree("VICReg") as agreed:        # inactive (no collective) without a process group
            check_tensor("VICReg", z, ...)     # this rank's own structural checks
            agreed.describe("first view", z)   # what this rank will send
        z = gather(z, sizes=agreed.sizes[0])   # every rank's row count, known from the exchange

    On leaving the block, under a process group with world size > 1 (and
    ``enabled``), each rank all-gathers a small descriptor: whether its block
    raised (and the message) and the ndim, shape and dtype of each described
    tensor. If any rank raised, or the described tensors differ across ranks in
    anything but the row count, every rank raises the same
    ``RegularizerInputError``, naming the regularizer and what each rank
    sent; the failing rank's own exception is chained to it. Otherwise
    ``sizes[i]`` is the list of every rank's row count of the ``i``-th
    described tensor. Inactive, the block is plain code: exceptions pass
    through unchanged and ``sizes`` stays None.
    """

    def __init__(self, who: str, *, enabled: bool = True):
        self.who = who
        self.active = enabled and is_distributed()
        self.sizes: list[list[int]] | None = None
        self._described: list[tuple[str, torch.Size, torch.dtype]] = []

    def describe(self, arg: str, x: torch.Tensor) -> torch.Tensor:
        """Record ``x`` (named ``arg`` in errors) as a tensor this rank will send; returns ``x``."""
        if not self.active:
            return x
        if len(self._described) == _MAX_TENSORS:
            raise RegularizerInputError(f"{self.who}: one agreement describes at most {_MAX_TENSORS} tensors")
        if not 1 <= x.ndim <= _MAX_DIMS:
            raise RegularizerInputError(
                f"{self.who} can gather {arg} over ranks only with 1 to {_MAX_DIMS} dimensions (rows first), "
                f"got shape {tuple(x.shape)}"
            )
        self._described.append((arg, x.shape, x.dtype))
        return x

    def __enter__(self) -> agree:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.active or (exc is not None and not isinstance(exc, Exception)):
            return  # no process group, or KeyboardInterrupt & co.: pass through
        message = None
        if exc is not None:
            message = str(exc) if isinstance(exc, RegularizerInputError) else f"{self.who} failed: {type(exc).__name__}: {exc}"
        table = _exchange(self._described, message)
        error = self._judge(table)
        if error is not None:
            raise RegularizerInputError(error) from exc
        self.sizes = [[int(row[2 + i * _SLOT + 2]) for row, _ in table] for i in range(len(self._described))]

    def _judge(self, table: list[tuple[list[int], str]]) -> str | None:
        """The error every rank raises, built from the gathered table only (so it is the same text on
        every rank), or None."""
        world = len(table)
        failed = [r for r, (row, _) in enumerate(table) if row[0] != _OK]
        if failed:
            first = failed[0]
            others = f"; ranks {', '.join(map(str, failed))} failed" if len(failed) > 1 else ""
            return f"{table[first][1]} [on rank {first} of {world}{others}; every rank raises this error]"
        counts = {row[1] for row, _ in table}
        if len(counts) > 1:
            per_rank = ", ".join(f"rank {r}: {row[1]}" for r, (row, _) in enumerate(table))
            return f"{self.who} was called with a different number of tensors on different ranks ({per_rank})"
        for i, (arg, _, _) in enumerate(self._described):
            slots = [row[2 + i * _SLOT : 2 + (i + 1) * _SLOT] for row, _ in table]
            signatures = {(s[0], s[1], tuple(s[3 : 2 + s[0]])) for s in slots}  # ndim, dtype, shape after rows
            if len(signatures) > 1:
                per_rank = "; ".join(
                    f"rank {r}: shape {tuple(s[2 : 2 + s[0]])} {_dtype_name(s[1])}" for r, s in enumerate(slots)
                )
                return (
                    f"{self.who} got {arg} that differ across ranks ({per_rank}); under DDP every rank must "
                    f"pass the same dtype and the same shape after the first (batch) dimension"
                )
        return None


def _exchange(described: list[tuple[str, torch.Size, torch.dtype]], message: str | None) -> list[tuple[list[int], str]]:
    """All-gather every rank's descriptor: (the int64 header as a list, the error message)."""
    header = [_OK if message is None else _FAILED, len(described)]
    for _, shape, dtype in described:
        header += [len(shape), _dtype_code(dtype), *shape, *[0] * (_MAX_DIMS - len(shape))]
    header += [0] * (_HEADER - len(header))
    text = (message or "").encode("utf-8")
    if len(text) > _MESSAGE_BYTES:
        text = text[: _MESSAGE_BYTES - 3] + "...".encode()
    mine = torch.zeros(_HEADER * 8 + _MESSAGE_BYTES, dtype=torch.uint8)
    mine[: _HEADER * 8] = torch.tensor(header, dtype=torch.int64).view(torch.uint8)
    if text:
        mine[_HEADER * 8 : _HEADER * 8 + len(text)] = torch.frombuffer(bytearray(text), dtype=torch.uint8)
    mine = mine.to(_descriptor_device())
    parts = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, mine)
    table = []
    for part in torch.stack(parts).cpu():  # the one host read
        row = part[: _HEADER * 8].view(torch.int64).tolist()
        raw = bytes(part[_HEADER * 8 :].tolist()).rstrip(b"\0")
        table.append((row, raw.decode("utf-8", errors="ignore")))
    return table


# ------------------------------------------------------------------ gathers
def _rows(who: str, arg: str, x: torch.Tensor, sizes: list[int] | None) -> list[int]:
    """Every rank's row count of ``x``: ``sizes`` when the caller's ``agree`` block already
    exchanged them, else from an agreement of its own."""
    if sizes is not None:
        return sizes
    with agree(who) as agreed:
        agreed.describe(arg, x)
    assert agreed.sizes is not None
    return agreed.sizes[0]


def _gather_rows(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    biggest = max(sizes)
    if biggest == 0:
        return x
    if x.shape[0] < biggest:
        pad = x.new_zeros((biggest - x.shape[0],) + tuple(x.shape[1:]))
        x = torch.cat([x, pad])
    parts = [torch.empty_like(x) for _ in sizes]
    dist.all_gather(parts, x.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:  # type: ignore[override]
        ctx.sizes = sizes
        ctx.rank = dist.get_rank()
        return _gather_rows(x, sizes)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None


def gather(
    x: torch.Tensor, enabled: bool = True, *, sizes: list[int] | None = None, who: str = "reglab.distributed.gather",
    arg: str = "input",
) -> torch.Tensor:
    """All ranks' rows of ``x`` concatenated along dim 0, differentiable.

    A no-op when ``enabled`` is False or no multi-process group is running.
    ``sizes``: every rank's row count, from the caller's ``agree`` block;
    without it the gather runs its own agreement (one more small collective),
    so ranks passing different trailing shapes or dtypes all raise the same
    error naming ``who`` and ``arg``.
    """
    if not enabled or not is_distributed():
        return x
    return _Gather.apply(x, _rows(who, arg, x, sizes))


@torch.no_grad()
def all_gather_nograd(
    x: torch.Tensor, *, sizes: list[int] | None = None, who: str = "reglab.distributed.all_gather_nograd",
    arg: str = "input",
) -> torch.Tensor:
    """All ranks' rows of ``x`` concatenated, without autograd (for buffers); ``sizes`` as ``gather``."""
    if not is_distributed():
        return x
    return _gather_rows(x, _rows(who, arg, x, sizes))


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """In-place sum over ranks (no autograd); returns ``x``."""
    if is_distributed():
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


@torch.no_grad()
def all_gather_indexed(
    index: torch.Tensor, rows: torch.Tensor, enabled: bool = True, *, who: str = "reglab.distributed.all_gather_indexed"
) -> tuple[torch.Tensor, torch.Tensor]:
    """All ranks' ``(index, rows)`` (no autograd), so every rank writes the same per-sample buffer rows.

    Used by the per-sample EMA / prediction buffers (ELR, PS-KD). One agreement
    for both tensors, then two gathers: packing indices into float rows would
    lose exactness past 2**24 samples.
    """
    if not (enabled and is_distributed()):
        return index, rows
    with agree(who) as agreed:
        agreed.describe("index", index)
        agreed.describe("rows", rows)
    assert agreed.sizes is not None
    return _gather_rows(index, agreed.sizes[0]), _gather_rows(rows, agreed.sizes[1])
