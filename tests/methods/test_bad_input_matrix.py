"""The bad-input matrix: every registered penalty × 15 kinds of awkward input.

Each cell must give either a clear ``RegularizerInputError`` naming the
regularizer, or a finite result equal to the float64 computation on the same
values. A silent NaN/inf, a wrong-but-finite value, or any other exception
(an ``IndexError`` from deep inside, a LAPACK error) fails the cell.
"""

from __future__ import annotations

import pytest
import torch

import reglab
from reglab.core.registry import get

from ._registry import PENALTIES, example, example_inputs, names

CASES = [
    "nan", "inf", "empty", "batch of 1", "wrong rank", "mismatched views", "int", "fp16", "bf16",
    "non-contiguous", "no grad", "0-d", "1 element", "1e20 scale", "meta",
]  # fmt: skip

#: tolerance of a low-precision input against float64 on the same (rounded) values
LOW_PRECISION_RTOL = {torch.float16: 2e-2, torch.bfloat16: 5e-2}


def _variant(x: torch.Tensor, case: str) -> torch.Tensor | None:
    """The first input, made awkward; None when the case does not apply to its shape."""
    if case == "nan":
        x = x.clone(); x.view(-1)[0] = float("nan"); return x  # noqa: E702
    if case == "inf":
        x = x.clone(); x.view(-1)[-1] = float("inf"); return x  # noqa: E702
    if case in ("empty", "batch of 1") and x.ndim == 0:
        return None  # a scalar first input (a loss) has no batch to slice
    if case == "empty":
        return x[:0]
    if case == "batch of 1":
        return x[:1]
    if case == "wrong rank":
        return x.reshape(-1) if x.ndim > 1 else x.reshape(1, 1, -1)
    if case == "int":
        return x.round().long()
    if case == "fp16":
        return x.half()
    if case == "bf16":
        return x.bfloat16()
    if case == "non-contiguous":
        if x.ndim < 2:
            return None
        return x.transpose(0, 1).contiguous().transpose(0, 1) if x.shape[0] != x.shape[1] else x.t().contiguous().t()
    if case == "no grad":
        return x.detach()
    if case == "0-d":
        return x.reshape(-1)[0]
    if case == "1 element":
        return x.reshape(-1)[:1].reshape((1,) * x.ndim)
    if case == "1e20 scale":
        return x.float() * 1e20
    if case == "meta":
        return x.to("meta")
    return None


def _call(name: str, inputs: list, device: str | None = None):
    torch.manual_seed(0)
    reg = example(name)
    if device is not None:  # a model built on the meta device carries its regularizers' buffers there too
        reg = reg.to(device)
    return reg(*inputs)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", [n for n in PENALTIES if n not in ("gradient_norm", "path_norm")])  # loss/model inputs
def test_bad_input_matrix(name, case):
    inputs = list(example_inputs(name))
    if case == "mismatched views":
        if get(name).num_inputs < 2 or not isinstance(inputs[1], torch.Tensor) or inputs[1].ndim < 2:
            pytest.skip("one input")
        inputs[1] = inputs[1][:, :-1]
        variant = inputs[0]
    else:
        variant = _variant(inputs[0], case)
        if variant is None:
            pytest.skip("does not apply to this input's shape")
        inputs[0] = variant
        if case == "meta":  # every tensor on the meta device
            inputs = [t.to("meta") if isinstance(t, torch.Tensor) else t for t in inputs]
    try:
        out = _call(name, inputs, "meta" if case == "meta" else None)
    except reglab.RegularizerInputError as e:
        assert names(name).search(str(e)), f"{name}/{case}: the error does not name the regularizer: {e}"
        return
    except Exception as e:  # any other error is an obscure one
        pytest.fail(f"{name}/{case}: {type(e).__name__} instead of a RegularizerInputError: {e}")
    if case == "meta":
        assert isinstance(out, torch.Tensor) and out.is_meta
        return
    assert torch.isfinite(out.detach()).all(), f"{name}/{case}: silent non-finite result {out}"
    # the same values in float64 give the same result
    reference_inputs = [t.double() if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in inputs]
    try:
        expected = _call(name, reference_inputs)
    except reglab.RegularizerInputError as e:
        pytest.fail(f"{name}/{case}: a result where float64 refuses ({e})")
    rtol = LOW_PRECISION_RTOL.get(variant.dtype, 1e-3)
    torch.testing.assert_close(out.detach().double(), expected.detach().double(), rtol=rtol, atol=1e-6,
                               msg=lambda m: f"{name}/{case}: wrong-but-finite result: {m}")  # fmt: skip
