"""Input checks shared by every regularizer: the one place they live.

Every check raises ``RegularizerInputError`` (a ``ValueError``) whose
message names the regularizer, what it got and what it expects, so bad input
fails at the boundary instead of deep inside torch.

Hyperparameters are declared once, on the pure function, with
``hyperparameters``: ``@hyperparameters(l1_ratio=unit_interval)``. The
decorated function checks the values it is called with, and the class
derived from it (``reglab.core.config``) checks them at construction.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch

from reglab.core import checks as _checks
from reglab.core.checks import flush_checks
from reglab.core.errors import RegularizerInputError

__all__ = [
    "RegularizerInputError", "describe", "check_tensor", "check_positive", "check_probability", "check_choice",
    "check_int", "check_same_shape", "check_logits", "check_labels", "check_index", "check_num_classes", "check_table_size",
    "positive", "non_negative", "probability", "unit_interval", "one_of", "integer", "hyperparameters",
    "flush_checks", "require_values",
]  # fmt: skip


def describe(x: object) -> str:
    """A short description of ``x`` for error messages."""
    if isinstance(x, torch.Tensor):
        return f"tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"


def check_tensor(
    who: str,
    x: object,
    *,
    arg: str = "input",
    ndim: int | Sequence[int] | None = None,
    min_ndim: int | None = None,
    floating: bool = True,
    finite: bool = True,
    nonempty: bool = True,
) -> torch.Tensor:
    """Validate a tensor argument and return it.

    ``who`` is the regularizer's name as shown to the user ("GroupLasso").
    ``finite`` checks for NaN/inf; it costs one reduction, which is negligible
    next to any penalty and is what keeps a NaN from silently poisoning a run.
    On CPU it raises here; on an accelerator the check is queued without a
    host sync and raised at the step's end (``reglab.core.checks``).
    """
    if not isinstance(x, torch.Tensor):
        raise RegularizerInputError(f"{who} expects a torch.Tensor as {arg}, got {describe(x)}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(n) for n in allowed)
            raise RegularizerInputError(
                f"{who} expects {arg} with {want} dimensions, got shape {tuple(x.shape)}"
            )
    if min_ndim is not None and x.ndim < min_ndim:
        raise RegularizerInputError(
            f"{who} expects {arg} with at least {min_ndim} dimensions, got shape {tuple(x.shape)}"
        )
    if nonempty and x.numel() == 0:
        raise RegularizerInputError(f"{who} got an empty {arg} of shape {tuple(x.shape)}")
    if floating and not (x.is_floating_point() or x.is_complex()):
        raise RegularizerInputError(
            f"{who} expects a floating-point {arg}, got dtype {x.dtype}; "
            f"convert it with .float() first"
        )
    if finite and x.is_floating_point() and has_data(x) and _checks.defers(x):
        # on an accelerator: queued, read once per step (reglab.core.checks), no sync here
        _checks.defer_check(
            torch.isfinite(x.detach()).all(),
            f"{who} got NaN or inf values in {arg} of shape {tuple(x.shape)}; "
            f"refusing to return a penalty that would poison training",
        )
    elif finite and x.is_floating_point() and not _all_finite(x):
        bad = "NaN" if torch.isnan(x.detach()).any() else "inf"
        raise RegularizerInputError(
            f"{who} got {bad} values in {arg} of shape {tuple(x.shape)}; "
            f"refusing to return a penalty that would poison training"
        )
    return x


def has_data(x: torch.Tensor) -> bool:
    """False for tensors whose values cannot be read: meta tensors, the fake tensors
    of ``torch.compile`` tracing. Value checks are skipped for them (checks on
    structure still run), so a compiled step has no graph break and shape
    inference on the meta device works; eager runs keep every check."""
    if x.is_meta:
        return False
    try:
        if torch.compiler.is_compiling():
            return False
    except AttributeError:  # torch < 2.3
        pass
    from torch._subclasses.fake_tensor import FakeTensor

    return not isinstance(x, FakeTensor)


def require_values(who: str, *tensors: object, arg: str = "input", needs: str = "its values") -> None:
    """Refuse meta tensors where the computation depends on values, not only on shapes (a value-dependent
    branch, a fit to the data, a search, double backprop): there is no shape-only result to return.
    Only the meta device: fake tensors under ``torch.compile`` keep their graph-break path."""
    for x in tensors:
        if isinstance(x, torch.Tensor) and x.is_meta:
            raise RegularizerInputError(
                f"{who} needs {needs}, and its {arg} is a meta tensor of shape {tuple(x.shape)} (no data); "
                f"call it on tensors that hold values"
            )


def _all_finite(x: torch.Tensor) -> bool:
    if not has_data(x):
        return True
    # One fused reduction; `isfinite().all()` materializes a bool tensor of x's size.
    return bool(torch.isfinite(x.detach().sum())) or bool(torch.isfinite(x.detach()).all())


def check_positive(who: str, name: str, value: float, *, allow_zero: bool = False) -> float:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = is_number and (value >= 0 if allow_zero else value > 0)
    if not ok:
        want = "a non-negative number" if allow_zero else "a positive number"
        raise RegularizerInputError(f"{who} expects {name} to be {want}, got {value!r}")
    return float(value)


def check_probability(who: str, name: str, value: float, *, inclusive_one: bool = False) -> float:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = is_number and 0 <= value and (value <= 1 if inclusive_one else value < 1)
    if not ok:
        interval = "[0, 1]" if inclusive_one else "[0, 1)"
        raise RegularizerInputError(f"{who} expects {name} in {interval}, got {value!r}")
    return float(value)


def check_choice(who: str, name: str, value: object, choices: Sequence[object]) -> object:
    if value not in choices:
        raise RegularizerInputError(
            f"{who} expects {name} to be one of {list(choices)}, got {value!r}"
        )
    return value


def check_int(who: str, name: str, value: object, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise RegularizerInputError(f"{who} expects {name} to be an integer >= {minimum}, got {value!r}")
    return value


def check_same_shape(who: str, a: object, b: object, what: str = "two views") -> None:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape != b.shape:
        raise RegularizerInputError(
            f"{who} expects {what} of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


# ------------------------------------------------------------------ outputs
def check_logits(
    who: str, logits: object, *, arg: str = "logits", finite: bool = True, nonempty: bool = True
) -> torch.Tensor:
    """(batch, classes) float logits with at least two classes, all finite (``finite``), at
    least one row (``nonempty``: a DDP rank may hold none and check the gathered batch instead)."""
    check_tensor(who, logits, arg=arg, ndim=2, finite=finite, nonempty=nonempty)
    assert isinstance(logits, torch.Tensor)
    if logits.shape[1] < 2:
        raise RegularizerInputError(
            f"{who} needs at least 2 classes in {arg}, got shape {tuple(logits.shape)}"
        )
    return logits


def check_labels(
    who: str, labels: object, num_classes: int, *, batch: int | None = None, nonempty: bool = True
) -> torch.Tensor:
    """Integer class labels of shape (batch,), each in [0, num_classes); ``nonempty`` as ``check_logits``."""
    check_tensor(who, labels, arg="labels", ndim=1, floating=False, nonempty=nonempty)
    assert isinstance(labels, torch.Tensor)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise RegularizerInputError(
            f"{who} expects integer class labels, got dtype {labels.dtype}; pass soft targets as a 2-D tensor"
        )
    if batch is not None and labels.shape[0] != batch:
        raise RegularizerInputError(
            f"{who} got {labels.shape[0]} labels for a batch of {batch} rows"
        )
    if labels.numel() == 0 or not has_data(labels):
        return labels
    if _checks.defers(labels):
        return _deferred_range(who, labels, num_classes, f"labels in [0, {num_classes})")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        raise RegularizerInputError(
            f"{who} expects labels in [0, {num_classes}), got values in [{lo}, {hi}]"
        )
    return labels


def _deferred_range(who: str, values: torch.Tensor, size: int, expects: str) -> torch.Tensor:
    """On an accelerator: queue the range check (read once per step, ``reglab.core.checks``)
    and return the values clamped into [0, size), so that an out-of-range label or index
    cannot trigger a device-side assert (which would leave the device unusable, with no
    message) before the queued error names the regularizer, at most one step late."""
    ok = ((values >= 0) & (values < size)).all()
    _checks.defer_check(ok, f"{who} expects {expects}, got a value outside it (checked at the step's end)")
    return values.clamp(0, size - 1)


def check_index(who: str, index: object, num_samples: int, batch: int) -> torch.Tensor:
    """Integer dataset indices of shape (batch,), each in [0, num_samples)."""
    check_tensor(who, index, arg="index", ndim=1, floating=False, nonempty=False)
    assert isinstance(index, torch.Tensor)
    if index.is_floating_point() or index.dtype == torch.bool:
        raise RegularizerInputError(f"{who} expects integer dataset indices, got dtype {index.dtype}")
    if index.shape[0] != batch:
        raise RegularizerInputError(f"{who} got {index.shape[0]} indices for a batch of {batch} rows")
    if index.numel() == 0 or not has_data(index):
        return index.long()
    if _checks.defers(index):
        return _deferred_range(who, index.long(), num_samples, f"dataset indices in [0, {num_samples}) "
                               f"(num_samples={num_samples})")  # fmt: skip
    lo, hi = int(index.min()), int(index.max())
    if lo < 0 or hi >= num_samples:
        raise RegularizerInputError(
            f"{who} expects dataset indices in [0, {num_samples}) (num_samples={num_samples}), "
            f"got values in [{lo}, {hi}]"
        )
    return index.long()


def check_table_size(who: str, num_samples: object, num_classes: object) -> tuple[int, int]:
    """The size of a per-sample (N, C) buffer: N >= 1 samples, C >= 2 classes."""
    return check_int(who, "num_samples", num_samples, 1), check_int(who, "num_classes", num_classes, 2)


def check_num_classes(who: str, logits: torch.Tensor, num_classes: int) -> None:
    if logits.shape[1] != num_classes:
        raise RegularizerInputError(
            f"{who} was built for num_classes={num_classes}, got logits with {logits.shape[1]} classes"
        )


# ---------------------------------------------------------- hyperparameters
#: A constraint: ``check(who, name, value)`` raises RegularizerInputError or returns.
Constraint = Callable[[str, str, Any], Any]


def positive(who: str, name: str, value: Any) -> Any:
    return check_positive(who, name, value)


def non_negative(who: str, name: str, value: Any) -> Any:
    return check_positive(who, name, value, allow_zero=True)


def probability(who: str, name: str, value: Any) -> Any:
    """In [0, 1)."""
    return check_probability(who, name, value)


def unit_interval(who: str, name: str, value: Any) -> Any:
    """In [0, 1]."""
    return check_probability(who, name, value, inclusive_one=True)


def one_of(*choices: object) -> Constraint:
    return lambda who, name, value: check_choice(who, name, value, choices)


def integer(minimum: int) -> Constraint:
    return lambda who, name, value: check_int(who, name, value, minimum)


def hyperparameters(who: str | None = None, /, **constraints: Constraint) -> Callable[[Callable], Callable]:
    """Declare the constraints on a pure function's hyperparameters, once.

    ``who`` names the regularizer in error messages (default: the function's name).

    The wrapped function checks each constrained argument it is given
    (positionally or by keyword; defaults are valid by construction) and
    gains ``check_hyperparameters(who, values)``, which classes derived from
    it call at construction.
    """

    def decorate(fn: Callable) -> Callable:
        names = list(inspect.signature(fn).parameters)
        unknown = set(constraints) - set(names)
        if unknown:
            raise TypeError(f"{fn.__name__} has no parameters {sorted(unknown)}")
        checks = [(names.index(n), n, c) for n, c in constraints.items()]
        owner = who or fn.__name__

        @functools.wraps(fn)
        def checked(*args: Any, **kwargs: Any) -> Any:
            for position, name, check in checks:
                if name in kwargs:
                    check(owner, name, kwargs[name])
                elif position < len(args):
                    check(owner, name, args[position])
            return fn(*args, **kwargs)

        def check_hyperparameters(owner: str, values: dict[str, Any]) -> None:
            for _, name, check in checks:
                if name in values:
                    check(owner, name, values[name])

        checked.check_hyperparameters = check_hyperparameters  # type: ignore[attr-defined]
        return checked

    return decorate
