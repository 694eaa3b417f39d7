"""Input checks shared by every regularizer.

Every check raises :class:`RegularizerInputError` (a ``ValueError``) whose
message names the regularizer, what it got and what it expects, so bad input
fails at the boundary instead of deep inside torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class RegularizerInputError(ValueError):
    """A regularizer was given input it cannot use."""


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
    if finite and x.is_floating_point() and not _all_finite(x):
        bad = "NaN" if torch.isnan(x.detach()).any() else "inf"
        raise RegularizerInputError(
            f"{who} got {bad} values in {arg} of shape {tuple(x.shape)}; "
            f"refusing to return a penalty that would poison training"
        )
    return x


def _all_finite(x: torch.Tensor) -> bool:
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
