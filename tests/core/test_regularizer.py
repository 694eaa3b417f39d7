"""The Regularizer base class, input validation and the no-op gather."""

from typing import NamedTuple

import pytest
import torch

import reglab
from reglab import RegularizerInputError
from reglab.ops.validation import check_choice, check_positive, check_probability, check_tensor
from reglab.core.distributed import all_gather_nograd, gather, is_distributed, world_size
from reglab.core.regularizer import Regularizer


class Square(Regularizer):
    name = "test_square"
    kind = "representation"

    def __init__(self, weight=1.0, scale=2.0):
        super().__init__(weight)
        self.scale = scale

    def penalty(self, x):
        return self.scale * x.pow(2).sum()


class Terms(NamedTuple):
    linear: torch.Tensor
    square: torch.Tensor


class TwoTerms(Regularizer):
    name = "test_two_terms"
    kind = "representation"

    def components(self, x):
        return Terms(x.sum(), x.pow(2).sum())


def test_forward_is_weight_times_penalty():
    x = torch.randn(5)
    reg = Square(weight=0.3)
    assert torch.allclose(reg(x), 0.3 * 2.0 * x.pow(2).sum())
    assert reg.components(x).penalty == pytest.approx(float(reg.penalty(x)))
    assert reg.get_config() == {"name": "test_square", "weight": 0.3, "scale": 2.0}


def test_penalty_defaults_to_sum_of_components():
    x = torch.randn(4)
    reg = TwoTerms()
    terms = reg.components(x)
    assert terms._fields == ("linear", "square")
    assert torch.allclose(reg.penalty(x), x.sum() + x.pow(2).sum())


def test_missing_implementation_is_explicit():
    class Empty(Regularizer):
        name = "test_empty"
        kind = "representation"

    with pytest.raises(NotImplementedError, match="neither"):
        Empty()(torch.ones(1))


def test_get_config_requires_stored_arguments():
    class Forgetful(Regularizer):
        name = "test_forgetful"
        kind = "representation"

        def __init__(self, weight=1.0, alpha=0.5):
            super().__init__(weight)

    with pytest.raises(AttributeError, match="self.alpha"):
        Forgetful().get_config()


def test_weight_regularizer_accepts_tensor_or_list():
    ws = [torch.randn(3, 4), torch.randn(2, 2, 3, 3)]
    reg = reglab.L2(2.0)
    assert torch.allclose(reg(ws), reg(ws[0]) + reg(ws[1]))
    with pytest.raises(ValueError, match="empty list"):
        reg([])


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.ones(0, 3), "empty"),
        (torch.ones(2, 3, dtype=torch.long), "floating-point"),
        (torch.tensor([[1.0, float("nan")]]), "NaN"),
        (torch.tensor([[1.0, float("inf")]]), "inf"),
        ([1.0, 2.0], "torch.Tensor"),
    ],
)
def test_check_tensor_messages_name_the_regularizer(bad, match):
    with pytest.raises(RegularizerInputError, match=match) as err:
        check_tensor("GroupLasso", bad, arg="weight")
    assert "GroupLasso" in str(err.value)


def test_check_tensor_rank():
    with pytest.raises(RegularizerInputError, match=r"VICReg expects embeddings with 2 dimensions, got shape \(3,\)"):
        check_tensor("VICReg", torch.ones(3), arg="embeddings", ndim=2)
    with pytest.raises(RegularizerInputError, match="at least 2"):
        check_tensor("SRIP", torch.ones(3), min_ndim=2)


def test_check_tensor_large_finite_values_pass():
    # the fast path sums; an overflowing sum of finite values must not be reported as inf
    x = torch.full((4,), 6e4, dtype=torch.float16)
    assert check_tensor("x", x) is x


def test_scalar_checks():
    assert check_positive("A", "eps", 1e-3) == 1e-3
    for bad in (0, -1.0, "1", True):
        with pytest.raises(RegularizerInputError):
            check_positive("A", "eps", bad)
    assert check_positive("A", "eps", 0, allow_zero=True) == 0
    with pytest.raises(RegularizerInputError, match=r"\[0, 1\)"):
        check_probability("Dropout", "p", 1.0)
    with pytest.raises(RegularizerInputError, match="one of"):
        check_choice("Whitening", "method", "pca2", ["pca", "zca"])


def test_gather_is_identity_without_process_group():
    x = torch.randn(3, 2, requires_grad=True)
    assert not is_distributed() and world_size() == 1
    assert gather(x) is x and all_gather_nograd(x) is x
