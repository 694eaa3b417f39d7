"""Deferred finite checks: no per-step host sync on accelerators.

On CPU every input check (``reglab.ops.validation``) and the finite check of
each penalty (``reglab.ops.batching.checked_total``) read the value at once
and raise a clear ``RegularizerInputError`` at the call, as always. On
an accelerator (CUDA, XPU, MPS, ...) reading a value back (``bool(t)``)
stalls the host until the device catches up, once per check, every step.
There the check is instead queued as a 0-d boolean tensor on the device
(no sync), and ``flush_checks`` reads all queued flags with **one**
sync: ``regs.step()`` calls it once per training step, and the queue also
flushes itself every ``FLUSH_EVERY`` checks (so standalone use, without
a ``RegularizerSet``, still raises within a bounded number of calls). A
non-finite input or penalty then raises the same error type, naming the
regularizer and what it got, at most one step late.

``torch._assert_async`` is not used: a failed device-side assert leaves the
CUDA context unusable, with no message naming the regularizer.
"""

from __future__ import annotations

import threading

import torch

from reglab.core.errors import RegularizerInputError

__all__ = ["defers", "defer_check", "flush_checks", "pending_checks", "FLUSH_EVERY"]

#: Queued checks after which the queue is read (one sync) even without ``regs.step()``.
FLUSH_EVERY = 256

_lock = threading.Lock()
_pending: list[tuple[torch.Tensor, str]] = []


def defers(x: torch.Tensor) -> bool:
    """True where a check on ``x`` is queued instead of read at once: any device but the CPU."""
    return x.device.type != "cpu"


def defer_check(ok: torch.Tensor, message: str) -> None:
    """Queue ``ok`` (a 0-d bool tensor, True when the check passed) with the error message
    to raise if it did not."""
    with _lock:
        _pending.append((ok.detach().reshape(()), message))
        full = len(_pending) >= FLUSH_EVERY
    if full:
        flush_checks()


def pending_checks() -> int:
    """How many checks are queued (for tests and debugging)."""
    return len(_pending)


def flush_checks() -> None:
    """Read every queued check with one host sync per device; raise the first failure's error."""
    with _lock:
        if not _pending:
            return
        items = list(_pending)
        _pending.clear()
    by_device: dict[torch.device, list[int]] = {}
    for i, (ok, _) in enumerate(items):
        by_device.setdefault(ok.device, []).append(i)
    failed: list[int] = []
    for idx in by_device.values():
        flags = torch.stack([items[i][0] for i in idx])
        if not bool(flags.all()):  # the one sync per device
            failed.extend(i for i, f in zip(idx, flags.tolist()) if not f)
    if failed:
        first = min(failed)
        more = f" ({len(failed) - 1} more check(s) failed in the same step)" if len(failed) > 1 else ""
        raise RegularizerInputError(
            f"{items[first][1]}{more} [checked at the step's end: on accelerators reglab defers its finite "
            f"checks to one host sync per step]"
        )
